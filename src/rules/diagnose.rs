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

/// What a worker hands back for one chunk: its relevant records (matched), its line count,
/// and the chunk's buffer (for reuse).
type ChunkResult = (Vec<(LogRecord, Arc<Matched>)>, u64, Vec<u8>);

/// Bytes read per block in the fast path (blocks are cut at record boundaries). Small enough
/// that the few buffers in flight stay in cache and are reused, not faulted in afresh.
const READ_BLOCK: usize = 2 << 20;

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
    /// Bytes read per block by the fast path.
    pub read_block: usize,
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
            read_block: READ_BLOCK,
        }
    }

    /// The snapshots `[[snapshot_cause]]` reads (offline: a saved cluster status).
    pub fn set_snapshots(&mut self, s: Arc<dyn super::engine::SnapshotLookup>) {
        self.correlator.snapshots = Some(s);
    }

    /// Whether generic `unknown` findings are reported (default: yes).
    pub fn set_unknowns(&mut self, on: bool) {
        self.correlator.unknowns = on;
    }

    /// Feed the lines of one stream (a file: its lines carry their host, or none).
    pub fn feed_stream<'a>(&mut self, file: &str, lines: impl IntoIterator<Item = &'a str>) {
        self.feed_lines(offline_stream(file), lines);
    }

    /// Feed the lines of one stream named by its key (cluster, host, service, file).
    pub fn feed_lines<'a>(
        &mut self,
        stream: Arc<StreamKey>,
        lines: impl IntoIterator<Item = &'a str>,
    ) {
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

    /// Feed a whole file (one stream). Large inputs take the fast path: the input is split
    /// at record boundaries across threads; each thread groups lines into records with the
    /// joiner's rule and builds (with the real [`Joiner`]) only the records that can matter:
    /// those containing a rule or exception literal (Teddy passes over the block, see
    /// `compile::scan_patterns`) or whose level is ERROR or worse. Every other record can
    /// neither match a signal nor be an `unknown`, so skipping it changes no finding.
    pub fn feed_bytes(&mut self, file: &str, bytes: &[u8]) {
        if let Err(e) = self.feed_positional(file, bytes) {
            tracing::error!(error = %e, "reading an in-memory buffer failed");
        }
    }

    /// [`Diagnosis::feed_bytes`] for a file, read by the worker threads themselves, each its
    /// own blocks at their offsets, while this thread correlates finished blocks in order.
    /// The file is diagnosed up to the length it has when this starts.
    pub fn feed_file(&mut self, file: &str, f: &std::fs::File) -> std::io::Result<()> {
        self.feed_positional(file, f)
    }

    /// The positional fast path (see [`Positional`]): block `i` covers the records that start
    /// in `[i * read_block, (i + 1) * read_block)`; its worker reads it, and on past its end
    /// to the next record start, so the blocks cut the input exactly at record boundaries.
    fn feed_positional<P: Positional + ?Sized>(
        &mut self,
        file: &str,
        src: &P,
    ) -> std::io::Result<()> {
        let set = Arc::clone(self.correlator.rule_set());
        let len = src.size()?;
        let block = self.read_block.max(1) as u64;
        if len < self.fast_path_min_bytes as u64 || set.fallback.is_some() || set.scanner.is_none()
        {
            let mut all = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
            let got = read_at_most(src, &mut all, 0)?;
            all.truncate(got);
            self.feed_whole(file, &all);
            return Ok(());
        }
        let stream = offline_stream(file);
        let threads = worker_threads();
        let blocks = len.div_ceil(block) as usize;
        if blocks == 0 {
            return Ok(());
        }
        // Blocks handed out but not yet correlated: bounds the results waiting in memory.
        let window = threads * 4;
        let received_ms = self.received_ms;
        let (job_tx, job_rx) = std::sync::mpsc::channel::<usize>();
        let job_rx = std::sync::Mutex::new(job_rx);
        let (tx, rx) = std::sync::mpsc::channel::<(usize, std::io::Result<ChunkResult>)>();
        std::thread::scope(|scope| -> std::io::Result<()> {
            for _ in 0..threads {
                let (set, stream, tx, job_rx) = (&set, &stream, tx.clone(), &job_rx);
                scope.spawn(move || {
                    let mut worker = ChunkWorker::new(set);
                    let mut buf = Vec::with_capacity(block as usize + READ_PIECE);
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok(i) = job else { break };
                        // A panic would leave block `i` missing forever: report it instead.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            read_block(src, len, block, i, &mut buf).map(|range| {
                                let (records, lines) = match range {
                                    Some((a, b)) => {
                                        worker.candidate_records(stream, &buf[a..b], received_ms)
                                    }
                                    None => (Vec::new(), 0),
                                };
                                (records, lines, Vec::new())
                            })
                        }))
                        .unwrap_or_else(|_| {
                            Err(std::io::Error::other(format!(
                                "diagnosing block {i} failed (a bug: the worker panicked)"
                            )))
                        });
                        if tx.send((i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending: HashMap<usize, ChunkResult> = HashMap::new();
            let mut want = 0usize;
            let mut sent = 0usize;
            let mut spare = Vec::new();
            let mut failed = None;
            while sent < blocks.min(window) {
                let _ = job_tx.send(sent);
                sent += 1;
            }
            for (i, result) in &rx {
                match result {
                    Ok(r) => {
                        pending.insert(i, r);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                        break;
                    }
                }
                self.correlate_ready(&mut pending, &mut want, &mut spare);
                while sent < blocks && sent < want + window {
                    let _ = job_tx.send(sent);
                    sent += 1;
                }
                if want == blocks {
                    break;
                }
            }
            drop(job_tx);
            failed.map_or(Ok(()), Err)
        })
    }

    /// [`Diagnosis::feed_bytes`] for a reader that cannot be read at offsets (stdin, a pipe):
    /// this thread reads blocks, cut at record boundaries, while worker threads scan the
    /// previous ones, and correlates finished blocks in order.
    pub fn feed_reader(
        &mut self,
        file: &str,
        mut reader: impl std::io::Read,
    ) -> std::io::Result<()> {
        let set = Arc::clone(self.correlator.rule_set());
        let mut first = Vec::new();
        let eof = fill(&mut reader, &mut first, self.read_block)?;
        if (eof && first.len() < self.fast_path_min_bytes)
            || set.fallback.is_some()
            || set.scanner.is_none()
        {
            if !eof {
                reader.read_to_end(&mut first)?;
            }
            self.feed_whole(file, &first);
            return Ok(());
        }
        let stream = offline_stream(file);
        let threads = worker_threads();
        let received_ms = self.received_ms;
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
        let job_rx = std::sync::Mutex::new(job_rx);
        let (tx, rx) = std::sync::mpsc::channel::<(usize, ChunkResult)>();
        std::thread::scope(|scope| -> std::io::Result<()> {
            for _ in 0..threads {
                let (set, stream, tx, job_rx) = (&set, &stream, tx.clone(), &job_rx);
                scope.spawn(move || {
                    let mut worker = ChunkWorker::new(set);
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => break,
                        };
                        let Ok((i, chunk)) = job else { break };
                        let (records, lines) =
                            worker.candidate_records(stream, &chunk, received_ms);
                        if tx.send((i, (records, lines, chunk))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending: HashMap<usize, ChunkResult> = HashMap::new();
            let mut want = 0usize;
            let mut sent = 0usize;
            let mut spare: Vec<Vec<u8>> = Vec::new();
            let mut buf = first;
            let mut eof = eof;
            let read_result = loop {
                let cut = if eof {
                    buf.len()
                } else {
                    last_record_start(&buf)
                };
                if cut > 0 {
                    // The tail after the cut starts the next block, in a reused buffer.
                    // Room for the tail plus a whole block: no growth on the next fill.
                    let mut next = spare
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(2 * self.read_block));
                    next.clear();
                    next.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    if job_tx
                        .send((sent, std::mem::replace(&mut buf, next)))
                        .is_err()
                    {
                        break Ok(());
                    }
                    sent += 1;
                }
                while let Ok((i, result)) = rx.try_recv() {
                    pending.insert(i, result);
                    self.correlate_ready(&mut pending, &mut want, &mut spare);
                }
                if eof {
                    break Ok(());
                }
                match fill(&mut reader, &mut buf, self.read_block) {
                    Ok(e) => eof = e,
                    Err(e) => break Err(e),
                }
            };
            drop(job_tx);
            for (i, result) in rx {
                pending.insert(i, result);
                self.correlate_ready(&mut pending, &mut want, &mut spare);
            }
            read_result
        })
    }

    /// A small input, line by line on this thread (an empty one has no line).
    fn feed_whole(&mut self, file: &str, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        self.feed_stream(file, body.split('\n'));
    }

    /// Correlate the finished chunks that are next in order.
    fn correlate_ready(
        &mut self,
        pending: &mut HashMap<usize, ChunkResult>,
        want: &mut usize,
        spare: &mut Vec<Vec<u8>>,
    ) {
        let mut out = Vec::new();
        while let Some((records, lines, buffer)) = pending.remove(want) {
            // The streaming path's read buffers come back for reuse (the positional path's
            // workers keep their own: nothing to keep).
            if buffer.capacity() > 0 {
                spare.push(buffer);
            }
            let base = self.next_seq;
            for (mut r, matched) in records {
                r.id += base;
                r.last_seq += base;
                self.records_seen += 1;
                self.correlator.correlate(&r, &matched, &mut out);
                for f in out.drain(..) {
                    self.add(f);
                }
            }
            self.next_seq += lines;
            self.lines_seen += lines;
            *want += 1;
        }
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

/// Threads scanning blocks in the fast path.
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// Append up to `want` more bytes from `reader` to `buf`; true at end of input.
fn fill(reader: &mut impl std::io::Read, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    use std::io::Read as _;
    let start = buf.len();
    buf.reserve(want);
    // `read_to_end` on a bounded reader fills spare capacity without zeroing it first.
    let got = reader.take(want as u64).read_to_end(buf)?;
    debug_assert_eq!(buf.len(), start + got);
    Ok(got < want)
}

/// Byte offset of the last line in `buf` (after its first line, before its possibly partial
/// last line) that opens a record: a timestamped header, so no record spans the cut.
/// 0 when there is none yet.
fn last_record_start(buf: &[u8]) -> usize {
    let Some(last_nl) = memchr::memrchr(b'\n', buf) else {
        return 0;
    };
    // Complete lines end at `last_nl`; walk their starts backwards.
    let mut end = last_nl;
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        let start = nl + 1;
        if opens_record(&buf[start..end]) {
            return start;
        }
        end = nl;
    }
    0
}

/// Whether a whole line (without its newline) opens a record whatever came before it: a
/// timestamped header of a known layout, which the joiner never appends to a record.
fn opens_record(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let p = parse_line(&line);
    p.kind == LineKind::Header && p.time.is_some() && p.layout != Layout::Raw
}

/// Bytes read at a time past a block's end while looking for the next record start.
const READ_PIECE: usize = 64 << 10;

/// An input read at offsets: a file, or bytes in memory.
pub trait Positional: Sync {
    /// Bytes in the input.
    fn size(&self) -> std::io::Result<u64>;
    /// Read into `buf` from `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl Positional for [u8] {
    fn size(&self) -> std::io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(<[u8]>::len(self));
        let n = buf.len().min(<[u8]>::len(self) - from);
        buf[..n].copy_from_slice(&self[from..from + n]);
        Ok(n)
    }
}

impl Positional for std::fs::File {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }

    #[cfg(windows)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(self, buf, offset)
    }
}

