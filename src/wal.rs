//! Ingest write-ahead log: what makes a `2xx` on `POST /api/log/auto-upload` a promise.
//!
//! Flume's HTTP sink sends one line per request and waits for the answer before it sends
//! the next, so the answer cannot wait for parsing, stack-trace joining or the database.
//! Instead every accepted request is appended here first, and only then acknowledged:
//!
//! ```text
//!  HTTP ─► WalWriter::append ─► segment file (write(2); fdatasync per `sync` policy) ─► 2xx
//!                                      │
//!                 WalReader::read ◄────┘  (Parse stage, by sequence number)
//! ```
//!
//! Every physical line gets a sequence number (`seq`). The Record stage stores a record with
//! `id = seq of its first line` and moves the *checkpoint* (all `seq < checkpoint` are in the
//! database) in the same transaction. After a crash or a stage restart the reader seeks to the
//! checkpoint and replays; inserts are idempotent on `id`, so replay never duplicates rows.
//!
//! On disk: `<dir>/<first seq, 20 digits>.wal` segments of framed entries
//! `len:u32 crc32:u32 body`, body = `seq:u64 received_ms:i64 nlines:u32 cluster host service
//! file (u16-prefixed) lines (u32-prefixed)`, little endian. A torn tail (kill -9 or power loss
//! mid-write) fails its CRC and is truncated on open. Segments wholly below the checkpoint are
//! deleted.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::StreamKey;

/// When appended bytes are forced to stable storage. Every mode survives a crash of the
/// process (`kill -9`): the bytes are in the kernel before the request is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Never call fdatasync; the OS writes back (a power loss may lose recent lines).
    Never,
    /// fdatasync at most every `sync_interval_ms` from a timer (the default).
    Interval,
    /// fdatasync before every acknowledgement (slowest; survives power loss).
    Always,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("write-ahead log directory {0} is in use by another faultline process")]
    Locked(PathBuf),
    #[error(
        "write-ahead log is full: {pending} lines are waiting for the database (limit {limit})"
    )]
    Backlog { pending: u64, limit: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A group of lines of one stream, as received in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct WalBatch {
    pub stream: StreamKey,
    pub lines: Vec<String>,
}

/// One entry read back: lines `seq .. seq + lines.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct WalEntry {
    pub seq: u64,
    pub received_ms: i64,
    pub stream: StreamKey,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    first_seq: u64,
    /// Bytes that are completely written and may be read.
    len: u64,
}

/// State the writer publishes and the reader and the Record stage share.
#[derive(Debug)]
pub struct WalShared {
    dir: PathBuf,
    /// Every line with `seq < next_seq` has been written.
    next_seq: AtomicU64,
    /// Every line with `seq < committed` is stored in the database.
    committed: AtomicU64,
    segments: Mutex<Vec<Segment>>,
    /// Committed replay watermarks per stream (mirrors `ingest_streams`): every line of the
    /// stream up to the value is stored. Entries below the checkpoint are dropped.
    stream_marks: Mutex<HashMap<StreamKey, u64>>,
    /// A wake-up of the reader is pending (coalesces one nudge per append into one per step).
    wake_pending: AtomicBool,
}

impl WalShared {
    /// After an append: true when the reader should be nudged (no nudge is pending yet).
    pub fn request_wake(&self) -> bool {
        !self.wake_pending.swap(true, Ordering::SeqCst)
    }

    /// The reader is about to read: appends from now on need a new nudge.
    pub fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    pub fn wake_pending(&self) -> bool {
        self.wake_pending.load(Ordering::SeqCst)
    }

