//! The offline runner: parse lines with the engine's own parser and joiner, run the rules,
//! and merge repeats into one finding per fingerprint, primary first.
//! Used by `faultline diagnose`, `faultline eval`, `faultline rules test` and the tests.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::compile::RuleSet;
use super::engine::{Correlator, Finding, Matched, Scratch, merge_finding, rank_findings};
use super::fxhash::{FxBuildHasher, FxHashMap};
use crate::domain::{Layout, Level, LogRecord, StreamKey};
use crate::parse::{Joiner, JoinerConfig, LineKind, absorbs_raw, parse_line};

/// What a worker hands back for one chunk: its relevant records (matched) and its line count.
type ChunkResult = (Vec<(LogRecord, Matched)>, u64);

/// Chunks per worker thread in the fast path (finer chunks overlap scanning and correlating).
const CHUNKS_PER_THREAD: usize = 8;

/// Below this size a file is diagnosed on one thread, line by line.
const FAST_PATH_MIN_BYTES: usize = 1 << 20;

/// Collects findings over one or more streams and merges them by fingerprint.
pub struct Diagnosis {
    correlator: Correlator,
    joiner: Joiner,
    findings: Vec<Finding>,
    by_fingerprint: FxHashMap<String, usize>,
    next_seq: u64,
    received_ms: i64,
    records: Vec<LogRecord>,
    /// Records looked at.
    pub records_seen: u64,
    /// Physical lines fed.
    pub lines_seen: u64,
    /// Inputs at least this large take the fast path of [`Diagnosis::feed_bytes`].
    pub fast_path_min_bytes: usize,
}

impl Diagnosis {
    pub fn new(set: Arc<RuleSet>) -> Diagnosis {
        let mut correlator = Correlator::new(set);
        correlator.compact_repeats = true;
        Diagnosis {
            correlator,
            joiner: Joiner::new(JoinerConfig::default()),
            findings: Vec::new(),
            by_fingerprint: FxHashMap::default(),
            next_seq: 1,
            received_ms: crate::now_ms(),
            records: Vec::new(),
            records_seen: 0,
            lines_seen: 0,
            fast_path_min_bytes: FAST_PATH_MIN_BYTES,
        }
    }

    /// Whether generic `unknown` findings are reported (default: yes).
    pub fn set_unknowns(&mut self, on: bool) {
        self.correlator.unknowns = on;
    }

    /// Feed the lines of one stream (a file: its lines carry their host, or none).
    pub fn feed_stream<'a>(&mut self, file: &str, lines: impl IntoIterator<Item = &'a str>) {
        let stream = offline_stream(file);
        let now = Instant::now();
        for line in lines {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.lines_seen += 1;
            self.joiner
                .push(&stream, seq, self.received_ms, line, now, &mut self.records);
            if self.records.len() >= 256 {
                self.drain();
            }
        }
        self.joiner.flush_all(&mut self.records);
        self.drain();
    }

    /// Feed a whole file (one stream). Large inputs take the fast path: the buffer is split
    /// at record boundaries across threads; each thread groups lines into records with the
    /// joiner's rule and builds (with the real [`Joiner`]) only the records that can matter:
    /// those containing a rule or exception literal (one leftmost-first Aho-Corasick pass
    /// over the buffer) or whose level is ERROR or worse. Every other record can neither
    /// match a signal nor be an `unknown`, so skipping it changes no finding.
    pub fn feed_bytes(&mut self, file: &str, bytes: &[u8]) {
        let set = Arc::clone(self.correlator.rule_set());
        if bytes.len() < self.fast_path_min_bytes || set.fallback.is_some() || set.scanner.is_none()
        {
            let text = String::from_utf8_lossy(bytes);
            let body = text.strip_suffix('\n').unwrap_or(&text);
            self.feed_stream(file, body.split('\n'));
            return;
        }
        let stream = offline_stream(file);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        // More chunks than threads: this thread correlates finished chunks, in order, while
        // the workers still scan the later ones.
        let chunks = split_at_records(bytes, threads * CHUNKS_PER_THREAD);
        let received_ms = self.received_ms;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::channel::<(usize, ChunkResult)>();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let (set, stream, tx, chunks, next) = (&set, &stream, tx.clone(), &chunks, &next);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        let result = candidate_records(set, stream, chunk, received_ms);
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending: HashMap<usize, ChunkResult> = HashMap::new();
            let mut want = 0usize;
            let mut out = Vec::new();
            for (i, result) in rx {
                pending.insert(i, result);
                while let Some((records, lines)) = pending.remove(&want) {
                    let base = self.next_seq;
                    for (mut r, matched) in records {
                        r.id += base;
                        r.last_seq += base;
                        self.records_seen += 1;
                        self.correlator.correlate(&r, matched, &mut out);
                        for f in out.drain(..) {
                            self.add(f);
                        }
                    }
                    self.next_seq += lines;
                    self.lines_seen += lines;
                    want += 1;
                }
            }
        });
    }

    fn drain(&mut self) {
        let mut out = Vec::new();
        for rec in std::mem::take(&mut self.records) {
            self.records_seen += 1;
            self.correlator.process(&rec, &mut out);
        }
        for f in out {
            self.add(f);
        }
    }

    fn add(&mut self, f: Finding) {
        match self.by_fingerprint.get(&f.fingerprint) {
            Some(&i) => merge_finding(&mut self.findings[i], f),
            None => {
                self.by_fingerprint
                    .insert(f.fingerprint.clone(), self.findings.len());
                self.findings.push(f);
            }
        }
    }

    /// The merged findings, primary first.
    pub fn finish(mut self) -> Vec<Finding> {
        self.joiner.flush_all(&mut self.records);
        self.drain();
        let mut f = self.findings;
        rank_findings(&mut f);
        f
    }
}

