//! `cluster_status` (snapshots) and `exec_logs` (every check, script and remediation run).

use serde::Serialize;
use sqlx::{QueryBuilder, Row};

use super::faults::LastInsertId as _;
use super::{MAX_CLUSTER, MAX_HOST, Store, StoreError, StoreOp, Table, truncate_str};
use crate::cluster::snapshot::{ClusterSnapshot, Health};
use crate::metrics::Resolution;

/// One run of a health check, script or remediation, as `exec_logs` keeps it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecLog {
    /// `health_check`, `script`, `remediation`.
    pub kind: String,
    /// The check's name (`namenode`, `ports`, a script's file name, ...).
    pub name: String,
    /// What ran: a URL fetched, or the program (arguments apart, in `args`).
    pub command: String,
    pub args: Vec<String>,
    pub cluster: String,
    /// Where it ran from (`engine`, or the host an SSH command ran on).
    pub host: String,
    /// What it looked at: `nn1:9870`, `worker3:9866`, ...
    pub target: String,
    /// `schedule`, `api`, or `fault:<id>`.
    pub trigger_source: String,
    pub fault_id: Option<i64>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    /// `success`, `failed`, `timeout`, `skipped`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub http_status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ExecLogRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub command: String,
    pub args: String,
    pub cluster: String,
    pub host: String,
    pub target: String,
    pub trigger_source: String,
    pub fault_id: Option<i64>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub status: String,
    pub exit_code: Option<i32>,
    pub http_status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

const EXEC_COLUMNS: &str = "id, kind, name, command, args, cluster, host, target, \
    trigger_source, fault_id, requested_by, approved_by, started_at, finished_at, duration_ms, \
    status, exit_code, http_status, stdout, stderr";

/// Filters of the exec log listing; newest first.
#[derive(Debug, Clone, Default)]
pub struct ExecQuery {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub cluster: Option<String>,
    pub status: Option<String>,
    /// Runs about one fault (remediations, refusals).
    pub fault_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// A stored snapshot: the summary columns, and the whole snapshot back from `details`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SnapshotRow {
    pub id: i64,
    pub taken_at: i64,
    pub cluster: String,
    pub health: String,
    pub snapshot: ClusterSnapshot,
}

/// Text columns are cut to this (MEDIUMTEXT holds 16 MiB; outputs are cut much earlier).
const MAX_OUTPUT: usize = 1024 * 1024;

