//! Faults end to end: lines posted through `/api/log/auto-upload` become fault records with
//! a stable identity, evidence linked to stored lines; ack / resolve / reopen; rule reload.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, metric_sum, metric_value, spawn_app, spawn_app_with};

const LOST: &str = "2025-03-14 10:41:07,219 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: lost heartbeat from 10.20.1.104:9866, removeBlocksFromBlockMap true";

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app.client.get(app.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn wait_faults(app: &TestApp, query: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    app.wait_faults(query, pred).await
}

async fn posted_fault_lines_become_a_fault_record(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Flume's HttpSink: one line per POST, identity in the query string; a stack trace.
    let lines = [
        "14 Mar 2025 11:20:04,551 WARN  [SinkRunner-PollingRunner-DefaultSinkProcessor] (org.apache.flume.sink.hdfs.HDFSEventSink.process:454)  - HDFS IO error",
        "java.net.ConnectException: Call From flume-agent-a/10.20.3.31 to nn1:8020 failed on connection exception: java.net.ConnectException: Connection refused; For more details see:  http://wiki.apache.org/hadoop/ConnectionRefused",
        "\tat org.apache.hadoop.ipc.Client.call(Client.java:1530)",
        "Caused by: java.net.ConnectException: Connection refused",
        "\tat sun.nio.ch.SocketChannelImpl.checkConnect(Native Method)",
    ];
    for l in lines {
        let r = app
            .upload(
                "?host=flume-agent-a&service=flume&file=flume.log",
                "text/plain",
                l,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let faults = wait_faults(&app, "?fault_type=port_unreachable", |f| !f.is_empty()).await;
    assert_eq!(faults.len(), 1, "{faults:#?}");
    let f = &faults[0];
    assert_eq!(f["status"], "open");
    assert_eq!(f["source"], "rule");
    assert_eq!(f["host"], "flume-agent-a");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["fingerprint"], "port_unreachable:default:nn1:8020");
    assert!(f["diagnosis"].as_str().unwrap().contains("nn1:8020"));
    assert!(
        f["remediation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("nc -vz nn1 8020"))
    );
    // The joined record (with its stack trace) is the evidence, linked to the stored line.
    let id = f["id"].as_i64().unwrap();
    let (status, one) = get(&app, &format!("/api/faults/{id}")).await;
    assert_eq!(status, 200);
    let log_ids = one["log_ids"].as_array().unwrap();
    assert_eq!(log_ids.len(), 1);
    let linked = app.logs(&format!("?fault_id={id}")).await;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0]["id"], log_ids[0]);
    assert!(linked[0]["message"].as_str().unwrap().contains("Caused by"));
    let ev = one["evidence"]["records"][0]["lines"].as_array().unwrap();
    assert_eq!(ev[0], "HDFS IO error");
}

async fn a_repeat_updates_the_fault_and_resolve_then_recurrence_opens_a_new_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let q = "?host=nn1&service=namenode";
    assert_eq!(app.upload(q, "text/plain", LOST).await.status(), 200);
    let later = LOST.replace("10:41:07", "10:51:07");
    assert_eq!(app.upload(q, "text/plain", later).await.status(), 200);
    let faults = wait_faults(&app, "?fault_type=datanode_lost", |f| {
        f.first().is_some_and(|x| x["occurrences"] == 2)
    })
    .await;
    assert_eq!(faults.len(), 1, "a repeat must not insert: {faults:#?}");
    let id = faults[0]["id"].as_i64().unwrap();
    assert_eq!(faults[0]["first_seen"], "2025-03-14T10:41:07.219Z");
    assert_eq!(faults[0]["last_seen"], "2025-03-14T10:51:07.219Z");
    assert_eq!(
        faults[0]["fingerprint"],
        "datanode_lost:default:10.20.1.104:9866"
    );

    let (s, body) = post(&app, &format!("/api/faults/{id}/ack"), r#"{"by":"alice"}"#).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledged_by"], "alice (token bootstrap-admin)");
    // An acknowledged fault still counts repeats.
    let third = LOST.replace("10:41:07", "11:01:07");
    assert_eq!(app.upload(q, "text/plain", third).await.status(), 200);
    wait_faults(&app, "?status=acknowledged", |f| {
        f.first().is_some_and(|x| x["occurrences"] == 3)
    })
    .await;

    let (s, body) = post(&app, &format!("/api/faults/{id}/resolve"), "").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    let (s, body) = post(&app, &format!("/api/faults/{id}/ack"), "").await;
    assert_eq!(s, 409, "acking a resolved fault: {body}");
    let (s, _) = post(&app, &format!("/api/faults/{id}/resolve"), "").await;
    assert_eq!(s, 200, "resolve is idempotent");

    // The fault comes back: a new row; the resolved one stays as history.
    let again = LOST.replace("10:41:07", "12:00:00");
    assert_eq!(app.upload(q, "text/plain", again).await.status(), 200);
    let open = wait_faults(&app, "?status=open", |f| !f.is_empty()).await;
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["id"].as_i64().unwrap(), id);
    assert_eq!(open[0]["occurrences"], 1);
    let (_, all) = get(&app, "/api/faults?fault_type=datanode_lost").await;
    assert_eq!(all["faults"].as_array().unwrap().len(), 2);

    // Errors: unknown id, bad id, bad filter.
    assert_eq!(get(&app, "/api/faults/999999").await.0, 404);
    assert_eq!(get(&app, "/api/faults/abc").await.0, 400);
    assert_eq!(get(&app, "/api/faults?status=bogus").await.0, 400);
    assert_eq!(post(&app, "/api/faults/999999/ack", "").await.0, 404);
    assert_eq!(
        post(&app, &format!("/api/faults/{id}/ack"), "{nope")
            .await
            .0,
        400
    );
}

