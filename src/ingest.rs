//! Decoding of ingest request bodies into per-stream line batches (pure; no HTTP types).
//!
//! Shapes, chosen by `Content-Type`:
//! - `text/plain` or none: Flume HttpSink's single raw line, or a newline-separated batch;
//! - `application/json`: a Flume JSONHandler array `[{"headers": {...}, "body": "..."}]`,
//!   an array of strings, or one such object;
//! - `application/x-ndjson` (also `application/ndjson`, `application/jsonl`): one JSON object
//!   per line with `message` (or `body`, `log`, `msg`) and optional `host`, `service`,
//!   `file` (or `path`), `cluster`.
//!
//! Stream identity comes from the query string (`host`, `service`, `file`, `cluster`); per-event
//! fields override it. Bytes that are not UTF-8 are decoded lossily, never rejected. A body is
//! accepted whole or rejected whole, so a shipper can always safely resend it.

use serde_json::Value;

use crate::domain::StreamKey;
use crate::wal::WalBatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One line in a text body: what Flume's HTTP sink sends.
    FlumeLine,
    Text,
    Json,
    Ndjson,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::FlumeLine, Shape::Text, Shape::Json, Shape::Ndjson];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::FlumeLine => "flume_line",
            Shape::Text => "text",
            Shape::Json => "json",
            Shape::Ndjson => "ndjson",
        }
    }

    /// The shape a `Content-Type` announces (a text body may still turn out to be one line).
    pub fn from_content_type(content_type: Option<&str>) -> Shape {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match essence.as_str() {
            "application/json" => Shape::Json,
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Shape::Ndjson,
            _ => Shape::Text,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty body: nothing to ingest")]
    Empty,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
}

/// The decoded body: batches of consecutive lines of one stream, and the shape actually seen.
#[derive(Debug)]
pub struct Decoded {
    pub shape: Shape,
    pub batches: Vec<WalBatch>,
    pub lines: usize,
}

struct Builder {
    batches: Vec<WalBatch>,
    lines: usize,
}

impl Builder {
    fn push(&mut self, stream: StreamKey, text: &str) {
        // An event body may itself hold several lines (a whole stack trace); keep them apart
        // so the joiner sees physical lines as it would from a file.
        for line in split_lines(text) {
            match self.batches.last_mut() {
                Some(b) if b.stream == stream => b.lines.push(line.to_string()),
                _ => self.batches.push(WalBatch {
                    stream: stream.clone(),
                    lines: vec![line.to_string()],
                }),
            }
            self.lines += 1;
        }
    }
}

/// Split on `\n`, dropping one trailing `\r` per line and the empty piece after a final `\n`.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Decode `body` sent with `content_type`; `default` is the stream named by the query string.
///
/// ```
/// use faultline::domain::StreamKey;
/// use faultline::ingest::{Shape, decode};
///
/// let query = StreamKey { host: "worker1".into(), service: "datanode".into(), ..Default::default() };
/// let body = br#"[{"headers": {"host": "master", "service": "namenode"}, "body": "line 1"}, "line 2"]"#;
/// let d = decode(body, Some("application/json"), &query).unwrap();
/// assert_eq!(d.shape, Shape::Json);
/// assert_eq!(d.batches[0].stream.host, "master");
/// assert_eq!(d.batches[1].stream.host, "worker1");
/// ```
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
    default: &StreamKey,
) -> Result<Decoded, DecodeError> {
    let mut out = Builder {
        batches: Vec::new(),
        lines: 0,
    };
    let declared = Shape::from_content_type(content_type);
    let shape = match declared {
        Shape::Json => {
            decode_json(body, default, &mut out)?;
            Shape::Json
        }
        Shape::Ndjson => {
            decode_ndjson(body, default, &mut out)?;
            Shape::Ndjson
        }
        Shape::Text | Shape::FlumeLine => {
            // Only a body with no bytes at all is empty: a whitespace-only line is a line
            // (a blank line inside a console excerpt) and Flume would drop it on a 400.
            if body.is_empty() {
                return Err(DecodeError::Empty);
            }
            let text = String::from_utf8_lossy(body);
            out.push(default.clone(), &text);
            if out.lines == 1 {
                Shape::FlumeLine
            } else {
                Shape::Text
            }
        }
    };
    Ok(Decoded {
        shape,
        batches: out.batches,
        lines: out.lines,
    })
}

fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        // Lossy fallback: invalid UTF-8 inside strings must not lose the event.
        Err(e) if std::str::from_utf8(bytes).is_err() => {
            serde_json::from_str(&String::from_utf8_lossy(bytes))
                .map_err(|_| DecodeError::Json(e.to_string()))
        }
        Err(e) => Err(DecodeError::Json(e.to_string())),
    }
}

fn str_field<'a>(obj: &'a serde_json::Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| obj.get(*n).and_then(Value::as_str))
}

/// Per-event identity: fields present in `obj` override the query string's.
fn stream_for(obj: &serde_json::Map<String, Value>, default: &StreamKey) -> StreamKey {
    let pick = |names: &[&str], fallback: &str| {
        str_field(obj, names)
            .filter(|v| !v.is_empty())
            .unwrap_or(fallback)
            .to_string()
    };
    StreamKey {
        cluster: pick(&["cluster"], &default.cluster),
        host: pick(&["host", "hostname"], &default.host),
        service: pick(&["service"], &default.service),
        file: pick(&["file", "path", "basename"], &default.file),
    }
}

