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
//! can only be part of the previous record's multi-line message. The same holds after an
//! `Exception in thread "main" ...` line, whose exception message may span lines. This follows
//! the rule of `hadoop-interfaces.md` 6.4; [`Joiner::set_join_unrecognised`] turns it off.

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
    /// When the record's first line was fed (bounds how long one record can stay open).
    opened_at: Instant,
    /// The header is a timestamped log4j-family line: unrecognised lines join it.
    absorbs_raw: bool,
    /// The header looked like a fault (see [`Joiner::set_hit_classifier`]): closed after the
    /// shorter idle time of [`Joiner::flush_idle_hits`].
    hit: bool,
}

/// Decides from a header's message whether its record should be closed early.
pub type HitClassifier = Box<dyn Fn(&str) -> bool + Send>;

/// Per-stream assembler of multi-line records. See the module docs.
pub struct Joiner {
    cfg: JoinerConfig,
    open: HashMap<StreamId, OpenRecord>,
    join_unrecognised: bool,
    /// Per stream, the highest `last_seq` of a record closed since the last `take_marks`.
    marks: HashMap<StreamId, u64>,
    hit_classifier: Option<HitClassifier>,
    service_memo: ServiceMemo,
}

/// Recent `infer_service` answers: a stream's records come from a handful of loggers, often
/// interleaved (a retry loop's client logger between the daemon's own), so a few entries
/// answer nearly every record without re-deriving the service from the logger name.
#[derive(Debug, Default)]
struct ServiceMemo {
    /// (file, logger, service), replaced round-robin.
    entries: Vec<(String, String, &'static str)>,
    next: usize,
}

/// Entries kept by [`ServiceMemo`].
const SERVICE_MEMO_ENTRIES: usize = 8;

impl ServiceMemo {
    fn infer(&mut self, file: &str, logger: &str) -> &'static str {
        if let Some((_, _, service)) = self
            .entries
            .iter()
            .find(|(f, l, _)| l.as_str() == logger && f.as_str() == file)
        {
            return service;
        }
        let service = infer_service(file, logger).unwrap_or("");
        let entry = (file.to_owned(), logger.to_owned(), service);
        if self.entries.len() < SERVICE_MEMO_ENTRIES {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % SERVICE_MEMO_ENTRIES;
        }
        service
    }
}

/// Remember that `stream`'s lines up to `last_seq` are inside closed records.
fn mark(marks: &mut HashMap<StreamId, u64>, stream: &StreamId, last_seq: u64) {
    let m = marks.entry(Arc::clone(stream)).or_insert(last_seq);
    *m = (*m).max(last_seq);
}

impl std::fmt::Debug for Joiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joiner")
            .field("cfg", &self.cfg)
            .field("open", &self.open.len())
            .field("hit_classifier", &self.hit_classifier.is_some())
            .finish()
    }
}

impl Joiner {
    pub fn new(cfg: JoinerConfig) -> Self {
        Joiner {
            cfg,
            open: HashMap::new(),
            join_unrecognised: true,
            marks: HashMap::new(),
            hit_classifier: None,
            service_memo: ServiceMemo::default(),
        }
    }

    /// Mark records whose header message satisfies `f` (the rule engine's literal
    /// prefilter): [`Joiner::flush_idle_hits`] closes them after a shorter silence, so a
    /// fault is diagnosed within milliseconds instead of after the normal idle time.
    pub fn set_hit_classifier(&mut self, f: HitClassifier) {
        self.hit_classifier = Some(f);
    }

    /// The record one line forms on its own: what [`Joiner::push`] then
    /// [`Joiner::flush_all`] make of a stream holding just this line (no state is kept).
    pub fn single_line_record(
        &mut self,
        stream: &StreamId,
        seq: u64,
        received_ms: i64,
        line: &str,
        now: Instant,
    ) -> LogRecord {
        let parsed = parse_line(line);
        open_record(
            &self.cfg,
            &mut self.service_memo,
            stream,
            seq,
            received_ms,
            line,
            &parsed,
            now,
        )
        .rec
    }

