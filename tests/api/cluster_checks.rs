//! The checks against the simulated cluster (`hadoop_sim`): each injected fault shows in the
//! snapshot's faults, healing clears it, bad answers fail the check with a clear message,
//! and every run is an exec log.

use std::time::Duration;

use faultline::cluster::checks::{self, CheckContext};
use faultline::cluster::settings::{ClusterSettings, PortSettings};
use faultline::cluster::snapshot::{ClusterSnapshot, PortOutcome, Thresholds};

use crate::hadoop_sim::{Answer, HadoopSim};

fn ctx() -> CheckContext {
    CheckContext::new(Duration::from_millis(800), 4096, "api")
}

fn cluster(sim: &HadoopSim) -> ClusterSettings {
    sim.cluster_settings()
}

/// One poll of everything HTTP, as the scheduler will take it.
async fn snapshot(sim: &HadoopSim, logs: &mut Vec<faultline::storage::ExecLog>) -> ClusterSnapshot {
    let c = cluster(sim);
    let ctx = ctx();
    let mut snap = ClusterSnapshot {
        cluster: c.name.clone(),
        ..Default::default()
    };
    match checks::poll_namenode(&ctx, &c, logs).await {
        Ok((addr, nn)) => {
            snap.namenode_address = Some(addr);
            snap.namenode = Some(nn);
        }
        Err(e) => snap.errors.push(faultline::cluster::snapshot::SourceError {
            source: "namenode".into(),
            message: e,
        }),
    }
    if let Ok(rm) = checks::poll_resourcemanager(&ctx, &c, logs).await {
        snap.resourcemanager = Some(rm);
    }
    for a in &c.flume_agents {
        if let Ok(f) = checks::poll_flume(&ctx, &c.name, &a.name, &a.url, logs).await {
            snap.flume.push(f);
        }
    }
    snap
}

fn fault_types(s: &ClusterSnapshot, prev: &[ClusterSnapshot]) -> Vec<(String, String)> {
    s.faults(prev, &Thresholds::default())
        .into_iter()
        .map(|f| (f.fault_type.to_string(), f.entity))
        .collect()
}

#[actix_web::test]
async fn injected_faults_show_and_heal() {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let mut logs = Vec::new();
    let healthy = snapshot(&sim, &mut logs).await;
    assert!(healthy.errors.is_empty(), "{:?}", healthy.errors);
    assert_eq!(fault_types(&healthy, &[]), Vec::<(String, String)>::new());
    // 4 NameNode beans + 3 RM paths + 1 Flume = 8 runs, all logged as successes.
    assert_eq!(logs.len(), 8);
    assert!(
        logs.iter()
            .all(|l| l.status == "success" && l.http_status == Some(200))
    );

    sim.set(|s| {
        s.dead_datanodes.insert("worker2".into());
        s.lost_nodemanagers.insert("worker3".into());
        s.safe_mode = true;
    });
    let bad = snapshot(&sim, &mut logs).await;
    let got = fault_types(&bad, &[]);
    for want in [
        ("datanode_lost", "worker2:9866"),
        ("nodemanager_lost", "worker3"),
        // The NameNode as it names itself (HostAndPort master:9000).
        ("namenode_safemode", "master"),
    ] {
        assert!(
            got.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {got:?}"
        );
    }

    sim.set(|s| *s = Default::default());
    let healed = snapshot(&sim, &mut logs).await;
    assert_eq!(fault_types(&healed, &[]), Vec::<(String, String)>::new());
    let changes = healed.changes_since(&bad);
    assert!(
        changes
            .iter()
            .any(|c| c.name == "hdfs.dead" && c.before.as_deref() == Some("worker2:9866"))
    );
    sim.stop().await;
}

#[actix_web::test]
async fn a_full_channel_is_a_backlog_after_three_polls() {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    sim.set(|s| s.flume_fill_percent = 99.5);
    let mut logs = Vec::new();
    let mut history: Vec<ClusterSnapshot> = Vec::new();
    for poll in 1..=3 {
        let s = snapshot(&sim, &mut logs).await;
        let backlog = fault_types(&s, &history)
            .iter()
            .any(|(t, e)| t == "flume_backlog" && e == "agent1/c1");
        assert_eq!(backlog, poll == 3, "poll {poll}");
        history.insert(0, s);
    }
}

