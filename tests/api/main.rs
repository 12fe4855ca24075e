//! API and pipeline tests against the real application (one test binary, many modules).
//! Every suite runs on SQLite, and on MariaDB / MySQL when `FAULTLINE_TEST_MYSQL_URL` is set.

mod alerting;
mod auth;
mod cluster_checks;
mod cluster_e2e;
mod crash;
mod docs;
mod fake_openai;
mod fake_webhook;
mod faults;
mod hadoop_sim;
mod health;
pub mod helpers;
mod ingest;
mod llm;
mod logs;
mod openapi;
mod pipeline;
mod prometheus;
mod remediation;
mod schemathesis;
mod status_store;
mod storage;
