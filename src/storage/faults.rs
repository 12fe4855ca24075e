//! `fault_records` and `fault_evidence`: upserting findings (inside the log batch's
//! transaction), listing, reading, acknowledging and resolving faults.
//!
//! Identity: a fault is its fingerprint (rule id + cluster + entity). While a fault is open (or
//! acknowledged) `open_fingerprint` holds the fingerprint, so a repeat updates that row
//! (occurrences, last_seen, evidence). Resolving clears `open_fingerprint`: when the fault comes
//! back it opens a NEW row and the resolved one stays as history.

use serde::Serialize;
use sqlx::QueryBuilder;

use super::{MAX_CLUSTER, MAX_HOST, MAX_SERVICE, Store, StoreError, StoreOp, Table, truncate_str};
use crate::metrics::Resolution;
use crate::rules::Finding;

/// Most evidence records kept in a fault's `evidence` JSON (the first half and the latest).
pub(crate) const MAX_EVIDENCE_RECORDS: usize = 20;
const MAX_FINGERPRINT: usize = 128;
const MAX_TITLE: usize = 512;
const MAX_FAULT_TYPE: usize = 64;

/// The fingerprint as stored: at most 128 bytes (a long one keeps its head plus a hash).
pub(crate) fn stored_fingerprint(fp: &str) -> String {
    if fp.len() <= MAX_FINGERPRINT {
        return fp.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in fp.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}~{h:016x}", truncate_str(fp, MAX_FINGERPRINT - 17))
}

/// Longest `root_cause` / `remediation` text stored (MySQL `TEXT` holds 64 KiB).
pub(crate) const MAX_TEXT: usize = 16 * 1024;

/// The remediation steps as a JSON array that fits a `TEXT` column (steps cut if needed).
pub(crate) fn remediation_json(steps: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut budget = MAX_TEXT;
    for step in steps {
        let cut = truncate_str(step, budget.saturating_sub(16).min(2048));
        if cut.is_empty() {
            break;
        }
        budget = budget.saturating_sub(cut.len() + 16);
        kept.push(cut);
    }
    serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into())
}

/// The `evidence` JSON of a new fault.
pub(crate) fn new_evidence(f: &Finding) -> String {
    serde_json::json!({
        "rule_id": f.rule_id,
        "entity": f.entity,
        "captures": f.captures,
        "references": f.references,
        "records": f.evidence,
        "snapshot_values": f.snapshot_evidence,
    })
    .to_string()
}

/// `existing` evidence JSON with `f`'s records appended (bounded: the first records and the
/// latest ones are kept) and its captures as the latest.
pub(crate) fn merge_evidence(existing: &str, f: &Finding) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(existing).unwrap_or_else(|_| serde_json::json!({}));
    let Some(obj) = v.as_object_mut() else {
        return new_evidence(f);
    };
    let mut records: Vec<serde_json::Value> = obj
        .get("records")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    for e in &f.evidence {
        let dup = records
            .iter()
            .any(|r| r.get("log_id").and_then(|x| x.as_u64()) == Some(e.log_id));
        if !dup {
            records.push(serde_json::to_value(e).unwrap_or(serde_json::Value::Null));
        }
    }
    if records.len() > MAX_EVIDENCE_RECORDS {
        let keep_head = MAX_EVIDENCE_RECORDS / 2;
        let tail_from = records.len() - (MAX_EVIDENCE_RECORDS - keep_head);
        let mut kept: Vec<serde_json::Value> = records[..keep_head].to_vec();
        kept.extend_from_slice(&records[tail_from..]);
        records = kept;
    }
    obj.insert("records".into(), serde_json::Value::Array(records));
    // The latest captures, but the first template: it is the fault's escalation group
    // (`template_key`), which an escalate rule's later messages must not drift from.
    let first_template = obj.get("captures").and_then(|c| c.get("template")).cloned();
    let mut captures = serde_json::to_value(&f.captures).unwrap_or_default();
    if let (Some(t), Some(c)) = (first_template, captures.as_object_mut()) {
        c.insert("template".into(), t);
    }
    obj.insert("captures".into(), captures);
    if !f.snapshot_evidence.is_empty() {
        obj.insert(
            "snapshot_values".into(),
            serde_json::to_value(&f.snapshot_evidence).unwrap_or_default(),
        );
    }
    v.to_string()
}

