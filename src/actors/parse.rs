//! Parse stage: follows the write-ahead log, runs `preprocess_log` on every line, re-joins
//! multi-line records per (cluster, host, service, file) stream and sends finished records
//! downstream with `send().await`, one batch at a time (the mailbox waits meanwhile: that is
//! the backpressure; the WAL is the buffer in front of this stage).
//!
//! Each batch carries a checkpoint: the lowest seq that is not yet in a sent record (the first
//! line of the oldest still-open record, or the read position). When a downstream stage fails
//! this actor stops; the supervisor restarts it with a fresh joiner, positioned at the stored
//! checkpoint after a growing pause, and replays. Replays are harmless: record ids are WAL seqs.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::messages::{Records, StageError, Wake};
use super::pipeline::PipelineHealth;
use super::rules::RulesActor;
use crate::domain::{Layout, Level, LogRecord, StreamKey};
use crate::metrics::Metrics;
use crate::parse::{Joiner, JoinerConfig, StreamId};
use crate::rules::RulesHandle;
use crate::wal::{WalEntry, WalReader, WalShared};

#[derive(Debug, Clone)]
pub struct ParseConfig {
    pub joiner: JoinerConfig,
    pub read_batch_lines: usize,
    pub join_idle: Duration,
    /// Idle time after which a record whose header hits a rule literal is closed.
    pub join_idle_hit: Duration,
    pub max_record_age: Duration,
    /// How long to gather newly appended lines before a step (fewer, larger transactions).
    pub batch_delay: Duration,
    pub max_restart_backoff: Duration,
}

pub struct ParseActor {
    cfg: ParseConfig,
    reader: WalReader,
    wal: Arc<WalShared>,
    joiner: Joiner,
    /// The live rules, for the joiner's early close of records that look like faults.
    rule_set: Option<Arc<RulesHandle>>,
    streams: HashMap<StreamKey, StreamId>,
    rules: Addr<RulesActor>,
    metrics: Arc<Metrics>,
    health: Arc<PipelineHealth>,
    /// Highest checkpoint handed downstream since the last (re)start.
    sent_checkpoint: u64,
    busy: bool,
    /// Consecutive failures (downstream or WAL reads); kept across restarts to pace them.
    failures: u32,
    /// Replay filter: per stream, the highest seq already stored (committed watermarks taken
    /// at (re)start). Lines at or below it are skipped; emptied once the reader is past them.
    replay: HashMap<StreamKey, u64>,
    replay_until: u64,
    /// A delayed step is scheduled (Wakes arriving meanwhile add nothing).
    step_scheduled: bool,
}

/// Take the next batch now (the previous one filled `read_batch_lines`).
#[derive(Message)]
#[rtype(result = "()")]
struct Continue;

const MAX_INTERNED_STREAMS: usize = 100_000;

impl ParseActor {
    pub fn new(
        cfg: ParseConfig,
        wal: Arc<WalShared>,
        rules: Addr<RulesActor>,
        metrics: Arc<Metrics>,
        health: Arc<PipelineHealth>,
        rule_set: Option<Arc<RulesHandle>>,
    ) -> Self {
        let joiner = new_joiner(&cfg, rule_set.as_ref());
        let mut reader = WalReader::new(wal.clone());
        reader.seek(wal.committed());
        let replay = wal.marks();
        let replay_until = replay.values().copied().max().unwrap_or(0);
        ParseActor {
            replay,
            replay_until,
            step_scheduled: false,
            joiner,
            rule_set,
            cfg,
            reader,
            sent_checkpoint: wal.committed(),
            wal,
            streams: HashMap::new(),
            rules,
            metrics,
            health,
            busy: false,
            failures: 0,
        }
    }

    fn stream_id(&mut self, key: &StreamKey) -> StreamId {
        if let Some(id) = self.streams.get(key) {
            return id.clone();
        }
        if self.streams.len() >= MAX_INTERNED_STREAMS {
            // Open records keep their own Arc; only the interning table is reset.
            self.streams.clear();
        }
        let id: StreamId = Arc::new(key.clone());
        self.streams.insert(key.clone(), id.clone());
        id
    }

