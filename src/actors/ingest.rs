//! Ingest stage: owns the write-ahead log writer. An `Append` is answered only after the lines
//! are in the WAL, so a 2xx to the shipper means the lines survive `kill -9`.
//!
//! Runs on its own arbiter (thread) because appends are blocking file I/O. After each append
//! it nudges the Parse stage with a `Wake`, unless a nudge is already pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::messages::{Append, AppendAck, Wake};
use crate::metrics::Metrics;
use crate::wal::{SyncPolicy, WalError, WalWriter};

pub struct IngestActor {
    writer: WalWriter,
    parse: Recipient<Wake>,
    metrics: Arc<Metrics>,
    sync: SyncPolicy,
    sync_interval: Duration,
}

impl IngestActor {
    pub fn new(
        writer: WalWriter,
        parse: Recipient<Wake>,
        metrics: Arc<Metrics>,
        sync: SyncPolicy,
        sync_interval: Duration,
    ) -> Self {
        IngestActor {
            writer,
            parse,
            metrics,
            sync,
            sync_interval,
        }
    }

    fn housekeeping(&mut self) {
        if self.sync == SyncPolicy::Interval
            && let Err(e) = self.writer.sync()
        {
            tracing::error!(error = %e, "write-ahead log fdatasync failed");
        }
        if let Err(e) = self.writer.remove_committed() {
            tracing::error!(error = %e, "cannot remove committed write-ahead log segments");
        }
        self.metrics.wal_bytes.set(self.writer.disk_bytes() as i64);
    }
}

impl Actor for IngestActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.sync_interval, |this, _| this.housekeeping());
        // Recovered lines may be waiting: let the parser look.
        let _ = self.parse.try_send(Wake);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Err(e) = self.writer.sync() {
            tracing::error!(error = %e, "final write-ahead log fdatasync failed");
        }
    }
}

impl Supervised for IngestActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.metrics
            .actor_restarts
            .with_label_values(&["ingest"])
            .inc();
    }
}

impl Handler<Append> for IngestActor {
    type Result = Result<AppendAck, WalError>;

    fn handle(&mut self, msg: Append, _: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let (first_seq, end_seq) = self.writer.append(&msg.batches, msg.received_ms)?;
        self.metrics
            .wal_append_seconds
            .observe(started.elapsed().as_secs_f64());
        // One nudge per parse step, not per append; a full mailbox already holds a Wake.
        if self.writer.shared().request_wake() {
            let _ = self.parse.try_send(Wake);
        }
        Ok(AppendAck { first_seq, end_seq })
    }
}