/// Fill `buf` from `offset` as far as the input goes; the number of bytes read.
fn read_at_most<P: Positional + ?Sized>(
    src: &P,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read block `i` of `src` (length `len`, blocks of `block` bytes) into `buf`: from the byte
/// before the block (to tell whether the block starts a line) to the first record start at
/// or after the block's end. Returns the range of `buf` holding the records that start in
/// the block, `None` when none does (a record longer than a block).
fn read_block<P: Positional + ?Sized>(
    src: &P,
    len: u64,
    block: u64,
    i: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(usize, usize)>> {
    let lo = i as u64 * block;
    let hi = (lo + block).min(len);
    let reader = BlockReader {
        src,
        len,
        base: lo.saturating_sub(1),
    };
    buf.clear();
    reader.more(buf, hi - reader.base)?;
    let start = if lo == 0 {
        Some(0)
    } else {
        first_record_start(buf, (lo - reader.base) as usize, &reader)?
    };
    let Some(start) = start else {
        return Ok(None);
    };
    if reader.base + start as u64 >= hi {
        return Ok(None);
    }
    let end = first_record_start(buf, (hi - reader.base) as usize, &reader)?.unwrap_or(buf.len());
    Ok(Some((start, end)))
}

/// Reads a block's bytes into a buffer that starts at offset `base` of `src`.
struct BlockReader<'a, P: ?Sized> {
    src: &'a P,
    len: u64,
    base: u64,
}

impl<P: Positional + ?Sized> BlockReader<'_, P> {
    /// Append up to `want` more bytes to `buf`; true when the input has no more.
    fn more(&self, buf: &mut Vec<u8>, want: u64) -> std::io::Result<bool> {
        let at = self.base + buf.len() as u64;
        let want = want.min(self.len.saturating_sub(at));
        let want = usize::try_from(want).unwrap_or(usize::MAX);
        let old = buf.len();
        buf.resize(old + want, 0);
        let got = read_at_most(self.src, &mut buf[old..], at)?;
        buf.truncate(old + got);
        Ok(got < want || at + got as u64 >= self.len)
    }
}