/// Diagnose one excerpt (its lines as one stream) and return the findings, primary first.
pub fn diagnose_lines<'a>(
    set: &Arc<RuleSet>,
    lines: impl IntoIterator<Item = &'a str>,
) -> Vec<Finding> {
    let mut d = Diagnosis::new(Arc::clone(set));
    d.feed_stream("excerpt", lines);
    d.finish()
}

/// The label of an excerpt: the primary finding's `fault_type`, or `none`.
pub fn primary_label(findings: &[Finding]) -> &str {
    findings.first().map_or("none", |f| f.fault_type.as_str())
}

/// The stream of a file diagnosed offline: its host from a Hadoop daemon log name, else none
/// (lines may carry their own host prefix).
fn offline_stream(file: &str) -> Arc<StreamKey> {
    Arc::new(StreamKey {
        cluster: "default".into(),
        host: crate::parse::infer_host(file).unwrap_or("").to_string(),
        service: String::new(),
        file: file.to_string(),
    })
}

/// Split `bytes` into about `n` chunks, each starting at a line that opens a record (a
/// timestamped header), so that no record spans two chunks.
fn split_at_records(bytes: &[u8], n: usize) -> Vec<&[u8]> {
    let mut cuts = vec![0usize];
    for k in 1..n {
        let mut pos = bytes.len() * k / n;
        if pos <= *cuts.last().unwrap_or(&0) {
            continue;
        }
        // Move to the next line start whose line is a header with a layout and a time.
        loop {
            match memchr::memchr(b'\n', &bytes[pos..]) {
                None => {
                    pos = bytes.len();
                    break;
                }
                Some(i) => pos += i + 1,
            }
            if pos >= bytes.len() {
                break;
            }
            let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            let line = String::from_utf8_lossy(&bytes[pos..end]);
            let p = parse_line(&line);
            if p.kind == LineKind::Header && p.time.is_some() && p.layout != Layout::Raw {
                break;
            }
        }
        if pos >= bytes.len() {
            // No record starts after this point: later cuts would scan the same tail.
            break;
        }
        cuts.push(pos);
    }
    cuts.push(bytes.len());
    cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// The records of `chunk` that can produce a finding (see [`Diagnosis::feed_bytes`]), built
/// by the real joiner and matched against the rules; ids are line numbers within the chunk.
/// Also returns the chunk's line count.
fn candidate_records(
    set: &RuleSet,
    stream: &Arc<StreamKey>,
    chunk: &[u8],
    received_ms: i64,
) -> (Vec<(LogRecord, Matched)>, u64) {
    let text: Cow<'_, str> = match std::str::from_utf8(chunk) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(chunk),
    };
    let text = text.as_ref();
    let body = text.strip_suffix('\n').unwrap_or(text);
    let bytes = body.as_bytes();
    let Some(scanner) = &set.scanner else {
        return (Vec::new(), 0);
    };
    let mut joiner = Joiner::new(JoinerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    // Start of the leftmost literal match at or after `searched_from` (usize::MAX: none).
    let mut next_hit = 0usize;
    let mut searched_from = usize::MAX;
    let mut hit_in = |a: usize, b: usize| -> bool {
        if searched_from == usize::MAX || (next_hit < a && next_hit != usize::MAX) {
            next_hit = scanner.find_from(bytes, a).unwrap_or(usize::MAX);
            searched_from = a;
        }
        next_hit < b
    };
    // The open record: byte start, first line number, absorbs raw lines, level says ERROR.
    let mut rec: Option<(usize, u64, bool, bool)> = None;
    let mut close =
        |start: usize, end: usize, first: u64, severe: bool, out: &mut Vec<LogRecord>| {
            if severe || hit_in(start, end) {
                let span = &body[start..end];
                let span = span.strip_suffix('\n').unwrap_or(span);
                let mut at = 0usize;
                let ends = memchr::memchr_iter(b'\n', span.as_bytes()).chain([span.len()]);
                for (i, nl) in ends.enumerate() {
                    joiner.push(
                        stream,
                        first + i as u64,
                        received_ms,
                        &span[at..nl],
                        now,
                        out,
                    );
                    at = nl + 1;
                }
                joiner.flush_all(out);
            }
        };
    let mut pos = 0usize;
    let mut line_no = 0u64;
    while pos <= bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        let line = &body[pos..end];
        let p = parse_line(line);
        let joins = match (&rec, p.kind) {
            (None, _) => false,
            (Some(_), LineKind::Continuation) => true,
            (Some((_, _, absorbs, _)), LineKind::Header) => {
                *absorbs && p.layout == Layout::Raw && p.level == Level::Unknown
            }
        };
        if !joins {
            if let Some((start, first, _, severe)) = rec.take() {
                close(start, pos, first, severe, &mut out);
            }
            let absorbs = p.kind == LineKind::Header && absorbs_raw(p.layout);
            let severe = p.level >= Level::Error
                || p.message.starts_with("ERROR: ")
                || p.message.starts_with("FATAL: ");
            rec = Some((pos, line_no, absorbs, severe));
        }
        line_no += 1;
        if end >= bytes.len() {
            break;
        }
        pos = end + 1;
    }
    if let Some((start, first, _, severe)) = rec.take() {
        close(start, bytes.len(), first, severe, &mut out);
    }
    let mut scratch = Scratch::default();
    // Matching is a pure function of (level, service, logger, message); retry loops and
    // repeated errors print the same message over and over, so remember recent answers.
    // Keyed by a hash of the four fields; a hit is verified field by field (no clones).
    let hasher = FxBuildHasher::default();
    let mut memo: FxHashMap<u64, (LogRecord, Matched)> = FxHashMap::default();
    let matched = out
        .into_iter()
        .filter_map(|r| {
            use std::hash::BuildHasher as _;
            let key = hasher.hash_one((r.level, &r.service, &r.logger, &r.message));
            let m = match memo.get(&key) {
                Some((k, m))
                    if k.level == r.level
                        && k.service == r.service
                        && k.logger == r.logger
                        && k.message == r.message =>
                {
                    m.clone()
                }
                _ => {
                    let m = set.match_record(&r, &mut scratch);
                    if memo.len() >= MATCH_MEMO_ENTRIES {
                        memo.clear();
                    }
                    memo.insert(key, (r.clone(), m.clone()));
                    m
                }
            };
            m.is_relevant().then_some((r, m))
        })
        .collect();
    (matched, line_no)
}

