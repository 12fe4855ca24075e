//! Escalation stage: wakes on `Wake` (the Record stage stored unknown findings) and on a
//! timer, and runs one sweep of the [`Escalator`] at a time (a wake during a sweep runs one
//! more afterwards). The sweep only starts background tasks, so nothing upstream ever waits
//! for the LLM: ingest and rule findings are committed before any escalation starts.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::llm::escalator::Escalator;
use crate::metrics::Metrics;

/// New unknown faults were stored.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Wake;

pub struct EscalationActor {
    escalator: Arc<Escalator>,
    metrics: Arc<Metrics>,
    interval: Duration,
    sweeping: bool,
    again: bool,
}

impl EscalationActor {
    pub fn new(escalator: Arc<Escalator>, metrics: Arc<Metrics>, interval: Duration) -> Self {
        EscalationActor {
            escalator,
            metrics,
            interval,
            sweeping: false,
            again: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            self.again = true;
            return;
        }
        self.sweeping = true;
        let escalator = self.escalator.clone();
        ctx.spawn(
            async move { escalator.sweep().await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.sweeping = false;
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "looking for faults to escalate failed; retried at the next sweep");
                    }
                    if std::mem::take(&mut act.again) {
                        act.sweep(ctx);
                    }
                }),
        );
    }
}

impl Actor for EscalationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Faults left pending by a previous run are picked up at once.
        self.sweep(ctx);
        ctx.run_interval(self.interval, |act, ctx| act.sweep(ctx));
    }
}

impl Supervised for EscalationActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.sweeping = false;
        self.metrics
            .actor_restarts
            .with_label_values(&["escalation"])
            .inc();
    }
}

impl Handler<Wake> for EscalationActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.sweep(ctx);
    }
}