    /// Close marked records (see [`Joiner::set_hit_classifier`]) silent for more than `idle`.
    pub fn flush_idle_hits(&mut self, now: Instant, idle: Duration, out: &mut Vec<LogRecord>) {
        if !self.open.values().any(|o| o.hit) {
            return;
        }
        self.close_where(
            |o| o.hit && now.saturating_duration_since(o.last_at) > idle,
            out,
        );
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
        let (cfg, memo, classifier) = (&self.cfg, &mut self.service_memo, &self.hit_classifier);
        let mut make = || {
            let mut fresh = open_record(cfg, memo, stream, seq, received_ms, line, &parsed, now);
            fresh.hit = classifier.as_ref().is_some_and(|f| f(parsed.message));
            fresh
        };
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
            let fresh = make();
            let closed = std::mem::replace(open, fresh);
            mark(&mut self.marks, stream, closed.rec.last_seq);
            out.push(closed.rec);
        } else {
            let fresh = make();
            self.open.insert(Arc::clone(stream), fresh);
        }
    }

    /// Close records whose last line arrived more than `idle` ago, or that have been open for
    /// longer than `max_age` (a trickling stream must not hold the checkpoint back for long),
    /// pushed in `id` order.
    pub fn flush_idle(
        &mut self,
        now: Instant,
        idle: Duration,
        max_age: Duration,
        out: &mut Vec<LogRecord>,
    ) {
        self.close_where(
            |o| {
                now.saturating_duration_since(o.last_at) > idle
                    || now.saturating_duration_since(o.opened_at) > max_age
            },
            out,
        );
    }

    /// Close the open records satisfying `pred`, pushed in `id` order.
    fn close_where(&mut self, pred: impl Fn(&OpenRecord) -> bool, out: &mut Vec<LogRecord>) {
        let marks = &mut self.marks;
        let mut closed: Vec<LogRecord> = self
            .open
            .extract_if(|_, o| pred(o))
            .map(|(k, o)| {
                mark(marks, &k, o.rec.last_seq);
                o.rec
            })
            .collect();
        closed.sort_by_key(|r| r.id);
        out.extend(closed);
    }

    /// Close every open record (pushed in `id` order).
    pub fn flush_all(&mut self, out: &mut Vec<LogRecord>) {
        self.close_where(|_| true, out);
    }

    /// Per stream, the highest seq inside a record closed since the previous call. Once those
    /// records are stored, every line of the stream up to that seq is stored: a stream's
    /// records partition its lines in order, so what is stored is always a prefix.
    pub fn take_marks(&mut self) -> Vec<(StreamId, u64)> {
        self.marks.drain().collect()
    }

    /// Smallest `id` (first seq) of any open record, `None` when nothing is open.
    pub fn oldest_open_seq(&self) -> Option<u64> {
        self.open.values().map(|o| o.rec.id).min()
    }

    pub fn open_records(&self) -> usize {
        self.open.len()
    }
}

