//! The `faultline` binary's commands: --version, --help, check-config and migrate.

use std::process::Command;

fn faultline(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.current_dir(dir)
        .env_remove("FAULTLINE_DATABASE_URL")
        .env_remove("FAULTLINE_LISTEN");
    c
}

#[test]
fn version_and_help_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = faultline(dir.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("faultline {}", env!("CARGO_PKG_VERSION"))
    );
    let out = faultline(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "serve",
        "migrate",
        "check-config",
        "Examples:",
        "auto-upload",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
}

#[test]
fn check_config_reports_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nlisen = \"0.0.0.0:1\"\n",
    )
    .unwrap();
    let out = faultline(dir.path())
        .args(["--config", "bad.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: key `server.lisen`: unknown field `lisen`"),
        "{err}"
    );

    let out = faultline(dir.path())
        .arg("check-config")
        .env("FAULTLINE_DATABASE__MAX_CONNECTIONS", "zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable FAULTLINE_DATABASE__MAX_CONNECTIONS: key `database.max_connections`"),
        "{err}"
    );

    // ./faultline.toml is picked up when present; secrets are redacted in the output.
    std::fs::write(
        dir.path().join("faultline.toml"),
        "[database]\nurl = \"mysql://u:s3cret@db:3306/f\"\n",
    )
    .unwrap();
    let out = faultline(dir.path()).arg("check-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("file: faultline.toml") && text.contains("mysql://u:***@db:3306/f"),
        "{text}"
    );
    assert!(!text.contains("s3cret"));
}

#[test]
fn migrate_creates_the_sqlite_database_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = faultline(dir.path())
            .arg("migrate")
            .env("FAULTLINE_DATABASE_URL", "sqlite://fresh.db")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    assert!(dir.path().join("fresh.db").exists());
}

