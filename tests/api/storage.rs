//! The store on its own, on both backends: idempotent inserts (WAL replay), the checkpoint
//! only moving forward, over-long fields, retention, and re-running migrations.

use faultline::domain::{Layout, Level, LogRecord};
use faultline::storage::{LogQuery, Table};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app_with};

/// An app whose retention sweep stays out of the way of these hand-made old rows.
async fn app_without_retention(b: Backend) -> Option<TestApp> {
    spawn_app_with(b, |s| s.database.retention_days = 0).await
}

fn record(id: u64, received_ms: i64, host: &str) -> LogRecord {
    LogRecord {
        id,
        last_seq: id,
        received_ms,
        event_ms: received_ms,
        cluster: "c".into(),
        host: host.into(),
        service: "datanode".into(),
        source_file: String::new(),
        level: Level::Info,
        logger: "a.B".into(),
        thread: String::new(),
        message: format!("message {id} ünïcödé"),
        layout: Layout::Log4j,
        line_count: 1,
    }
}

async fn inserts_are_idempotent_and_checkpoint_only_grows(b: Backend) {
    let Some(app) = app_without_retention(b).await else {
        return;
    };
    let store = &app.store;
    // Ids far above what the app's own WAL hands out, so the pipeline cannot collide.
    let base = 1_000_000u64;
    let batch: Vec<_> = (base..base + 3).map(|i| record(i, 1000, "h")).collect();
    assert_eq!(store.insert_logs(&batch, base + 3, &[]).await.unwrap(), 3);
    assert_eq!(
        store.insert_logs(&batch, base + 2, &[]).await.unwrap(),
        0,
        "replay inserts nothing"
    );
    assert_eq!(
        store.checkpoint().await.unwrap(),
        base + 3,
        "checkpoint never moves back"
    );
    assert_eq!(store.next_log_id().await.unwrap(), base + 3);
    let rows = store
        .query_logs(&LogQuery {
            host: Some("h".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].message, format!("message {} ünïcödé", base + 2));
}

async fn over_long_fields_are_cut_to_fit(b: Backend) {
    let Some(app) = app_without_retention(b).await else {
        return;
    };
    let mut r = record(2_000_000, 1000, &"h".repeat(400));
    r.logger = "é".repeat(300);
    r.message = "m".repeat(3 * 1024 * 1024);
    assert_eq!(app.store.insert_logs(&[r], 0, &[]).await.unwrap(), 1);
    let rows = app
        .store
        .query_logs(&LogQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows[0].host.len(), 255);
    assert!(rows[0].logger.len() <= 255 && rows[0].logger.chars().all(|c| c == 'é'));
    assert_eq!(
        rows[0].message.len(),
        3 * 1024 * 1024,
        "messages are never cut"
    );
}

async fn retention_deletes_only_old_rows(b: Backend) {
    let Some(app) = app_without_retention(b).await else {
        return;
    };
    let base = 3_000_000u64;
    // ids grow with receive time, as the WAL assigns them.
    let rows: Vec<_> = (0..25)
        .map(|i| record(base + i, if i < 17 { 1_000 } else { 9_000 }, "r"))
        .collect();
    app.store.insert_logs(&rows, 0, &[]).await.unwrap();
    let deleted = app
        .store
        .delete_logs_received_before(5_000, 4)
        .await
        .unwrap();
    assert_eq!(deleted, 17);
    assert_eq!(app.store.count_rows(Table::SystemLogs).await.unwrap(), 8);
    assert_eq!(
        app.store
            .delete_logs_received_before(5_000, 4)
            .await
            .unwrap(),
        0
    );
}

async fn migrations_rerun_cleanly_and_create_every_table(b: Backend) {
    let Some(app) = app_without_retention(b).await else {
        return;
    };
    app.store.migrate().await.unwrap();
    for t in [
        Table::SystemLogs,
        Table::FaultRecords,
        Table::ExecLogs,
        Table::ClusterStatus,
    ] {
        assert_eq!(app.store.count_rows(t).await.unwrap(), 0, "{t:?}");
    }
}

/// A replayed batch (crash, stage restart) re-emits its findings: they must not be counted
/// twice; new occurrences from other records (even with lower ids) still are.
async fn replayed_findings_are_not_counted_twice(b: Backend) {
    let Some(app) = app_without_retention(b).await else {
        return;
    };
    let store = &app.store;
    let set = std::sync::Arc::new(
        faultline::rules::load(&faultline::rules::RuleSource::Embedded).unwrap(),
    );
    let mut rec = record(2_000_010, 5000, "nn1");
    rec.message =
        "BLOCK* removeDeadDatanode: lost heartbeat from 10.0.0.9:9866, removeBlocksFromBlockMap true"
            .into();
    let mut correlator = faultline::rules::Correlator::new(set);
    let mut findings = Vec::new();
    correlator.process(&rec, &mut findings);
    assert_eq!(findings.len(), 1);
    let batch = vec![rec.clone()];
    store.insert_batch(&batch, &findings, 0, &[]).await.unwrap();
    store.insert_batch(&batch, &findings, 0, &[]).await.unwrap();
    let faults = store
        .query_faults(&faultline::storage::FaultQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].occurrences, 1, "a replay must not count again");
    // Another record of the same fault with a LOWER id (streams close records out of id
    // order) is a new occurrence.
    let mut earlier = rec.clone();
    earlier.id = 2_000_001;
    earlier.last_seq = earlier.id;
    let mut f2 = findings.clone();
    f2[0].trigger_log_id = earlier.id;
    f2[0].evidence[0].log_id = earlier.id;
    store.insert_batch(&[earlier], &f2, 0, &[]).await.unwrap();
    let row = store.get_fault(faults[0].id).await.unwrap().unwrap();
    assert_eq!(row.occurrences, 2);
    assert_eq!(
        store.fault_log_ids(row.id, 10).await.unwrap(),
        vec![2_000_010, 2_000_001]
    );
    assert_eq!(store.count_rows(Table::FaultRecords).await.unwrap(), 1);
}

both_backends!(
    replayed_findings_are_not_counted_twice,
    inserts_are_idempotent_and_checkpoint_only_grows,
    over_long_fields_are_cut_to_fit,
    retention_deletes_only_old_rows,
    migrations_rerun_cleanly_and_create_every_table,
);