fn i32_of(n: Option<u64>) -> Option<i32> {
    n.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

fn i64_of(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl Store {
    pub async fn insert_exec_log(&self, e: &ExecLog) -> Result<i64, StoreError> {
        let args = serde_json::to_string(&e.args).unwrap_or_else(|_| "[]".into());
        let id = with_pool!(self, StoreOp::ExecLog, pool => {
            sqlx::query(
                "INSERT INTO exec_logs (kind, name, command, args, cluster, host, target, \
                 trigger_source, fault_id, requested_by, approved_by, started_at, finished_at, \
                 duration_ms, status, exit_code, http_status, stdout, stderr) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(truncate_str(&e.kind, 32))
            .bind(truncate_str(&e.name, 128))
            .bind(truncate_str(&e.command, 65_535 / 4))
            .bind(args)
            .bind(truncate_str(&e.cluster, MAX_CLUSTER))
            .bind(truncate_str(&e.host, MAX_HOST))
            .bind(truncate_str(&e.target, MAX_HOST))
            .bind(truncate_str(&e.trigger_source, 64))
            .bind(e.fault_id)
            .bind(e.requested_by.as_deref().map(|s| truncate_str(s, 128)))
            .bind(e.approved_by.as_deref().map(|s| truncate_str(s, 128)))
            .bind(e.started_at)
            .bind(e.finished_at)
            .bind(e.duration_ms)
            .bind(truncate_str(&e.status, 16))
            .bind(e.exit_code)
            .bind(e.http_status)
            .bind(truncate_str(&e.stdout, MAX_OUTPUT))
            .bind(truncate_str(&e.stderr, MAX_OUTPUT))
            .execute(pool)
            .await?
            .last_insert_id_i64()
        });
        self.wrote(Table::ExecLogs, 1);
        Ok(id)
    }

    pub async fn get_exec_log(&self, id: i64) -> Result<Option<ExecLogRow>, StoreError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, ExecLogRow>(sqlx::AssertSqlSafe(format!("SELECT {EXEC_COLUMNS} FROM exec_logs WHERE id = ?")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    pub async fn query_exec_logs(&self, q: &ExecQuery) -> Result<Vec<ExecLogRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            let mut qb = QueryBuilder::new(format!("SELECT {EXEC_COLUMNS} FROM exec_logs WHERE 1 = 1"));
            if let Some(k) = &q.kind {
                qb.push(" AND kind = ").push_bind(k.clone());
            }
            if let Some(n) = &q.name {
                qb.push(" AND name = ").push_bind(n.clone());
            }
            if let Some(c) = &q.cluster {
                qb.push(" AND cluster = ").push_bind(c.clone());
            }
            if let Some(s) = &q.status {
                qb.push(" AND status = ").push_bind(s.clone());
            }
            if let Some(f) = q.fault_id {
                qb.push(" AND fault_id = ").push_bind(f);
            }
            if let Some(id) = q.before_id {
                qb.push(" AND id < ").push_bind(id);
            }
            qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(q.limit));
            qb.build_query_as::<ExecLogRow>().fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// Store a snapshot with its derived health; returns its id.
    pub async fn insert_snapshot(
        &self,
        s: &ClusterSnapshot,
        health: Health,
    ) -> Result<i64, StoreError> {
        let details = serde_json::to_string(s).unwrap_or_else(|_| "{}".into());
        let nn = s.namenode.as_ref();
        let rm = s.resourcemanager.as_ref();
        let flume_max = s
            .flume
            .iter()
            .filter_map(|a| a.fullest().and_then(|c| c.fill_percent))
            .fold(None, |m: Option<f64>, f| Some(m.map_or(f, |m| m.max(f))));
        let id = with_pool!(self, StoreOp::Snapshot, pool => {
            sqlx::query(
                "INSERT INTO cluster_status (taken_at, cluster, namenode_state, live_datanodes, \
                 dead_datanodes, stale_datanodes, decommissioning_datanodes, capacity_total_bytes, \
                 capacity_used_bytes, capacity_remaining_bytes, under_replicated_blocks, \
                 missing_blocks, corrupt_blocks, safe_mode, active_nodemanagers, \
                 lost_nodemanagers, unhealthy_nodemanagers, apps_pending, apps_failed, \
                 flume_max_fill_percent, health, details) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(s.taken_ms)
            .bind(truncate_str(&s.cluster, MAX_CLUSTER))
            .bind(nn.and_then(|n| n.ha_state.as_deref()).map(|h| truncate_str(h, 32)))
            .bind(i32_of(nn.and_then(|n| n.live_datanodes)))
            .bind(i32_of(nn.and_then(|n| n.dead_datanodes)))
            .bind(i32_of(nn.and_then(|n| n.stale_datanodes)))
            .bind(i32_of(nn.and_then(|n| n.decommissioning_datanodes)))
            .bind(i64_of(nn.and_then(|n| n.capacity_total_bytes)))
            .bind(i64_of(nn.and_then(|n| n.capacity_used_bytes)))
            .bind(i64_of(nn.and_then(|n| n.capacity_remaining_bytes)))
            .bind(i64_of(nn.and_then(|n| n.under_replicated_blocks)))
            .bind(i64_of(nn.and_then(|n| n.missing_blocks)))
            .bind(i64_of(nn.and_then(|n| n.corrupt_blocks)))
            .bind(nn.and_then(|n| n.safe_mode).map(i16::from))
            .bind(i32_of(rm.and_then(|r| r.active_nodes)))
            .bind(i32_of(rm.and_then(|r| r.lost_nodes)))
            .bind(i32_of(rm.and_then(|r| r.unhealthy_nodes)))
            .bind(i32_of(rm.and_then(|r| r.apps_pending)))
            .bind(i32_of(rm.and_then(|r| r.apps_failed)))
            .bind(flume_max)
            .bind(health.as_str())
            .bind(details)
            .execute(pool)
            .await?
            .last_insert_id_i64()
        });
        self.wrote(Table::ClusterStatus, 1);
        Ok(id)
    }

    /// A cluster's snapshots, newest first (before `before_id` when given).
    pub async fn snapshot_history(
        &self,
        cluster: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<SnapshotRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            let mut qb = QueryBuilder::new(
                "SELECT id, taken_at, cluster, health, details FROM cluster_status WHERE cluster = ",
            );
            qb.push_bind(cluster.to_string());
            if let Some(id) = before_id {
                qb.push(" AND id < ").push_bind(id);
            }
            qb.push(" ORDER BY taken_at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
            let raw = qb.build().fetch_all(pool).await?;
            raw.iter()
                .map(|r| -> Result<SnapshotRow, sqlx::Error> {
                    let details: String = r.try_get("details")?;
                    Ok(SnapshotRow {
                        id: r.try_get("id")?,
                        taken_at: r.try_get("taken_at")?,
                        cluster: r.try_get("cluster")?,
                        health: r.try_get("health")?,
                        // A row this version cannot read back keeps its summary columns.
                        snapshot: serde_json::from_str(&details).unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Delete a cluster's snapshots beyond the newest `keep`. Returns rows deleted.
    pub async fn prune_snapshots(&self, cluster: &str, keep: u32) -> Result<u64, StoreError> {
        let newest = self.snapshot_history(cluster, None, keep.max(1)).await?;
        let Some(oldest_kept) = newest.last().filter(|_| newest.len() as u32 >= keep.max(1)) else {
            return Ok(0);
        };
        let n = with_pool!(self, StoreOp::Snapshot, pool => {
            sqlx::query("DELETE FROM cluster_status WHERE cluster = ? AND id < ?")
                .bind(cluster)
                .bind(oldest_kept.id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}

/// What [`Store::apply_snapshot_faults`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    description = "What a snapshot did to the fault records: faults opened, confirmed and resolved."
)]
pub struct SnapshotFaultOutcome {
    /// Fault ids opened by this snapshot.
    pub opened: Vec<i64>,
    /// Open faults (from logs or earlier snapshots) this snapshot confirmed.
    pub confirmed: Vec<i64>,
    /// Faults this snapshot shows healed.
    pub resolved: Vec<i64>,
}

impl Store {
    /// Record the faults a snapshot shows, in one transaction, through the same identity as
    /// log findings: an open fault with the fingerprint is confirmed (occurrences, last_seen,
    /// the snapshot values in its evidence), else a fault is opened (source `health_check`).
    /// Then every open fault of `cluster` that a snapshot confirmed before, whose part
    /// (`snapshot_source`) `covered` says was read now, and which is no longer shown, is
    /// resolved at `taken_ms`.
    pub async fn apply_snapshot_faults(
        &self,
        cluster: &str,
        taken_ms: i64,
        faults: &[crate::cluster::snapshot::SnapshotFault],
        covered: impl Fn(&str) -> bool,
    ) -> Result<SnapshotFaultOutcome, StoreError> {
        use super::faults::{MAX_TEXT, stored_fingerprint};
        let kind = self.kind();
        let select = match kind {
            crate::config::DbKind::MySql => {
                "SELECT id, evidence FROM fault_records WHERE open_fingerprint = ? FOR UPDATE"
            }
            crate::config::DbKind::Sqlite => {
                "SELECT id, evidence FROM fault_records WHERE open_fingerprint = ?"
            }
        };
        let now = crate::now_ms();
        let mut out = SnapshotFaultOutcome::default();
        let mut shown: Vec<String> = Vec::new();
        // For the metrics, once committed: (type, severity) opened, types resolved.
        let mut opened: Vec<(&str, &str)> = Vec::new();
        let mut resolved: Vec<String> = Vec::new();
        with_pool!(self, StoreOp::Snapshot, pool => {
            let mut tx = pool.begin().await?;
            for f in faults {
                let fp = stored_fingerprint(&f.fingerprint(cluster));
                shown.push(fp.clone());
                let snapshot = serde_json::json!({
                    "taken_at": taken_ms,
                    "values": f.evidence,
                });
                let existing: Option<(i64, String)> =
                    sqlx::query_as(select).bind(&fp).fetch_optional(&mut *tx).await?;
                match existing {
                    Some((id, evidence)) => {
                        let mut v: serde_json::Value = serde_json::from_str(&evidence)
                            .unwrap_or_else(|_| serde_json::json!({}));
                        if let Some(o) = v.as_object_mut() {
                            o.insert("snapshot_source".into(), f.source.key().into());
                            o.insert("snapshot".into(), snapshot);
                        }
                        sqlx::query(
                            "UPDATE fault_records SET occurrences = occurrences + 1, \
                             last_seen = CASE WHEN last_seen > ? THEN last_seen ELSE ? END, \
                             evidence = ?, updated_at = ? WHERE id = ?",
                        )
                        .bind(taken_ms)
                        .bind(taken_ms)
                        .bind(v.to_string())
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        out.confirmed.push(id);
                    }
                    None => {
                        let evidence = serde_json::json!({
                            "rule_id": null,
                            "entity": f.entity,
                            "check": f.check,
                            "snapshot_source": f.source.key(),
                            "snapshot": snapshot,
                            "records": [],
                        });
                        let id = sqlx::query(
                            "INSERT INTO fault_records (fingerprint, open_fingerprint, fault_type, \
                             severity, status, source, cluster, host, service, title, root_cause, \
                             remediation, evidence, occurrences, first_seen, last_seen, created_at, \
                             updated_at, last_log_id) \
                             VALUES (?, ?, ?, ?, 'open', 'health_check', ?, ?, '', ?, ?, '[]', ?, 1, ?, ?, ?, ?, 0)",
                        )
                        .bind(&fp)
                        .bind(&fp)
                        .bind(f.fault_type)
                        .bind(f.severity.as_str())
                        .bind(truncate_str(cluster, MAX_CLUSTER))
                        .bind(truncate_str(&f.host, MAX_HOST))
                        .bind(truncate_str(&f.title, 512))
                        .bind(truncate_str(&f.diagnosis, MAX_TEXT))
                        .bind(evidence.to_string())
                        .bind(taken_ms)
                        .bind(taken_ms)
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .last_insert_id_i64();
                        out.opened.push(id);
                        opened.push((f.fault_type, f.severity.as_str()));
                    }
                }
            }
            let open: Vec<(i64, String, String, String)> = sqlx::query_as(
                "SELECT id, open_fingerprint, evidence, fault_type FROM fault_records \
                 WHERE cluster = ? AND open_fingerprint IS NOT NULL",
            )
            .bind(truncate_str(cluster, MAX_CLUSTER))
            .fetch_all(&mut *tx)
            .await?;
            for (id, fp, evidence, fault_type) in open {
                if shown.contains(&fp) {
                    continue;
                }
                let source = serde_json::from_str::<serde_json::Value>(&evidence)
                    .ok()
                    .and_then(|v| v.get("snapshot_source")?.as_str().map(str::to_string));
                if !source.is_some_and(|s| covered(&s)) {
                    continue;
                }
                sqlx::query(
                    "UPDATE fault_records SET status = 'resolved', resolved_at = ?, \
                     open_fingerprint = NULL, updated_at = ? WHERE id = ?",
                )
                .bind(taken_ms)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                out.resolved.push(id);
                resolved.push(fault_type);
            }
            tx.commit().await?;
        });
        let written = out.opened.len() + out.confirmed.len() + out.resolved.len();
        self.wrote(Table::FaultRecords, written as u64);
        if let Some(m) = self.metrics() {
            for (fault_type, severity) in opened {
                m.fault_opened(fault_type, severity);
            }
            for fault_type in &resolved {
                m.fault_resolved(fault_type, Resolution::Snapshot);
            }
        }
        Ok(out)
    }
}
