//! The only place that imports actix: one file per pipeline stage, plus the wiring.
//!
//! Stages are spawned sink-first (Record, Rules, Parse, Ingest) so each constructor receives
//! its downstream address; every stage runs under `actix::Supervisor` with a bounded mailbox.

pub mod alert;
pub mod escalation;
pub mod ingest;
pub mod messages;
pub mod parse;
pub mod pipeline;
pub mod record;
pub mod retention;
pub mod rules;
pub mod scheduler;

pub use pipeline::{Pipeline, PipelineHealth};