#[actix_web::test]
async fn the_active_namenode_is_read_under_ha() {
    let (Some(standby), Some(active)) = (HadoopSim::start().await, HadoopSim::start().await) else {
        return;
    };
    standby.set(|s| s.standby = true);
    active.set(|s| {
        s.dead_datanodes.insert("worker4".into());
    });
    let c = ClusterSettings {
        namenodes: vec![standby.base.clone(), active.base.clone()],
        ..cluster(&standby)
    };
    let mut logs = Vec::new();
    let (addr, nn) = checks::poll_namenode(&ctx(), &c, &mut logs).await.unwrap();
    assert_eq!(addr, active.base);
    assert_eq!(nn.dead[0].name, "worker4:9866");
    // Both NameNodes were asked; the standby's answers are logged too.
    assert_eq!(logs.len(), 8);
}

#[actix_web::test]
async fn bad_answers_fail_the_check_with_a_clear_message() {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    let c = cluster(&sim);
    let cases: [(Answer, &str, &str); 3] = [
        (Answer::HtmlError, "HTTP 500", "failed"),
        (Answer::Truncated, "truncated JSON", "failed"),
        (
            Answer::Slow(Duration::from_secs(3)),
            "no answer within",
            "timeout",
        ),
    ];
    for (answer, message, status) in cases {
        sim.set(|s| s.answer = answer);
        let mut logs = Vec::new();
        let err = checks::poll_namenode(&ctx(), &c, &mut logs)
            .await
            .unwrap_err();
        assert!(err.contains(message), "{answer:?}: {err}");
        let last = logs.last().unwrap();
        assert_eq!(last.status, status, "{answer:?}");
        assert!(last.stderr.contains(message), "{answer:?}: {}", last.stderr);
        let err = checks::poll_flume(
            &ctx(),
            "sim",
            "agent1",
            &format!("{}/metrics", sim.base),
            &mut logs,
        )
        .await
        .unwrap_err();
        assert!(err.contains(message), "{answer:?} flume: {err}");
    }
    // A bare NaN is read as unknown, not as a failure and not as 0.
    sim.set(|s| s.answer = Answer::WithNaN);
    let mut logs = Vec::new();
    let (_, nn) = checks::poll_namenode(&ctx(), &c, &mut logs).await.unwrap();
    assert_eq!(nn.corrupt_blocks, None);
    assert_eq!(nn.under_replicated_blocks, Some(0));
    assert!(logs.iter().all(|l| l.status == "success"));
}

#[actix_web::test]
async fn ports_refused_and_open() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = ClusterSettings {
        name: "sim".into(),
        ports: vec![
            PortSettings {
                host: "127.0.0.1".into(),
                port: open,
                service: "datanode-data".into(),
            },
            PortSettings {
                host: "127.0.0.1".into(),
                port: closed,
                service: "namenode-rpc".into(),
            },
        ],
        ..Default::default()
    };
    let mut logs = Vec::new();
    let probes = checks::probe_ports(&ctx(), &c, &mut logs).await;
    assert_eq!(probes[0].outcome, PortOutcome::Open);
    assert_eq!(probes[1].outcome, PortOutcome::Refused);
    assert_eq!(
        logs.iter().map(|l| l.status.as_str()).collect::<Vec<_>>(),
        ["success", "failed"]
    );
    let snap = ClusterSnapshot {
        ports: probes,
        ..Default::default()
    };
    assert_eq!(
        fault_types(&snap, &[]),
        [(
            "port_unreachable".to_string(),
            format!("127.0.0.1:{closed}")
        )]
    );
    drop(listener);
}

