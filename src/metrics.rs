//! Every Prometheus metric Faultline exports, named and described in one place.
//!
//! Each application instance owns its own registry (tests run several apps in one process).
//! Label values are bounded: ingest shapes, HTTP statuses, stage names, layouts, check kinds,
//! store operations and tables are closed sets, fault types go through [`fault_type_label`];
//! no host or free-text label exists.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Physical lines received, by ingest shape (`flume_line`, `text`, `json`, `ndjson`).
    pub lines_received: IntCounterVec,
    /// Request bodies' bytes received.
    pub bytes_received: IntCounter,
    /// Ingest requests answered, by shape and HTTP status.
    pub ingest_requests: IntCounterVec,
    /// Ingest requests rejected, by HTTP status (400, 413, 503, ...).
    pub ingest_rejections: IntCounterVec,
    /// Lines per accepted ingest request (the batch size), by shape.
    pub ingest_batch_lines: HistogramVec,
    /// Records written to `system_logs` and the physical lines they contain.
    pub records_stored: IntCounter,
    pub lines_stored: IntCounter,
    /// Records produced by the parser, by layout.
    pub records_parsed: IntCounterVec,
    /// Records in no known layout: unrecognised lines and continuations with no header
    /// (layouts `raw` / `orphan_continuation`), and lines the parser failed on.
    pub parse_failures: IntCounter,
    /// Continuation lines (stack frames, `Caused by:`) joined into a previous record.
    pub lines_joined: IntCounter,
    /// Records that absorbed at least one continuation line (stack traces joined).
    pub multiline_records: IntCounter,
    /// Lines accepted into the write-ahead log but not yet in the database.
    pub pending_lines: IntGauge,
    /// Bytes of write-ahead log segments on disk.
    pub wal_bytes: IntGauge,
    /// Messages sent to a stage and not yet handled, by stage.
    pub queue_depth: IntGaugeVec,
    /// Stage restarts after a failure, by actor.
    pub actor_restarts: IntCounterVec,
    /// Latency of database writes, by operation.
    pub db_write_seconds: HistogramVec,
    /// Rows inserted or updated, by table ([`crate::storage::Table`]).
    pub storage_rows_written: IntCounterVec,
    /// Failed database operations, by operation ([`crate::storage::StoreOp`]).
    pub storage_errors: IntCounterVec,
    /// Latency of write-ahead log appends (write + optional fdatasync).
    pub wal_append_seconds: Histogram,
    /// Rows deleted by the retention sweep.
    pub retention_deleted: IntCounter,
    /// Records stored with their message cut: a line over `pipeline.max_record_bytes`, or a
    /// record the database refused whole.
    pub records_truncated: IntCounter,
    /// Records the database refused even cut down (dead letters; each one is logged).
    pub records_dropped: IntCounter,
    /// Damaged write-ahead log bytes skipped (their lines are lost; each skip is logged).
    pub wal_corrupt_bytes: IntCounter,
    /// Findings emitted by the rules stage, by fault type and source (rule / unknown).
    pub findings: IntCounterVec,
    /// Time the rules stage spends on one batch.
    pub rules_seconds: Histogram,
    /// Records on which the rule engine panicked (skipped; each is logged).
    pub rule_panics: IntCounter,
    /// Rule set reloads, by result (ok / error).
    pub rule_reloads: IntCounterVec,
    /// Findings the database refused even alone (each is logged).
    pub findings_dropped: IntCounter,
    /// Health-check runs (one per request, probe or command), by check and status.
    pub check_runs: IntCounterVec,
    /// Scheduled runs skipped because the previous run of the same check was still going.
    pub check_overlaps: IntCounterVec,
    /// Duration of health-check runs (one request, probe or command), by check.
    pub check_seconds: HistogramVec,
    /// LLM HTTP calls by outcome (`ok`, `invalid_answer`, `rate_limited`, `timeout`,
    /// `unreachable`, `error`).
    pub llm_requests: IntCounterVec,
    /// Latency of one LLM call (all its retries).
    pub llm_request_seconds: Histogram,
    /// Retries of LLM HTTP attempts (429, 5xx, timeouts, connection errors).
    pub llm_retries: IntCounter,
    /// Tokens reported by the server, by direction (`in` = prompt, `out` = answer).
    pub llm_tokens: IntCounterVec,
    /// Estimated cost of the LLM calls, in millionths of the configured currency unit.
    pub llm_cost_micros: IntCounter,
    /// Escalation cache lookups by result (`hit`, `miss`).
    pub llm_cache: IntCounterVec,
    /// What is left of the hourly budget (`requests`, `tokens`).
    pub llm_budget_remaining: IntGaugeVec,
    /// Escalations the budget did not allow, by action (`queued`, `skipped`).
    pub llm_budget_exhausted: IntCounterVec,
    /// Escalation results by outcome (`diagnosed`, `unverified`, `failed`).
    pub llm_escalations: IntCounterVec,
    /// Answers stored as `unverified` (no valid JSON or no valid evidence after the repair).
    pub llm_unverified: IntCounter,
    /// Notification attempts by receiver (a configured name, or `-` for muted records) and
    /// outcome (`sent`, `retry`, `failed`, `muted`).
    pub alert_notifications: IntCounterVec,
    /// Notifications waiting in the outbox.
    pub alert_outbox_pending: IntGauge,
    /// Current silences by state (`active`, `pending`, `expiring` within an hour,
    /// `long_lived` over a week).
    pub silences: IntGaugeVec,
    /// Open (and acknowledged) faults by type (a taxonomy class, `unknown`, or `other` for
    /// classes an LLM named) and severity.
    pub faults_open: IntGaugeVec,
    /// Faults opened (a new fault record, not a repeat of an open one), by type and severity.
    pub faults_opened: IntCounterVec,
    /// Faults resolved, by type and how ([`Resolution`]).
    pub faults_resolved: IntCounterVec,
    /// The latest reading of each configured cluster (labels bounded by `[[clusters]]`):
    /// health (0 ok, 1 degraded, 2 critical), DataNodes and NodeManagers by state, HDFS
    /// capacity and blocks, safe mode, Flume channel fill.
    pub cluster_health: IntGaugeVec,
    pub cluster_datanodes: IntGaugeVec,
    pub cluster_nodemanagers: IntGaugeVec,
    pub cluster_capacity_bytes: IntGaugeVec,
    pub cluster_blocks: IntGaugeVec,
    pub cluster_safe_mode: IntGaugeVec,
    pub flume_channel_fill: GaugeVec,
    /// API requests refused before their handler, by reason (`missing_token`,
    /// `invalid_token`, `forbidden`, `rate_limited`).
    pub api_refusals: IntCounterVec,
}