    /// After a commit: raise the streams' watermarks, prune the ones below the new checkpoint,
    /// and move the checkpoint.
    pub fn commit(&self, checkpoint: u64, marks: &[(StreamKey, u64)]) {
        let mut map = self
            .stream_marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, last) in marks {
            let m = map.entry(key.clone()).or_insert(*last);
            *m = (*m).max(*last);
        }
        self.set_committed(checkpoint);
        let committed = self.committed();
        map.retain(|_, last| *last >= committed);
    }

    /// Seed the watermarks read from the database at start.
    pub fn load_marks(&self, marks: Vec<(StreamKey, u64)>) {
        self.commit(self.committed(), &marks);
    }

    /// The committed watermarks: a replay from the checkpoint skips every line at or below
    /// its stream's watermark.
    pub fn marks(&self) -> HashMap<StreamKey, u64> {
        self.stream_marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }
    /// Lines accepted but not yet stored.
    pub fn pending(&self) -> u64 {
        self.next_seq().saturating_sub(self.committed())
    }
    /// Move the checkpoint forward (never backwards).
    pub fn set_committed(&self, seq: u64) {
        self.committed.fetch_max(seq, Ordering::AcqRel);
    }
    fn segments(&self) -> Vec<Segment> {
        self.segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
    fn with_segments<R>(&self, f: impl FnOnce(&mut Vec<Segment>) -> R) -> R {
        let mut guard = self
            .segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

const HEADER: usize = 8;
/// Refuse to believe an entry longer than this (a corrupt length field).
const MAX_ENTRY: usize = 1 << 30;

fn put_str16(buf: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.extend_from_slice(&(end as u16).to_le_bytes());
    buf.extend_from_slice(&s.as_bytes()[..end]);
}

fn encode_entry(buf: &mut Vec<u8>, seq: u64, received_ms: i64, batch: &WalBatch) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&received_ms.to_le_bytes());
    buf.extend_from_slice(&(batch.lines.len() as u32).to_le_bytes());
    put_str16(buf, &batch.stream.cluster);
    put_str16(buf, &batch.stream.host);
    put_str16(buf, &batch.stream.service);
    put_str16(buf, &batch.stream.file);
    for line in &batch.lines {
        buf.extend_from_slice(&(line.len() as u32).to_le_bytes());
        buf.extend_from_slice(line.as_bytes());
    }
    let body_len = (buf.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Cursor over a byte slice; every read is bounds-checked.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str16(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

fn decode_body(body: &[u8]) -> Option<WalEntry> {
    let mut c = Cur(body);
    let seq = c.u64()?;
    let received_ms = c.u64()? as i64;
    let n = c.u32()? as usize;
    let stream = StreamKey {
        cluster: c.str16()?,
        host: c.str16()?,
        service: c.str16()?,
        file: c.str16()?,
    };
    let mut lines = Vec::with_capacity(n.min(body.len()));
    for _ in 0..n {
        let len = c.u32()? as usize;
        lines.push(String::from_utf8_lossy(c.take(len)?).into_owned());
    }
    Some(WalEntry {
        seq,
        received_ms,
        stream,
        lines,
    })
}

/// Outcome of decoding the front of a buffer.
enum Frame {
    /// A valid entry and the bytes it occupied.
    Entry(WalEntry, usize),
    /// Not enough bytes yet for the entry.
    Incomplete { needed: usize },
    /// Length or CRC is wrong: the data from here on is not trustworthy.
    Corrupt,
}

fn decode_frame(buf: &[u8]) -> Frame {
    let Some(header) = buf.get(..HEADER) else {
        return Frame::Incomplete { needed: HEADER };
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_ENTRY {
        return Frame::Corrupt;
    }
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Frame::Incomplete {
            needed: HEADER + len,
        };
    };
    if crc32fast::hash(body) != crc {
        return Frame::Corrupt;
    }
    match decode_body(body) {
        Some(entry) => Frame::Entry(entry, HEADER + len),
        None => Frame::Corrupt,
    }
}

/// Smallest possible frame: header + seq + received_ms + nlines + four empty strings.
const MIN_FRAME: usize = HEADER + 8 + 8 + 4 + 4 * 2;

/// After damaged bytes at `buf[from..]`, the offset of the next frame that verifies (a seq
/// not below `min_seq` and within a sane distance of it, and a matching CRC), if any.
fn find_next_frame(buf: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let mut p = from.saturating_add(1);
    while p + MIN_FRAME <= buf.len() {
        let len = u32::from_le_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
        let seq_at = p + HEADER;
        let plausible = len + HEADER >= MIN_FRAME
            && p + HEADER + len <= buf.len()
            && buf
                .get(seq_at..seq_at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .is_some_and(|seq| seq >= min_seq && seq - min_seq < (1 << 40));
        if plausible && matches!(decode_frame(&buf[p..]), Frame::Entry(..)) {
            return Some(p);
        }
        p += 1;
    }
    None
}

/// Damaged bytes at `at` of a segment (a bad length or CRC inside the published data: disk or
/// memory corruption). Returns how many bytes to skip to reach the next entry that verifies,
/// or the rest of the published data when none does. Only the damaged entries are lost.
fn resync(
    file: &File,
    at: u64,
    published: u64,
    path: &Path,
    min_seq: u64,
) -> Result<usize, WalError> {
    let mut rest = vec![0u8; published.saturating_sub(at) as usize];
    file.read_exact_at(&mut rest, at).map_err(io_err(path))?;
    let skip = find_next_frame(&rest, 0, min_seq)
        .unwrap_or(rest.len())
        .max(1);
    tracing::error!(path = %path.display(), at, bytes = skip, "skipping a damaged write-ahead log region");
    Ok(skip)
}

/// What a scan of one segment found.
struct SegmentScan {
    /// (seq, line count) of every valid entry.
    entries: Vec<(u64, u64)>,
    /// Length of the data worth keeping: everything but a torn tail.
    valid_len: u64,
    /// Damaged bytes in the middle of the segment (skipped, not truncated).
    corrupt_bytes: u64,
}

/// Scan a segment. Damage followed by valid entries is skipped (only the damaged entries are
/// lost); damage with nothing valid after it is a torn tail, to be truncated.
fn scan_segment(path: &Path) -> Result<SegmentScan, WalError> {
    let data = fs::read(path).map_err(io_err(path))?;
    let mut pos = 0usize;
    let mut scan = SegmentScan {
        entries: Vec::new(),
        valid_len: 0,
        corrupt_bytes: 0,
    };
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Frame::Entry(e, used) => {
                scan.entries.push((e.seq, e.lines.len() as u64));
                pos += used;
            }
            Frame::Incomplete { .. } | Frame::Corrupt => {
                let min_seq = scan.entries.last().map_or(0, |&(seq, n)| seq + n);
                match find_next_frame(&data, pos, min_seq) {
                    Some(next) => {
                        tracing::error!(path = %path.display(), at = pos, bytes = next - pos, "skipping a damaged write-ahead log region");
                        scan.corrupt_bytes += (next - pos) as u64;
                        pos = next;
                    }
                    None => break,
                }
            }
        }
    }
    scan.valid_len = pos as u64;
    Ok(scan)
}

/// Options for [`WalWriter::open`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
    /// Upper bound of accepted-but-unstored lines; beyond it `append` answers `Backlog`.
    pub max_pending_lines: u64,
}

/// The single writer. Owned by the Ingest actor.
pub struct WalWriter {
    /// Held for the writer's lifetime: one process per WAL directory.
    _lock: File,
    opts: WalOptions,
    shared: Arc<WalShared>,
    file: File,
    path: PathBuf,
    seg_first: u64,
    seg_len: u64,
    buf: Vec<u8>,
    dirty: bool,
}

/// What recovery found when the WAL was opened.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub entries: usize,
    pub lines_after_checkpoint: u64,
    pub truncated_bytes: u64,
    /// Damaged bytes inside segments that were skipped (their entries are lost).
    pub corrupt_bytes: u64,
}

