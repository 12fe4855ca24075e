//! `POST /api/log/auto-upload` in every shape a shipper sends, and its error answers.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app, spawn_app_with};

const DN: &str = "?host=worker1&service=datanode&file=hadoop-hadoop-datanode-worker1.log";

async fn flume_single_line_is_stored_with_parsed_fields(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let line = "2024-05-12 10:15:32,118 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: Problem connecting to server: master/192.168.10.10:9000";
    let resp = app.upload(DN, "text/plain", line).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 1);
    let logs = app
        .wait_for_logs("?host=worker1", "the flume line", |l| !l.is_empty())
        .await;
    let r = &logs[0];
    assert_eq!(r["host"], "worker1");
    assert_eq!(r["service"], "datanode");
    assert_eq!(r["file"], "hadoop-hadoop-datanode-worker1.log");
    assert_eq!(r["level"], "WARN");
    assert_eq!(
        r["logger"],
        "org.apache.hadoop.hdfs.server.datanode.DataNode"
    );
    assert_eq!(r["event_time"], "2024-05-12T10:15:32.118Z");
    assert_eq!(r["layout"], "log4j");
    assert_eq!(
        r["message"],
        "Problem connecting to server: master/192.168.10.10:9000"
    );
}

async fn json_handler_array_and_strings(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let body = serde_json::json!([
        {"headers": {"host": "master", "service": "namenode"},
         "body": "2024-05-12 10:14:12,005 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: lost heartbeat from 192.168.10.13:9866, removeBlocksFromBlockMap true"},
        {"headers": {"host": "master", "service": "resourcemanager"},
         "body": "2024-05-12 10:24:12,126 INFO org.apache.hadoop.yarn.server.resourcemanager.rmnode.RMNodeImpl: worker3:45219 Node Transitioned from RUNNING to LOST"},
        "2024-05-12 10:24:13,000 ERROR org.example.Thing: plain string event"
    ]);
    let resp = app
        .upload("?host=edge1", "application/json", body.to_string())
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["accepted"], 3);
    let logs = app
        .wait_for_logs("", "three records", |l| l.len() == 3)
        .await;
    let by_service = |s: &str| logs.iter().find(|r| r["service"] == s).cloned().unwrap();
    assert_eq!(by_service("namenode")["host"], "master");
    assert_eq!(by_service("resourcemanager")["level"], "INFO");
    let plain = logs.iter().find(|r| r["host"] == "edge1").unwrap();
    assert_eq!(plain["level"], "ERROR");
}

async fn ndjson_batch(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let body = concat!(
        "{\"message\":\"Mar  4 10:22:31 slave3 sshd[2417]: Authentication refused: bad ownership or modes for directory /home/hadoop/.ssh\",\"host\":\"slave3\",\"service\":\"sshd\"}\n",
        "{\"message\":\"2024-05-12 10:31:02,480 WARN org.apache.hadoop.yarn.server.nodemanager.DirectoryCollection: Directory /data/yarn error, used space above threshold\",\"host\":\"worker4\",\"service\":\"nodemanager\"}\n"
    );
    let resp = app.upload("", "application/x-ndjson", body).await;
    assert_eq!(resp.status(), 200);
    let logs = app
        .wait_for_logs("", "two ndjson records", |l| l.len() == 2)
        .await;
    let ssh = logs.iter().find(|r| r["host"] == "slave3").unwrap();
    assert_eq!(ssh["layout"], "syslog");
    assert_eq!(ssh["service"], "sshd");
    let nm = logs.iter().find(|r| r["host"] == "worker4").unwrap();
    assert_eq!(nm["level"], "WARN");
}