/// A real `sshd` on a loopback port (`FAULTLINE_TEST_SSHD`, set by `.ci/run`; required under
/// CI), with its own host and user keys: the batch-mode check succeeds with the right key,
/// and fails as `ssh_auth` with another key or an unknown host key.
#[actix_web::test]
async fn ssh_batch_mode_against_a_real_sshd() {
    let sshd = match std::env::var("FAULTLINE_TEST_SSHD") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but FAULTLINE_TEST_SSHD is not set")
        }
        _ => return,
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keygen = |name: &str| {
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join(name))
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-keygen {name}");
    };
    for k in ["host_key", "user_key", "other_key"] {
        keygen(k);
    }
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nPidFile {0}/sshd.pid\n",
            d.display()
        ),
    )
    .unwrap();
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut daemon = std::process::Command::new(&sshd)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .spawn()
        .expect("start sshd");
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
    )
    .unwrap();
    std::fs::write(d.join("empty_known_hosts"), "").unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cluster = |key: &str, known: &str| ClusterSettings {
        name: "sim".into(),
        workers: vec!["127.0.0.1".into()],
        ssh_user: user.clone(),
        ssh_key: d.join(key).display().to_string(),
        ssh_known_hosts: d.join(known).display().to_string(),
        ssh_port: port,
        ..Default::default()
    };
    let ctx = CheckContext::new(Duration::from_secs(5), 4096, "api");
    let ssh = std::path::Path::new("ssh");
    let mut logs = Vec::new();
    let ok = checks::ssh_checks(&ctx, &cluster("user_key", "known_hosts"), ssh, &mut logs).await;
    assert!(ok[0].ok, "{:?}", ok[0]);
    assert_eq!(logs[0].status, "success");
    assert!(logs[0].args.contains(&"BatchMode=yes".to_string()));

    let denied =
        checks::ssh_checks(&ctx, &cluster("other_key", "known_hosts"), ssh, &mut logs).await;
    assert!(!denied[0].ok);
    assert_eq!(denied[0].exit_code, Some(255));
    assert!(
        denied[0].output.contains("Permission denied"),
        "{}",
        denied[0].output
    );
    let unknown = checks::ssh_checks(
        &ctx,
        &cluster("user_key", "empty_known_hosts"),
        ssh,
        &mut logs,
    )
    .await;
    assert!(
        unknown[0].output.contains("Host key verification failed"),
        "{}",
        unknown[0].output
    );

    let snap = ClusterSnapshot {
        ssh: denied,
        ..Default::default()
    };
    assert_eq!(
        fault_types(&snap, &[]),
        [("ssh_auth".to_string(), "127.0.0.1".to_string())]
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[actix_web::test]
async fn the_node_list_asks_for_every_state_the_rm_knows() {
    let Some(sim) = HadoopSim::start().await else {
        return;
    };
    sim.set(|s| {
        s.lost_nodemanagers.insert("worker3".into());
    });
    let mut logs = Vec::new();
    let rm = checks::poll_resourcemanager(&ctx(), &cluster(&sim), &mut logs)
        .await
        .unwrap();
    assert!(
        logs[2]
            .command
            .contains("states=NEW,RUNNING,UNHEALTHY,DECOMMISSIONED,LOST")
    );
    assert_eq!(rm.hosts_in("LOST")[0].host, "worker3");
    // An RM that does not know a state answers an error, read as a failed check.
    let body = reqwest::get(format!("{}/ws/v1/cluster/nodes?states=BOGUS", sim.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut status = faultline::cluster::resourcemanager::RmStatus::default();
    let e = status.absorb(&body).unwrap_err().to_string();
    assert!(e.contains("Invalid node state: BOGUS"), "{e}");
}

/// A port whose accept queue is full drops new SYNs, as a filtering firewall does: the
/// engine's connect times out.
#[actix_web::test]
async fn a_filtered_port_times_out() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // SAFETY: `listen` on a socket this test owns; it only shortens the accept queue.
    unsafe { libc::listen(listener.as_raw_fd(), 0) };
    // Fill the queue (never accepted).
    let mut held = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(200),
        ) {
            held.push(s);
        }
    }
    let t = faultline::cluster::settings::ProbeTarget {
        host: "127.0.0.1".into(),
        port,
        service: "datanode-data".into(),
    };
    let probe = checks::probe_port(&t, Duration::from_millis(300)).await;
    assert_eq!(probe.outcome, PortOutcome::Timeout, "{probe:?}");
    let snap = ClusterSnapshot {
        ports: vec![probe],
        ..Default::default()
    };
    let f = snap.faults(&[], &Thresholds::default());
    assert!(f[0].diagnosis.contains("timed out") && f[0].diagnosis.contains("firewall"));
    drop(held);
}
