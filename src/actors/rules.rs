//! Rules stage: runs the rule engine ([`Correlator`]) over each batch of parsed records and
//! forwards the records with their findings to the Record stage.
//!
//! The live rule set is read from the shared [`RulesHandle`] per batch; after a reload the
//! correlation state starts afresh with the new set. A panic inside the engine is contained
//! to its record (logged, counted); the batch still goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use actix::prelude::*;

use super::messages::{Records, StageError};
use super::record::RecordActor;
use crate::metrics::Metrics;
use crate::rules::engine::merge_finding;
use crate::rules::{Correlator, Finding, RulesHandle};

/// One finding per fingerprint per batch (a burst of repeats is one upsert), in first-seen order.
fn merge_by_fingerprint(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for f in findings {
        match index.get(&f.fingerprint) {
            Some(&i) => merge_finding(&mut out[i], f),
            None => {
                index.insert(f.fingerprint.clone(), out.len());
                out.push(f);
            }
        }
    }
    out
}

pub struct RulesActor {
    record: Addr<RecordActor>,
    metrics: Arc<Metrics>,
    rules: Arc<RulesHandle>,
    correlator: Correlator,
    unknowns: bool,
    snapshots: Option<Arc<dyn crate::rules::engine::SnapshotLookup>>,
}

impl RulesActor {
    pub fn new(
        record: Addr<RecordActor>,
        metrics: Arc<Metrics>,
        rules: Arc<RulesHandle>,
        unknowns: bool,
        snapshots: Option<Arc<dyn crate::rules::engine::SnapshotLookup>>,
    ) -> Self {
        let mut correlator = Correlator::new(rules.current());
        correlator.unknowns = unknowns;
        correlator.snapshots = snapshots.clone();
        RulesActor {
            record,
            metrics,
            rules,
            correlator,
            unknowns,
            snapshots,
        }
    }

    fn fresh_correlator(&mut self) {
        self.correlator = Correlator::new(self.rules.current());
        self.correlator.unknowns = self.unknowns;
        self.correlator.snapshots = self.snapshots.clone();
    }
}

impl Actor for RulesActor {
    type Context = Context<Self>;
}

impl Supervised for RulesActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.metrics
            .actor_restarts
            .with_label_values(&["rules"])
            .inc();
    }
}

impl Handler<Records> for RulesActor {
    type Result = ResponseActFuture<Self, Result<(), StageError>>;

    fn handle(&mut self, mut msg: Records, _: &mut Self::Context) -> Self::Result {
        if !Arc::ptr_eq(&self.rules.current(), self.correlator.rule_set()) {
            tracing::info!("rule set changed; correlation state restarts");
            self.fresh_correlator();
        }
        // If the batch is not stored it comes again (Parse rewinds): its effect on the
        // windows is undone then, so nothing is counted twice.
        self.correlator.begin_batch();
        let timer = self.metrics.rules_seconds.start_timer();
        let mut findings = Vec::new();
        for rec in &msg.records {
            let correlator = &mut self.correlator;
            let res = catch_unwind(AssertUnwindSafe(|| correlator.process(rec, &mut findings)));
            if res.is_err() {
                tracing::error!(
                    id = rec.id,
                    "the rule engine panicked on a record; skipped it"
                );
                self.metrics.rule_panics.inc();
                self.fresh_correlator();
            }
        }
        timer.observe_duration();
        for f in &findings {
            self.metrics
                .findings
                .with_label_values(&[f.fault_type.as_str(), f.source.as_str()])
                .inc();
        }
        msg.findings = merge_by_fingerprint(findings);
        let record = self.record.clone();
        let depth = self.metrics.queue_depth.with_label_values(&["record"]);
        let fut = async move {
            depth.inc();
            let res = record.send(msg).await;
            depth.dec();
            res?
        };
        Box::pin(fut.into_actor(self).map(|res, this, _| {
            match &res {
                Ok(()) => this.correlator.commit_batch(),
                Err(_) => this.correlator.rollback_batch(),
            }
            res
        }))
    }
}
