//! Wiring: spawns the stages sink-first under supervisors and exposes their health.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::ingest::IngestActor;
use super::parse::{ParseActor, ParseConfig};
use super::record::RecordActor;
use super::retention::RetentionActor;
use super::rules::RulesActor;
use crate::metrics::Metrics;
use crate::rules::RulesHandle;
use crate::storage::Store;
use crate::wal::{SyncPolicy, WalShared, WalWriter};

/// Failure flags the stages set and `/readyz` reads.
#[derive(Debug, Default)]
pub struct PipelineHealth {
    record_failing: AtomicBool,
    parse_failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl PipelineHealth {
    pub fn record_ok(&self) {
        self.record_failing.store(false, Ordering::Release);
    }
    pub fn record_failed(&self, error: String) {
        self.record_failing.store(true, Ordering::Release);
        self.set_error(error);
    }
    pub fn parse_ok(&self) {
        self.parse_failing.store(false, Ordering::Release);
    }
    pub fn parse_failed(&self, error: String) {
        self.parse_failing.store(true, Ordering::Release);
        self.set_error(error);
    }
    fn set_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }
    /// `None` when healthy, else why not.
    pub fn problem(&self) -> Option<String> {
        let failing = self.record_failing.load(Ordering::Acquire)
            || self.parse_failing.load(Ordering::Acquire);
        failing.then(|| {
            self.last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "a pipeline stage is failing".into())
        })
    }
}

pub struct PipelineConfig {
    pub parse: ParseConfig,
    pub mailbox_capacity: usize,
    pub wal_sync: SyncPolicy,
    pub wal_sync_interval: Duration,
    pub retention: Option<Duration>,
    pub retention_interval: Duration,
    pub rules: Arc<RulesHandle>,
    /// Report unexplained failures as `unknown` findings.
    pub unknown_findings: bool,
    /// Each cluster's latest snapshot, for the rules' `[[snapshot_cause]]`.
    pub snapshots: Option<Arc<dyn crate::rules::engine::SnapshotLookup>>,
    /// Woken when unknown findings are stored (none without an LLM).
    pub escalation: Option<Recipient<super::escalation::Wake>>,
}

/// Addresses of the running stages.
#[derive(Clone)]
pub struct Pipeline {
    pub ingest: Addr<IngestActor>,
    pub parse: Addr<ParseActor>,
    pub rules: Addr<RulesActor>,
    pub record: Addr<RecordActor>,
    pub wal: Arc<WalShared>,
    pub health: Arc<PipelineHealth>,
    /// Keeps the ingest thread alive as long as the pipeline is.
    _ingest_arbiter: Arc<ArbiterGuard>,
}

/// Stops the ingest arbiter's thread when the last pipeline handle is dropped, and waits for
/// it: the WAL writer (and its directory lock) is gone when the pipeline is.
struct ArbiterGuard(Option<Arbiter>);

impl Drop for ArbiterGuard {
    fn drop(&mut self) {
        if let Some(arbiter) = self.0.take() {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("the ingest arbiter thread panicked");
            }
        }
    }
}

impl Pipeline {
    /// Start every stage. Must run inside an actix System.
    pub fn start(
        cfg: PipelineConfig,
        writer: WalWriter,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Pipeline {
        let wal = writer.shared();
        let health = Arc::new(PipelineHealth::default());
        let cap = cfg.mailbox_capacity;

        let record = {
            let (store, wal, metrics, health) =
                (store.clone(), wal.clone(), metrics.clone(), health.clone());
            let escalation = cfg.escalation.clone();
            Supervisor::start(move |ctx: &mut Context<RecordActor>| {
                ctx.set_mailbox_capacity(cap);
                RecordActor::new(store, wal, metrics, health, escalation.clone())
            })
        };
        let rules = {
            let (record, metrics, handle) = (record.clone(), metrics.clone(), cfg.rules.clone());
            let unknowns = cfg.unknown_findings;
            let snapshots = cfg.snapshots.clone();
            Supervisor::start(move |ctx: &mut Context<RulesActor>| {
                ctx.set_mailbox_capacity(cap);
                RulesActor::new(record, metrics, handle, unknowns, snapshots.clone())
            })
        };
        let parse = {
            let (wal, rules, metrics, health) =
                (wal.clone(), rules.clone(), metrics.clone(), health.clone());
            let parse_cfg = cfg.parse.clone();
            let handle = cfg.rules.clone();
            Supervisor::start(move |ctx: &mut Context<ParseActor>| {
                ctx.set_mailbox_capacity(cap);
                ParseActor::new(parse_cfg, wal, rules, metrics, health, Some(handle))
            })
        };
        let arbiter = Arbiter::new();
        let ingest = {
            let (parse, metrics) = (parse.clone().recipient(), metrics.clone());
            let (sync, interval) = (cfg.wal_sync, cfg.wal_sync_interval);
            Supervisor::start_in_arbiter(
                &arbiter.handle(),
                move |ctx: &mut Context<IngestActor>| {
                    ctx.set_mailbox_capacity(cap);
                    IngestActor::new(writer, parse, metrics, sync, interval)
                },
            )
        };
        if let Some(retention) = cfg.retention {
            let interval = cfg.retention_interval;
            let metrics = metrics.clone();
            Supervisor::start(move |_: &mut Context<RetentionActor>| {
                RetentionActor::new(store, metrics, retention, interval)
            });
        }
        Pipeline {
            ingest,
            parse,
            rules,
            record,
            wal,
            health,
            _ingest_arbiter: Arc::new(ArbiterGuard(Some(arbiter))),
        }
    }

    /// `None` when every stage is running and none is failing.
    pub fn problem(&self) -> Option<String> {
        for (name, up) in [
            ("ingest", self.ingest.connected()),
            ("parse", self.parse.connected()),
            ("rules", self.rules.connected()),
            ("record", self.record.connected()),
        ] {
            if !up {
                return Some(format!("pipeline stage {name} is not running"));
            }
        }
        self.health.problem()
    }
}
