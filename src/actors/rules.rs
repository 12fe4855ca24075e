//! Rules stage: the place where the rule engine will match known faults.
//!
//! Until the rule engine lands it forwards every batch to the Record stage unchanged, keeping
//! the pipeline's shape (and its backpressure) what it will be.

use std::sync::Arc;

use actix::prelude::*;

use super::messages::{Records, StageError};
use super::record::RecordActor;
use crate::metrics::Metrics;

pub struct RulesActor {
    record: Addr<RecordActor>,
    metrics: Arc<Metrics>,
}

impl RulesActor {
    pub fn new(record: Addr<RecordActor>, metrics: Arc<Metrics>) -> Self {
        RulesActor { record, metrics }
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
    type Result = ResponseFuture<Result<(), StageError>>;

    fn handle(&mut self, msg: Records, _: &mut Self::Context) -> Self::Result {
        let record = self.record.clone();
        let depth = self.metrics.queue_depth.with_label_values(&["record"]);
        Box::pin(async move {
            depth.inc();
            let res = record.send(msg).await;
            depth.dec();
            res?
        })
    }
}