impl WalWriter {
    /// Open (or create) the WAL in `opts.dir`, recover what is there and start a new segment.
    ///
    /// `checkpoint` is the database's checkpoint; `min_next_seq` is one past the highest id
    /// already stored (sequence numbers are never reused, even if the WAL directory was lost).
    pub fn open(
        opts: WalOptions,
        checkpoint: u64,
        min_next_seq: u64,
    ) -> Result<(WalWriter, RecoveryReport), WalError> {
        fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
        let lock_path = opts.dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(WalError::Locked(opts.dir.clone())),
            Err(fs::TryLockError::Error(e)) => {
                return Err(WalError::Io {
                    path: lock_path,
                    source: e,
                });
            }
        }
        let mut firsts: Vec<u64> = Vec::new();
        for item in fs::read_dir(&opts.dir).map_err(io_err(&opts.dir))? {
            let item = item.map_err(io_err(&opts.dir))?;
            let name = item.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
                continue;
            };
            if let Ok(first) = stem.parse::<u64>() {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut report = RecoveryReport::default();
        let mut segments = Vec::new();
        let mut next_seq = checkpoint.max(min_next_seq);
        for first in firsts {
            let path = segment_path(&opts.dir, first);
            let SegmentScan {
                entries,
                valid_len,
                corrupt_bytes,
            } = scan_segment(&path)?;
            report.corrupt_bytes += corrupt_bytes;
            let file_len = fs::metadata(&path).map_err(io_err(&path))?.len();
            if valid_len < file_len {
                report.truncated_bytes += file_len - valid_len;
                tracing::warn!(path = %path.display(), valid_len, file_len, "truncating torn write-ahead log tail");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(valid_len).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
            if let Some(&(seq, n)) = entries.last() {
                next_seq = next_seq.max(seq + n);
            }
            for &(seq, n) in &entries {
                let end = seq + n;
                if end > checkpoint {
                    report.lines_after_checkpoint += end - seq.max(checkpoint);
                }
            }
            report.entries += entries.len();
            report.segments += 1;
            segments.push(Segment {
                first_seq: first,
                len: valid_len,
            });
        }

        let shared = Arc::new(WalShared {
            dir: opts.dir.clone(),
            next_seq: AtomicU64::new(next_seq),
            committed: AtomicU64::new(checkpoint),
            segments: Mutex::new(segments),
            stream_marks: Mutex::new(HashMap::new()),
            wake_pending: AtomicBool::new(false),
        });
        let (file, path) = Self::create_segment(&opts.dir, next_seq)?;
        shared.with_segments(|s| {
            s.retain(|seg| seg.first_seq != next_seq);
            s.push(Segment {
                first_seq: next_seq,
                len: 0,
            })
        });
        let writer = WalWriter {
            _lock: lock,
            opts,
            shared,
            file,
            path,
            seg_first: next_seq,
            seg_len: 0,
            buf: Vec::with_capacity(64 * 1024),
            dirty: false,
        };
        writer.remove_committed()?;
        Ok((writer, report))
    }

    fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf), WalError> {
        let path = segment_path(dir, first_seq);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // Make the new directory entry itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok((file, path))
    }

