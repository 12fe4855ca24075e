//! Re-joining multi-line records (stack traces, banners, dumps) per stream.
//!
//! Flume posts one physical line per HTTP request and the lines of many streams interleave, so
//! a Java stack trace arrives as a header line followed, maybe much later and mixed with other
//! streams' lines, by its `\tat ...` frames. The [`Joiner`] keeps one open record per stream
//! (`HashMap<StreamId, _>`): a header line closes the stream's open record and opens a new one,
//! a continuation line is appended to it. Closed records are pushed to the caller's `Vec` as
//! `LogRecord`s with the event time converted to UTC and the stream identity filled in.
//!
//! Records are also closed when the stream stays idle ([`Joiner::flush_idle`], the caller's
//! timer), when they would grow past `max_record_lines` / `max_record_bytes` (the overflow
//! starts an `OrphanContinuation` record), and on shutdown ([`Joiner::flush_all`]).
//! [`Joiner::oldest_open_seq`] tells the write-ahead log how far it may be truncated.
//!
//! One extension over "header closes, continuation appends": an unrecognised line (layout
//! `Raw`, level `Unknown`, e.g. `Container killed on request. Exit code is 143` or
//! `10.20.0.32:8485: Journal Storage Directory ... not formatted`) that follows a timestamped
//! log4j-family header in the same stream is appended to it, because in a log file such a line
//! can only be part of the previous record's multi-line message. This follows the rule of
//! `hadoop-interfaces.md` 6.4; [`Joiner::set_join_unrecognised`] turns it off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::infer_service;
use super::layouts::{LineKind, LocalTime, ParsedLine, parse_line, year_from_days};
use crate::domain::{Layout, Level, LogRecord, StreamKey};

/// Identity of a stream; streams are compared by value (`StreamKey: Eq + Hash`).
pub type StreamId = Arc<StreamKey>;

/// Limits and clock settings of a [`Joiner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinerConfig {
    /// Most physical lines in one record; further continuation lines start a new record.
    pub max_record_lines: u32,
    /// Most bytes in one record's message; further continuation lines start a new record.
    pub max_record_bytes: usize,
    /// Offset of the log writers' wall clock from UTC (`+3600` for UTC+1).
    pub utc_offset_secs: i32,
}