    /// Feed one WAL entry to the joiner, containing parser panics to their line. Lines that a
    /// replay finds already stored (at or below their stream's watermark) are skipped.
    fn feed(&mut self, entry: &WalEntry, now: Instant, out: &mut Vec<LogRecord>) {
        let stream = self.stream_id(&entry.stream);
        let stored_up_to = self.replay.get(&entry.stream).copied();
        let joiner = &mut self.joiner;
        let panics = feed_entry(entry, out, |seq, line, out| {
            if stored_up_to.is_some_and(|m| seq <= m) {
                return;
            }
            joiner.push(&stream, seq, entry.received_ms, line, now, out)
        });
        if panics > 0 {
            tracing::error!(
                panics,
                seq = entry.seq,
                "parser panicked; the lines were stored raw"
            );
            self.metrics.parse_failures.inc_by(panics);
            // No watermark for these raw records: later lines of the entry may still be in an
            // open record, and a watermark would make a replay skip them. A replay re-emits
            // the raw record under the same id (its line's seq), which the insert ignores.
        }
    }

    /// One step: read what the WAL has, flush idle records, send the batch downstream.
    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        // From here on, new appends need a new nudge.
        self.wal.clear_wake();
        let now = Instant::now();
        let entries = match self.reader.read(self.cfg.read_batch_lines) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "reading the write-ahead log failed; restarting the parse stage");
                self.health.parse_failed(e.to_string());
                self.failures = self.failures.saturating_add(1);
                ctx.stop();
                return;
            }
        };
        self.metrics
            .wal_corrupt_bytes
            .inc_by(self.reader.take_skipped_bytes());
        let lines_read: usize = entries.iter().map(|e| e.lines.len()).sum();
        let mut out = Vec::new();
        for entry in &entries {
            self.feed(entry, now, &mut out);
        }
        self.joiner
            .flush_idle_hits(now, self.cfg.join_idle_hit, &mut out);
        self.joiner
            .flush_idle(now, self.cfg.join_idle, self.cfg.max_record_age, &mut out);
        let marks: Vec<(StreamKey, u64)> = self
            .joiner
            .take_marks()
            .into_iter()
            .map(|(stream, seq)| ((*stream).clone(), seq))
            .collect();
        let read_pos = self.reader.position();
        if !self.replay.is_empty() && read_pos > self.replay_until {
            self.replay.clear();
        }
        let checkpoint = self
            .joiner
            .oldest_open_seq()
            .map_or(read_pos, |open| open.min(read_pos));
        if out.is_empty() && checkpoint <= self.sent_checkpoint {
            return;
        }
        self.count(&out);
        self.busy = true;
        let more = lines_read >= self.cfg.read_batch_lines;
        let depth = self.metrics.queue_depth.with_label_values(&["rules"]);
        depth.inc();
        let send = self.rules.send(Records {
            records: out,
            findings: Vec::new(),
            checkpoint,
            marks,
        });
        ctx.wait(send.into_actor(self).map(move |res, this, ctx| {
            depth.dec();
            this.busy = false;
            match res.map_err(StageError::from).and_then(|r| r) {
                Ok(()) => {
                    this.failures = 0;
                    this.sent_checkpoint = this.sent_checkpoint.max(checkpoint);
                    this.health.parse_ok();
                    if more {
                        ctx.notify(Continue);
                    } else if this.wal.wake_pending() {
                        ctx.notify(Wake);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "downstream failed; rewinding to the checkpoint");
                    this.failures = this.failures.saturating_add(1);
                    ctx.stop();
                }
            }
        }));
    }

    fn count(&self, records: &[LogRecord]) {
        for r in records {
            self.metrics
                .records_parsed
                .with_label_values(&[r.layout.as_str()])
                .inc();
            if r.layout.is_unrecognised() {
                self.metrics.parse_failures.inc();
            }
            if r.message.ends_with("(pipeline.max_record_bytes)]") {
                self.metrics.records_truncated.inc();
            }
            if r.line_count > 1 {
                self.metrics.multiline_records.inc();
                self.metrics
                    .lines_joined
                    .inc_by(u64::from(r.line_count - 1));
            }
        }
    }

    fn backoff(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let ms = 100u64.saturating_mul(1 << self.failures.min(16));
        Duration::from_millis(ms).min(self.cfg.max_restart_backoff)
    }
}

