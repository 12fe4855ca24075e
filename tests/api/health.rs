//! `/healthz`, `/readyz`, `/metrics` (checked with the real `promtool` when available) and
//! JSON bodies on unknown routes and methods.

use crate::both_backends;
use crate::helpers::{Backend, metric_value, spawn_app};

async fn health_and_readiness(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no route"));
    let r = app
        .client
        .get(app.url("/api/log/auto-upload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(!r.text().await.unwrap().is_empty());
}

async fn metrics_count_the_pipeline_and_pass_promtool(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let body = "2024-05-12 10:00:00,000 INFO a.B: one\n\tat x.Y(Y.java:1)";
    assert_eq!(
        app.upload("?host=w", "text/plain", body).await.status(),
        200
    );
    // An unrecognised line on a stream with no open record is kept raw: a parse failure.
    assert_eq!(
        app.upload("?host=w2", "text/plain", "not a header at all")
            .await
            .status(),
        200
    );
    app.wait_for_logs("", "records", |l| l.len() == 2).await;
    let m = app.metrics().await;
    assert_eq!(
        metric_value(&m, "faultline_ingest_lines_received_total{shape=\"text\"}"),
        2.0
    );
    assert_eq!(metric_value(&m, "faultline_lines_stored_total"), 3.0);
    assert_eq!(metric_value(&m, "faultline_records_stored_total"), 2.0);
    assert_eq!(metric_value(&m, "faultline_parse_failures_total"), 1.0);
    assert_eq!(metric_value(&m, "faultline_parse_lines_joined_total"), 1.0);
    assert_eq!(
        metric_value(&m, "faultline_parse_multiline_records_total"),
        1.0,
        "the stack trace joined"
    );
    assert_eq!(
        metric_value(
            &m,
            "faultline_ingest_lines_received_total{shape=\"flume_line\"}"
        ),
        1.0
    );
    assert!(m.contains("faultline_db_write_seconds_bucket"));
    assert!(m.contains("faultline_pipeline_pending_lines 0"));
    promtool_check(&m);
}

/// Run `promtool check metrics` when available; required under CI.
fn promtool_check(text: &str) {
    let promtool = match std::env::var("FAULTLINE_TEST_PROMTOOL") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but FAULTLINE_TEST_PROMTOOL is not set")
        }
        _ => {
            eprintln!("FAULTLINE_TEST_PROMTOOL not set: skipping promtool check");
            return;
        }
    };
    use std::io::Write;
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {promtool}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

both_backends!(
    health_and_readiness,
    metrics_count_the_pipeline_and_pass_promtool
);