/// How a fault was resolved (the `how` label of `faults_resolved_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// An operator: `POST /api/faults/{id}/resolve`.
    Api,
    /// A remediation's re-check found the fault quiet after the run.
    Remediation,
    /// A cluster snapshot no longer shows it.
    Snapshot,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [
        Resolution::Api,
        Resolution::Remediation,
        Resolution::Snapshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Api => "api",
            Resolution::Remediation => "remediation",
            Resolution::Snapshot => "snapshot",
        }
    }
}

/// The bounded `fault_type` label of a fault: its taxonomy class, `unknown`, or `other` (a
/// class an LLM named, or one only a local rule pack knows).
pub fn fault_type_label(fault_type: &str) -> &str {
    if fault_type == "unknown" || crate::rules::FAULT_CLASSES.contains(&fault_type) {
        fault_type
    } else {
        "other"
    }
}

/// Every value [`fault_type_label`] can return.
fn fault_type_labels() -> impl Iterator<Item = &'static str> {
    crate::rules::FAULT_CLASSES
        .into_iter()
        .chain(["unknown", "other"])
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
    labels: &[&str],
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    /// Series that exist from the start at zero, so dashboards and rates see them before the
    /// first event.
    fn zero_series(&self) {
        for reason in [
            "missing_token",
            "invalid_token",
            "forbidden",
            "rate_limited",
        ] {
            self.api_refusals.with_label_values(&[reason]);
        }
        for stage in ["ingest", "parse", "rules", "record", "escalation", "alert"] {
            self.actor_restarts.with_label_values(&[stage]);
        }
        for outcome in ["ok", "rate_limited", "timeout", "unreachable", "error"] {
            self.llm_requests.with_label_values(&[outcome]);
        }
        for r in ["hit", "miss"] {
            self.llm_cache.with_label_values(&[r]);
        }
        for shape in crate::ingest::Shape::ALL {
            self.ingest_batch_lines.with_label_values(&[shape.as_str()]);
        }
        for check in crate::cluster::settings::CHECKS {
            self.check_seconds.with_label_values(&[check]);
        }
        for t in fault_type_labels() {
            for sev in crate::rules::Severity::ALL {
                self.faults_opened.with_label_values(&[t, sev.as_str()]);
            }
            for how in Resolution::ALL {
                self.faults_resolved.with_label_values(&[t, how.as_str()]);
            }
        }
        for table in crate::storage::Table::ALL {
            self.storage_rows_written
                .with_label_values(&[table.as_str()]);
        }
        for op in crate::storage::StoreOp::ALL {
            self.storage_errors.with_label_values(&[op.as_str()]);
        }
    }

    /// A new fault record (not a repeat of an open one).
    pub fn fault_opened(&self, fault_type: &str, severity: &str) {
        self.faults_opened
            .with_label_values(&[fault_type_label(fault_type), severity])
            .inc();
    }

    /// A fault moved to `resolved`.
    pub fn fault_resolved(&self, fault_type: &str, how: Resolution) {
        self.faults_resolved
            .with_label_values(&[fault_type_label(fault_type), how.as_str()])
            .inc();
    }

    /// Build the registry. Definitions are static, so a failure here is a programming error
    /// caught by every test that builds an application.
    pub fn new() -> Metrics {
        let r =
            Registry::new_custom(Some("faultline".into()), None).expect("valid registry prefix");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "pipeline_queue_depth",
                "Messages sent to a pipeline stage and not yet handled.",
            ),
            &["stage"],
        )
        .expect("valid metric definition");
        r.register(Box::new(queue_depth.clone()))
            .expect("metric registered once");
        let db_write_seconds = HistogramVec::new(
            HistogramOpts::new("db_write_seconds", "Latency of database writes.").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["op"],
        )
        .expect("valid metric definition");
        r.register(Box::new(db_write_seconds.clone()))
            .expect("metric registered once");
        let llm_request_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "llm_request_seconds",
                "Latency of one LLM call, retries included.",
            )
            .buckets(vec![
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
            ]),
        )
        .expect("valid metric definition");
        r.register(Box::new(llm_request_seconds.clone()))
            .expect("metric registered once");
        let llm_budget_remaining = IntGaugeVec::new(
            Opts::new(
                "llm_budget_remaining",
                "What is left of the hourly LLM budget (requests, tokens).",
            ),
            &["kind"],
        )
        .expect("valid metric definition");
        r.register(Box::new(llm_budget_remaining.clone()))
            .expect("metric registered once");
        let flume_channel_fill = GaugeVec::new(
            Opts::new(
                "flume_channel_fill_percent",
                "Fill of each Flume channel (percent of capacity) in the latest poll.",
            ),
            &["cluster", "agent", "channel"],
        )
        .expect("valid metric definition");
        r.register(Box::new(flume_channel_fill.clone()))
            .expect("metric registered once");
        let silences = IntGaugeVec::new(
            Opts::new(
                "silences",
                "Current silences by state (active, pending, expiring within an hour, long_lived over a week).",
            ),
            &["state"],
        )
        .expect("valid metric definition");
        r.register(Box::new(silences.clone()))
            .expect("metric registered once");
        let rules_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "rules_batch_seconds",
                "Time the rules stage spends matching one batch of records.",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
        .expect("valid metric definition");
        r.register(Box::new(rules_seconds.clone()))
            .expect("metric registered once");
        let wal_append_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "wal_append_seconds",
                "Latency of write-ahead log appends, including fdatasync when configured.",
            )
            .buckets(vec![
                0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
            ]),
        )
        .expect("valid metric definition");
        r.register(Box::new(wal_append_seconds.clone()))
            .expect("metric registered once");
        let m = Metrics {
            lines_received: counter_vec(
                &r,
                "ingest_lines_received_total",
                "Physical log lines received, by ingest shape.",
                &["shape"],
            ),
            bytes_received: counter(
                &r,
                "ingest_bytes_received_total",
                "Bytes of ingest request bodies received.",
            ),
            ingest_requests: counter_vec(
                &r,
                "ingest_requests_total",
                "Ingest requests answered, by shape and HTTP status.",
                &["shape", "status"],
            ),
            ingest_rejections: counter_vec(
                &r,
                "ingest_rejections_total",
                "Ingest requests rejected, by HTTP status.",
                &["status"],
            ),
            ingest_batch_lines: histogram_vec(
                &r,
                "ingest_batch_lines",
                "Lines per accepted ingest request (batch size), by shape.",
                vec![
                    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
                    10000.0, 50000.0,
                ],
                &["shape"],
            ),
            records_stored: counter(
                &r,
                "records_stored_total",
                "Log records written to system_logs.",
            ),
            lines_stored: counter(
                &r,
                "lines_stored_total",
                "Physical log lines written to system_logs (inside records).",
            ),
            records_parsed: counter_vec(
                &r,
                "parse_records_total",
                "Log records produced by the parser, by recognised layout.",
                &["layout"],
            ),
            parse_failures: counter(
                &r,
                "parse_failures_total",
                "Log records in an unknown layout (unrecognised lines, continuations with no header line) or that the parser failed on; stored raw.",
            ),
            lines_joined: counter(
                &r,
                "parse_lines_joined_total",
                "Continuation lines (stack frames, Caused by) joined to a previous record.",
            ),
            multiline_records: counter(
                &r,
                "parse_multiline_records_total",
                "Log records that absorbed at least one continuation line (stack traces joined).",
            ),
            pending_lines: gauge(
                &r,
                "pipeline_pending_lines",
                "Lines acknowledged to shippers and not yet stored in the database.",
            ),
            wal_bytes: gauge(
                &r,
                "wal_bytes",
                "Bytes of write-ahead log segments on disk.",
            ),
            queue_depth,
            actor_restarts: counter_vec(
                &r,
                "actor_restarts_total",
                "Pipeline stage restarts after a failure, by actor.",
                &["actor"],
            ),
            db_write_seconds,
            storage_rows_written: counter_vec(
                &r,
                "storage_rows_written_total",
                "Rows inserted or updated in the database, by table.",
                &["table"],
            ),
            storage_errors: counter_vec(
                &r,
                "storage_errors_total",
                "Database operations that failed, by operation.",
                &["op"],
            ),
            wal_append_seconds,
            retention_deleted: counter(
                &r,
                "retention_deleted_rows_total",
                "system_logs rows deleted by the retention sweep.",
            ),
            records_truncated: counter(
                &r,
                "records_truncated_total",
                "Log records stored with their message cut to fit.",
            ),
            records_dropped: counter(
                &r,
                "records_dropped_total",
                "Log records the database refused even cut down (each is logged as an error).",
            ),
            wal_corrupt_bytes: counter(
                &r,
                "wal_corrupt_bytes_total",
                "Damaged write-ahead log bytes skipped at recovery or while reading.",
            ),
            findings: counter_vec(
                &r,
                "findings_total",
                "Findings emitted by the rules stage, by fault type and source.",
                &["fault_type", "source"],
            ),
            rules_seconds,
            rule_panics: counter(
                &r,
                "rule_panics_total",
                "Records on which the rule engine panicked (skipped, logged).",
            ),
            findings_dropped: counter(
                &r,
                "findings_dropped_total",
                "Findings the database refused even alone (each is logged as an error).",
            ),
            rule_reloads: counter_vec(
                &r,
                "rule_reloads_total",
                "Rule set reloads by result.",
                &["result"],
            ),
            check_runs: counter_vec(
                &r,
                "health_check_runs_total",
                "Health-check runs (requests, probes, commands) by check and status.",
                &["check", "status"],
            ),
            check_overlaps: counter_vec(
                &r,
                "health_check_overlaps_total",
                "Scheduled runs skipped because the previous run of the check was still going.",
                &["check"],
            ),
            check_seconds: histogram_vec(
                &r,
                "health_check_seconds",
                "Duration of health-check runs (one request, probe or command), by check.",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
                &["check"],
            ),
            llm_requests: counter_vec(
                &r,
                "llm_requests_total",
                "LLM calls by outcome.",
                &["outcome"],
            ),
            llm_request_seconds,
            llm_retries: counter(
                &r,
                "llm_retries_total",
                "Retried LLM HTTP attempts (429, 5xx, timeouts, connection errors).",
            ),
            llm_tokens: counter_vec(
                &r,
                "llm_tokens_total",
                "Tokens the LLM server reported, by direction (in = prompt, out = answer).",
                &["direction"],
            ),
            llm_cost_micros: counter(
                &r,
                "llm_cost_estimated_micros_total",
                "Estimated LLM cost in millionths of the configured price unit.",
            ),
            llm_cache: counter_vec(
                &r,
                "llm_cache_lookups_total",
                "LLM answer cache lookups by result (hit, miss).",
                &["result"],
            ),
            llm_budget_remaining,
            llm_budget_exhausted: counter_vec(
                &r,
                "llm_budget_exhausted_total",
                "Escalations the hourly budget did not allow, by action (queued, skipped).",
                &["action"],
            ),
            llm_escalations: counter_vec(
                &r,
                "llm_escalations_total",
                "Escalation results by outcome (diagnosed, unverified, failed).",
                &["outcome"],
            ),
            llm_unverified: counter(
                &r,
                "llm_unverified_answers_total",
                "LLM answers stored as unverified (no valid JSON or evidence after the repair).",
            ),
            alert_notifications: counter_vec(
                &r,
                "alert_notifications_total",
                "Notification attempts by receiver and outcome (sent, retry, failed, muted).",
                &["receiver", "outcome"],
            ),
            alert_outbox_pending: gauge(
                &r,
                "alert_outbox_pending",
                "Notifications waiting in the outbox.",
            ),
            silences,
            faults_open: gauge_vec(
                &r,
                "faults_open",
                "Open and acknowledged faults by type and severity.",
                &["fault_type", "severity"],
            ),
            faults_opened: counter_vec(
                &r,
                "faults_opened_total",
                "Faults opened (a new fault record, not a repeat of an open fault), by type and severity.",
                &["fault_type", "severity"],
            ),
            faults_resolved: counter_vec(
                &r,
                "faults_resolved_total",
                "Faults resolved, by type and how (api, remediation, snapshot).",
                &["fault_type", "how"],
            ),
            cluster_health: gauge_vec(
                &r,
                "cluster_health",
                "Health of each cluster's latest snapshot (0 ok, 1 degraded, 2 critical).",
                &["cluster"],
            ),
            cluster_datanodes: gauge_vec(
                &r,
                "cluster_datanodes",
                "DataNodes by state (live, dead, stale) in the NameNode's latest report.",
                &["cluster", "state"],
            ),
            cluster_nodemanagers: gauge_vec(
                &r,
                "cluster_nodemanagers",
                "NodeManagers by state (active, lost, unhealthy) in the ResourceManager's latest report.",
                &["cluster", "state"],
            ),
            cluster_capacity_bytes: gauge_vec(
                &r,
                "cluster_capacity_bytes",
                "HDFS capacity in bytes (total, used, remaining).",
                &["cluster", "kind"],
            ),
            cluster_blocks: gauge_vec(
                &r,
                "cluster_blocks",
                "HDFS blocks by kind (missing, corrupt, under_replicated).",
                &["cluster", "kind"],
            ),
            cluster_safe_mode: gauge_vec(
                &r,
                "cluster_safe_mode",
                "1 when the NameNode is in safe mode.",
                &["cluster"],
            ),
            flume_channel_fill,
            api_refusals: counter_vec(
                &r,
                "api_refusals_total",
                "API requests refused before their handler, by reason.",
                &["reason"],
            ),
            registry: r,
        };
        m.zero_series();
        m
    }

    /// The silences gauge, by state.
    pub fn set_silences(&self, active: i64, pending: i64, expiring: i64, long_lived: i64) {
        for (state, n) in [
            ("active", active),
            ("pending", pending),
            ("expiring", expiring),
            ("long_lived", long_lived),
        ] {
            self.silences.with_label_values(&[state]).set(n);
        }
    }

    /// The Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_help_and_prefix() {
        let m = Metrics::new();
        m.lines_received.with_label_values(&["text"]).inc();
        m.queue_depth.with_label_values(&["parse"]).set(1);
        m.actor_restarts.with_label_values(&["record"]).inc();
        m.db_write_seconds
            .with_label_values(&["insert_logs"])
            .observe(0.01);
        m.ingest_requests.with_label_values(&["text", "200"]).inc();
        m.ingest_rejections.with_label_values(&["503"]).inc();
        m.records_parsed.with_label_values(&["log4j"]).inc();
        let text = m.render().unwrap();
        for name in [
            "faultline_ingest_lines_received_total",
            "faultline_lines_stored_total",
            "faultline_parse_failures_total",
            "faultline_ingest_rejections_total",
            "faultline_pipeline_queue_depth",
            "faultline_pipeline_pending_lines",
            "faultline_actor_restarts_total",
            "faultline_db_write_seconds_bucket",
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("# HELP") && l.split(' ').count() < 4)
        );
    }

    #[test]
    fn fault_types_outside_the_taxonomy_are_one_label() {
        assert_eq!(fault_type_label("disk_full"), "disk_full");
        assert_eq!(fault_type_label("unknown"), "unknown");
        assert_eq!(fault_type_label("flux_capacitor_desync"), "other");
        assert_eq!(fault_type_label(""), "other");
        let m = Metrics::new();
        m.fault_opened("flux_capacitor_desync", "error");
        m.fault_opened("an LLM's own class", "error");
        m.fault_resolved("disk_full", Resolution::Api);
        let text = m.render().unwrap();
        for line in [
            "faultline_faults_opened_total{fault_type=\"other\",severity=\"error\"} 2",
            "faultline_faults_resolved_total{fault_type=\"disk_full\",how=\"api\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing");
        }
        assert!(!text.contains("flux"));
    }

    #[test]
    fn closed_label_sets_start_at_zero() {
        let text = Metrics::new().render().unwrap();
        for line in [
            "faultline_ingest_batch_lines_count{shape=\"ndjson\"} 0",
            "faultline_health_check_seconds_count{check=\"ports\"} 0",
            "faultline_faults_opened_total{fault_type=\"datanode_lost\",severity=\"critical\"} 0",
            "faultline_faults_resolved_total{fault_type=\"unknown\",how=\"snapshot\"} 0",
            "faultline_storage_rows_written_total{table=\"system_logs\"} 0",
            "faultline_storage_errors_total{op=\"insert_logs\"} 0",
            "faultline_parse_multiline_records_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing");
        }
    }
}
