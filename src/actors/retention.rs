//! Retention: periodically deletes `system_logs` rows older than `database.retention_days`.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::metrics::Metrics;
use crate::storage::Store;

pub struct RetentionActor {
    store: Store,
    metrics: Arc<Metrics>,
    retention: Duration,
    interval: Duration,
}

impl RetentionActor {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        retention: Duration,
        interval: Duration,
    ) -> Self {
        RetentionActor {
            store,
            metrics,
            retention,
            interval,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let cutoff = crate::now_ms() - self.retention.as_millis() as i64;
        ctx.wait(
            async move {
                match store.delete_logs_received_before(cutoff, 5000).await {
                    Ok(0) => {}
                    Ok(n) => {
                        metrics.retention_deleted.inc_by(n);
                        tracing::info!(rows = n, "retention removed old log rows");
                    }
                    Err(e) => tracing::error!(error = %e, "retention sweep failed"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for RetentionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx);
        ctx.run_interval(self.interval, |this, ctx| this.sweep(ctx));
    }
}

impl Supervised for RetentionActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.metrics
            .actor_restarts
            .with_label_values(&["retention"])
            .inc();
    }
}
