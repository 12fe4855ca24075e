//! Cluster status, pure: readers for what the NameNode (`/jmx`), the ResourceManager (REST)
//! and Flume agents (JSON monitoring) report, the snapshot they make up, its health, what
//! changed between two snapshots, and the faults only a snapshot shows.
//! Nothing here does I/O: the scheduler's checks fetch, these functions read.

pub mod checks;
pub mod flume;
pub mod namenode;
pub mod resourcemanager;
pub mod runner;
pub mod settings;
pub mod snapshot;

/// Why a status answer could not be read. The message is meant for `exec_logs` and the API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("unexpected answer: {0}")]
    Shape(String),
}

/// Parse a JSON answer, tolerating what Hadoop's JMX servlet really writes: bare `NaN`,
/// `Infinity` and `-Infinity` tokens (outside strings) read as `null`. An HTML page (a
/// proxy's or a servlet's error page) is named as such rather than reported as a JSON
/// syntax error.
pub fn tolerant_json(body: &str) -> Result<serde_json::Value, ReadError> {
    let trimmed = body.trim_start();
    if trimmed.is_empty() {
        return Err(ReadError::NotJson("empty body".into()));
    }
    if trimmed.starts_with('<') {
        let title = between(trimmed, "<title>", "</title>")
            .map(|t| format!(" ({})", t.trim()))
            .unwrap_or_default();
        return Err(ReadError::NotJson(format!(
            "an HTML page{title}, not JSON: an error page or a proxy answered"
        )));
    }
    let cleaned = replace_non_finite(body);
    serde_json::from_str(&cleaned).map_err(|e| {
        let what = if e.is_eof() {
            "truncated JSON"
        } else {
            "invalid JSON"
        };
        ReadError::NotJson(format!("{what}: {e}"))
    })
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let lower = s.to_ascii_lowercase();
    let a = lower.find(open)? + open.len();
    let b = lower[a..].find(close)? + a;
    s.get(a..b)
}

/// `NaN`, `Infinity`, `-Infinity` outside JSON strings → `null`.
fn replace_non_finite(body: &str) -> std::borrow::Cow<'_, str> {
    if !body.contains("NaN") && !body.contains("Infinity") {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        } else {
            let token = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = token {
                out.push_str("null");
                rest = &rest[t.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// A JSON number (or a numeric string, as Flume and some JMX attributes write them) as u64;
/// `None` for null, negatives, non-numbers.
pub(crate) fn as_u64(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

/// A JSON number or numeric string as f64; `None` for null and non-finite values.
pub(crate) fn as_f64(v: Option<&serde_json::Value>) -> Option<f64> {
    let f = match v? {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

pub(crate) fn as_str(v: Option<&serde_json::Value>) -> Option<&str> {
    v?.as_str()
}

#[cfg(test)]
pub(crate) mod testdata {
    use std::path::PathBuf;

    /// A sample from `../shared/reference/hadoop/`, or `None` when the shared folder is absent.
    pub fn sample(name: &str) -> Option<String> {
        let dir = crate::parse::testdata::shared_dir()?;
        let path: PathBuf = dir.join("reference/hadoop").join(name);
        Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_read_as_null_but_strings_are_kept() {
        let v = tolerant_json(
            r#"{"a": NaN, "b": -Infinity, "c": "NaN and Infinity", "d": [Infinity, 1]}"#,
        )
        .unwrap();
        assert!(v["a"].is_null() && v["b"].is_null() && v["d"][0].is_null());
        assert_eq!(v["c"], "NaN and Infinity");
        assert_eq!(v["d"][1], 1);
        let v = tolerant_json(r#"{"s": "say \"NaN\"", "n": NaN}"#).unwrap();
        assert_eq!(v["s"], "say \"NaN\"");
    }

    #[test]
    fn bad_answers_are_named() {
        let html =
            "<html><head><title>Error 500 Server Error</title></head><body>...</body></html>";
        let e = tolerant_json(html).unwrap_err().to_string();
        assert!(e.contains("HTML page (Error 500 Server Error)"), "{e}");
        let e = tolerant_json(r#"{"beans": [{"name": "x""#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("not JSON: truncated JSON"), "{e}");
        let e = tolerant_json("").unwrap_err().to_string();
        assert!(e.contains("empty body"), "{e}");
        let e = tolerant_json("{oops}").unwrap_err().to_string();
        assert!(e.starts_with("not JSON: invalid JSON"), "{e}");
    }

    #[test]
    fn numbers_from_numbers_and_strings() {
        let v = serde_json::json!({"a": 5, "b": "7", "c": 2.5, "d": -1, "e": null, "f": "x"});
        assert_eq!(as_u64(v.get("a")), Some(5));
        assert_eq!(as_u64(v.get("b")), Some(7));
        assert_eq!(as_u64(v.get("c")), Some(2));
        assert_eq!(as_u64(v.get("d")), None);
        assert_eq!(as_u64(v.get("e")), None);
        assert_eq!(as_u64(v.get("f")), None);
        assert_eq!(as_f64(v.get("c")), Some(2.5));
        assert_eq!(as_f64(v.get("missing")), None);
    }
}
