//! The dashboards and alert rules against a real Prometheus (`FAULTLINE_TEST_PROMETHEUS`: the
//! Debian `prometheus` binary) scraping a Faultline that processed a fixture workload: logs
//! with known and unknown faults, an LLM (fake OpenAI server), a webhook receiver and a
//! simulated Hadoop cluster. Every PromQL expression of `dashboards/grafana/*.json` must parse
//! and return data; every rule of `dashboards/prometheus/faultline-rules.yml` must parse.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_openai::{FakeOpenAi, configure};
use crate::fake_webhook::FakeWebhook;
use crate::hadoop_sim::HadoopSim;
use crate::helpers::{Backend, Service, service_binary, spawn_app_with, start_service};
use faultline::alerting::settings::{ReceiverKind, ReceiverSettings};

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

async fn start_prometheus(target: &str) -> Option<Service> {
    let bin = service_binary("FAULTLINE_TEST_PROMETHEUS", "the dashboards test")?;
    let rules = repo("dashboards/prometheus/faultline-rules.yml");
    let target = target.to_string();
    Some(
        start_service(&bin, move |dir, port| {
            let cfg = dir.join("prometheus.yml");
            std::fs::write(
                &cfg,
                format!(
                    "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: faultline\n    static_configs:\n      - targets: [\"{target}\"]\n",
                    rules.display()
                ),
            )
            .unwrap();
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ]
        })
        .await,
    )
}

async fn query(p: &Service, expr: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/api/v1/query", p.url))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every `expr` of the dashboards, with the cluster variable opened up.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(repo("dashboards/grafana"))
        .unwrap()
        .flatten()
    {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
        assert!(
            d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["type"] == "datasource"),
            "{:?} has a datasource variable",
            f.path()
        );
        // What Grafana 10+ needs to import it (checked here as data: no Grafana runs here).
        assert!(
            d["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && u.len() <= 40)
        );
        assert!(
            d["schemaVersion"].as_i64().is_some_and(|v| v >= 36),
            "Grafana 10 schema"
        );
        let ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
        let mut ids = std::collections::HashSet::new();
        for p in d["panels"].as_array().unwrap() {
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "panel ids are unique"
            );
            assert!(p["gridPos"]["w"].is_number() && p["gridPos"]["h"].is_number());
            assert_eq!(
                p["datasource"], ds,
                "{} uses the datasource variable",
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"], ds);
                let e = t["expr"].as_str().unwrap().replace("$cluster", ".*");
                out.push((p["title"].as_str().unwrap().to_string(), e));
            }
        }
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

fn rule_exprs() -> Vec<String> {
    std::fs::read_to_string(repo("dashboards/prometheus/faultline-rules.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:").map(|e| e.trim().to_string()))
        .collect()
}

async fn every_dashboard_panel_shows_data(b: Backend) {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let fake = FakeOpenAi::start().await;
    let hook = FakeWebhook::start().await;
    let cluster = sim.cluster_settings();
    let url = format!("{}/hook", hook.base);
    let Some(app) = spawn_app_with(b, |s| {
        configure(s, &fake);
        s.clusters = vec![cluster];
        s.scheduler.timeout_secs = 2;
        s.alerting.evaluation_interval_secs = 1;
        s.alerting.group_wait_secs = 0;
        s.alerting.receivers = vec![ReceiverSettings {
            name: "ops".into(),
            kind: ReceiverKind::Webhook,
            url,
            secret: String::new(),
            matchers: vec![],
            send_resolved: true,
        }];
    })
    .await
    else {
        return;
    };
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let Some(prom) = start_prometheus(&format!("127.0.0.1:{port}")).await else {
        return;
    };
    // The workload: a known fault, an unknown one (escalated to the LLM), a health-check run.
    for (q, line) in [
        (
            "?host=dn1&service=datanode",
            "2026-11-21 10:00:00,000 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException: No space left on device",
        ),
        (
            "?host=dn2&service=datanode",
            "2026-11-21 10:00:01,000 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: Flux capacitor desynchronised on volume /data/3 after 33 ticks",
        ),
    ] {
        assert_eq!(app.upload(q, "text/plain", line).await.status(), 200);
    }
    let r = app
        .client
        .post(app.url("/api/health-checks/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.wait_faults("", |f| f.iter().any(|x| x["llm"]["status"] == "diagnosed"))
        .await;
    let start = Instant::now();
    while hook.received().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no notification");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Scrapes after the workload, so rates have two points (counted in samples, not seconds:
    // Prometheus stamps samples with the wall clock).
    let first = query(&prom, "count_over_time(up[5m])").await["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let start = Instant::now();
    loop {
        let n = query(&prom, "count_over_time(up[5m])").await["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if n >= first + 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "Prometheus is not scraping ({n} samples)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up = query(&prom, "up{job=\"faultline\"}").await;
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let mut empty = Vec::new();
    for (title, expr) in dashboard_exprs() {
        let v = query(&prom, &expr).await;
        assert_eq!(v["status"], "success", "{title}: {expr}: {v}");
        if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    for expr in rule_exprs() {
        let v = query(&prom, &expr).await;
        assert_eq!(v["status"], "success", "rule {expr}: {v}");
    }
    // Prometheus loaded the rules.
    let rules: Value = reqwest::get(format!("{}/api/v1/rules", prom.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rules["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    app.stop().await;
    fake.stop().await;
    hook.stop().await;
}

#[test]
fn promtool_checks_the_rules_and_the_scrape_config() {
    let promtool = match std::env::var("FAULTLINE_TEST_PROMTOOL") {
        Ok(p) if !p.trim().is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but FAULTLINE_TEST_PROMTOOL is not set")
        }
        _ => return,
    };
    for args in [
        vec!["check", "rules", "faultline-rules.yml"],
        vec!["check", "config", "prometheus.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(&args)
            .current_dir(repo("dashboards/prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

mod sqlite {
    #[actix_web::test]
    async fn every_dashboard_panel_shows_data() {
        super::every_dashboard_panel_shows_data(crate::helpers::Backend::Sqlite).await
    }
}
