//! Failure injection: the database table disappears under the Record stage. The stage fails,
//! is restarted (counted), readiness reports it, acknowledged lines wait in the WAL, and once
//! the table is back every line is stored exactly once.

use std::time::{Duration, Instant};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, metric_value, spawn_app};

pub async fn rename_logs_table(app: &TestApp, from: &str, to: &str) {
    let sql = match app.store.kind() {
        faultline::config::DbKind::Sqlite => format!("ALTER TABLE {from} RENAME TO {to}"),
        faultline::config::DbKind::MySql => format!("RENAME TABLE {from} TO {to}"),
    };
    exec(app, &sql).await;
}

/// Run SQL (DDL) on the app's own database.
async fn exec(app: &TestApp, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match app.store.pool() {
        faultline::storage::StorePool::Sqlite(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        faultline::storage::StorePool::MySql(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

async fn record_stage_failure_is_restarted_and_loses_nothing(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    // Some lines stored normally first.
    assert_eq!(
        app.upload(
            "?host=w",
            "text/plain",
            "2024-05-12 10:00:00,000 INFO a.B: before"
        )
        .await
        .status(),
        200
    );
    app.wait_for_logs("", "first line", |l| l.len() == 1).await;

    rename_logs_table(&app, "system_logs", "system_logs_away").await;
    for i in 0..20 {
        let line = format!("2024-05-12 10:00:01,{i:03} INFO a.B: during outage {i}");
        assert_eq!(
            app.upload("?host=w", "text/plain", line).await.status(),
            200,
            "acknowledged into the WAL"
        );
    }
    // The failure is visible: restarts counted and /readyz not ready.
    let start = Instant::now();
    loop {
        let m = app.metrics().await;
        let restarts = metric_value(&m, "faultline_actor_restarts_total{actor=\"record\"}");
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        if restarts >= 1.0 && ready.status() == 503 {
            let text = ready.text().await.unwrap();
            assert!(
                text.contains("storage failed") || text.contains("system_logs"),
                "{text}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no restart observed:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rename_logs_table(&app, "system_logs_away", "system_logs").await;
    let logs = app
        .wait_for_logs("?limit=1000", "every line after recovery", |l| {
            l.len() == 21
        })
        .await;
    let mut ids: Vec<i64> = logs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 21, "no duplicates after replay");
    let start = Instant::now();
    while app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = app.metrics().await;
    assert!(
        metric_value(&m, "faultline_actor_restarts_total{actor=\"parse\"}") >= 1.0,
        "parse rewound:\n{m}"
    );
    assert!(
        metric_value(&m, "faultline_storage_errors_total{op=\"insert_logs\"}") >= 1.0,
        "the failed writes are counted:\n{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "faultline_storage_rows_written_total{table=\"system_logs\"}"
        ),
        21.0,
        "each row once, replays insert nothing"
    );
}

async fn replay_is_idempotent_across_app_restarts(b: Backend) {
    // Stop an app and build a new one on the same database and WAL: lines already stored are
    // not stored twice, and lines still in the WAL are replayed.
    let Some(app) = spawn_app(b).await else {
        return;
    };
    for i in 0..5 {
        let line = format!("2024-05-12 10:00:0{i},000 INFO a.B: line {i}");
        assert_eq!(
            app.upload("?host=w", "text/plain", line).await.status(),
            200
        );
    }
    app.wait_for_logs("", "five", |l| l.len() == 5).await;
    app.stop().await;
    let settings = app.settings.clone();
    let again = faultline::startup::Application::build(settings)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", again.port());
    actix_web::rt::spawn(again.run_until_stopped());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let body: serde_json::Value = app
        .client
        .get(format!("{address}/api/logs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["logs"].as_array().unwrap().len(), 5);
}

// Replays must neither duplicate nor lose lines when a stored record straddles the
// checkpoint or when a replay joins lines differently from the first pass (found in review).

async fn post(app: &TestApp, host: &str, line: &str) {
    let r = app
        .upload(
            &format!("?host={host}&service=datanode"),
            "text/plain",
            line.to_string(),
        )
        .await;
    assert_eq!(r.status(), 200, "{line}");
}

async fn count(app: &TestApp, marker: &str) -> usize {
    crate::helpers::all_logs(&app.client, &app.address, "")
        .await
        .iter()
        .filter(|r| r["message"].as_str().is_some_and(|m| m.contains(marker)))
        .count()
}

async fn wait_marker(app: &TestApp, marker: &str) {
    let start = Instant::now();
    while count(app, marker).await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{marker} never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replay_does_not_duplicate_a_record_straddling_the_checkpoint(b: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(b, |s| s.pipeline.join_idle_ms = 60_000).await
    else {
        return;
    };
    post(&app, "y", "2024-05-12 10:00:00,000 WARN a.B: y-head").await; // seq 0, Y open
    post(&app, "x", "2024-05-12 10:00:00,001 WARN a.B: x-head").await; // seq 1, X stays open
    post(&app, "y", "\tat y.Frame.f(Y.java:1) dup-marker").await; // seq 2 joins Y:0
    post(&app, "y", "2024-05-12 10:00:00,003 INFO a.B: y-next").await; // closes Y:0; checkpoint 1
    wait_marker(&app, "dup-marker").await;
    // A database failure makes Parse replay from the checkpoint (1), past line 2.
    rename_logs_table(&app, "system_logs", "system_logs_away").await;
    post(&app, "z", "2024-05-12 10:00:00,004 INFO a.B: z1").await;
    post(&app, "z", "2024-05-12 10:00:00,005 INFO a.B: z2").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    rename_logs_table(&app, "system_logs_away", "system_logs").await;
    wait_marker(&app, "z1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&app, "dup-marker").await,
        1,
        "an acknowledged line was stored twice"
    );
    assert_eq!(count(&app, "y-head").await, 1);
}

async fn replay_does_not_lose_a_line_the_first_pass_stored_alone(b: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(b, |s| s.pipeline.join_idle_ms = 500).await
    else {
        return;
    };
    post(&app, "x", "2024-05-12 10:00:00,000 WARN a.B: x-head").await; // kept open below
    post(&app, "y", "2024-05-12 10:00:00,001 INFO a.B: y-head").await;
    let mut i = 0;
    // Keep X open (a continuation every 100 ms) until Y's record is idle-flushed and stored.
    let start = Instant::now();
    while count(&app, "y-head").await == 0 {
        post(&app, "x", &format!("\tat x.F.f(X.java:{i})")).await;
        i += 1;
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rename_logs_table(&app, "system_logs", "system_logs_away").await;
    // In the first pass this line is an orphan record of its own (Y's record was closed); a
    // replay reads it together with y-head and would join it into the stored record 1.
    post(&app, "y", "\tat y.Frame.f(Y.java:1) lost-marker").await;
    for _ in 0..12 {
        post(&app, "x", &format!("\tat x.F.f(X.java:{i})")).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rename_logs_table(&app, "system_logs_away", "system_logs").await;
    wait_marker(&app, "x-head").await; // X closes after 500 ms of silence
    wait_marker(&app, "lost-marker").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&app, "lost-marker").await, 1);
    assert_eq!(count(&app, "y-head").await, 1);
}

async fn records_the_database_refuses_do_not_wedge_the_pipeline(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    // Real refusals from the server: long messages, and anything marked poison-pill.
    let triggers: &[&str] = match app.store.kind() {
        faultline::config::DbKind::Sqlite => &[
            "CREATE TRIGGER refuse_long BEFORE INSERT ON system_logs WHEN length(NEW.message) > 100000 \
             BEGIN SELECT RAISE(ABORT, 'too long for this test'); END",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON system_logs WHEN NEW.message LIKE '%poison-pill%' \
             BEGIN SELECT RAISE(ABORT, 'poison'); END",
        ],
        faultline::config::DbKind::MySql => &[
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON system_logs FOR EACH ROW BEGIN \
             IF CHAR_LENGTH(NEW.message) > 100000 OR NEW.message LIKE '%poison-pill%' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by test trigger'; END IF; END",
        ],
    };
    for t in triggers {
        exec(&app, t).await;
    }
    let long = format!(
        "2024-05-12 10:00:01,000 WARN a.B: long {}",
        "x".repeat(200_000)
    );
    let body = [
        "2024-05-12 10:00:00,000 INFO a.B: before",
        &long,
        "2024-05-12 10:00:02,000 ERROR a.B: poison-pill",
        "2024-05-12 10:00:03,000 INFO a.B: after",
    ]
    .join("\n");
    assert_eq!(
        app.upload("?host=p", "text/plain", body).await.status(),
        200
    );
    let logs = app
        .wait_for_logs("?host=p", "the batch minus the dead letter", |l| {
            l.len() == 3
        })
        .await;
    let messages: Vec<&str> = logs
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[0], "after");
    assert!(
        messages[1].starts_with("long xxx"),
        "{}",
        &messages[1][..40]
    );
    assert!(
        messages[1].contains("[faultline: message cut from"),
        "marked as cut"
    );
    assert!(messages[1].len() < 70_000);
    assert_eq!(messages[2], "before");
    // The pipeline goes on, and the checkpoint moved past the refused record.
    assert_eq!(
        app.upload(
            "?host=p",
            "text/plain",
            "2024-05-12 10:00:04,000 INFO a.B: later"
        )
        .await
        .status(),
        200
    );
    app.wait_for_logs("?host=p", "a later line", |l| l.len() == 4)
        .await;
    let m = app.metrics().await;
    assert_eq!(metric_value(&m, "faultline_records_dropped_total"), 1.0);
    assert_eq!(metric_value(&m, "faultline_records_truncated_total"), 1.0);
}

both_backends!(
    records_the_database_refuses_do_not_wedge_the_pipeline,
    record_stage_failure_is_restarted_and_loses_nothing,
    replay_is_idempotent_across_app_restarts,
    replay_does_not_duplicate_a_record_straddling_the_checkpoint,
    replay_does_not_lose_a_line_the_first_pass_stored_alone,
);
