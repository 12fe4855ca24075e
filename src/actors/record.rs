//! Record stage: writes parsed records to `system_logs`, their findings to `fault_records` /
//! `fault_evidence`, and moves the ingest checkpoint, all in one transaction. A failed write stops the actor (the supervisor restarts it with fresh
//! state) and reports the error upstream, where the Parse stage rewinds to the checkpoint.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::escalation::Wake;
use super::messages::{Records, StageError};
use super::pipeline::PipelineHealth;
use crate::metrics::Metrics;
use crate::storage::{Salvage, Store};
use crate::wal::WalShared;

pub struct RecordActor {
    store: Store,
    wal: Arc<WalShared>,
    metrics: Arc<Metrics>,
    health: Arc<PipelineHealth>,
    /// Woken (never waited for) when a batch stored unknown findings.
    escalation: Option<Recipient<Wake>>,
}

impl RecordActor {
    pub fn new(
        store: Store,
        wal: Arc<WalShared>,
        metrics: Arc<Metrics>,
        health: Arc<PipelineHealth>,
        escalation: Option<Recipient<Wake>>,
    ) -> Self {
        RecordActor {
            store,
            wal,
            metrics,
            health,
            escalation,
        }
    }
}

impl Actor for RecordActor {
    type Context = Context<Self>;
}

impl Supervised for RecordActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.metrics
            .actor_restarts
            .with_label_values(&["record"])
            .inc();
    }
}

impl Handler<Records> for RecordActor {
    type Result = AtomicResponse<Self, Result<(), StageError>>;

    fn handle(&mut self, msg: Records, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let fut = async move {
            let started = Instant::now();
            let mut res = store
                .insert_batch(&msg.records, &msg.findings, msg.checkpoint, &msg.marks)
                .await
                .map(|_| Salvage::default());
            if let Err(e) = &res
                && e.is_rejected_data()
            {
                tracing::warn!(error = %e, records = msg.records.len(), "the database refused a batch; storing it record by record");
                res = store
                    .insert_logs_one_by_one(&msg.records, &msg.findings, msg.checkpoint, &msg.marks)
                    .await;
            }
            metrics
                .db_write_seconds
                .with_label_values(&["insert_logs"])
                .observe(started.elapsed().as_secs_f64());
            res.map(|salvage| (msg, salvage))
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(
            |res, this, ctx| match res {
                Ok((msg, salvage)) => {
                    this.metrics.records_truncated.inc_by(salvage.truncated);
                    this.metrics.records_dropped.inc_by(salvage.dropped);
                    this.metrics.findings_dropped.inc_by(salvage.findings_dropped);
                    let lines: u64 = msg.records.iter().map(|r| u64::from(r.line_count)).sum();
                    this.metrics.records_stored.inc_by(msg.records.len() as u64);
                    this.metrics.lines_stored.inc_by(lines);
                    this.wal.commit(msg.checkpoint, &msg.marks);
                    this.health.record_ok();
                    if let Some(esc) = &this.escalation
                        && msg
                            .findings
                            .iter()
                            .any(|f| f.source == crate::rules::FindingSource::Unknown)
                    {
                        // A full mailbox means a sweep is due anyway; the timer covers a miss.
                        let _ = esc.try_send(Wake);
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %e, "storing log records failed; restarting the record stage");
                    this.health.record_failed(e.to_string());
                    ctx.stop();
                    Err(StageError::Storage(e.to_string()))
                }
            },
        )))
    }
}