async fn thousand_line_text_batch(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let Some(shared) = faultline::parse::testdata::shared_dir() else {
        eprintln!("shared data missing: skipping");
        return;
    };
    let text = std::fs::read_to_string(shared.join("data/loghub/Hadoop/Hadoop_2k.log"))
        .expect("loghub Hadoop sample");
    let lines: Vec<&str> = text.lines().take(1000).collect();
    let resp = app
        .upload(
            "?host=worker2&service=mapreduce",
            "text/plain",
            lines.join("\n"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["accepted"], 1000);
    // Every line of the sample carries its own header, except continuation lines, so the
    // stored records account for all 1000 physical lines.
    let start = std::time::Instant::now();
    loop {
        let logs = crate::helpers::all_logs(&app.client, &app.address, "host=worker2").await;
        let total: u64 = logs.iter().map(|r| r["line_count"].as_u64().unwrap()).sum();
        if total == 1000 {
            for r in &logs {
                assert_eq!(r["service"], "mapreduce");
                assert_ne!(r["level"], "UNKNOWN", "{r}");
            }
            break;
        }
        assert!(start.elapsed().as_secs() < 15, "only {total} lines stored");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let first = app.logs("?host=worker2&q=Created%20MRAppMaster").await;
    assert_eq!(first[0]["layout"], "container");
    assert_eq!(first[0]["thread"], "main");
}

async fn stack_trace_one_line_per_post_interleaved_with_another_host(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let trace = [
        "2024-05-12 10:31:40,877 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService",
        "java.net.ConnectException: Call From worker1/192.168.10.11 to master:9000 failed on connection exception: java.net.ConnectException: Connection refused; For more details see:  http://wiki.apache.org/hadoop/ConnectionRefused",
        "\tat org.apache.hadoop.net.NetUtils.wrapException(NetUtils.java:833)",
        "\tat org.apache.hadoop.ipc.Client.call(Client.java:1554)",
        "Caused by: java.net.ConnectException: Connection refused",
        "\tat sun.nio.ch.SocketChannelImpl.checkConnect(Native Method)",
        "\t... 14 more",
    ];
    for (i, line) in trace.iter().enumerate() {
        let resp = app
            .upload("?host=worker1&service=datanode", "text/plain", *line)
            .await;
        assert_eq!(resp.status(), 200);
        let other = format!(
            "2024-05-12 10:31:4{i},000 INFO org.apache.hadoop.hdfs.server.datanode.DataNode: heartbeat {i}"
        );
        let resp = app
            .upload("?host=worker2&service=datanode", "text/plain", other)
            .await;
        assert_eq!(resp.status(), 200);
    }
    let w1 = app
        .wait_for_logs("?host=worker1", "the joined trace", |l| !l.is_empty())
        .await;
    assert_eq!(w1.len(), 1, "one record for the whole trace: {w1:#?}");
    assert_eq!(w1[0]["line_count"], 7);
    assert_eq!(w1[0]["level"], "WARN");
    let expected = format!("IOException in offerService\n{}", trace[1..].join("\n"));
    assert_eq!(w1[0]["message"], expected.as_str());
    let w2 = app
        .wait_for_logs("?host=worker2", "the other host's lines", |l| l.len() == 7)
        .await;
    assert!(w2.iter().all(|r| r["line_count"] == 1));
}

async fn bad_input_gets_clear_errors_with_bodies(b: Backend) {
    let Some(app) = spawn_app_with(b, |s| s.server.max_body_bytes = 4096).await else {
        return;
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/json",
            "[{\"body\": ".into(),
            400,
            "invalid JSON",
        ),
        (
            "application/json",
            "{\"headers\":{}}".into(),
            400,
            "missing string field `body`",
        ),
        (
            "application/x-ndjson",
            "{\"message\":\"ok\"}\n[1]\n".into(),
            400,
            "line 2",
        ),
        ("text/plain", "".into(), 400, "empty body"),
        (
            "text/plain",
            "x".repeat(5000),
            413,
            "larger than the limit of 4096 bytes",
        ),
    ];
    for (ct, body, status, needle) in cases {
        let resp = app.upload("?host=w", ct, body).await;
        assert_eq!(resp.status().as_u16(), status, "{ct} {needle}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], status);
    }
    // Nothing from rejected requests was stored.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(app.logs("").await.is_empty());
    let m = app.metrics().await;
    assert_eq!(
        crate::helpers::metric_value(&m, "faultline_ingest_rejections_total{status=\"400\"}"),
        4.0
    );
    assert_eq!(
        crate::helpers::metric_value(&m, "faultline_ingest_rejections_total{status=\"413\"}"),
        1.0
    );
}

async fn invalid_utf8_is_stored_lossily(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let mut body = b"2024-05-12 10:15:32,118 ERROR a.b.C: bad byte \xff here".to_vec();
    body.extend_from_slice(b"");
    let resp = app.upload("?host=w9", "text/plain", body).await;
    assert_eq!(resp.status(), 200);
    let logs = app
        .wait_for_logs("?host=w9", "the lossy line", |l| !l.is_empty())
        .await;
    assert_eq!(logs[0]["message"], "bad byte \u{fffd} here");
}

async fn duplicated_resends_do_not_corrupt(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    // Flume re-sends a line after a timeout: both copies are accepted and stored intact,
    // and neither disturbs the record being joined around them.
    let lines = [
        "2024-05-12 10:31:40,877 WARN a.b.DataNode: IOException in offerService",
        "java.io.IOException: boom",
        "java.io.IOException: boom",
        "\tat a.b.C.d(C.java:1)",
        "2024-05-12 10:31:41,000 INFO a.b.DataNode: next",
        "2024-05-12 10:31:41,000 INFO a.b.DataNode: next",
    ];
    for l in lines {
        assert_eq!(app.upload("?host=w3", "text/plain", l).await.status(), 200);
    }
    let logs = app
        .wait_for_logs("?host=w3", "records", |l| l.len() == 3)
        .await;
    let total: u64 = logs.iter().map(|r| r["line_count"].as_u64().unwrap()).sum();
    assert_eq!(total, 6);
}

async fn overload_answers_503_with_retry_after(b: Backend) {
    // A tiny backlog limit and a parse stage that cannot store (table renamed away) make the
    // WAL fill up: ingest must refuse with 503 + Retry-After and a body, never drop silently.
    let Some(app) = spawn_app_with(b, |s| {
        s.ingest.max_pending_lines = 5;
        s.ingest.retry_after_secs = 7;
    })
    .await
    else {
        return;
    };
    crate::pipeline::rename_logs_table(&app, "system_logs", "system_logs_away").await;
    let mut saw_503 = false;
    for i in 0..50 {
        let resp = app
            .upload(
                "?host=w",
                "text/plain",
                format!("2024-05-12 10:00:00,000 INFO a.B: {i}"),
            )
            .await;
        if resp.status() == 503 {
            assert_eq!(resp.headers()["retry-after"], "7");
            let v: Value = resp.json().await.unwrap();
            assert!(
                v["error"]
                    .as_str()
                    .unwrap()
                    .contains("waiting for the database"),
                "{v}"
            );
            saw_503 = true;
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    assert!(saw_503, "ingest never pushed back");
    crate::pipeline::rename_logs_table(&app, "system_logs_away", "system_logs").await;
    app.wait_for_logs("?host=w", "the accepted lines after recovery", |l| {
        l.len() == 5
    })
    .await;
}

async fn gzip_bodies_are_decompressed_and_unknown_encodings_refused(b: Backend) {
    let Some(app) = spawn_app_with(b, |s| s.ingest.max_pending_lines = 100).await else {
        return;
    };
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"2024-05-12 10:00:00,000 ERROR a.B: zipped line one\n2024-05-12 10:00:01,000 INFO a.B: zipped line two")
        .unwrap();
    let body = gz.finish().unwrap();
    let resp = app
        .client
        .post(app.url("/api/log/auto-upload?host=gz"))
        .header("Content-Type", "text/plain")
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["accepted"], 2);
    let logs = app
        .wait_for_logs("?host=gz", "unzipped lines", |l| l.len() == 2)
        .await;
    assert_eq!(logs[1]["message"], "zipped line one");

    let resp = app
        .client
        .post(app.url("/api/log/auto-upload?host=gz"))
        .header("Content-Encoding", "br")
        .body("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("unsupported Content-Encoding `br`")
    );

    // More lines than the whole backlog can hold: 413 (a shipper must split), not a 503 that
    // would be retried forever.
    let big: Vec<String> = (0..101).map(|i| format!("line {i}")).collect();
    let resp = app.upload("?host=gz", "text/plain", big.join("\n")).await;
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.unwrap().contains("send smaller batches"));
}

both_backends!(
    gzip_bodies_are_decompressed_and_unknown_encodings_refused,
    flume_single_line_is_stored_with_parsed_fields,
    json_handler_array_and_strings,
    ndjson_batch,
    thousand_line_text_batch,
    stack_trace_one_line_per_post_interleaved_with_another_host,
    bad_input_gets_clear_errors_with_bodies,
    invalid_utf8_is_stored_lossily,
    duplicated_resends_do_not_corrupt,
    overload_answers_503_with_retry_after,
);
