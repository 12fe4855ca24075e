//! `GET /api/logs`: filters, minimum level, time window, text search and cursor paging.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

async fn seed(app: &crate::helpers::TestApp) {
    let batch = |lines: &[&str]| lines.join("\n");
    let w1 = batch(&[
        "2024-05-12 10:00:00,000 INFO org.a.X: w1 info one",
        "2024-05-12 10:00:01,000 WARN org.a.X: w1 warn disk 90% full",
        "2024-05-12 10:00:02,000 ERROR org.a.X: w1 error_case",
        "2024-05-12 10:00:03,000 DEBUG org.a.X: w1 debug",
    ]);
    let w2 = batch(&[
        "2024-05-12 11:00:00,000 INFO org.a.Y: w2 info",
        "2024-05-12 11:00:01,000 FATAL org.a.Y: w2 fatal",
    ]);
    assert_eq!(
        app.upload("?host=w1&service=datanode", "text/plain", w1)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.upload("?host=w2&service=namenode&cluster=prod", "text/plain", w2)
            .await
            .status(),
        200
    );
    app.wait_for_logs("", "seeded records", |l| l.len() == 6)
        .await;
}

fn messages(logs: &[Value]) -> Vec<&str> {
    logs.iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect()
}

async fn filters_and_newest_first(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    seed(&app).await;
    let all = app.logs("").await;
    assert_eq!(messages(&all)[0], "w2 fatal", "newest event first");
    assert_eq!(app.logs("?host=w1").await.len(), 4);
    assert_eq!(app.logs("?service=namenode").await.len(), 2);
    assert_eq!(app.logs("?cluster=prod").await.len(), 2);
    assert_eq!(
        messages(&app.logs("?level=warn").await),
        vec!["w2 fatal", "w1 error_case", "w1 warn disk 90% full"]
    );
    assert_eq!(
        messages(&app.logs("?level=ERROR&host=w1").await),
        vec!["w1 error_case"]
    );
    let window = app
        .logs("?since=2024-05-12T10:00:01Z&until=2024-05-12T10:00:03Z")
        .await;
    assert_eq!(
        messages(&window),
        vec!["w1 error_case", "w1 warn disk 90% full"]
    );
    // Text search is literal: % and _ are not wildcards.
    assert_eq!(
        messages(&app.logs("?q=90%25").await),
        vec!["w1 warn disk 90% full"]
    );
    assert_eq!(
        messages(&app.logs("?q=error_case").await),
        vec!["w1 error_case"]
    );
    assert!(
        app.logs("?q=e_ror").await.is_empty(),
        "`_` is not a wildcard"
    );
    assert_eq!(app.logs("?q=W2%20FATAL").await.len(), 1, "case-insensitive");
}

async fn cursor_paging_visits_every_record_once(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    seed(&app).await;
    // Pages of 4 over 6 records: every record exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = app
            .client
            .get(app.url(&format!("/api/logs?limit=4{cursor}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            page["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
        assert!(seen.len() <= 6, "paging does not terminate");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 6);
    assert_eq!(unique.len(), 6);
}

async fn bad_query_parameters_are_400(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    for (q, needle) in [
        ("?level=LOUD", "unknown level"),
        ("?since=yesterday", "RFC 3339"),
        ("?limit=0", "between 1 and 1000"),
        ("?limit=5000", "between 1 and 1000"),
        ("?cursor=abc", "invalid cursor"),
        ("?hots=w1", "unknown field"),
    ] {
        let resp = app
            .client
            .get(app.url(&format!("/api/logs{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{q}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{q}: {text}");
    }
}

both_backends!(
    filters_and_newest_first,
    cursor_paging_visits_every_record_once,
    bad_query_parameters_are_400,
);