/// What [`upsert_finding!`] did with one finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Upserted {
    /// A new fault record (no open fault had the fingerprint).
    pub opened: bool,
    /// The fault record was inserted or updated (not a replay).
    pub written: bool,
    /// Evidence links inserted.
    pub evidence: u64,
}

/// The upserts of one transaction, counted once it commits.
#[derive(Debug, Default)]
pub(crate) struct UpsertTotals<'a> {
    /// (fault type, severity) of each fault opened.
    pub opened: Vec<(&'a str, &'static str)>,
    pub fault_rows: u64,
    pub evidence_rows: u64,
}

impl<'a> UpsertTotals<'a> {
    pub fn add(&mut self, f: &'a Finding, done: Upserted) {
        if done.opened {
            self.opened.push((&f.fault_type, f.severity.as_str()));
        }
        self.fault_rows += u64::from(done.written);
        self.evidence_rows += done.evidence;
    }
}

impl Store {
    /// Count a committed transaction's upserts: rows written and faults opened.
    pub(crate) fn counted_upserts(&self, t: &UpsertTotals<'_>) {
        self.wrote(Table::FaultRecords, t.fault_rows);
        self.wrote(Table::FaultEvidence, t.evidence_rows);
        if let Some(m) = self.metrics() {
            for (fault_type, severity) in &t.opened {
                m.fault_opened(fault_type, severity);
            }
        }
    }
}