    pub fn shared(&self) -> Arc<WalShared> {
        self.shared.clone()
    }

    /// Append the batches as entries; returns the seq range `[first, end)` they received.
    /// When this returns `Ok`, the lines survive a crash of the process.
    pub fn append(
        &mut self,
        batches: &[WalBatch],
        received_ms: i64,
    ) -> Result<(u64, u64), WalError> {
        let lines: u64 = batches.iter().map(|b| b.lines.len() as u64).sum();
        let pending = self.shared.pending();
        if pending + lines > self.opts.max_pending_lines && pending > 0 {
            return Err(WalError::Backlog {
                pending,
                limit: self.opts.max_pending_lines,
            });
        }
        if self.seg_len >= self.opts.segment_bytes {
            self.rotate()?;
        }
        let first = self.shared.next_seq();
        let mut seq = first;
        self.buf.clear();
        for batch in batches.iter().filter(|b| !b.lines.is_empty()) {
            encode_entry(&mut self.buf, seq, received_ms, batch);
            seq += batch.lines.len() as u64;
        }
        // Positioned write at the end of the valid data: after a failed (partial) write the
        // next append overwrites the debris instead of landing behind a hole.
        let written = self
            .file
            .write_all_at(&self.buf, self.seg_len)
            .and_then(|()| {
                if self.opts.sync == SyncPolicy::Always {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            });
        if let Err(e) = written {
            // Nothing of this append counts: cut the file back to the published length.
            let _ = self.file.set_len(self.seg_len);
            return Err(WalError::Io {
                path: self.path.clone(),
                source: e,
            });
        }
        if self.opts.sync != SyncPolicy::Always {
            self.dirty = true;
        }
        self.seg_len += self.buf.len() as u64;
        let (seg_first, seg_len) = (self.seg_first, self.seg_len);
        self.shared.with_segments(|s| {
            if let Some(last) = s.last_mut().filter(|l| l.first_seq == seg_first) {
                last.len = seg_len;
            }
        });
        self.shared.next_seq.store(seq, Ordering::Release);
        Ok((first, seq))
    }

    /// fdatasync if anything was written since the last sync (the `interval` policy's timer).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.file.sync_data().map_err(io_err(&self.path))?;
            self.dirty = false;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.dirty = false;
        let first = self.shared.next_seq();
        let (file, path) = Self::create_segment(&self.opts.dir, first)?;
        self.file = file;
        self.path = path;
        self.seg_first = first;
        self.seg_len = 0;
        self.shared.with_segments(|s| {
            s.push(Segment {
                first_seq: first,
                len: 0,
            })
        });
        self.remove_committed()
    }