async fn faults_filter_and_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (i, host) in ["dn01", "dn02", "dn03"].iter().enumerate() {
        let line = format!(
            "2025-07-21 18:0{i}:12,044 WARN org.apache.hadoop.yarn.server.nodemanager.DirectoryCollection: Directory /data1/yarn/local error, used space above threshold of 90.0%, removing from list of valid directories"
        );
        let q = format!("?host={host}&service=nodemanager");
        assert_eq!(app.upload(&q, "text/plain", line).await.status(), 200);
    }
    let unk = "2025-07-21 18:09:00,000 ERROR org.apache.hadoop.hdfs.server.namenode.NameNode: Failed to start namenode.\njava.io.IOException: There appears to be a gap in the edit log.  We expected txid 5, but got txid 9.";
    assert_eq!(
        app.upload("?host=nn1&service=namenode", "text/plain", unk)
            .await
            .status(),
        200
    );
    wait_faults(&app, "", |f| f.len() == 4).await;
    let disk = wait_faults(&app, "?fault_type=disk_full&severity=critical", |f| {
        f.len() == 3
    })
    .await;
    assert_eq!(disk[0]["host"], "dn03", "most recently seen first");
    let unknown = wait_faults(&app, "?fault_type=unknown", |f| f.len() == 1).await;
    assert_eq!(unknown[0]["source"], "unknown");
    assert_eq!(unknown[0]["host"], "nn1");
    let dn02 = wait_faults(&app, "?host=dn02", |f| f.len() == 1).await;
    assert_eq!(dn02[0]["fault_type"], "disk_full");
    let since = wait_faults(
        &app,
        "?since=2025-07-21T18:01:30Z&fault_type=disk_full",
        |f| f.len() == 1,
    )
    .await;
    assert_eq!(since[0]["host"], "dn03");
    // Paging with the cursor visits every fault once.
    let (_, p1) = get(&app, "/api/faults?limit=3").await;
    assert_eq!(p1["faults"].as_array().unwrap().len(), 3);
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = get(&app, &format!("/api/faults?limit=3&cursor={cursor}")).await;
    assert_eq!(p2["faults"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
}

async fn benign_lines_make_no_fault(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let lines = [
        "2025-04-22 09:31:10,227 INFO org.apache.hadoop.hdfs.StateChange: STATE* Safe mode ON. ",
        "2025-04-22 09:32:22,917 INFO org.apache.hadoop.hdfs.StateChange: STATE* Safe mode is OFF",
        "2025-06-01 22:00:04,118 ERROR org.apache.hadoop.hdfs.server.namenode.NameNode: RECEIVED SIGNAL 15: SIGTERM",
        "2025-03-14 12:11:40,225 INFO org.apache.hadoop.util.JvmPauseMonitor: Detected pause in JVM or host machine (eg GC): pause of approximately 1418ms",
    ];
    assert_eq!(
        app.upload("?host=nn1&service=namenode", "text/plain", lines.join("\n"))
            .await
            .status(),
        200
    );
    app.wait_for_logs("?host=nn1", "the benign lines", |l| l.len() == 4)
        .await;
    let (_, body) = get(&app, "/api/faults").await;
    assert_eq!(body["faults"], json!([]));
}

async fn rules_reload_swaps_the_set_or_keeps_the_old_one(backend: Backend) {
    let rules_dir = tempfile::tempdir().unwrap();
    let rule_path = rules_dir.path().join("hdfs/datanode_lost.toml");
    std::fs::create_dir_all(rule_path.parent().unwrap()).unwrap();
    let repo_rule = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/hdfs/datanode_lost.toml"),
    )
    .unwrap();
    std::fs::write(&rule_path, &repo_rule).unwrap();
    let dir = rules_dir.path().to_string_lossy().to_string();
    let Some(app) = spawn_app_with(backend, |s| s.rules.dir = dir).await else {
        return;
    };
    let (s, body) = get(&app, "/api/rules").await;
    assert_eq!(s, 200);
    assert_eq!(body["rules"].as_array().unwrap().len(), 1);

    // A broken file: 422 with file, field and reason; the old set keeps working.
    std::fs::write(
        &rule_path,
        repo_rule.replace("severity = \"critical\"", "severity = \"loud\""),
    )
    .unwrap();
    let (s, body) = post(&app, "/api/rules/reload", "").await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["errors"][0]["file"], "hdfs/datanode_lost.toml");
    assert_eq!(body["errors"][0]["field"], "severity");
    assert_eq!(
        app.upload("?host=nn1&service=namenode", "text/plain", LOST)
            .await
            .status(),
        200
    );
    wait_faults(&app, "?fault_type=datanode_lost", |f| f.len() == 1).await;

    // A valid new rule (a new fault is one file): reloaded and used at once.
    std::fs::write(&rule_path, &repo_rule).unwrap();
    std::fs::create_dir_all(rules_dir.path().join("os")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/os/disk_full.toml"),
        rules_dir.path().join("os/disk_full.toml"),
    )
    .unwrap();
    let (s, body) = post(&app, "/api/rules/reload", "").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["rules"], 2);
    let full = "2025-02-19 21:07:33,412 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: dn04:50010:DataXceiver error processing WRITE_BLOCK operation\njava.io.IOException: No space left on device";
    assert_eq!(
        app.upload("?host=dn04&service=datanode", "text/plain", full)
            .await
            .status(),
        200
    );
    wait_faults(&app, "?fault_type=disk_full", |f| f.len() == 1).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("faultline_rule_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("faultline_findings_total{fault_type=\"disk_full\",source=\"rule\"} 1")
    );
}