#[test]
fn diagnose_prints_findings_primary_first_as_json_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hadoop-hdfs-namenode-nn1.log");
    std::fs::write(
        &log,
        "2025-01-28 03:12:40,551 WARN org.apache.hadoop.hdfs.server.namenode.NameNodeResourceChecker: Space available on volume '/dev/mapper/root' is 88473600, which is below the configured reserved amount 104857600\n\
         2025-01-28 03:12:40,552 WARN org.apache.hadoop.hdfs.server.namenode.FSNamesystem: NameNode low on available disk space. Entering safe mode.\n\
         2025-01-28 03:13:00,000 INFO org.apache.hadoop.ipc.Server: IPC Server handler 1 on 8020, call Call#7 Retry#0 org.apache.hadoop.hdfs.protocol.ClientProtocol.mkdirs from 10.0.0.5:40000: org.apache.hadoop.hdfs.server.namenode.SafeModeException: Cannot create directory /x. Name node is in safe mode.\n",
    )
    .unwrap();
    let out = faultline(dir.path())
        .args(["diagnose", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings[0]["fault_type"], "disk_full", "{v:#}");
    assert_eq!(findings[0]["source"], "rule");
    for key in ["severity", "title", "evidence", "remediation"] {
        assert!(!findings[0][key].is_null(), "{key} missing");
    }
    assert!(
        findings
            .iter()
            .any(|f| f["fault_type"] == "namenode_safemode")
    );

    // stdin, text format.
    use std::io::Write as _;
    let mut child = faultline(dir.path())
        .args(["diagnose", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"dn05: ssh: connect to host dn05 port 22: No route to host\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("port_unreachable"), "{text}");
    assert!(text.contains("remediation:"), "{text}");
}

#[test]
fn diagnose_of_benign_input_has_no_finding() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nn.log");
    std::fs::write(
        &log,
        "2025-04-22 09:31:10,227 INFO org.apache.hadoop.hdfs.StateChange: STATE* Safe mode ON. \n\
         2025-04-22 09:32:22,917 INFO org.apache.hadoop.hdfs.StateChange: STATE* Safe mode is OFF\n",
    )
    .unwrap();
    let out = faultline(dir.path())
        .args(["diagnose", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({ "findings": [] }));
    let missing = faultline(dir.path())
        .args(["diagnose", "no-such-file.log"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.log"));
}

#[test]
fn rules_check_and_test_report_problems_with_exit_status() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let ok = faultline(repo).args(["rules", "check"]).output().unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("rule(s) OK"));
    let test = faultline(repo)
        .args([
            "rules",
            "test",
            "--rules",
            "rules",
            "--cases",
            "tests/rules",
        ])
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );
    std::fs::create_dir_all(dir.path().join("r/x")).unwrap();
    std::fs::write(
        dir.path().join("r/x/disk_full.toml"),
        "id = \"disk_full\"\ntitle = \"t\"\nseverity = \"critical\"\nremediation = [\"df -h\"]\n[[signal]]\nregex = '(unclosed'\n",
    )
    .unwrap();
    let bad = faultline(dir.path())
        .args(["rules", "check", "--rules", "r"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("x/disk_full.toml: signal[0].regex: invalid regex"),
        "{text}"
    );
}

#[test]
fn eval_prints_scores_and_fails_below_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.jsonl");
    std::fs::write(
        &corpus,
        r#"{"id":"a","expected":"ssh_auth","source_file":"x","lines":["dn01: Permission denied (publickey,password)."]}
{"id":"b","expected":"none","source_file":"x","lines":["2025-04-22 09:32:22,917 INFO org.apache.hadoop.hdfs.StateChange: STATE* Safe mode is OFF"]}
{"id":"c","expected":"clusterid_mismatch","source_file":"x","lines":["nothing to see here"]}
"#,
    )
    .unwrap();
    let out = faultline(dir.path())
        .args(["eval", "--format", "json", "--corpus"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cases"], 3);
    assert_eq!(v["none_false_positives"], 0);
    assert_eq!(v["misclassified"][0]["id"], "c");
    let strict = faultline(dir.path())
        .args(["eval", "--min-macro-f1", "0.99", "--corpus"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(!strict.status.success());
    std::fs::write(
        &corpus,
        "{\"id\":\"a\",\"expected\":\"bogus\",\"lines\":[]}\n",
    )
    .unwrap();
    let bad = faultline(dir.path())
        .args(["eval", "--corpus"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown label"));
}

/// `diagnose --snapshot`: the same log line, three cluster states, three root causes
/// (taxonomy §2: a refused DataNode port is a dead DataNode, or a firewall, or nothing
/// listening).
#[test]
fn diagnose_with_a_snapshot_names_the_root_cause() {
    let dir = tempfile::tempdir().unwrap();
    let log = "2025-03-14 10:41:07,219 WARN org.apache.hadoop.hdfs.DataStreamer: Exception in createBlockOutputStream java.net.ConnectException: Call From worker3/10.0.0.13 to worker2:9866 failed on connection exception: java.net.ConnectException: Connection refused\n";
    std::fs::write(dir.path().join("app.log"), log).unwrap();
    let status = |dead: bool, port: &str| {
        let node = r#"{"name":"worker2:9866","host":"worker2","xfer_addr":"10.0.0.12:9866","last_contact_s":742}"#;
        let (live, deads) = if dead { ("", node) } else { (node, "") };
        format!(
            r#"{{"clusters":[{{"cluster":"prod","snapshot":{{"cluster":"prod","taken_ms":1,
              "namenode":{{"live":[{live}],"dead":[{deads}]}},
              "ports":[{{"host":"worker2","port":9866,"outcome":"{port}"}}]}}}}]}}"#
        )
    };
    let primary = |snapshot: Option<String>| -> serde_json::Value {
        let mut cmd = faultline(dir.path());
        cmd.args(["diagnose", "--format", "json"]);
        if let Some(s) = snapshot {
            std::fs::write(dir.path().join("status.json"), s).unwrap();
            cmd.args(["--snapshot", "status.json"]);
        }
        let out = cmd.arg("app.log").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["findings"][0].clone()
    };
    let plain = primary(None);
    assert_eq!(plain["fault_type"], "port_unreachable");
    assert!(plain.get("snapshot_evidence").is_none());

    let dead = primary(Some(status(true, "refused")));
    assert_eq!(dead["fault_type"], "datanode_lost", "{dead}");
    assert_eq!(dead["entity"], "worker2:9866");
    assert!(
        dead["diagnosis"]
            .as_str()
            .unwrap()
            .contains("lists DataNode worker2 as dead")
    );
    assert!(
        dead["snapshot_evidence"][0]
            .as_str()
            .unwrap()
            .contains("worker2:9866 as dead")
    );

    let firewall = primary(Some(status(false, "open")));
    assert_eq!(firewall["fault_type"], "port_unreachable");
    assert!(
        firewall["diagnosis"]
            .as_str()
            .unwrap()
            .contains("a firewall between"),
        "{firewall}"
    );
    assert_eq!(firewall["snapshot_evidence"].as_array().unwrap().len(), 2);

    let down = primary(Some(status(false, "refused")));
    assert!(
        down["diagnosis"]
            .as_str()
            .unwrap()
            .contains("nothing listens there"),
        "{down}"
    );

    std::fs::write(dir.path().join("bad.json"), "{\"clusters\": 5}").unwrap();
    let out = faultline(dir.path())
        .args(["diagnose", "--snapshot", "bad.json", "app.log"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading snapshot bad.json"));
}

#[test]
fn token_hash_and_new_give_config_entries() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = faultline(dir.path())
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // SHA-256("abc"), FIPS 180-2.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );

    let out = faultline(dir.path())
        .args(["token", "new", "--name", "flume-prod", "--role", "ingest"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text
        .lines()
        .find(|l| l.starts_with("flt_"))
        .expect("token line");
    // The printed entry is valid configuration and accepts the printed token.
    let entry = &text[text.find("[[auth.tokens]]").expect("entry")..];
    std::fs::write(dir.path().join("faultline.toml"), entry).unwrap();
    let check = faultline(dir.path()).arg("check-config").output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let settings: faultline::config::Settings = toml::from_str(entry).unwrap();
    let auth = faultline::auth::Authenticator::new(&settings.auth).unwrap();
    let who = auth.verify(token).unwrap();
    assert_eq!(
        (who.name.as_str(), who.role),
        ("flume-prod", faultline::auth::Role::Ingest)
    );

    let bad = faultline(dir.path())
        .args(["token", "new", "--name", "x", "--role", "root"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
