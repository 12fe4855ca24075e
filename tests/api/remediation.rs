//! Remediation: propose (dry run) → approve → the allow-listed script runs with arguments
//! from the fault's fields only, every run and refusal in exec_logs, a timeout, an attempt to
//! inject shell metacharacters through a host name, unattended runs only when the rule and the
//! global switch both allow them, and the re-check.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, metric_sum, metric_value, spawn_app_with};

fn lost(dn: &str, i: u32) -> String {
    format!(
        "2026-11-21 10:41:{:02},219 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: lost heartbeat from {dn}:9866, removeBlocksFromBlockMap true",
        i % 60
    )
}

/// A stand-in for `restart-datanode.sh`: records its arguments; sleeps when `slow` exists.
fn write_scripts(dir: &Path) {
    let script = dir.join("restart-datanode.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nd=$(dirname \"$0\")\nif [ -f \"$d/slow\" ]; then sleep 30 & echo $! > \"$d/child.pid\"; wait; fi\nprintf '%s|' \"$@\" >> \"$d/ran.txt\"\necho restarted\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn app_with(
    b: Backend,
    scripts: &Path,
    tweak: impl FnOnce(&mut faultline::config::Settings),
) -> Option<TestApp> {
    let dir = scripts.display().to_string();
    spawn_app_with(b, |s| {
        s.scheduler.enabled = false;
        s.alerting.evaluation_interval_secs = 1;
        s.clusters = vec![faultline::cluster::settings::ClusterSettings {
            name: "default".into(),
            workers: vec!["10.0.0.7".into(), "10.0.0.8".into()],
            ..Default::default()
        }];
        s.remediation.scripts_dir = dir;
        s.remediation.timeout_secs = 2;
        s.remediation.recheck_quiet_secs = 1;
        tweak(s);
    })
    .await
}

async fn fault_of(app: &TestApp, dn: &str) -> i64 {
    let r = app
        .upload("?host=nn1&service=namenode", "text/plain", lost(dn, 1))
        .await;
    assert_eq!(r.status(), 200);
    let f = app
        .wait_faults("?fault_type=datanode_lost", |f| {
            f.iter()
                .any(|x| x["fingerprint"].as_str().unwrap().contains(dn))
        })
        .await;
    f.iter()
        .find(|x| x["fingerprint"].as_str().unwrap().contains(dn))
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn wait_status(app: &TestApp, id: i64, want: &[&str]) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get_json(&format!("/api/remediations/{id}")).await;
        if want.contains(&r["status"].as_str().unwrap_or("")) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "remediation {id}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn approval_flow_runs_once_with_fault_fields_and_rechecks(b: Backend) {
    let scripts = tempfile::tempdir().unwrap();
    write_scripts(scripts.path());
    let Some(app) = app_with(b, scripts.path(), |_| {}).await else {
        return;
    };
    let fid = fault_of(&app, "10.0.0.7").await;
    let (code, prop, _) = app
        .post_json(
            &format!("/api/faults/{fid}/remediate"),
            &json!({"by": "bob"}),
        )
        .await;
    assert_eq!(code, 201, "{prop}");
    assert_eq!(prop["status"], "proposed");
    assert_eq!(prop["script"], "restart-datanode.sh");
    assert_eq!(
        prop["host"], "10.0.0.7",
        "the DataNode, not the NameNode that logged it"
    );
    assert_eq!(
        prop["args"],
        json!([
            "--host",
            "10.0.0.7",
            "--service",
            "namenode",
            "--cluster",
            "default",
            "--fault-id",
            fid.to_string()
        ])
    );
    // Proposed is a dry run: nothing ran.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!scripts.path().join("ran.txt").exists());
    let rid = prop["id"].as_i64().unwrap();
    // Approving needs the operator role; the audit names the token and who claims to act.
    let token = |role: &'static str| {
        let app = &app;
        async move {
            let (code, t, _) = app
                .post_json(
                    "/api/tokens",
                    &json!({"name": format!("{role}-team"), "role": role}),
                )
                .await;
            assert_eq!(code, 201, "{t}");
            crate::helpers::client_with_token(t["token"].as_str().unwrap())
        }
    };
    let approve_url = app.url(&format!("/api/remediations/{rid}/approve"));
    let reader = token("read").await;
    let r = reader
        .post(&approve_url)
        .json(&json!({"by": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a read token cannot approve");
    let operator = token("operator").await;
    let r = operator
        .post(&approve_url)
        .json(&json!({"by": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (code, _, _) = app
        .post_json(
            &format!("/api/remediations/{rid}/approve"),
            &json!({"by": "alice"}),
        )
        .await;
    assert_eq!(code, 409, "approved once, runs once");
    let done = wait_status(&app, rid, &["effective", "not_effective"]).await;
    assert_eq!(done["status"], "effective", "{done}");
    let ran = std::fs::read_to_string(scripts.path().join("ran.txt")).unwrap();
    assert_eq!(
        ran,
        format!("--host|10.0.0.7|--service|namenode|--cluster|default|--fault-id|{fid}|")
    );
    let log = &done["exec_log"];
    assert_eq!(log["kind"], "remediation");
    assert_eq!(log["status"], "success");
    assert_eq!(log["approved_by"], "alice (token operator-team)");
    assert_eq!(log["requested_by"], "bob (token bootstrap-admin)");
    assert_eq!(log["exit_code"], 0);
    assert!(log["stdout"].as_str().unwrap().contains("restarted"));
    let f = app.get_json(&format!("/api/faults/{fid}")).await;
    assert_eq!(f["status"], "resolved", "quiet after the run");
    let m = app.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "faultline_faults_resolved_total{fault_type=\"datanode_lost\",how=\"remediation\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(metric_sum(&m, "faultline_faults_resolved_total{"), 1.0);
    app.stop().await;
}

async fn a_script_over_its_time_is_killed_and_recorded(b: Backend) {
    let scripts = tempfile::tempdir().unwrap();
    write_scripts(scripts.path());
    std::fs::write(scripts.path().join("slow"), "").unwrap();
    let Some(app) = app_with(b, scripts.path(), |_| {}).await else {
        return;
    };
    let fid = fault_of(&app, "10.0.0.8").await;
    let (_, prop, _) = app
        .post_json(&format!("/api/faults/{fid}/remediate"), &json!({}))
        .await;
    let rid = prop["id"].as_i64().unwrap();
    app.post_json(
        &format!("/api/remediations/{rid}/approve"),
        &json!({"by": "alice"}),
    )
    .await;
    let done = wait_status(&app, rid, &["timeout", "failed", "succeeded"]).await;
    assert_eq!(done["status"], "timeout", "{done}");
    assert_eq!(done["exec_log"]["status"], "timeout");
    assert!(done["exec_log"]["duration_ms"].as_i64().unwrap() < 10_000);
    // What the script started was stopped with it.
    let pid = std::fs::read_to_string(scripts.path().join("child.pid")).unwrap();
    let proc_dir = format!("/proc/{}", pid.trim());
    let start = Instant::now();
    while Path::new(&proc_dir).exists()
        && !std::fs::read_to_string(format!("{proc_dir}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the script's child survived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

async fn shell_metacharacters_in_a_host_name_are_refused_and_audited(b: Backend) {
    let scripts = tempfile::tempdir().unwrap();
    write_scripts(scripts.path());
    let Some(app) = app_with(b, scripts.path(), |_| {}).await else {
        return;
    };
    // The host of the log line (as the shipper names it) carries a command; the fault
    // (safe mode, remediated by leave-safemode.sh) is about that host.
    let r = app
        .upload(
            "?host=nn1%3Btouch%20%2Ftmp%2Fpwned&service=namenode",
            "text/plain",
            "mkdir: Cannot create directory /landing/x. Name node is in safe mode.",
        )
        .await;
    assert_eq!(r.status(), 200);
    let f = app
        .wait_faults("?fault_type=namenode_safemode", |f| !f.is_empty())
        .await;
    let fid = f[0]["id"].as_i64().unwrap();
    let (code, body, _) = app
        .post_json(
            &format!("/api/faults/{fid}/remediate"),
            &json!({"by": "mallory"}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["remediation"]["status"], "refused");
    assert!(
        body["error"].as_str().unwrap().contains("metacharacters"),
        "{body}"
    );
    assert_eq!(body["remediation"]["host"], "nn1;touch /tmp/pwned");
    // Audited in exec_logs, and nothing ran.
    let list = app
        .get_json(&format!("/api/faults/{fid}/remediations"))
        .await;
    let rid = list["remediations"][0]["id"].as_i64().unwrap();
    let r = app.get_json(&format!("/api/remediations/{rid}")).await;
    assert_eq!(r["exec_log"]["status"], "refused");
    assert_eq!(
        r["exec_log"]["requested_by"],
        "mallory (token bootstrap-admin)"
    );
    assert!(!scripts.path().join("ran.txt").exists());
    assert!(!Path::new("/tmp/pwned").exists());
    app.stop().await;
}

async fn unattended_runs_need_the_rule_and_the_global_switch(b: Backend) {
    // A rule directory whose datanode_lost allows unattended runs.
    let rules = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(rules.path().join("hdfs")).unwrap();
    let text = std::fs::read_to_string(repo.join("rules/hdfs/datanode_lost.toml")).unwrap();
    let text = text.replace(
        "script = \"restart-datanode.sh\"",
        "script = \"restart-datanode.sh\"\nauto = true",
    );
    assert!(text.contains("auto = true"));
    std::fs::write(rules.path().join("hdfs/datanode_lost.toml"), text).unwrap();
    let rules_dir = rules.path().display().to_string();
    for global in [false, true] {
        let scripts = tempfile::tempdir().unwrap();
        write_scripts(scripts.path());
        let rd = rules_dir.clone();
        let Some(app) = app_with(b, scripts.path(), |s| {
            s.rules.dir = rd;
            s.rules.drafts_dir = String::new();
            s.remediation.auto = global;
        })
        .await
        else {
            return;
        };
        let fid = fault_of(&app, "10.0.0.7").await;
        if global {
            let start = Instant::now();
            let rid = loop {
                let l = app
                    .get_json(&format!("/api/faults/{fid}/remediations"))
                    .await;
                if let Some(r) = l["remediations"].as_array().and_then(|a| a.first()) {
                    break r["id"].as_i64().unwrap();
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "no unattended run"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let done = wait_status(&app, rid, &["effective", "not_effective", "failed"]).await;
            assert_eq!(done["mode"], "auto");
            assert_eq!(done["exec_log"]["approved_by"], "auto");
            assert!(scripts.path().join("ran.txt").exists());
        } else {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let l = app
                .get_json(&format!("/api/faults/{fid}/remediations"))
                .await;
            assert_eq!(l["remediations"], json!([]), "the global switch is off");
            assert!(!scripts.path().join("ran.txt").exists());
        }
        app.stop().await;
    }
}

both_backends!(
    approval_flow_runs_once_with_fault_fields_and_rechecks,
    a_script_over_its_time_is_killed_and_recorded,
    shell_metacharacters_in_a_host_name_are_refused_and_audited,
    unattended_runs_need_the_rule_and_the_global_switch,
);