/// A new open record from `parsed` (parsed from `line`): a header, or an orphan when `parsed`
/// is a continuation.
// Private helper called from two places with the joiner's disjoint fields.
#[allow(clippy::too_many_arguments)]
fn open_record(
    cfg: &JoinerConfig,
    memo: &mut ServiceMemo,
    stream: &StreamKey,
    seq: u64,
    received_ms: i64,
    line: &str,
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
    // A line that names another host than its stream (`worker3: Permission denied ...` in
    // start-dfs.sh output shipped from the master, a syslog relay) keeps the whole line, so
    // the host it is about is not lost.
    let message = match parsed.host {
        Some(h) if h != host => line.strip_suffix('\r').unwrap_or(line),
        _ => parsed.message,
    };
    let service = if stream.service.is_empty() {
        memo.infer(&stream.file, parsed.logger).to_owned()
    } else {
        stream.service.clone()
    };
    // A single line longer than the record cap is cut (and marked) as well: one 16 MiB line
    // must not become a row the database refuses.
    let message = if message.len() > cfg.max_record_bytes {
        let mut end = cfg.max_record_bytes;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}\n[faultline: line cut from {} to {end} bytes (pipeline.max_record_bytes)]",
            &message[..end],
            message.len()
        )
    } else {
        message.to_owned()
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
        message,
        layout,
        line_count: 1,
    };
    OpenRecord {
        rec,
        last_at: now,
        opened_at: now,
        absorbs_raw: absorbs_raw(layout),
        hit: false,
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

/// Layouts whose records may carry unrecognised lines of a multi-line message (log4j-family
/// headers, and an uncaught JVM exception whose message spans lines).
/// Whether a record whose header has this layout absorbs following unrecognised lines.
pub fn absorbs_raw(layout: Layout) -> bool {
    matches!(
        layout,
        Layout::Log4j
            | Layout::Container
            | Layout::CliH2
            | Layout::Flume
            | Layout::FlumeConsole
            | Layout::Zookeeper
            | Layout::HdfsLegacy
            | Layout::JvmException
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testdata;

    fn key(host: &str, service: &str, file: &str) -> StreamId {
        Arc::new(StreamKey {
            cluster: "c1".into(),
            host: host.into(),
            service: service.into(),
            file: file.into(),
        })
    }

    fn cfg() -> JoinerConfig {
        JoinerConfig {
            max_record_lines: 1000,
            max_record_bytes: 1 << 20,
            utc_offset_secs: 0,
        }
    }

    /// Feeds `lines` of one stream with seq 1.. and flushes everything.
    fn join_all(j: &mut Joiner, stream: &StreamId, lines: &[String]) -> Vec<LogRecord> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            j.push(stream, i as u64 + 1, 1_000, l, now, &mut out);
        }
        j.flush_all(&mut out);
        out
    }

    #[test]
    fn a_first_line_longer_than_the_record_cap_is_cut_and_marked() {
        let mut c = cfg();
        c.max_record_bytes = 100;
        let mut j = Joiner::new(c);
        let long = format!("2024-05-12 10:00:00,000 INFO a.B: {}", "é".repeat(200));
        let recs = join_all(&mut j, &key("h", "s", ""), &[long]);
        let m = &recs[0].message;
        assert!(m.starts_with("éé"), "{m}");
        assert!(
            m.ends_with("[faultline: line cut from 400 to 100 bytes (pipeline.max_record_bytes)]"),
            "{m}"
        );
    }

    #[test]
    fn lines_about_another_host_keep_it_in_the_message() {
        let mut j = Joiner::new(cfg());
        // start-dfs.sh output shipped from the master: the worker it is about must survive.
        let s = key("master", "console", "start-dfs.out");
        let lines: Vec<String> = [
            "Starting datanodes",
            "worker3: Permission denied (publickey,gssapi-keyex,gssapi-with-mic,password).",
            "master: datanode is running as process 4242.  Stop it first.",
        ]
        .map(String::from)
        .to_vec();
        let recs = join_all(&mut j, &s, &lines);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].host, "master");
        assert_eq!(
            recs[1].message,
            "worker3: Permission denied (publickey,gssapi-keyex,gssapi-with-mic,password)."
        );
        assert_eq!(recs[1].layout, Layout::HostPrefixed);
        // The stream's own host needs no repeating.
        assert_eq!(
            recs[2].message,
            "datanode is running as process 4242.  Stop it first."
        );
        // A stream with no host takes the line's.
        let mut j = Joiner::new(cfg());
        let recs = join_all(&mut j, &key("", "", ""), &lines[1..2]);
        assert_eq!(recs[0].host, "worker3");
        assert!(recs[0].message.starts_with("Permission denied"));
    }

    #[test]
    fn datanode_stack_traces() {
        let Some(lines) = testdata::lines("reference/hadoop/hadoop-datanode.composed.log") else {
            eprintln!("reference data not found, skipped");
            return;
        };
        assert_eq!(lines.len(), 23);
        let mut j = Joiner::new(cfg());
        let s = key("worker1", "", "hadoop-hadoop-datanode-worker1.log");
        let recs = join_all(&mut j, &s, &lines);
        let counts: Vec<u32> = recs.iter().map(|r| r.line_count).collect();
        assert_eq!(counts, vec![1, 1, 1, 13, 7]);
        let ids: Vec<(u64, u64)> = recs.iter().map(|r| (r.id, r.last_seq)).collect();
        assert_eq!(ids, vec![(1, 1), (2, 2), (3, 3), (4, 16), (17, 23)]);
        let r = &recs[3];
        assert_eq!(r.layout, Layout::Log4j);
        assert_eq!(r.level, Level::Warn);
        assert_eq!(r.logger, "org.apache.hadoop.hdfs.server.datanode.DataNode");
        assert_eq!(r.service, "datanode");
        assert_eq!(r.host, "worker1");
        assert_eq!(r.cluster, "c1");
        assert_eq!(r.source_file, "hadoop-hadoop-datanode-worker1.log");
        assert!(r.message.starts_with(
            "IOException in offerService\njava.net.NoRouteToHostException: No Route to Host from  worker1/192.168.10.11"
        ));
        assert!(r.message.contains("\n\tat java.lang.Thread.run(Thread.java:750)\nCaused by: java.net.NoRouteToHostException: No route to host\n"));
        assert!(r.message.ends_with("\n\t... 12 more"));
        assert_eq!(r.message.lines().count(), 13);
        // 2024-05-12 10:31:40,877 as UTC.
        assert_eq!(r.event_ms, 1_715_509_900_877);
        assert_eq!(r.received_ms, 1_000);
        assert_eq!(j.open_records(), 0);
        assert_eq!(j.oldest_open_seq(), None);
    }

    #[test]
    fn flume_agent_log() {
        let Some(lines) = testdata::lines("reference/hadoop/flume-agent.composed.log") else {
            return;
        };
        let mut j = Joiner::new(cfg());
        let recs = join_all(
            &mut j,
            &key("worker1", "", "/var/log/flume/flume.log"),
            &lines,
        );
        let counts: Vec<u32> = recs.iter().map(|r| r.line_count).collect();
        assert_eq!(counts, vec![1, 1, 10, 1, 6, 1, 1]);
        assert!(
            recs.iter()
                .all(|r| r.layout == Layout::Flume && r.service == "flume")
        );
        assert!(recs[4].message.starts_with(
            "Error sending HTTP request, retrying\njava.lang.NullPointerException\n\tat "
        ));
    }

    #[test]
    fn interleaved_streams() {
        let a = key("worker1", "datanode", "hadoop-hadoop-datanode-worker1.log");
        let b = key("master", "namenode", "hadoop-hadoop-namenode-master.log");
        // Same value, different Arc: must be the same stream.
        let a2 = key("worker1", "datanode", "hadoop-hadoop-datanode-worker1.log");
        let trace = [
            "2024-05-12 10:33:05,004 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService",
            "java.net.ConnectException: Call From worker1/192.168.10.11 to master:9000 failed on connection exception",
            "\tat org.apache.hadoop.net.NetUtils.wrapException(NetUtils.java:833)",
            "\tat org.apache.hadoop.ipc.Client.call(Client.java:1554)",
            "Caused by: java.net.ConnectException: Connection refused",
            "\tat sun.nio.ch.SocketChannelImpl.checkConnect(Native Method)",
            "\t... 14 more",
        ];
        let mut j = Joiner::new(cfg());
        let now = Instant::now();
        let mut out = Vec::new();
        let mut seq = 0u64;
        for (i, l) in trace.iter().enumerate() {
            seq += 1;
            let s = if i % 2 == 0 { &a } else { &a2 };
            j.push(s, seq, 5_000, l, now, &mut out);
            seq += 1;
            let other = format!(
                "2024-05-12 10:33:05,{:03} INFO org.apache.hadoop.hdfs.StateChange: BLOCK* line {i}",
                i + 100
            );
            j.push(&b, seq, 5_000, &other, now, &mut out);
        }
        assert_eq!(j.open_records(), 2);
        j.flush_all(&mut out);
        let of_a: Vec<&LogRecord> = out.iter().filter(|r| r.host == "worker1").collect();
        let of_b: Vec<&LogRecord> = out.iter().filter(|r| r.host == "master").collect();
        assert_eq!(of_a.len(), 1);
        assert_eq!(of_a[0].line_count, 7);
        assert_eq!(of_a[0].message.lines().count(), 7);
        assert_eq!((of_a[0].id, of_a[0].last_seq), (1, 13));
        assert_eq!(of_b.len(), 7);
        assert!(
            of_b.iter()
                .all(|r| r.line_count == 1 && r.service == "namenode")
        );
    }

    #[test]
    fn idle_flush() {
        let s = key("h", "datanode", "f");
        let mut j = Joiner::new(cfg());
        let t0 = Instant::now();
        let mut out = Vec::new();
        j.push(
            &s,
            1,
            0,
            "2024-05-12 10:33:05,004 WARN a.B: x",
            t0,
            &mut out,
        );
        j.push(
            &s,
            2,
            0,
            "\tat a.B.c(B.java:1)",
            t0 + Duration::from_millis(1500),
            &mut out,
        );
        let other = key("h2", "datanode", "f");
        j.push(
            &other,
            3,
            0,
            "2024-05-12 10:33:06,004 INFO a.B: y",
            t0 + Duration::from_secs(3),
            &mut out,
        );
        assert!(out.is_empty());
        // 2 s after the last line of `s` (at 1.5 s) is 3.5 s.
        j.flush_idle(
            t0 + Duration::from_millis(3400),
            Duration::from_secs(2),
            Duration::from_secs(3600),
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(j.open_records(), 2);
        j.flush_idle(
            t0 + Duration::from_millis(3600),
            Duration::from_secs(2),
            Duration::from_secs(3600),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line_count, 2);
        assert_eq!(j.open_records(), 1);
        assert_eq!(j.oldest_open_seq(), Some(3));
        // A clock that goes backwards does not flush (saturating).
        j.flush_idle(
            t0,
            Duration::from_secs(2),
            Duration::from_secs(3600),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        j.flush_idle(
            t0 + Duration::from_secs(10),
            Duration::from_secs(2),
            Duration::from_secs(3600),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(j.open_records(), 0);
        // A record that keeps receiving lines is still closed at its maximum age.
        let t1 = t0 + Duration::from_secs(100);
        j.push(
            &s,
            10,
            0,
            "2024-05-12 10:40:00,000 INFO a.B: trickle",
            t1,
            &mut out,
        );
        for i in 1..5u64 {
            let at = t1 + Duration::from_secs(i);
            j.push(&s, 10 + i, 0, "\tat a.B.c(B.java:1)", at, &mut out);
            j.flush_idle(
                at,
                Duration::from_secs(2),
                Duration::from_millis(3500),
                &mut out,
            );
        }
        // Lines keep coming every second (never idle); the first flush past 3.5 s closes it.
        let last = out.pop().unwrap();
        assert_eq!((last.id, last.line_count), (10, 5));
        assert_eq!(j.open_records(), 0);
        // A continuation arriving after the idle flush becomes an orphan record.
        j.push(
            &s,
            4,
            0,
            "\tat a.B.d(B.java:2)",
            t0 + Duration::from_secs(11),
            &mut out,
        );
        j.flush_all(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].layout, Layout::OrphanContinuation);
    }

    #[test]
    fn orphan_continuation() {
        let s = key("", "", "hadoop-hadoop-namenode-master.log");
        let mut j = Joiner::new(cfg());
        let now = Instant::now();
        let mut out = Vec::new();
        j.push(&s, 10, 77, "\tat a.B.c(B.java:1)\r", now, &mut out);
        j.push(&s, 11, 78, "\t... 3 more", now, &mut out);
        assert!(out.is_empty());
        j.push(
            &s,
            12,
            79,
            "2024-05-12 10:14:12,005 INFO org.apache.hadoop.hdfs.StateChange: x",
            now,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(r.layout, Layout::OrphanContinuation);
        assert_eq!(r.level, Level::Unknown);
        assert_eq!((r.id, r.last_seq, r.line_count), (10, 11, 2));
        assert_eq!(r.message, "\tat a.B.c(B.java:1)\n\t... 3 more");
        assert_eq!(r.event_ms, 77);
        assert_eq!(r.received_ms, 77);
        assert_eq!(r.service, "namenode");
        assert_eq!(r.logger, "");
    }

    #[test]
    fn record_caps() {
        let s = key("h", "x", "f");
        let mut j = Joiner::new(JoinerConfig {
            max_record_lines: 3,
            ..cfg()
        });
        let now = Instant::now();
        let mut out = Vec::new();
        j.push(
            &s,
            1,
            0,
            "2024-05-12 10:14:12,005 ERROR a.B: boom",
            now,
            &mut out,
        );
        for i in 0..5u64 {
            j.push(
                &s,
                2 + i,
                0,
                &format!("\tat a.B.m{i}(B.java:{i})"),
                now,
                &mut out,
            );
        }
        j.flush_all(&mut out);
        let shape: Vec<(Layout, u32, u64, u64)> = out
            .iter()
            .map(|r| (r.layout, r.line_count, r.id, r.last_seq))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Layout::Log4j, 3, 1, 3),
                (Layout::OrphanContinuation, 3, 4, 6)
            ]
        );
        assert_eq!(
            out[1].message,
            "\tat a.B.m2(B.java:2)\n\tat a.B.m3(B.java:3)\n\tat a.B.m4(B.java:4)"
        );

        // Byte cap: 40 bytes fit the header (20) and one frame (1 + 15), not two.
        let mut j = Joiner::new(JoinerConfig {
            max_record_bytes: 40,
            ..cfg()
        });
        let mut out = Vec::new();
        j.push(
            &s,
            1,
            0,
            "2024-05-12 10:14:12,005 ERROR a.B: 12345678901234567890",
            now,
            &mut out,
        );
        j.push(&s, 2, 0, "\tat a.B.c(B:11)", now, &mut out);
        j.push(&s, 3, 0, "\tat a.B.d(B:12)", now, &mut out);
        j.flush_all(&mut out);
        let counts: Vec<(u32, usize)> = out
            .iter()
            .map(|r| (r.line_count, r.message.len()))
            .collect();
        assert_eq!(counts, vec![(2, 36), (1, 15)]);
        assert!(out.iter().all(|r| r.message.len() <= 40));

        // A zero cap never loops: every continuation is its own orphan.
        let mut j = Joiner::new(JoinerConfig {
            max_record_lines: 0,
            ..cfg()
        });
        let mut out = Vec::new();
        for i in 0..3 {
            j.push(&s, i, 0, "\tat x", now, &mut out);
        }
        j.flush_all(&mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn oldest_open_seq_tracks_open_records() {
        let a = key("a", "x", "f");
        let b = key("b", "x", "f");
        let mut j = Joiner::new(cfg());
        let now = Instant::now();
        let mut out = Vec::new();
        assert_eq!(j.oldest_open_seq(), None);
        j.push(
            &a,
            5,
            0,
            "2024-05-12 10:14:12,005 ERROR a.B: boom",
            now,
            &mut out,
        );
        j.push(
            &b,
            7,
            0,
            "2024-05-12 10:14:12,005 INFO a.B: ok",
            now,
            &mut out,
        );
        j.push(&a, 8, 0, "\tat a.B.c(B.java:1)", now, &mut out);
        assert_eq!(j.oldest_open_seq(), Some(5));
        assert_eq!(j.open_records(), 2);
        j.push(
            &a,
            9,
            0,
            "2024-05-12 10:14:13,005 INFO a.B: next",
            now,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].id, out[0].last_seq), (5, 8));
        assert_eq!(j.oldest_open_seq(), Some(7));
        j.flush_all(&mut out);
        assert_eq!(j.oldest_open_seq(), None);
        // flush_all emits in id order.
        let ids: Vec<u64> = out.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![5, 7, 9]);
    }

    #[test]
    fn namenode_banner_is_one_record() {
        let Some(lines) = testdata::lines("reference/hadoop/hadoop-namenode.composed.log") else {
            return;
        };
        let mut j = Joiner::new(cfg());
        let recs = join_all(
            &mut j,
            &key("master", "", "hadoop-hadoop-namenode-master.log"),
            &lines,
        );
        let counts: Vec<u32> = recs.iter().map(|r| r.line_count).collect();
        assert_eq!(counts, vec![10, 1, 1, 1, 4]);
        let banner = &recs[0];
        assert_eq!(
            banner.logger,
            "org.apache.hadoop.hdfs.server.namenode.NameNode"
        );
        assert!(banner.message.starts_with("STARTUP_MSG: \n/*****"));
        assert!(
            banner
                .message
                .contains("\nSTARTUP_MSG:   version = 3.3.6\n")
        );
        assert!(banner.message.ends_with("*/"));
        assert!(
            recs[4]
                .message
                .contains("SHUTDOWN_MSG: Shutting down NameNode at master/192.168.10.10")
        );
        assert!(
            recs.iter()
                .all(|r| r.service == "namenode" && r.layout == Layout::Log4j)
        );
    }

    #[test]
    fn event_time_conversion() {
        // 2024-12-10 07:00:00 UTC
        let dec10 = 1_733_814_000_000i64;
        let ev = |offset: i32, received: i64, line: &str| {
            let mut j = Joiner::new(JoinerConfig {
                utc_offset_secs: offset,
                ..cfg()
            });
            let mut out = Vec::new();
            j.push(
                &key("", "", "/var/log/secure"),
                1,
                received,
                line,
                Instant::now(),
                &mut out,
            );
            j.flush_all(&mut out);
            out.pop().map(|r| (r.event_ms, r.host, r.service))
        };
        let r = ev(
            0,
            dec10,
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster",
        )
        .unwrap_or_default();
        assert_eq!(r, (dec10 - 254_000, "LabSZ".to_owned(), "sshd".to_owned()));
        // New Year: received 2025-01-01 00:00:10 UTC, line from 31 Dec -> previous year.
        let jan1 = 1_735_689_610_000i64;
        let r = ev(0, jan1, "Dec 31 23:59:58 h sshd[1]: x").unwrap_or_default();
        assert_eq!(r.0, jan1 - 12_000);
        // Within a day in the future (clock skew) keeps the current year.
        let r = ev(0, jan1, "Jan  1 12:00:00 h sshd[1]: x").unwrap_or_default();
        assert_eq!(r.0, 1_735_732_800_000);
        // UTC+1: received 2024-12-31 23:30 UTC = 2025-01-01 00:30 local; the year comes from local.
        let received = jan1 - 10_000 - 30 * 60_000; // 2024-12-31 23:30:00 UTC
        assert_eq!(received, 1_735_687_800_000);
        let r = ev(3600, received, "Jan  1 00:29:59 h sshd[1]: x").unwrap_or_default();
        assert_eq!(r.0, 1_735_687_799_000); // 2024-12-31 23:29:59 UTC
        // Same line read as UTC: the receipt year (2024) is used, since 2024-01-01 is not in
        // the future; a writer clock running ahead across New Year is not corrected.
        let r = ev(0, received, "Jan  1 00:29:59 h sshd[1]: x").unwrap_or_default();
        assert_eq!(r.0, 1_704_068_999_000);
        // 29 February from a non-leap year's receipt: the previous year is tried.
        let mar1_2025 = 1_740_787_200_000i64;
        let r = ev(0, mar1_2025, "Feb 29 10:00:00 h sshd[1]: x").unwrap_or_default();
        assert_eq!(r.0, 1_709_200_800_000); // 2024-02-29 10:00 UTC
        // Log4j with a year: wall clock UTC+2 and UTC-5.
        let l = "2024-05-12 10:14:12,005 INFO org.apache.hadoop.hdfs.StateChange: x";
        assert_eq!(
            ev(7200, 0, l).unwrap_or_default().0,
            1_715_508_852_005 - 7_200_000
        );
        assert_eq!(
            ev(-18_000, 0, l).unwrap_or_default().0,
            1_715_508_852_005 + 18_000_000
        );
        // No time in the line: received time.
        assert_eq!(
            ev(3600, 42, "worker3: Permission denied (publickey).")
                .unwrap_or_default()
                .0,
            42
        );
        // The stream's host wins over the line's host.
        let mut j = Joiner::new(cfg());
        let mut out = Vec::new();
        j.push(
            &key("dn05", "", "secure"),
            1,
            dec10,
            "Dec 10 06:55:46 LabSZ sshd[1]: x",
            Instant::now(),
            &mut out,
        );
        j.flush_all(&mut out);
        assert_eq!(out[0].host, "dn05");
        // Extreme received times do not overflow.
        let _ = ev(i32::MAX, i64::MAX, "Dec 10 06:55:46 h sshd[1]: x");
        let _ = ev(i32::MIN, i64::MIN, "Dec 10 06:55:46 h sshd[1]: x");
    }

    #[test]
    fn unrecognised_lines_join_log_records_only() {
        let lines: Vec<String> = [
            "25/02/11 14:22:09 INFO mapreduce.Job: Task Id : attempt_1739251200123_0118_m_000007_0, Status : FAILED",
            "Container [pid=18822,containerID=container_1739251200123_0118_01_000009] is running beyond physical memory limits.",
            "Dump of the process-tree for container_1739251200123_0118_01_000009 :",
            "\t|- PID PPID PGRPID SESSID CMD_NAME",
            "",
            "Container killed on request. Exit code is 143",
            "ERROR: this stays a record of its own",
            "Starting datanodes",
            "Starting secondary namenodes [nn1]",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = key("edge01", "", "console");
        let recs = join_all(&mut Joiner::new(cfg()), &s, &lines);
        let counts: Vec<u32> = recs.iter().map(|r| r.line_count).collect();
        assert_eq!(counts, vec![6, 1, 1, 1]);
        assert_eq!(recs[0].service, "mapreduce");
        assert_eq!(recs[1].level, Level::Error);
        let mut strict = Joiner::new(cfg());
        strict.set_join_unrecognised(false);
        let recs = join_all(&mut strict, &s, &lines);
        let counts: Vec<u32> = recs.iter().map(|r| r.line_count).collect();
        assert_eq!(counts, vec![1, 1, 3, 1, 1, 1, 1]);
    }

    /// Every dev-case excerpt, fed as one stream: lines are conserved, stack frames never start
    /// a record unless the excerpt itself starts with one.
    #[test]
    fn dev_cases_join() {
        let Some(cases) = testdata::dev_cases() else {
            eprintln!("dev-cases.jsonl not found, skipped");
            return;
        };
        let mut multi = 0;
        let mut total_lines = 0usize;
        let mut total_records = 0usize;
        for (id, lines) in &cases {
            let s = key("", "", "");
            let recs = join_all(&mut Joiner::new(cfg()), &s, lines);
            let joined: u32 = recs.iter().map(|r| r.line_count).sum();
            assert_eq!(joined as usize, lines.len(), "{id}");
            let first_is_cont = lines
                .first()
                .is_some_and(|l| parse_line(l).kind == LineKind::Continuation);
            let orphans = recs
                .iter()
                .filter(|r| r.layout == Layout::OrphanContinuation)
                .count();
            assert!(
                orphans <= usize::from(first_is_cont),
                "{id}: {orphans} orphan records"
            );
            let multi_line: Vec<u32> = recs
                .iter()
                .filter(|r| r.line_count > 1)
                .map(|r| r.line_count)
                .collect();
            if !multi_line.is_empty() {
                multi += 1;
            }
            total_lines += lines.len();
            total_records += recs.len();
            eprintln!(
                "{id}: {} lines -> {} records, multi-line {:?}, layouts {:?}",
                lines.len(),
                recs.len(),
                multi_line,
                recs.iter().map(|r| r.layout.as_str()).collect::<Vec<_>>()
            );
        }
        eprintln!(
            "dev cases: {} cases, {} with multi-line records, {total_lines} lines -> {total_records} records",
            cases.len(),
            multi
        );
    }

    /// `cargo test --release -- --ignored --nocapture bench_joiner`
    #[test]
    #[ignore]
    fn bench_joiner() {
        let mut lines = testdata::lines("data/loghub/Hadoop/Hadoop_2k.log").unwrap_or_default();
        if let Some(trace) = testdata::lines("reference/hadoop/hadoop-datanode.composed.log") {
            lines.extend(trace);
        }
        if lines.is_empty() {
            return;
        }
        let streams: Vec<StreamId> = (0..8)
            .map(|i| key(&format!("worker{i}"), "", "hadoop-hadoop-datanode-w.log"))
            .collect();
        let mut j = Joiner::new(JoinerConfig::default());
        let reps = 1_000_000 / lines.len();
        let now = Instant::now();
        let mut out = Vec::with_capacity(4096);
        let mut seq = 0u64;
        let mut records = 0usize;
        let start = Instant::now();
        for _ in 0..reps {
            for (i, l) in lines.iter().enumerate() {
                seq += 1;
                let s = &streams[(i / 16) % streams.len()];
                j.push(s, seq, 0, l, now, &mut out);
                if out.len() >= 4096 {
                    records += out.len();
                    out.clear();
                }
            }
        }
        j.flush_all(&mut out);
        records += out.len();
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "joiner: {seq} lines -> {records} records in {secs:.3}s = {:.2} M lines/s",
            seq as f64 / secs / 1e6
        );
    }
}