/// A joiner that closes records whose header hits a rule literal after `join_idle_hit`.
fn new_joiner(cfg: &ParseConfig, rules: Option<&Arc<RulesHandle>>) -> Joiner {
    let mut joiner = Joiner::new(cfg.joiner);
    if let Some(handle) = rules {
        let handle = Arc::clone(handle);
        joiner.set_hit_classifier(Box::new(move |msg: &str| {
            handle.current().has_signal_literals(msg)
        }));
    }
    joiner
}

/// Run `push` for every line of `entry`. A panic inside `push` is contained to the line that
/// caused it: that line is emitted verbatim as a raw record and the next line goes on (actix
/// would not restart an actor whose handler panicked). Returns how many lines panicked.
fn feed_entry(
    entry: &WalEntry,
    out: &mut Vec<LogRecord>,
    mut push: impl FnMut(u64, &str, &mut Vec<LogRecord>),
) -> u64 {
    let mut panics = 0;
    for (i, line) in entry.lines.iter().enumerate() {
        let seq = entry.seq + i as u64;
        if catch_unwind(AssertUnwindSafe(|| push(seq, line, out))).is_err() {
            panics += 1;
            out.push(raw_record(&entry.stream, seq, entry.received_ms, line));
        }
    }
    panics
}

/// A line stored verbatim (used when the parser itself failed on it).
fn raw_record(stream: &StreamKey, seq: u64, received_ms: i64, line: &str) -> LogRecord {
    LogRecord {
        id: seq,
        last_seq: seq,
        received_ms,
        event_ms: received_ms,
        cluster: stream.cluster.clone(),
        host: stream.host.clone(),
        service: stream.service.clone(),
        source_file: stream.file.clone(),
        level: Level::Unknown,
        logger: String::new(),
        thread: String::new(),
        message: line.to_string(),
        layout: Layout::Raw,
        line_count: 1,
    }
}

impl Actor for ParseActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let delay = self.backoff();
        // Poll for idle records even when no new lines arrive.
        let tick = (self.cfg.join_idle / 4)
            .min(self.cfg.join_idle_hit / 2)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        ctx.run_later(delay, move |this, ctx| {
            ctx.run_interval(tick, |this, ctx| this.step(ctx));
            this.step(ctx);
        });
    }
}

impl Supervised for ParseActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.metrics
            .actor_restarts
            .with_label_values(&["parse"])
            .inc();
        // Fresh transient state: forget open records and rewind to what is stored.
        self.joiner = new_joiner(&self.cfg, self.rule_set.as_ref());
        self.streams.clear();
        self.busy = false;
        let committed = self.wal.committed();
        self.reader.seek(committed);
        self.sent_checkpoint = committed;
        self.replay = self.wal.marks();
        self.replay_until = self.replay.values().copied().max().unwrap_or(0);
        self.step_scheduled = false;
    }
}

impl Handler<Wake> for ParseActor {
    type Result = ();

    /// New lines: gather for `batch_delay`, then take them all in one step.
    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        if self.step_scheduled {
            return;
        }
        self.step_scheduled = true;
        ctx.run_later(self.cfg.batch_delay, |this, ctx| {
            this.step_scheduled = false;
            this.step(ctx);
        });
    }
}

impl Handler<Continue> for ParseActor {
    type Result = ();

    fn handle(&mut self, _: Continue, ctx: &mut Self::Context) {
        self.step(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_line_is_stored_raw_and_the_rest_goes_on() {
        let entry = WalEntry {
            seq: 10,
            received_ms: 5,
            stream: StreamKey {
                host: "w1".into(),
                ..Default::default()
            },
            lines: vec!["ok 1".into(), "boom".into(), "ok 2".into()],
        };
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let panics = feed_entry(&entry, &mut out, |seq, line, _| {
            if line == "boom" {
                panic!("injected parser failure");
            }
            seen.push(seq);
        });
        assert_eq!(panics, 1);
        assert_eq!(seen, vec![10, 12]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, 11);
        assert_eq!(out[0].message, "boom");
        assert_eq!(out[0].layout, Layout::Raw);
        assert_eq!(out[0].host, "w1");
    }
}
