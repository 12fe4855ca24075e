//! The scheduler end to end against the simulated cluster, through the API:
//! `POST /api/health-checks/run` → snapshots, exec logs and fault records (opened when a
//! fault is injected, resolved when it heals), `GET /api/cluster/status`, the history, the
//! check list; and cron-driven runs with an injected clock.

use std::sync::Arc;
use std::time::Duration;

use faultline::actors::scheduler::{Clock, SchedulerActor, SchedulerShared, Tick};
use faultline::cluster::settings::ClusterSettings;
use faultline::storage::Table;
use serde_json::Value;

use crate::both_backends;
use crate::hadoop_sim::{Answer, HadoopSim};
use crate::helpers::{Backend, TestApp, spawn_app_with};

fn sim_cluster(sim: &HadoopSim) -> ClusterSettings {
    sim.cluster_settings()
}

async fn app_for(b: Backend, sim: &HadoopSim) -> Option<TestApp> {
    let cluster = sim_cluster(sim);
    spawn_app_with(b, move |s| {
        s.clusters = vec![cluster];
        // On demand only: wall-clock cron runs would race the assertions.
        s.scheduler.enabled = false;
        s.scheduler.timeout_secs = 1;
    })
    .await
}

async fn post_run(app: &TestApp, query: &str) -> Value {
    let resp = app
        .client
        .post(app.url(&format!("/api/health-checks/run{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST /api/health-checks/run{query}");
    resp.json().await.unwrap()
}

async fn get(app: &TestApp, path: &str) -> Value {
    let resp = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

async fn injected_faults_are_recorded_and_healing_resolves_them(b: Backend) {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let Some(app) = app_for(b, &sim).await else {
        return;
    };
    let healthy = post_run(&app, "?cluster=sim&check=namenode").await;
    assert_eq!(healthy["runs"][0]["health"], "ok", "{healthy}");
    assert_eq!(
        healthy["runs"][0]["faults"]["opened"],
        serde_json::json!([])
    );
    let execs = app.store.count_rows(Table::ExecLogs).await.unwrap();
    assert_eq!(execs, 4, "one exec log per NameNode bean fetched");

    sim.set(|s| {
        s.dead_datanodes.insert("worker2".into());
    });
    let run = post_run(&app, "?check=namenode").await;
    let opened = run["runs"][0]["faults"]["opened"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(opened.len(), 1, "{run}");
    let id = opened[0].as_i64().unwrap();
    let fault = get(&app, &format!("/api/faults/{id}")).await;
    assert_eq!(fault["fault_type"], "datanode_lost");
    assert_eq!(fault["source"], "health_check");
    assert_eq!(fault["status"], "open");
    assert!(
        fault["fingerprint"]
            .as_str()
            .unwrap()
            .ends_with(":sim:worker2:9866"),
        "{fault}"
    );

    // Still dead on the next run: the same fault, confirmed.
    let again = post_run(&app, "?check=namenode").await;
    assert_eq!(
        again["runs"][0]["faults"]["confirmed"],
        serde_json::json!([id])
    );

    let status = get(&app, "/api/cluster/status").await;
    let c = &status["clusters"][0];
    assert_eq!(c["cluster"], "sim");
    assert_eq!(c["health"], "degraded");
    assert_eq!(c["faults"][0]["fault_type"], "datanode_lost");

    sim.set(|s| s.dead_datanodes.clear());
    let healed = post_run(&app, "?check=namenode").await;
    assert_eq!(
        healed["runs"][0]["faults"]["resolved"],
        serde_json::json!([id])
    );
    let fault = get(&app, &format!("/api/faults/{id}")).await;
    assert_eq!(fault["status"], "resolved");
    let status = get(&app, "/api/cluster/status?cluster=sim").await;
    let changes = status["clusters"][0]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["name"] == "hdfs.dead" && c["before"] == "worker2:9866"),
        "{status}"
    );

    let history = get(&app, "/api/cluster/status/history?limit=2").await;
    assert_eq!(history["snapshots"].as_array().unwrap().len(), 2);
    let before = history["next_before"].as_i64().unwrap();
    let older = get(
        &app,
        &format!("/api/cluster/status/history?cluster=sim&before={before}"),
    )
    .await;
    assert_eq!(
        older["snapshots"].as_array().unwrap().len(),
        2,
        "4 runs in all"
    );
    sim.stop().await;
}

async fn every_check_on_demand_and_bad_answers(b: Backend) {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let Some(app) = app_for(b, &sim).await else {
        return;
    };
    sim.set(|s| {
        s.lost_nodemanagers.insert("worker3".into());
        s.safe_mode = true;
    });
    let run = post_run(&app, "").await;
    let r = &run["runs"][0];
    assert_eq!(r["health"], "critical", "{run}");
    let faults = get(&app, "/api/faults?status=open").await;
    let types: Vec<&str> = faults["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fault_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"nodemanager_lost") && types.contains(&"namenode_safemode"),
        "{types:?}"
    );

    // The NameNode answers an HTML error page: a failed check with the reason, and the
    // NameNode's faults stay open (an unread NameNode heals nothing).
    sim.set(|s| s.answer = Answer::HtmlError);
    let bad = post_run(&app, "?check=namenode").await;
    assert_eq!(bad["runs"][0]["health"], "critical");
    assert!(
        bad["runs"][0]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{bad}"
    );
    assert_eq!(bad["runs"][0]["faults"]["resolved"], serde_json::json!([]));
    let checks = get(&app, "/api/health-checks").await;
    let nn = checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "namenode")
        .unwrap()
        .clone();
    assert_eq!(nn["last"]["status"], "failed", "{nn}");
    assert!(nn["last"]["message"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(nn["runs"], 2);

    let resp = app
        .client
        .post(app.url("/api/health-checks/run?check=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .client
        .post(app.url("/api/health-checks/run?cluster=other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    sim.stop().await;
}

/// Logs + the scheduler's snapshot in the live engine: a refused DataNode port is the dead
/// DataNode (one fault with the snapshot's), or a firewall when the DataNode is alive and its
/// port answers the engine.
async fn logs_and_snapshot_name_the_root_cause(b: Backend) {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    // A stand-in DataNode port on this machine: the NameNode lists 127.0.0.1 as a DataNode.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    sim.set(|s| {
        s.workers.push("127.0.0.1".into());
        s.dead_datanodes.insert("worker2".into());
    });
    let mut cluster = sim.cluster_settings();
    cluster.ports = vec![faultline::cluster::settings::PortSettings {
        host: "127.0.0.1".into(),
        port,
        service: "datanode-data".into(),
    }];
    let Some(app) = spawn_app_with(b, move |s| {
        s.clusters = vec![cluster];
        s.scheduler.enabled = false;
        s.scheduler.timeout_secs = 1;
    })
    .await
    else {
        return;
    };
    let run = post_run(&app, "?check=namenode").await;
    let dead_id = run["runs"][0]["faults"]["opened"][0].as_i64().unwrap();
    let ports = post_run(&app, "?check=ports").await;
    assert_eq!(
        ports["runs"][0]["faults"]["confirmed"],
        serde_json::json!([]),
        "a ports run says nothing new about the NameNode's faults"
    );

    let refused = |target: &str| {
        format!(
            "2025-03-14 10:41:07,219 WARN org.apache.hadoop.hdfs.DataStreamer: Exception in createBlockOutputStream java.net.ConnectException: Call From worker3/10.0.0.13 to {target} failed on connection exception: java.net.ConnectException: Connection refused"
        )
    };
    let q = "?cluster=sim&host=worker3&service=datanode";
    let resp = app.upload(q, "text/plain", refused("worker2:9866")).await;
    assert_eq!(resp.status(), 200);
    // The log's finding is the snapshot's fault: one record, now with two occurrences.
    let faults = app
        .wait_faults("?fault_type=datanode_lost", |f| {
            f.iter()
                .any(|x| x["id"] == dead_id && x["occurrences"] == 2)
        })
        .await;
    assert_eq!(faults.len(), 1, "{faults:#?}");

    let resp = app
        .upload(q, "text/plain", refused(&format!("127.0.0.1:{port}")))
        .await;
    assert_eq!(resp.status(), 200);
    let faults = app
        .wait_faults("?fault_type=port_unreachable", |f| !f.is_empty())
        .await;
    let diagnosis = faults[0]["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains("a firewall between worker3 and 127.0.0.1"),
        "{diagnosis}"
    );
    let id = faults[0]["id"].as_i64().unwrap();
    let fault = get(&app, &format!("/api/faults/{id}")).await;
    let values = fault["evidence"]["snapshot_values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "{fault}");
    assert!(
        get(&app, "/api/faults?fault_type=port_unreachable&host=worker2").await["faults"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    drop(listener);
    sim.stop().await;
}

async fn backlog_safe_mode_and_lost_nodes_open_and_heal(b: Backend) {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let Some(app) = app_for(b, &sim).await else {
        return;
    };
    sim.set(|s| {
        s.flume_fill_percent = 99.5;
        s.safe_mode = true;
        s.lost_nodemanagers.insert("worker4".into());
    });
    // The HTTP checks only (the default port probes would name hosts this machine cannot
    // resolve). Returns the faults opened and resolved, and the last run's report.
    async fn poll(app: &TestApp) -> (Vec<Value>, Vec<Value>, Value) {
        let (mut opened, mut resolved, mut last) = (Vec::new(), Vec::new(), Value::Null);
        for check in ["namenode", "resourcemanager", "flume"] {
            let run = post_run(app, &format!("?check={check}")).await;
            let r = &run["runs"][0]["faults"];
            opened.extend(r["opened"].as_array().unwrap().iter().cloned());
            resolved.extend(r["resolved"].as_array().unwrap().iter().cloned());
            last = run["runs"][0].clone();
        }
        (opened, resolved, last)
    }
    let mut opened = Vec::new();
    for poll_no in 1..=3 {
        let (ids, _, _) = poll(&app).await;
        let expected = match poll_no {
            1 => 2, // safe mode and the lost NodeManager
            3 => 1, // the backlog, after three full polls
            _ => 0,
        };
        assert_eq!(ids.len(), expected, "poll {poll_no}: {ids:?}");
        opened.extend(ids);
    }
    let backlog = get(&app, "/api/faults?fault_type=flume_backlog&status=open").await;
    assert_eq!(backlog["faults"][0]["host"], "agent1");
    sim.set(|s| *s = Default::default());
    let (_, mut resolved, last) = poll(&app).await;
    resolved.sort_by_key(|v| v.as_i64());
    opened.sort_by_key(|v| v.as_i64());
    assert_eq!(resolved, opened, "every fault heals");
    assert_eq!(last["health"], "ok", "{last}");
    sim.stop().await;
}

async fn without_clusters_the_endpoints_say_so(b: Backend) {
    let Some(app) = crate::helpers::spawn_app(b).await else {
        return;
    };
    assert_eq!(
        get(&app, "/api/health-checks").await["checks"],
        serde_json::json!([])
    );
    assert_eq!(
        get(&app, "/api/cluster/status").await["clusters"],
        serde_json::json!([])
    );
    for (method, path) in [
        (reqwest::Method::POST, "/api/health-checks/run"),
        (reqwest::Method::GET, "/api/cluster/status/history"),
    ] {
        let resp = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 409, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("no cluster is configured")
        );
    }
}

struct FakeClock;

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        0
    }
}

async fn cron_ticks_run_the_due_checks(b: Backend) {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let Some(app) = app_for(b, &sim).await else {
        return;
    };
    // A scheduler of its own, driven by Tick messages only.
    let settings = faultline::cluster::settings::SchedulerSettings {
        timeout_secs: 1,
        ..Default::default()
    };
    let shared = SchedulerShared::new(
        vec![sim_cluster(&sim)],
        settings,
        Default::default(),
        app.store.clone(),
        Arc::new(faultline::metrics::Metrics::new()),
    );
    let addr = actix::Actor::start(SchedulerActor::new(
        shared.clone(),
        Arc::new(FakeClock),
        Duration::ZERO,
    ));
    // 2026-01-01T00:00:10Z: nothing runs on the first tick.
    let t0 = 1_767_225_610_000i64;
    assert_eq!(addr.send(Tick { now_ms: t0 }).await.unwrap(), 0);
    // 30 s later the Flume check (at second 30) is due; at the minute NameNode and RM are.
    assert_eq!(
        addr.send(Tick {
            now_ms: t0 + 20_000
        })
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        addr.send(Tick {
            now_ms: t0 + 50_000
        })
        .await
        .unwrap(),
        1
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let checks = shared.checks.lock().unwrap().clone();
        let runs = |name: &str| checks.iter().find(|c| c.check == name).unwrap().runs;
        if runs("flume") == 1 && runs("namenode") == 1 && runs("resourcemanager") == 1 {
            assert_eq!(runs("ssh"), 0, "not due yet");
            let nn = checks.iter().find(|c| c.check == "namenode").unwrap();
            assert_eq!(nn.next_due_ms, Some(t0 + 110_000), "the next minute");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scheduled runs did not finish: {checks:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // A slow NameNode: the next due run finds the previous one still going and skips it.
    sim.set(|s| s.answer = Answer::Slow(Duration::from_millis(700)));
    assert_eq!(
        addr.send(Tick {
            now_ms: t0 + 110_000
        })
        .await
        .unwrap(),
        1
    );
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        addr.send(Tick {
            now_ms: t0 + 170_000
        })
        .await
        .unwrap(),
        1
    );
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    let skipped = shared
        .checks
        .lock()
        .unwrap()
        .iter()
        .find(|c| c.check == "namenode")
        .unwrap()
        .skipped;
    assert_eq!(skipped, 1);
    sim.stop().await;
}

both_backends!(
    without_clusters_the_endpoints_say_so,
    backlog_safe_mode_and_lost_nodes_open_and_heal,
    logs_and_snapshot_name_the_root_cause,
    injected_faults_are_recorded_and_healing_resolves_them,
    every_check_on_demand_and_bad_answers,
    cron_ticks_run_the_due_checks,
);