/// Offset in `buf` of the first line starting at or after `from` that opens a record (see
/// [`opens_record`]), reading on with `reader` as needed; `None` at the end of input.
fn first_record_start<P: Positional + ?Sized>(
    buf: &mut Vec<u8>,
    from: usize,
    reader: &BlockReader<'_, P>,
) -> std::io::Result<Option<usize>> {
    // `p` is where the next line to look at starts once `aligned` (`from` may be mid-line).
    let mut p = from;
    let mut aligned = from == 0 || buf.get(from - 1) == Some(&b'\n');
    let mut at_end = reader.base + buf.len() as u64 >= reader.len;
    loop {
        match memchr::memchr(b'\n', buf.get(p..).unwrap_or_default()) {
            Some(k) => {
                if aligned && opens_record(&buf[p..p + k]) {
                    return Ok(Some(p));
                }
                aligned = true;
                p += k + 1;
            }
            None if at_end => {
                let last = buf.get(p..).unwrap_or_default();
                return Ok((aligned && !last.is_empty() && opens_record(last)).then_some(p));
            }
            None => at_end = reader.more(buf, READ_PIECE as u64)?,
        }
    }
}

/// A fast-path worker thread's state, kept across the chunks it scans: matching is a pure
/// function of (level, service, logger, message), and retry loops and repeated errors print
/// the same message over and over, so recent answers are remembered (keyed by a hash of the
/// four fields; a hit is verified field by field, no clones).
struct ChunkWorker<'s> {
    set: &'s RuleSet,
    scratch: Scratch,
    hasher: FxBuildHasher,
    memo: FxHashMap<u64, (LogRecord, Arc<Matched>)>,
}

