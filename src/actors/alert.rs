//! Alert stage: every `alerting.evaluation_interval_secs` it runs one evaluation of the
//! alert engine (`alerting::runner`) and refreshes Alertmanager receivers; every second (and
//! right after an evaluation) it delivers the outbox's due notifications. At most one of each
//! runs at a time; neither ever blocks the log pipeline (they only read fault records).
//! After each evaluation, unattended remediations are started where the rule and the global
//! switch allow them.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::alerting::runner::Alerting;
use crate::metrics::Metrics;

pub struct AlertActor {
    alerting: Arc<Alerting>,
    /// Unattended remediations are started after each evaluation (when allowed).
    remediator: Arc<crate::remediation::Remediator>,
    metrics: Arc<Metrics>,
    interval: Duration,
    /// Finished notifications and ended silences older than this are deleted (hourly).
    retention: Option<Duration>,
    evaluating: bool,
    delivering: bool,
}

impl AlertActor {
    pub fn new(
        alerting: Arc<Alerting>,
        metrics: Arc<Metrics>,
        remediator: Arc<crate::remediation::Remediator>,
        interval: Duration,
        retention: Option<Duration>,
    ) -> Self {
        AlertActor {
            alerting,
            remediator,
            retention,
            metrics,
            interval,
            evaluating: false,
            delivering: false,
        }
    }

    fn evaluate(&mut self, ctx: &mut Context<Self>) {
        if self.evaluating {
            return;
        }
        self.evaluating = true;
        let (a, rem) = (self.alerting.clone(), self.remediator.clone());
        ctx.spawn(
            async move {
                let now = crate::now_ms();
                let r = a.evaluate(now).await;
                a.refresh_alertmanagers(now).await;
                if let Err(e) = rem.auto_sweep().await {
                    tracing::warn!(error = %e, "starting unattended remediations failed");
                }
                r
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                act.evaluating = false;
                match res {
                    Ok(n) if n > 0 => act.deliver(ctx),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "alert evaluation failed; retried at the next one"),
                }
            }),
        );
    }

    fn deliver(&mut self, ctx: &mut Context<Self>) {
        if self.delivering {
            return;
        }
        self.delivering = true;
        let a = self.alerting.clone();
        ctx.spawn(
            async move { a.deliver_due(crate::now_ms()).await }
                .into_actor(self)
                .map(|res, act, _| {
                    act.delivering = false;
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "delivering notifications failed; retried in a second");
                    }
                }),
        );
    }
}

impl Actor for AlertActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.evaluate(ctx));
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.deliver(ctx));
        if let Some(keep) = self.retention {
            ctx.run_interval(Duration::from_secs(3600), move |act, ctx| {
                let a = act.alerting.clone();
                let before = crate::now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                ctx.spawn(
                    async move {
                        match a.prune(before).await {
                            Ok(n) if n > 0 => {
                                tracing::info!(deleted = n, "old notifications pruned")
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "pruning old notifications failed")
                            }
                        }
                    }
                    .into_actor(act),
                );
            });
        }
        // Notifications left pending by a previous run go out at once.
        self.deliver(ctx);
    }
}

impl Supervised for AlertActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.evaluating = false;
        self.delivering = false;
        self.metrics
            .actor_restarts
            .with_label_values(&["alert"])
            .inc();
    }
}