    /// Delete segments whose every line is below the checkpoint. Returns nothing; errors are
    /// reported because a WAL that cannot shrink will eventually fill the disk.
    pub fn remove_committed(&self) -> Result<(), WalError> {
        let committed = self.shared.committed();
        let doomed: Vec<u64> = self.shared.with_segments(|segs| {
            let mut doomed = Vec::new();
            // A segment is done when the next segment starts at or below the checkpoint.
            while segs.len() > 1 && segs[1].first_seq <= committed {
                doomed.push(segs.remove(0).first_seq);
            }
            doomed
        });
        for first in doomed {
            let path = segment_path(&self.opts.dir, first);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(WalError::Io { path, source: e }),
            }
        }
        Ok(())
    }

    /// Total bytes of all live segments (for metrics).
    pub fn disk_bytes(&self) -> u64 {
        self.shared.segments().iter().map(|s| s.len).sum()
    }
}

/// A reader that follows the writer by sequence number. Owned by the Parse stage.
pub struct WalReader {
    shared: Arc<WalShared>,
    /// Segment being read and the byte offset of the next entry in it.
    cur: Option<(u64, File, u64)>,
    /// Lines below this seq are skipped (a seek may land in the middle of an entry).
    min_seq: u64,
    buf: Vec<u8>,
    chunk: usize,
    skipped_bytes: u64,
}

const READ_CHUNK: usize = 1 << 20;

impl WalReader {
    pub fn new(shared: Arc<WalShared>) -> WalReader {
        WalReader {
            shared,
            cur: None,
            min_seq: 0,
            buf: Vec::new(),
            chunk: READ_CHUNK,
            skipped_bytes: 0,
        }
    }

    /// Position the reader so the next line returned is `seq` (or the first line after it that
    /// still exists).
    pub fn seek(&mut self, seq: u64) {
        self.cur = None;
        self.min_seq = seq;
    }