impl<'s> ChunkWorker<'s> {
    fn new(set: &'s RuleSet) -> Self {
        ChunkWorker {
            set,
            scratch: Scratch::default(),
            hasher: FxBuildHasher::default(),
            memo: FxHashMap::default(),
        }
    }

    /// The match of a candidate record, from the memo when its fields were seen recently.
    fn matched(&mut self, r: &LogRecord) -> Arc<Matched> {
        use std::hash::BuildHasher as _;
        let key = self
            .hasher
            .hash_one((r.level, &r.service, &r.logger, &r.message));
        match self.memo.get(&key) {
            Some((k, m))
                if k.level == r.level
                    && k.service == r.service
                    && k.logger == r.logger
                    && k.message == r.message =>
            {
                Arc::clone(m)
            }
            _ => {
                let m = Arc::new(self.set.match_record(r, &mut self.scratch));
                if self.memo.len() >= MATCH_MEMO_ENTRIES {
                    self.memo.clear();
                }
                self.memo.insert(key, (r.clone(), Arc::clone(&m)));
                m
            }
        }
    }

    fn candidate_records(
        &mut self,
        stream: &Arc<StreamKey>,
        chunk: &[u8],
        received_ms: i64,
    ) -> (Vec<(LogRecord, Arc<Matched>)>, u64) {
        let set = self.set;
        // SIMD validation: several times faster than `str::from_utf8` on log text.
        let text: Cow<'_, str> = match simdutf8::basic::from_utf8(chunk) {
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
        // Per scanner group: start of its leftmost literal match at or after where it was last
        // searched from (usize::MAX: none); each group scans the buffer once, lazily.
        let groups = scanner.groups();
        let mut next_hit = vec![0usize; groups];
        let mut searched = vec![false; groups];
        let mut hit_in = |a: usize, b: usize| -> bool {
            let mut hit = false;
            for g in 0..groups {
                if !searched[g] || (next_hit[g] < a && next_hit[g] != usize::MAX) {
                    next_hit[g] = scanner.find_from(g, bytes, a).unwrap_or(usize::MAX);
                    searched[g] = true;
                }
                if next_hit[g] < b {
                    hit = true;
                    break;
                }
            }
            hit
        };
        // The open record: byte start, first line number, absorbs raw lines, ERROR or worse.
        let mut rec: Option<(usize, u64, bool, bool)> = None;
        let mut close =
            |start: usize, end: usize, first: u64, severe: bool, out: &mut Vec<LogRecord>| {
                if severe || hit_in(start, end) {
                    let span = &body[start..end];
                    let span = span.strip_suffix('\n').unwrap_or(span);
                    if memchr::memchr(b'\n', span.as_bytes()).is_none() {
                        // One line (most records): no need for the joiner's per-stream state.
                        out.push(joiner.single_line_record(stream, first, received_ms, span, now));
                    } else {
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
                let severe = p.level >= Level::Error;
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
        let matched = out
            .into_iter()
            .filter_map(|r| {
                let m = self.matched(&r);
                m.is_relevant().then_some((r, m))
            })
            .collect();
        (matched, line_no)
    }
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
        // Multi-line records across block cuts, a last line without its newline.
        let mut synthetic = String::new();
        for i in 0..300 {
            synthetic.push_str(&format!(
                "2025-03-14 10:41:{:02},219 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: \
                 Exception in secureMain\njava.net.BindException: Problem binding to [0.0.0.0:9866] \
                 java.net.BindException: Address already in use\n\tat sun.nio.ch.Net.bind0(Native Method)\n\
                 \tat org.apache.hadoop.ipc.Server.bind(Server.java:{i})\n\
                 2025-03-14 10:41:{:02},300 INFO org.apache.hadoop.util.ExitUtil: Exiting with status 1\n",
                i % 60,
                i % 60
            ));
        }
        synthetic.push_str("2025-03-14 10:42:00,000 WARN org.apache.hadoop.ipc.Client: no newline");
        let inputs = ["Hadoop", "Zookeeper", "OpenSSH", "HDFS", "Spark", "Linux"]
            .into_iter()
            .map(|name| {
                let path = dir.join(format!("data/loghub/{name}/{name}_2k.log"));
                (name, std::fs::read(path).unwrap().repeat(3))
            })
            .chain([("synthetic", synthetic.into_bytes())]);
        for (name, bytes) in inputs {
            let mut slow = Diagnosis::new(Arc::clone(&set));
            slow.fast_path_min_bytes = usize::MAX;
            slow.feed_bytes("f", &bytes);
            let slow_lines = slow.lines_seen;
            let slow = summary(&slow.finish());
            for block in [16 * 1024, 1000, 97] {
                // Many blocks, many cuts; blocks shorter than a record too.
                let mut fast = Diagnosis::new(Arc::clone(&set));
                fast.fast_path_min_bytes = 0;
                fast.read_block = block;
                fast.feed_bytes("f", &bytes);
                assert_eq!(
                    fast.lines_seen, slow_lines,
                    "{name} {block}: positional lines"
                );
                assert_eq!(slow, summary(&fast.finish()), "{name} {block}: positional");
                let mut streamed = Diagnosis::new(Arc::clone(&set));
                streamed.fast_path_min_bytes = 0;
                streamed.read_block = block;
                streamed.feed_reader("f", &bytes[..]).unwrap();
                assert_eq!(
                    streamed.lines_seen, slow_lines,
                    "{name} {block}: streamed lines"
                );
                assert_eq!(
                    slow,
                    summary(&streamed.finish()),
                    "{name} {block}: streamed"
                );
            }
        }
    }
}
