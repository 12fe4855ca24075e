//! kill -9 right after a 2xx, then restart: every acknowledged line is stored.
//!
//! Runs the real `faultline` binary as a child process. A long join idle time keeps records
//! open (their lines only in the WAL) at the moment of the kill.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::both_backends;
use crate::helpers::{Backend, TestDb, all_logs, free_port};

fn start(dir: &std::path::Path, db_url: &str, port: u16, join_idle_ms: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("serve")
        .current_dir(dir)
        .env("FAULTLINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("FAULTLINE_DATABASE_URL", db_url)
        .env(
            "FAULTLINE_INGEST__WAL_DIR",
            dir.join("wal").display().to_string(),
        )
        .env("FAULTLINE_PIPELINE__JOIN_IDLE_MS", join_idle_ms.to_string())
        .env(
            "FAULTLINE_PIPELINE__MAX_RECORD_AGE_MS",
            join_idle_ms.to_string(),
        )
        .env("FAULTLINE_SERVER__WORKERS", "2")
        .env("FAULTLINE_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("faultline binary starts")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kill_9_after_ack_loses_nothing(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = TestDb::new(b, dir.path()) else {
        return;
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::client_with_token(crate::helpers::ADMIN_TOKEN);
    let mut child = start(dir.path(), &db.url, port, 600_000);
    wait_healthy(&client, &base).await;

    let mut acked = Vec::new();
    // Single-line POSTs from three streams, each stream a growing stack trace.
    for i in 0..150 {
        let host = format!("w{}", i % 3);
        let line = if i % 10 < 3 {
            format!(
                "2024-05-12 10:00:00,{:03} WARN a.B: header marker-{i}",
                i % 1000
            )
        } else {
            format!("\tat x.Y.frame(Y.java:{i}) marker-{i}")
        };
        let r = client
            .post(format!(
                "{base}/api/log/auto-upload?host={host}&service=datanode"
            ))
            .body(line)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        acked.push(format!("marker-{i}"));
    }
    // A 1000-line batch.
    let batch: Vec<String> = (0..1000)
        .map(|i| format!("2024-05-12 11:00:00,000 INFO a.B: batch marker-b{i}"))
        .collect();
    let r = client
        .post(format!(
            "{base}/api/log/auto-upload?host=w9&service=namenode"
        ))
        .body(batch.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    acked.extend((0..1000).map(|i| format!("marker-b{i}")));

    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let mut child = start(dir.path(), &db.url, port, 200);
    wait_healthy(&client, &base).await;
    let start_wait = Instant::now();
    let missing = loop {
        let logs = all_logs(&client, &base, "").await;
        let found: HashSet<&str> = logs
            .iter()
            .filter_map(|r| r["message"].as_str())
            .flat_map(|m| m.split(|c: char| c.is_whitespace()))
            .filter(|w| w.starts_with("marker-"))
            .collect();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|m| !found.contains(m.as_str()))
            .collect();
        if missing.is_empty() || start_wait.elapsed() > Duration::from_secs(20) {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().ok();
    child.wait().ok();
    assert_eq!(missing, 0, "acknowledged lines lost after kill -9");
}

both_backends!(kill_9_after_ack_loses_nothing);