fn decode_json(body: &[u8], default: &StreamKey, out: &mut Builder) -> Result<(), DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    let value = parse_json(body)?;
    let events = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(DecodeError::Shape(format!(
                "expected a JSON array of events or strings, got {}",
                kind(&other)
            )));
        }
    };
    for (i, event) in events.iter().enumerate() {
        match event {
            Value::String(s) => out.push(default.clone(), s),
            Value::Object(obj) => {
                // Flume JSONHandler: {"headers": {...}, "body": "..."}.
                let headers = obj.get("headers").and_then(Value::as_object);
                let stream = match headers {
                    Some(h) => stream_for(h, &stream_for(obj, default)),
                    None => stream_for(obj, default),
                };
                let Some(text) = str_field(obj, &["body", "message", "log", "msg"]) else {
                    return Err(DecodeError::Shape(format!(
                        "event {i}: missing string field `body` (or `message`)"
                    )));
                };
                out.push(stream, text);
            }
            other => {
                return Err(DecodeError::Shape(format!(
                    "event {i}: expected an object or a string, got {}",
                    kind(other)
                )));
            }
        }
    }
    Ok(())
}

fn decode_ndjson(body: &[u8], default: &StreamKey, out: &mut Builder) -> Result<(), DecodeError> {
    let mut any = false;
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        any = true;
        let value = parse_json(raw).map_err(|e| match e {
            DecodeError::Json(m) => DecodeError::Json(format!("line {}: {m}", i + 1)),
            other => other,
        })?;
        let Value::Object(obj) = &value else {
            return Err(DecodeError::Shape(format!(
                "line {}: expected a JSON object, got {}",
                i + 1,
                kind(&value)
            )));
        };
        let Some(text) = str_field(obj, &["message", "body", "log", "msg"]) else {
            return Err(DecodeError::Shape(format!(
                "line {}: missing string field `message` (or `body`)",
                i + 1
            )));
        };
        out.push(stream_for(obj, default), text);
    }
    if any { Ok(()) } else { Err(DecodeError::Empty) }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str) -> StreamKey {
        StreamKey {
            cluster: "c".into(),
            host: host.into(),
            service: "datanode".into(),
            file: String::new(),
        }
    }

    #[test]
    fn flume_single_line_and_text_batches() {
        let d = decode(
            b"2024-05-12 10:15:32,118 WARN x: y",
            Some("text/plain"),
            &key("w1"),
        )
        .unwrap();
        assert_eq!(d.shape, Shape::FlumeLine);
        assert_eq!(d.lines, 1);
        let d = decode(b"a\r\nb\n\tat c\n", None, &key("w1")).unwrap();
        assert_eq!(d.shape, Shape::Text);
        assert_eq!(d.batches[0].lines, vec!["a", "b", "\tat c"]);
        assert_eq!(
            decode(b"", None, &key("w1")).unwrap_err(),
            DecodeError::Empty
        );
        let d = decode(b"   \n", None, &key("w1")).unwrap();
        assert_eq!(
            d.batches[0].lines,
            vec!["   "],
            "a whitespace-only line is kept"
        );
    }

    #[test]
    fn invalid_utf8_is_kept_lossily() {
        let d = decode(b"caf\xff line", Some("text/plain"), &key("w1")).unwrap();
        assert_eq!(d.batches[0].lines[0], "caf\u{fffd} line");
        let d = decode(b"[\"caf\xff\"]", Some("application/json"), &key("w1")).unwrap();
        assert_eq!(d.batches[0].lines[0], "caf\u{fffd}");
    }

    #[test]
    fn json_handler_events_take_identity_from_headers() {
        let body = br#"[{"headers":{"host":"w2","service":"namenode"},"body":"l1"},
                        {"headers":{"host":"w2","service":"namenode"},"body":"l2"},
                        {"body":"l3"}, "l4"]"#;
        let d = decode(body, Some("application/json; charset=UTF-8"), &key("w1")).unwrap();
        assert_eq!(d.shape, Shape::Json);
        assert_eq!(d.lines, 4);
        assert_eq!(d.batches.len(), 2);
        assert_eq!(d.batches[0].stream.host, "w2");
        assert_eq!(d.batches[0].stream.service, "namenode");
        assert_eq!(d.batches[0].lines, vec!["l1", "l2"]);
        assert_eq!(d.batches[1].stream, key("w1"));
    }

    #[test]
    fn json_errors_say_what_is_wrong() {
        let e = decode(b"[{\"body\": ", Some("application/json"), &key("w")).unwrap_err();
        assert!(
            matches!(e, DecodeError::Json(ref m) if m.contains("line 1")),
            "{e}"
        );
        let e = decode(b"[{\"headers\":{}}]", Some("application/json"), &key("w")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event 0: missing string field `body` (or `message`)"
        );
        let e = decode(b"42", Some("application/json"), &key("w")).unwrap_err();
        assert!(e.to_string().contains("a number"));
    }

    #[test]
    fn ndjson_lines_with_optional_fields() {
        let body = b"{\"message\":\"m1\",\"host\":\"h9\",\"service\":\"sshd\"}\n\n{\"body\":\"m2\",\"path\":\"/var/log/secure\"}\n";
        let d = decode(body, Some("application/x-ndjson"), &key("w1")).unwrap();
        assert_eq!(d.shape, Shape::Ndjson);
        assert_eq!(d.lines, 2);
        assert_eq!(d.batches[0].stream.host, "h9");
        assert_eq!(d.batches[1].stream.file, "/var/log/secure");
        let e = decode(
            b"{\"message\":\"ok\"}\n{\"nope\":1}\n",
            Some("application/x-ndjson"),
            &key("w"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: missing string field `message` (or `body`)"
        );
        let e = decode(
            b"{\"message\":\"ok\"}\nnot json\n",
            Some("application/x-ndjson"),
            &key("w"),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("invalid JSON: line 2:"), "{e}");
    }
}
