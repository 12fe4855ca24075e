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
    match &app.store {
        faultline::storage::Store::Sqlite(p) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .unwrap();
        }
        faultline::storage::Store::MySql(p) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .unwrap();
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
    let body: serde_json::Value = reqwest::get(format!("{address}/api/logs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["logs"].as_array().unwrap().len(), 5);
}

both_backends!(
    record_stage_failure_is_restarted_and_loses_nothing,
    replay_is_idempotent_across_app_restarts,
);