/// Upsert one finding inside an open transaction (`$conn`: `&mut *tx`); evaluates to an
/// [`Upserted`]. A macro because the transaction type differs per backend (it expands inside
/// `with_pool!`).
macro_rules! upsert_finding {
    ($kind:expr, $conn:expr, $f:expr) => {{
        let f: &$crate::rules::Finding = $f;
        let now = $crate::now_ms();
        let fp = $crate::storage::faults::stored_fingerprint(&f.fingerprint);
        let select = match $kind {
            $crate::config::DbKind::MySql => "SELECT id, last_log_id, evidence FROM fault_records WHERE open_fingerprint = ? FOR UPDATE",
            $crate::config::DbKind::Sqlite => "SELECT id, last_log_id, evidence FROM fault_records WHERE open_fingerprint = ?",
        };
        let existing: Option<(i64, i64, String)> = sqlx::query_as(select)
        .bind(&fp)
        .fetch_optional($conn)
        .await?;
        let trigger = f.trigger_log_id as i64;
        let mut fault_id: Option<i64> = None;
        let mut done = $crate::storage::faults::Upserted::default();
        if let Some((id, _last_log_id, evidence)) = existing {
            // A replay (after a crash or a stage restart) re-emits findings of records already
            // counted: their trigger record is already linked to this fault.
            let counted: Option<(i64,)> = sqlx::query_as(
                "SELECT log_id FROM fault_evidence WHERE fault_id = ? AND log_id = ?",
            )
            .bind(id)
            .bind(trigger)
            .fetch_optional($conn)
            .await?;
            if counted.is_none() {
                let merged = $crate::storage::faults::merge_evidence(&evidence, f);
                let res = sqlx::query(
                    "UPDATE fault_records SET occurrences = occurrences + ?, \
                     last_seen = CASE WHEN last_seen > ? THEN last_seen ELSE ? END, \
                     first_seen = CASE WHEN first_seen < ? THEN first_seen ELSE ? END, \
                     last_log_id = CASE WHEN last_log_id > ? THEN last_log_id ELSE ? END, \
                     evidence = ?, root_cause = CASE WHEN source = 'llm' THEN root_cause ELSE ? END, \
                     updated_at = ? \
                     WHERE id = ? AND open_fingerprint IS NOT NULL",
                )
                .bind(f.occurrences as i64)
                .bind(f.last_ms)
                .bind(f.last_ms)
                .bind(f.first_ms)
                .bind(f.first_ms)
                .bind(trigger)
                .bind(trigger)
                .bind(merged)
                .bind($crate::storage::truncate_str(&f.diagnosis, $crate::storage::faults::MAX_TEXT))
                .bind(now)
                .bind(id)
                .execute($conn)
                .await?;
                if res.rows_affected() > 0 {
                    fault_id = Some(id);
                }
            }
            // else: a replayed finding, already counted.
        } else {
            let res = sqlx::query(
                "INSERT INTO fault_records (fingerprint, open_fingerprint, fault_type, severity, \
                 status, source, cluster, host, service, title, root_cause, remediation, evidence, \
                 occurrences, first_seen, last_seen, created_at, updated_at, last_log_id, \
                 template_key) \
                 VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&fp)
            .bind(&fp)
            .bind($crate::storage::truncate_str(&f.fault_type, 64))
            .bind(f.severity.as_str())
            .bind(f.source.as_str())
            .bind($crate::storage::truncate_str(&f.cluster, 64))
            .bind($crate::storage::truncate_str(&f.host, 255))
            .bind($crate::storage::truncate_str(&f.service, 64))
            .bind($crate::storage::truncate_str(&f.title, 512))
            .bind($crate::storage::truncate_str(&f.diagnosis, $crate::storage::faults::MAX_TEXT))
            .bind($crate::storage::faults::remediation_json(&f.remediation))
            .bind($crate::storage::faults::new_evidence(f))
            .bind(f.occurrences as i64)
            .bind(f.first_ms)
            .bind(f.last_ms)
            .bind(now)
            .bind(now)
            .bind(trigger)
            .bind(f.template_key())
            .execute($conn)
            .await?;
            fault_id = Some(res.last_insert_id_i64());
            done.opened = true;
        }
        if let Some(id) = fault_id {
            done.written = true;
            let mut qb = sqlx::QueryBuilder::new(match $kind {
                $crate::config::DbKind::MySql => "INSERT IGNORE INTO fault_evidence (fault_id, log_id) ",
                $crate::config::DbKind::Sqlite => "INSERT OR IGNORE INTO fault_evidence (fault_id, log_id) ",
            });
            // The trigger record is always linked (the replay check above looks for it).
            let mut ids: Vec<i64> = f.evidence.iter().map(|e| e.log_id as i64).collect();
            ids.push(trigger);
            ids.sort_unstable();
            ids.dedup();
            qb.push_values(ids.iter(), |mut b, log_id| {
                b.push_bind(id).push_bind(*log_id);
            });
            done.evidence = qb.build().execute($conn).await?.rows_affected();
        }
        done
    }};
}
pub(crate) use upsert_finding;

/// Backend-neutral "id of the row just inserted".
pub(crate) trait LastInsertId {
    fn last_insert_id_i64(&self) -> i64;
}

impl LastInsertId for sqlx::sqlite::SqliteQueryResult {
    fn last_insert_id_i64(&self) -> i64 {
        self.last_insert_rowid()
    }
}

impl LastInsertId for sqlx::mysql::MySqlQueryResult {
    fn last_insert_id_i64(&self) -> i64 {
        self.last_insert_id() as i64
    }
}

/// Filters of `GET /api/faults`.
#[derive(Debug, Clone, Default)]
pub struct FaultQuery {
    pub status: Option<String>,
    pub fault_type: Option<String>,
    pub host: Option<String>,
    pub severity: Option<String>,
    pub cluster: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Resume after this (last_seen, id), most recent first.
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FaultRow {
    pub id: i64,
    pub fingerprint: String,
    pub fault_type: String,
    pub severity: String,
    pub status: String,
    pub source: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub title: String,
    pub root_cause: String,
    pub remediation: String,
    pub evidence: String,
    pub occurrences: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub template_key: Option<String>,
    pub llm_status: Option<String>,
    pub llm_model: Option<String>,
    pub llm_confidence: Option<f64>,
    pub llm_answer: Option<String>,
}

pub(crate) const FAULT_COLUMNS: &str = "id, fingerprint, fault_type, severity, status, source, cluster, \
    host, service, title, root_cause, remediation, evidence, occurrences, first_seen, last_seen, \
    acknowledged_at, acknowledged_by, resolved_at, created_at, updated_at, template_key, \
    llm_status, llm_model, llm_confidence, llm_answer";

/// Outcome of acknowledging / resolving a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultStatusChange {
    Changed,
    NotFound,
    /// The fault is in a status that does not allow the change (e.g. acking a resolved one).
    Conflict(String),
}

impl Store {
    /// Most recently seen first, with the filters of `GET /api/faults`.
    pub async fn query_faults(&self, q: &FaultQuery) -> Result<Vec<FaultRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            let mut qb = QueryBuilder::new(format!("SELECT {FAULT_COLUMNS} FROM fault_records WHERE 1 = 1"));
            if let Some(v) = &q.status {
                qb.push(" AND status = ").push_bind(v.clone());
            }
            if let Some(v) = &q.fault_type {
                qb.push(" AND fault_type = ").push_bind(v.clone());
            }
            if let Some(v) = &q.host {
                qb.push(" AND host = ").push_bind(v.clone());
            }
            if let Some(v) = &q.severity {
                qb.push(" AND severity = ").push_bind(v.clone());
            }
            if let Some(v) = &q.cluster {
                qb.push(" AND cluster = ").push_bind(v.clone());
            }
            if let Some(t) = q.since_ms {
                qb.push(" AND last_seen >= ").push_bind(t);
            }
            if let Some(t) = q.until_ms {
                qb.push(" AND first_seen < ").push_bind(t);
            }
            if let Some((t, id)) = q.before {
                qb.push(" AND (last_seen < ").push_bind(t)
                    .push(" OR (last_seen = ").push_bind(t)
                    .push(" AND id < ").push_bind(id).push("))");
            }
            qb.push(" ORDER BY last_seen DESC, id DESC LIMIT ").push_bind(i64::from(q.limit));
            qb.build_query_as::<FaultRow>().fetch_all(pool).await?
        });
        Ok(rows)
    }

    pub async fn get_fault(&self, id: i64) -> Result<Option<FaultRow>, StoreError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, FaultRow>(sqlx::AssertSqlSafe(format!("SELECT {FAULT_COLUMNS} FROM fault_records WHERE id = ?")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    /// Ids of the log records linked to a fault, newest first.
    pub async fn fault_log_ids(&self, id: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<(i64,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT log_id FROM fault_evidence WHERE fault_id = ? ORDER BY log_id DESC LIMIT ?")
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(ids.into_iter().map(|(i,)| i).collect())
    }

    /// open → acknowledged.
    pub async fn acknowledge_fault(
        &self,
        id: i64,
        by: &str,
        now_ms: i64,
    ) -> Result<FaultStatusChange, StoreError> {
        let affected = with_pool!(self, StoreOp::FaultStatus, pool => {
            sqlx::query(
                "UPDATE fault_records SET status = 'acknowledged', acknowledged_at = ?, \
                 acknowledged_by = ?, updated_at = ? WHERE id = ? AND status = 'open'",
            )
            .bind(now_ms)
            .bind(truncate_str(by, 128))
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::FaultRecords, affected);
        self.status_outcome(id, affected, &["acknowledged"]).await
    }

    /// open / acknowledged → resolved (an operator's resolve, `POST /api/faults/{id}/resolve`).
    /// The fingerprint is released: a recurrence opens a new row.
    pub async fn resolve_fault(
        &self,
        id: i64,
        now_ms: i64,
    ) -> Result<FaultStatusChange, StoreError> {
        let fault_type = self.fault_type_of(id).await?;
        let affected = with_pool!(self, StoreOp::FaultStatus, pool => {
            sqlx::query(
                "UPDATE fault_records SET status = 'resolved', resolved_at = ?, \
                 open_fingerprint = NULL, updated_at = ? WHERE id = ? AND status <> 'resolved'",
            )
            .bind(now_ms)
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.resolved(affected, fault_type.as_deref(), Resolution::Api);
        self.status_outcome(id, affected, &["resolved"]).await
    }

    /// The type of a fault (`None` when there is no such fault), read before a status change
    /// so the change can be counted by type.
    pub(crate) async fn fault_type_of(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT fault_type FROM fault_records WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(t,)| t))
    }

    /// Count the resolve of one fault by id: `affected` is what its UPDATE changed (0 when
    /// the fault was already resolved, or had occurred again).
    pub(crate) fn resolved(&self, affected: u64, fault_type: Option<&str>, how: Resolution) {
        self.wrote(Table::FaultRecords, affected);
        if let Some(m) = self.metrics()
            && affected > 0
        {
            m.fault_resolved(fault_type.unwrap_or("unknown"), how);
        }
    }

    async fn status_outcome(
        &self,
        id: i64,
        affected: u64,
        idempotent: &[&str],
    ) -> Result<FaultStatusChange, StoreError> {
        if affected > 0 {
            return Ok(FaultStatusChange::Changed);
        }
        match self.get_fault(id).await? {
            None => Ok(FaultStatusChange::NotFound),
            Some(row) if idempotent.contains(&row.status.as_str()) => {
                Ok(FaultStatusChange::Changed)
            }
            Some(row) => Ok(FaultStatusChange::Conflict(row.status)),
        }
    }
}

// Column limits used by the upsert macro (kept next to the schema's sizes).
const _: () = {
    assert!(MAX_CLUSTER == 64 && MAX_HOST == 255 && MAX_SERVICE == 64);
    assert!(MAX_TITLE == 512 && MAX_FAULT_TYPE == 64);
};
