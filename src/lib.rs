//! Faultline: a fault diagnosis engine for Hadoop clusters.
//!
//! # Layout
//!
//! - [`config`]: settings from `faultline.toml` + `FAULTLINE_*` overrides, validated.
//! - [`domain`]: levels, layouts, stream identity, the parsed [`domain::LogRecord`].
//! - [`ingest`]: decoding request bodies (Flume line, text batch, JSON, NDJSON) into batches.
//! - [`wal`]: the ingest write-ahead log behind the acknowledgement.
//! - [`parse`]: `preprocess_log`, the layouts and the per-stream multi-line joiner.
//! - [`storage`]: all SQL, one store over SQLite and MySQL / MariaDB.
//! - [`auth`]: tokens, roles, JWT validation (who may call what).
//! - [`metrics`]: every Prometheus metric, named once.
//! - [`actors`]: the pipeline stages (the only actix code besides the HTTP server).
//! - [`api`]: actix-web handlers; [`startup`]: `Application::build`, shared by `main` and tests.
//!
//! Everything but `actors`, `api` and `startup` is plain Rust with no actix types.

pub mod actors;
pub mod alerting;
pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod domain;
pub mod ingest;
pub mod llm;
pub mod metrics;
pub mod parse;
pub mod remediation;
pub mod rules;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod wal;

/// Wall-clock now as UTC epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