/// Distinct messages remembered per thread by the fast path's match memo.
const MATCH_MEMO_ENTRIES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testdata;

    fn summary(f: &[Finding]) -> Vec<(String, String, u64, Vec<u64>)> {
        f.iter()
            .map(|x| {
                (
                    x.fault_type.clone(),
                    x.entity.clone(),
                    x.occurrences,
                    x.evidence.iter().map(|e| e.log_id).collect(),
                )
            })
            .collect()
    }

    /// The fast path must find exactly what the line-by-line path finds.
    #[test]
    fn fast_path_equals_line_by_line() {
        let set = Arc::new(crate::rules::load(&crate::rules::RuleSource::Embedded).unwrap());
        let Some(dir) = testdata::shared_dir() else {
            return;
        };
        for name in ["Hadoop", "Zookeeper", "OpenSSH", "HDFS"] {
            let one = std::fs::read(dir.join(format!("data/loghub/{name}/{name}_2k.log"))).unwrap();
            let bytes = one.repeat(3);
            let mut slow = Diagnosis::new(Arc::clone(&set));
            slow.fast_path_min_bytes = usize::MAX;
            slow.feed_bytes("f", &bytes);
            let mut fast = Diagnosis::new(Arc::clone(&set));
            fast.fast_path_min_bytes = 0;
            fast.feed_bytes("f", &bytes);
            assert_eq!(summary(&slow.finish()), summary(&fast.finish()), "{name}");
        }
    }
}
