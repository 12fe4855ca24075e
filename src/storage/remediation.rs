//! `remediations`: proposals, approvals, runs and their verdicts.

use serde::Serialize;

use super::faults::LastInsertId as _;
use super::{Store, StoreError, StoreOp, Table, truncate_str};
use crate::metrics::Resolution;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RemediationRow {
    pub id: i64,
    pub fault_id: i64,
    pub script: String,
    /// JSON array.
    pub args: String,
    pub cluster: String,
    pub host: String,
    /// `proposed`, `running`, `succeeded`, `failed`, `timeout`, `refused`, `effective`,
    /// `not_effective`.
    pub status: String,
    /// `approval` or `auto`.
    pub mode: String,
    pub proposed_by: String,
    pub proposed_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    pub exec_log_id: Option<i64>,
    pub finished_at: Option<i64>,
    pub message: String,
}

const COLUMNS: &str = "id, fault_id, script, args, cluster, host, status, mode, proposed_by, \
    proposed_at, approved_by, approved_at, exec_log_id, finished_at, message";

/// A new remediation row.
#[derive(Debug, Clone)]
pub struct NewRemediation<'a> {
    pub fault_id: i64,
    pub script: &'a str,
    pub args: &'a [String],
    pub cluster: &'a str,
    pub host: &'a str,
    pub status: &'a str,
    pub mode: &'a str,
    pub proposed_by: &'a str,
    pub message: &'a str,
    pub now_ms: i64,
}

impl Store {
    /// At start: runs cut short by a stop are failed; returns the runs awaiting a re-check
    /// (`succeeded`).
    pub async fn recover_remediations(
        &self,
        now_ms: i64,
    ) -> Result<Vec<RemediationRow>, StoreError> {
        let n = with_pool!(self, StoreOp::Remediation, pool => {
            sqlx::query(
                "UPDATE remediations SET status = 'failed', finished_at = ?, open_fault = NULL, \
                 message = 'interrupted: the engine stopped during the run' WHERE status = 'running'",
            )
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::Remediations, n);
        let sql = format!("SELECT {COLUMNS} FROM remediations WHERE status = 'succeeded'");
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, RemediationRow>(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Resolve a fault only if it has not occurred again (`occurrences` unchanged): a
    /// remediation's re-check.
    pub async fn resolve_fault_if_quiet(
        &self,
        id: i64,
        occurrences: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let fault_type = self.fault_type_of(id).await?;
        let n = with_pool!(self, StoreOp::FaultStatus, pool => {
            sqlx::query(
                "UPDATE fault_records SET status = 'resolved', resolved_at = ?, open_fingerprint = NULL, \
                 updated_at = ? WHERE id = ? AND occurrences = ? AND status <> 'resolved'",
            )
            .bind(now_ms)
            .bind(now_ms)
            .bind(id)
            .bind(occurrences)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.resolved(n, fault_type.as_deref(), Resolution::Remediation);
        Ok(n > 0)
    }

    /// Is a fault with this fingerprint open again?
    pub async fn fingerprint_open(&self, fingerprint: &str) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT id FROM fault_records WHERE open_fingerprint = ?")
                .bind(fingerprint)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    pub async fn insert_remediation(&self, r: &NewRemediation<'_>) -> Result<i64, StoreError> {
        let args = serde_json::to_string(r.args).unwrap_or_else(|_| "[]".into());
        let id = with_pool!(self, StoreOp::Remediation, pool => {
            sqlx::query(
                "INSERT INTO remediations (fault_id, script, args, cluster, host, status, mode, \
                 proposed_by, proposed_at, message, open_fault) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.fault_id)
            .bind(truncate_str(r.script, 128))
            .bind(args)
            .bind(truncate_str(r.cluster, 64))
            .bind(truncate_str(r.host, 255))
            .bind(r.status)
            .bind(r.mode)
            .bind(truncate_str(r.proposed_by, 128))
            .bind(r.now_ms)
            .bind(truncate_str(r.message, 4000))
            .bind((r.status == "proposed").then_some(r.fault_id))
            .execute(pool)
            .await?
            .last_insert_id_i64()
        });
        self.wrote(Table::Remediations, 1);
        Ok(id)
    }

    pub async fn get_remediation(&self, id: i64) -> Result<Option<RemediationRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM remediations WHERE id = ?");
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, RemediationRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    pub async fn fault_remediations(
        &self,
        fault_id: i64,
    ) -> Result<Vec<RemediationRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM remediations WHERE fault_id = ? ORDER BY id DESC");
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, RemediationRow>(sqlx::AssertSqlSafe(sql))
                .bind(fault_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// `proposed` → `running`, with the approver. `false` when it was not proposed (already
    /// approved, refused or finished): exactly one approval runs a script.
    pub async fn approve_remediation(
        &self,
        id: i64,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, StoreOp::Remediation, pool => {
            sqlx::query(
                "UPDATE remediations SET status = 'running', approved_by = ?, approved_at = ? \
                 WHERE id = ? AND status = 'proposed'",
            )
            .bind(truncate_str(by, 128))
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::Remediations, n);
        Ok(n > 0)
    }

    /// Set the outcome (and the exec log of the run, when there is one).
    pub async fn finish_remediation(
        &self,
        id: i64,
        status: &str,
        exec_log_id: Option<i64>,
        message: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let n = with_pool!(self, StoreOp::Remediation, pool => {
            sqlx::query(
                "UPDATE remediations SET status = ?, exec_log_id = COALESCE(?, exec_log_id), \
                 finished_at = ?, message = ?, open_fault = NULL WHERE id = ?",
            )
            .bind(status)
            .bind(exec_log_id)
            .bind(now_ms)
            .bind(truncate_str(message, 4000))
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::Remediations, n);
        Ok(())
    }
}