/// The fault and ingest metrics: a new fault is counted opened once (its repeats are not),
/// an operator's resolve once (a repeated resolve is not), a recurrence opens again; every
/// accepted ingest request is one observation of the batch size, a rejected one none.
async fn fault_transitions_and_ingest_batches_are_counted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let opened =
        "faultline_faults_opened_total{fault_type=\"datanode_lost\",severity=\"critical\"}";
    let resolved = "faultline_faults_resolved_total{fault_type=\"datanode_lost\",how=\"api\"}";
    let q = "?host=nn1&service=namenode";
    assert_eq!(app.upload(q, "text/plain", LOST).await.status(), 200);
    // Two repeats in one request.
    let repeats = format!(
        "{}\n{}",
        LOST.replace("10:41:07", "10:51:07"),
        LOST.replace("10:41:07", "10:52:07")
    );
    assert_eq!(app.upload(q, "text/plain", repeats).await.status(), 200);
    let faults = wait_faults(&app, "?fault_type=datanode_lost", |f| {
        f.first().is_some_and(|x| x["occurrences"] == 3)
    })
    .await;
    let id = faults[0]["id"].as_i64().unwrap();
    let m = app.wait_metric(opened, |v| v >= 1.0).await;
    assert_eq!(metric_value(&m, opened), 1.0, "repeats open nothing:\n{m}");
    assert_eq!(metric_value(&m, resolved), 0.0);

    for _ in 0..2 {
        let (s, body) = post(&app, &format!("/api/faults/{id}/resolve"), "").await;
        assert_eq!(s, 200, "{body}");
    }
    let m = app.metrics().await;
    assert_eq!(metric_value(&m, resolved), 1.0, "resolved once:\n{m}");
    assert_eq!(
        metric_sum(&m, "faultline_faults_resolved_total{"),
        1.0,
        "{m}"
    );

    let again = LOST.replace("10:41:07", "12:00:00");
    assert_eq!(app.upload(q, "text/plain", again).await.status(), 200);
    wait_faults(&app, "?status=open", |f| !f.is_empty()).await;
    let m = app.wait_metric(opened, |v| v >= 2.0).await;
    assert_eq!(
        metric_value(&m, opened),
        2.0,
        "the recurrence is a new fault"
    );
    assert_eq!(metric_sum(&m, "faultline_faults_opened_total{"), 2.0);

    // Rejected: not a batch.
    assert_eq!(
        app.upload(q, "application/json", "{nope").await.status(),
        400
    );
    let m = app.metrics().await;
    let accepted: f64 = m
        .lines()
        .filter(|l| {
            l.starts_with("faultline_ingest_requests_total{") && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(accepted, 3.0, "{m}");
    assert_eq!(
        metric_sum(&m, "faultline_ingest_batch_lines_count{"),
        accepted,
        "one observation per accepted request:\n{m}"
    );
    assert_eq!(metric_sum(&m, "faultline_ingest_batch_lines_sum{"), 4.0);
    assert_eq!(
        metric_value(&m, "faultline_ingest_batch_lines_count{shape=\"text\"}"),
        1.0,
        "the two-line body"
    );
    assert_eq!(
        metric_value(
            &m,
            "faultline_storage_rows_written_total{table=\"system_logs\"}"
        ),
        4.0
    );
    assert_eq!(metric_sum(&m, "faultline_storage_errors_total{"), 0.0);
}

both_backends!(
    fault_transitions_and_ingest_batches_are_counted,
    posted_fault_lines_become_a_fault_record,
    a_repeat_updates_the_fault_and_resolve_then_recurrence_opens_a_new_one,
    faults_filter_and_page,
    benign_lines_make_no_fault,
    rules_reload_swaps_the_set_or_keeps_the_old_one,
);

async fn wait_restarts(app: &TestApp, actor: &str, n: f64) {
    let start = Instant::now();
    loop {
        let m = app.metrics().await;
        let series = format!("faultline_actor_restarts_total{{actor=\"{actor}\"}}");
        if crate::helpers::metric_value(&m, &series) >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {actor} restart:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A batch that was not stored (database outage) is replayed: its records must not be
/// counted twice into a window. One "thresholds not met" line (count 2) is no fault.
async fn a_replayed_batch_is_not_counted_twice(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    crate::pipeline::rename_logs_table(&app, "system_logs", "system_logs_away").await;
    let line = "2024-05-21 13:59:12,004 INFO org.apache.hadoop.hdfs.StateChange: STATE* Safe mode ON, thresholds not met. ";
    let q = "?host=nn1&service=namenode";
    assert_eq!(app.upload(q, "text/plain", line).await.status(), 200);
    wait_restarts(&app, "parse", 1.0).await;
    crate::pipeline::rename_logs_table(&app, "system_logs_away", "system_logs").await;
    app.wait_for_logs("?host=nn1", "the line", |l| l.len() == 1)
        .await;
    let (_, body) = get(&app, "/api/faults").await;
    assert_eq!(body["faults"], json!([]), "one line counted twice");
    // The window still works: a second line (stored normally) completes it.
    let again = line.replace("13:59:12", "13:59:32");
    assert_eq!(app.upload(q, "text/plain", again).await.status(), 200);
    let f = wait_faults(&app, "?fault_type=namenode_safemode", |f| !f.is_empty()).await;
    assert_eq!(f[0]["occurrences"], 2);
}

/// After the parse stage restarted, records that look like faults are still closed early
/// (join_idle_hit_ms), not after join_idle_ms (a minute here).
async fn early_close_survives_a_parse_restart(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.pipeline.join_idle_ms = 60_000;
        s.pipeline.join_idle_hit_ms = 50;
    })
    .await
    else {
        return;
    };
    let q = "?host=nn1&service=namenode";
    crate::pipeline::rename_logs_table(&app, "system_logs", "system_logs_away").await;
    assert_eq!(app.upload(q, "text/plain", LOST).await.status(), 200);
    wait_restarts(&app, "parse", 1.0).await;
    crate::pipeline::rename_logs_table(&app, "system_logs_away", "system_logs").await;
    let later = LOST.replace("10.20.1.104", "10.20.1.105");
    assert_eq!(app.upload(q, "text/plain", later).await.status(), 200);
    // Both faults appear well before join_idle_ms (60 s) would close their records.
    wait_faults(&app, "?fault_type=datanode_lost", |f| f.len() == 2).await;
}

/// A finding the database refuses (fields over MySQL's TEXT) must not hold the pipeline:
/// its fields are cut to fit, and later lines are stored.
async fn an_oversized_finding_does_not_wedge_the_pipeline(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let path = format!("/{}", "a".repeat(40_000));
    let line = format!(
        "2025-03-14 10:41:07,219 ERROR org.apache.hadoop.hdfs.server.namenode.FSNamesystem: Permission denied: user=alice, access=WRITE, inode=\"{path}\":hdfs:supergroup:drwxr-xr-x"
    );
    assert_eq!(
        app.upload("?host=nn1&service=namenode", "text/plain", line)
            .await
            .status(),
        200
    );
    let after = "2025-03-14 10:41:08,000 INFO a.B: after";
    assert_eq!(
        app.upload("?host=nn2", "text/plain", after).await.status(),
        200
    );
    app.wait_for_logs("?host=nn2", "the line after", |l| l.len() == 1)
        .await;
    let f = wait_faults(&app, "?fault_type=hdfs_permission", |f| f.len() == 1).await;
    assert!(f[0]["diagnosis"].as_str().unwrap().len() <= 16 * 1024);
    let m = app.metrics().await;
    assert_eq!(
        crate::helpers::metric_value(&m, "faultline_actor_restarts_total{actor=\"record\"}"),
        0.0
    );
}

mod recovery {
    use super::*;
    both_backends!(
        a_replayed_batch_is_not_counted_twice,
        early_close_survives_a_parse_restart,
        an_oversized_finding_does_not_wedge_the_pipeline,
    );
}