    /// Damaged bytes skipped since the last call (each skip is also logged as an error).
    pub fn take_skipped_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.skipped_bytes)
    }

    /// The seq of the next line `read` will return.
    pub fn position(&self) -> u64 {
        self.min_seq
    }

    fn open_segment(&self, first_seq: u64) -> Result<File, WalError> {
        let path = segment_path(&self.shared.dir, first_seq);
        File::open(&path).map_err(io_err(&path))
    }

    /// Read whole entries (at least one if any is available), up to about `max_lines` lines.
    pub fn read(&mut self, max_lines: usize) -> Result<Vec<WalEntry>, WalError> {
        // A previous oversized entry grew the chunk; do not keep the big buffer size forever.
        self.chunk = READ_CHUNK;
        let mut out = Vec::new();
        let mut lines = 0usize;
        loop {
            let segments = self.shared.segments();
            if self.cur.is_none() {
                // Start in the last segment whose first seq is <= min_seq (or the first one).
                let start = segments
                    .iter()
                    .rev()
                    .find(|s| s.first_seq <= self.min_seq)
                    .or_else(|| segments.first());
                let Some(seg) = start.copied() else {
                    return Ok(out);
                };
                let file = self.open_segment(seg.first_seq)?;
                self.cur = Some((seg.first_seq, file, 0));
            }
            let Some((seg_first, file, offset)) = self.cur.as_mut() else {
                return Ok(out);
            };
            let published = segments
                .iter()
                .find(|s| s.first_seq == *seg_first)
                .map(|s| s.len);
            let Some(published) = published else {
                // The segment was removed under us (all committed): restart from min_seq.
                self.cur = None;
                if segments.is_empty() {
                    return Ok(out);
                }
                continue;
            };
            if *offset >= published {
                // Move to the next segment if there is one, else we are caught up.
                let next = segments.iter().find(|s| s.first_seq > *seg_first).copied();
                match next {
                    Some(seg) => {
                        let file = self.open_segment(seg.first_seq)?;
                        self.cur = Some((seg.first_seq, file, 0));
                        continue;
                    }
                    None => return Ok(out),
                }
            }
            let want = ((published - *offset) as usize).min(self.chunk.max(HEADER));
            self.buf.resize(want, 0);
            let path = segment_path(&self.shared.dir, *seg_first);
            file.read_exact_at(&mut self.buf, *offset)
                .map_err(io_err(&path))?;
            let mut pos = 0usize;
            loop {
                match decode_frame(&self.buf[pos..]) {
                    Frame::Entry(mut entry, used) => {
                        pos += used;
                        let end = entry.seq + entry.lines.len() as u64;
                        if end <= self.min_seq {
                            continue;
                        }
                        if entry.seq < self.min_seq {
                            let skip = (self.min_seq - entry.seq) as usize;
                            entry.lines.drain(..skip);
                            entry.seq = self.min_seq;
                        }
                        self.min_seq = end;
                        lines += entry.lines.len();
                        out.push(entry);
                        if lines >= max_lines {
                            break;
                        }
                    }
                    Frame::Incomplete { needed } => {
                        if pos == 0 {
                            // One entry is larger than the chunk: read it whole next time.
                            if needed > self.chunk && (*offset + needed as u64) <= published {
                                self.chunk = needed;
                                break;
                            }
                            // The published length never cuts an entry: the length field is
                            // damaged. Skip to the next entry that verifies.
                            let skip =
                                resync(file, *offset + pos as u64, published, &path, self.min_seq)?;
                            self.skipped_bytes += skip as u64;
                            pos += skip;
                        }
                        break;
                    }
                    Frame::Corrupt => {
                        let skip =
                            resync(file, *offset + pos as u64, published, &path, self.min_seq)?;
                        self.skipped_bytes += skip as u64;
                        pos += skip;
                        break;
                    }
                }
            }
            *offset += pos as u64;
            if lines >= max_lines {
                return Ok(out);
            }
            if pos == 0 && !out.is_empty() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn opts(dir: &Path) -> WalOptions {
        WalOptions {
            dir: dir.to_path_buf(),
            segment_bytes: 1 << 20,
            sync: SyncPolicy::Never,
            max_pending_lines: 1_000_000,
        }
    }

    fn batch(host: &str, lines: &[&str]) -> WalBatch {
        WalBatch {
            stream: StreamKey {
                cluster: "c1".into(),
                host: host.into(),
                service: "datanode".into(),
                file: "f.log".into(),
            },
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn all_lines(entries: &[WalEntry]) -> Vec<(u64, String)> {
        entries
            .iter()
            .flat_map(|e| {
                e.lines
                    .iter()
                    .enumerate()
                    .map(move |(i, l)| (e.seq + i as u64, l.clone()))
            })
            .collect()
    }

    #[test]
    fn append_then_read_in_order_with_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
        assert_eq!(w.append(&[batch("a", &["l1", "l2"])], 5).unwrap(), (0, 2));
        assert_eq!(
            w.append(&[batch("b", &["l3"]), batch("a", &["l4"])], 6)
                .unwrap(),
            (2, 4)
        );
        let mut r = WalReader::new(w.shared());
        r.seek(0);
        let got = r.read(100).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].stream.host, "b");
        assert_eq!(got[1].received_ms, 6);
        assert_eq!(
            all_lines(&got),
            vec![
                (0, "l1".into()),
                (1, "l2".into()),
                (2, "l3".into()),
                (3, "l4".into())
            ]
        );
        // Caught up: nothing more until the next append.
        assert!(r.read(100).unwrap().is_empty());
        w.append(&[batch("a", &["l5"])], 7).unwrap();
        assert_eq!(all_lines(&r.read(100).unwrap()), vec![(4, "l5".into())]);
    }

    #[test]
    fn seek_into_the_middle_of_an_entry_skips_earlier_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
        w.append(&[batch("a", &["0", "1", "2", "3"])], 1).unwrap();
        let mut r = WalReader::new(w.shared());
        r.seek(2);
        assert_eq!(
            all_lines(&r.read(10).unwrap()),
            vec![(2, "2".into()), (3, "3".into())]
        );
    }

    #[test]
    fn reopen_recovers_unchecked_lines_and_truncates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
            w.append(&[batch("a", &["x1", "x2"])], 1).unwrap();
            w.append(&[batch("a", &["x3"])], 1).unwrap();
        }
        // Simulate a torn write: garbage half-entry at the end of the last segment.
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);

        let (mut w, report) = WalWriter::open(opts(dir.path()), 1, 0).unwrap();
        assert_eq!(report.truncated_bytes, 7);
        assert_eq!(report.lines_after_checkpoint, 2);
        assert_eq!(w.shared().next_seq(), 3, "seqs continue after recovery");
        let mut r = WalReader::new(w.shared());
        r.seek(1);
        assert_eq!(
            all_lines(&r.read(10).unwrap()),
            vec![(1, "x2".into()), (2, "x3".into())]
        );
        assert_eq!(w.append(&[batch("a", &["x4"])], 2).unwrap(), (3, 4));
        assert_eq!(all_lines(&r.read(10).unwrap()), vec![(3, "x4".into())]);
    }

    #[test]
    fn a_second_writer_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
        assert!(matches!(
            WalWriter::open(opts(dir.path()), 0, 0),
            Err(WalError::Locked(_))
        ));
        drop(first);
        WalWriter::open(opts(dir.path()), 0, 0).expect("the lock is released with the writer");
    }

    #[test]
    fn damage_in_the_middle_loses_only_the_damaged_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
        w.append(&[batch("a", &["first"])], 1).unwrap();
        let seg = segment_path(dir.path(), 0);
        let first_len = fs::metadata(&seg).unwrap().len();
        w.append(&[batch("a", &["second", "second-b"])], 1).unwrap();
        w.append(&[batch("a", &["third"])], 1).unwrap();
        // Flip the second entry's CRC, as a bad disk block would.
        let mut data = fs::read(&seg).unwrap();
        data[first_len as usize + 4] ^= 0xff;
        data[first_len as usize + 5] ^= 0xff;
        fs::write(&seg, &data).unwrap();

        let mut r = WalReader::new(w.shared());
        r.seek(0);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(all_lines(&r.read(100).unwrap()));
        }
        assert_eq!(got, vec![(0, "first".into()), (3, "third".into())]);
        assert!(r.take_skipped_bytes() > 0);
        drop(w);

        let (mut w, report) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
        assert_eq!(
            report.truncated_bytes, 0,
            "a damaged middle is not a torn tail"
        );
        assert!(report.corrupt_bytes > 0);
        assert_eq!(w.shared().next_seq(), 4);
        w.append(&[batch("a", &["fourth"])], 1).unwrap();
        let mut r = WalReader::new(w.shared());
        r.seek(0);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(all_lines(&r.read(100).unwrap()));
        }
        assert_eq!(
            got,
            vec![
                (0, "first".into()),
                (3, "third".into()),
                (4, "fourth".into())
            ]
        );
    }

    #[test]
    fn seqs_never_go_below_stored_ids_even_without_wal_files() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = WalWriter::open(opts(dir.path()), 10, 42).unwrap();
        assert_eq!(w.shared().next_seq(), 42);
    }

    #[test]
    fn rotation_and_removal_of_committed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.segment_bytes = 100;
        let (mut w, _) = WalWriter::open(o, 0, 0).unwrap();
        let long = "y".repeat(120);
        for _ in 0..5 {
            w.append(&[batch("a", &[&long])], 1).unwrap();
        }
        let count = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "wal")
                })
                .count()
        };
        assert_eq!(count(), 5);
        let mut r = WalReader::new(w.shared());
        r.seek(0);
        let mut got = Vec::new();
        loop {
            let part = r.read(2).unwrap();
            if part.is_empty() {
                break;
            }
            got.extend(part);
        }
        assert_eq!(all_lines(&got).len(), 5, "reader crosses segments");
        w.shared().set_committed(3);
        w.remove_committed().unwrap();
        assert_eq!(
            count(),
            2,
            "segments starting at 0, 1 and 2 are fully committed"
        );
        // A reader that seeks to the checkpoint still finds its lines.
        let mut r = WalReader::new(w.shared());
        r.seek(3);
        assert_eq!(all_lines(&r.read(10).unwrap()).len(), 2);
    }

    #[test]
    fn backlog_limit_refuses_new_lines_but_not_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.max_pending_lines = 3;
        let (mut w, _) = WalWriter::open(o, 0, 0).unwrap();
        // A single batch bigger than the limit is still accepted when nothing is pending.
        w.append(&[batch("a", &["1", "2", "3", "4"])], 1).unwrap();
        assert!(matches!(
            w.append(&[batch("a", &["5"])], 1),
            Err(WalError::Backlog { pending: 4, .. })
        ));
        w.shared().set_committed(4);
        w.append(&[batch("a", &["5"])], 1).unwrap();
    }

    #[test]
    fn large_entries_bigger_than_the_read_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
        let big = "z".repeat(3 << 20);
        w.append(&[batch("a", &["small"])], 1).unwrap();
        w.append(&[batch("a", &[&big])], 1).unwrap();
        let mut r = WalReader::new(w.shared());
        r.seek(0);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(r.read(100).unwrap());
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].lines[0].len(), 3 << 20);
    }
}
