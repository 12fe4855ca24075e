//! `cluster_status` snapshots and `exec_logs` in the store, on both backends.

use faultline::cluster::namenode::NameNodeStatus;
use faultline::cluster::snapshot::{ClusterSnapshot, FaultSource, Health, SnapshotFault};
use faultline::rules::compile::Severity;
use faultline::storage::{ExecLog, ExecQuery, Table};

use crate::both_backends;
use crate::helpers::{Backend, metric_value, spawn_app};

fn snapshot(cluster: &str, taken_ms: i64, dead: u64) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster: cluster.into(),
        taken_ms,
        namenode: Some(NameNodeStatus {
            ha_state: Some("active".into()),
            safe_mode: Some(false),
            live_datanodes: Some(3),
            dead_datanodes: Some(dead),
            capacity_total_bytes: Some(u64::MAX), // beyond BIGINT: stored capped
            missing_blocks: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn snapshots_round_trip_page_and_prune(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let store = &app.store;
    for i in 0..5 {
        store
            .insert_snapshot(&snapshot("c1", 1000 + i, i as u64), Health::Degraded)
            .await
            .unwrap();
    }
    store
        .insert_snapshot(&snapshot("c2", 5000, 0), Health::Ok)
        .await
        .unwrap();
    let page = store.snapshot_history("c1", None, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].taken_at, 1004, "newest first");
    assert_eq!(page[0].health, "degraded");
    let nn = page[0].snapshot.namenode.as_ref().unwrap();
    assert_eq!(
        nn.dead_datanodes,
        Some(4),
        "the whole snapshot comes back from details"
    );
    let next = store
        .snapshot_history("c1", Some(page[1].id), 10)
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.taken_at).collect::<Vec<_>>(),
        [1002, 1001, 1000]
    );
    assert_eq!(store.prune_snapshots("c1", 2).await.unwrap(), 3);
    assert_eq!(
        store.snapshot_history("c1", None, 10).await.unwrap().len(),
        2
    );
    assert_eq!(
        store.snapshot_history("c2", None, 10).await.unwrap().len(),
        1,
        "other clusters untouched"
    );
    assert_eq!(store.prune_snapshots("c1", 2).await.unwrap(), 0);
}

async fn exec_logs_are_kept_and_filtered(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let store = &app.store;
    let before = store.count_rows(Table::ExecLogs).await.unwrap();
    let run = |name: &str, status: &str| ExecLog {
        kind: "health_check".into(),
        name: name.into(),
        command: "GET http://nn1:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo".into(),
        args: vec!["-o".into(), "BatchMode=yes".into()],
        cluster: "c1".into(),
        host: "engine".into(),
        target: "nn1:9870".into(),
        trigger_source: "schedule".into(),
        started_at: 1_000,
        finished_at: Some(1_020),
        duration_ms: Some(20),
        status: status.into(),
        http_status: Some(200),
        stdout: "é".repeat(10),
        stderr: String::new(),
        ..Default::default()
    };
    let a = store
        .insert_exec_log(&run("namenode", "success"))
        .await
        .unwrap();
    let b2 = store
        .insert_exec_log(&run("ports", "failed"))
        .await
        .unwrap();
    assert!(b2 > a);
    assert_eq!(store.count_rows(Table::ExecLogs).await.unwrap(), before + 2);
    let failed = store
        .query_exec_logs(&ExecQuery {
            status: Some("failed".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].name, "ports");
    assert_eq!(failed[0].args, r#"["-o","BatchMode=yes"]"#);
    assert_eq!(failed[0].stdout, "é".repeat(10));
    let older = store
        .query_exec_logs(&ExecQuery {
            before_id: Some(b2),
            name: Some("namenode".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].duration_ms, Some(20));
}

fn dead(node: &str) -> SnapshotFault {
    SnapshotFault {
        fault_type: "datanode_lost",
        check: "",
        source: FaultSource::Namenode,
        entity: format!("{node}:9866"),
        host: node.into(),
        severity: Severity::Critical,
        title: format!("DataNode {node}:9866 dead"),
        diagnosis: "dead".into(),
        evidence: vec![format!("DeadNodes {node}:9866: lastContact=742")],
    }
}

async fn snapshot_faults_open_confirm_and_resolve(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let store = &app.store;
    let all = |_: &str| true;
    let first = store
        .apply_snapshot_faults("c1", 1_000, &[dead("w2"), dead("w3")], all)
        .await
        .unwrap();
    assert_eq!((first.opened.len(), first.confirmed.len()), (2, 0));
    let again = store
        .apply_snapshot_faults("c1", 2_000, &[dead("w2"), dead("w3")], all)
        .await
        .unwrap();
    assert_eq!(
        again.confirmed, first.opened,
        "the same faults, not new rows"
    );
    let row = store.get_fault(first.opened[0]).await.unwrap().unwrap();
    assert_eq!(
        (row.source.as_str(), row.occurrences, row.last_seen),
        ("health_check", 2, 2_000)
    );
    assert_eq!(row.fault_type, "datanode_lost");
    // The NameNode was not read: nothing can be called healed.
    let unread = store
        .apply_snapshot_faults("c1", 3_000, &[], |s| s != "namenode")
        .await
        .unwrap();
    assert!(unread.resolved.is_empty());
    // w3 came back.
    let healed = store
        .apply_snapshot_faults("c1", 4_000, &[dead("w2")], all)
        .await
        .unwrap();
    assert_eq!(healed.resolved, [first.opened[1]]);
    let w3 = store.get_fault(first.opened[1]).await.unwrap().unwrap();
    assert_eq!(
        (w3.status.as_str(), w3.resolved_at),
        ("resolved", Some(4_000))
    );
    // Another cluster's faults are not touched.
    let other = store
        .apply_snapshot_faults("c2", 5_000, &[], all)
        .await
        .unwrap();
    assert!(other.resolved.is_empty());
    // w3 dies again: a new fault row (the resolved one stays as history).
    let again = store
        .apply_snapshot_faults("c1", 6_000, &[dead("w2"), dead("w3")], all)
        .await
        .unwrap();
    assert_eq!(again.opened.len(), 1);
    assert_ne!(again.opened[0], first.opened[1]);
    // Counted: three faults opened (not the confirmations), one resolved by a snapshot.
    let m = app.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "faultline_faults_opened_total{fault_type=\"datanode_lost\",severity=\"critical\"}"
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            "faultline_faults_resolved_total{fault_type=\"datanode_lost\",how=\"snapshot\"}"
        ),
        1.0
    );
    // 2 opened, 2 confirmed, 1 confirmed + 1 resolved, 1 confirmed + 1 opened.
    assert_eq!(
        metric_value(
            &m,
            "faultline_storage_rows_written_total{table=\"fault_records\"}"
        ),
        8.0
    );
}

both_backends!(
    snapshots_round_trip_page_and_prune,
    exec_logs_are_kept_and_filtered,
    snapshot_faults_open_confirm_and_resolve,
);