impl Default for JoinerConfig {
    fn default() -> Self {
        JoinerConfig {
            max_record_lines: 500,
            max_record_bytes: 64 * 1024,
            utc_offset_secs: 0,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

#[derive(Debug)]
struct OpenRecord {
    rec: LogRecord,
    last_at: Instant,
    /// The header is a timestamped log4j-family line: unrecognised lines join it.
    absorbs_raw: bool,
}

/// Per-stream assembler of multi-line records. See the module docs.
#[derive(Debug)]
pub struct Joiner {
    cfg: JoinerConfig,
    open: HashMap<StreamId, OpenRecord>,
    join_unrecognised: bool,
}

impl Joiner {
    pub fn new(cfg: JoinerConfig) -> Self {
        Joiner {
            cfg,
            open: HashMap::new(),
            join_unrecognised: true,
        }
    }

    /// Whether an unrecognised line (`Raw`, level `Unknown`) following a timestamped log4j-family
    /// header of the same stream is appended to it (default `true`) or starts its own record.
    pub fn set_join_unrecognised(&mut self, on: bool) {
        self.join_unrecognised = on;
    }

    pub fn config(&self) -> &JoinerConfig {
        &self.cfg
    }

    /// Feed one physical line. Completed records are pushed to `out`.
    pub fn push(
        &mut self,
        stream: &StreamId,
        seq: u64,
        received_ms: i64,
        line: &str,
        now: Instant,
        out: &mut Vec<LogRecord>,
    ) {
        let parsed = parse_line(line);
        let unrecognised = parsed.layout == Layout::Raw && parsed.level == Level::Unknown;
        if let Some(open) = self.open.get_mut(stream) {
            let joins = match parsed.kind {
                LineKind::Continuation => true,
                LineKind::Header => self.join_unrecognised && unrecognised && open.absorbs_raw,
            };
            if joins {
                let rec = &mut open.rec;
                let fits_lines = rec.line_count < self.cfg.max_record_lines;
                let fits_bytes = rec
                    .message
                    .len()
                    .saturating_add(1)
                    .saturating_add(parsed.message.len())
                    <= self.cfg.max_record_bytes;
                if fits_lines && fits_bytes {
                    rec.message.push('\n');
                    rec.message.push_str(parsed.message);
                    rec.line_count = rec.line_count.saturating_add(1);
                    rec.last_seq = seq;
                    open.last_at = now;
                    return;
                }
            }
            let fresh = open_record(&self.cfg, stream, seq, received_ms, &parsed, now);
            let closed = std::mem::replace(open, fresh);
            out.push(closed.rec);
        } else {
            let fresh = open_record(&self.cfg, stream, seq, received_ms, &parsed, now);
            self.open.insert(Arc::clone(stream), fresh);
        }
    }

    /// Close records whose last line arrived more than `idle` ago (pushed in `id` order).
    pub fn flush_idle(&mut self, now: Instant, idle: Duration, out: &mut Vec<LogRecord>) {
        let mut closed: Vec<LogRecord> = self
            .open
            .extract_if(|_, o| now.saturating_duration_since(o.last_at) > idle)
            .map(|(_, o)| o.rec)
            .collect();
        closed.sort_by_key(|r| r.id);
        out.extend(closed);
    }

    /// Close every open record (pushed in `id` order).
    pub fn flush_all(&mut self, out: &mut Vec<LogRecord>) {
        let mut closed: Vec<LogRecord> = self.open.drain().map(|(_, o)| o.rec).collect();
        closed.sort_by_key(|r| r.id);
        out.extend(closed);
    }

    /// Smallest `id` (first seq) of any open record, `None` when nothing is open.
    pub fn oldest_open_seq(&self) -> Option<u64> {
        self.open.values().map(|o| o.rec.id).min()
    }

    pub fn open_records(&self) -> usize {
        self.open.len()
    }
}

/// A new open record from `parsed`: a header, or an orphan when `parsed` is a continuation.
fn open_record(
    cfg: &JoinerConfig,
    stream: &StreamKey,
    seq: u64,
    received_ms: i64,
    parsed: &ParsedLine<'_>,
    now: Instant,
) -> OpenRecord {
    let (layout, level) = match parsed.kind {
        LineKind::Header => (parsed.layout, parsed.level),
        LineKind::Continuation => (Layout::OrphanContinuation, Level::Unknown),
    };
    let host = if stream.host.is_empty() {
        parsed.host.unwrap_or("").to_owned()
    } else {
        stream.host.clone()
    };
    let service = if stream.service.is_empty() {
        infer_service(&stream.file, parsed.logger)
            .unwrap_or("")
            .to_owned()
    } else {
        stream.service.clone()
    };
    let rec = LogRecord {
        id: seq,
        last_seq: seq,
        received_ms,
        event_ms: event_ms(cfg, parsed.time, received_ms),
        cluster: stream.cluster.clone(),
        host,
        service,
        source_file: stream.file.clone(),
        level,
        logger: parsed.logger.to_owned(),
        thread: parsed.thread.to_owned(),
        message: parsed.message.to_owned(),
        layout,
        line_count: 1,
    };
    OpenRecord {
        rec,
        last_at: now,
        absorbs_raw: absorbs_raw(layout),
    }
}

/// UTC epoch ms of a wall-clock time written in the line; `received_ms` when there is none.
/// A line without a year (syslog) takes the year of `received_ms` in the writers' zone, or
/// the year before when that would put the event more than a day in the future.
fn event_ms(cfg: &JoinerConfig, time: Option<LocalTime>, received_ms: i64) -> i64 {
    let Some(t) = time else {
        return received_ms;
    };
    let offset_ms = i64::from(cfg.utc_offset_secs) * 1000;
    let utc = |year: i32| t.to_epoch_ms(year).map(|w| w.saturating_sub(offset_ms));
    if t.year.is_some() {
        return utc(0).unwrap_or(received_ms);
    }
    let local_days = received_ms.saturating_add(offset_ms).div_euclid(DAY_MS);
    let Ok(year) = i32::try_from(year_from_days(local_days)) else {
        return received_ms;
    };
    match utc(year) {
        Some(e) if e <= received_ms.saturating_add(DAY_MS) => e,
        _ => year.checked_sub(1).and_then(utc).unwrap_or(received_ms),
    }
}

/// Layouts whose records may carry unrecognised lines of a multi-line message.
fn absorbs_raw(layout: Layout) -> bool {
    matches!(
        layout,
        Layout::Log4j
            | Layout::Container
            | Layout::CliH2
            | Layout::Flume
            | Layout::FlumeConsole
            | Layout::Zookeeper
            | Layout::HdfsLegacy
    )
}
