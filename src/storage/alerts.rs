//! Alerting tables: `alert_state` (the engine's memory), `silences`, `alert_outbox` (pending
//! notifications and the delivery log) and `alert_outbox_faults` (which faults each row is
//! about).

use serde::Serialize;

use super::faults::{FAULT_COLUMNS, FaultRow, LastInsertId as _};
use super::{Store, StoreError, StoreOp, Table, truncate_str};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SilenceRow {
    pub id: i64,
    /// JSON array of matcher strings.
    pub matchers: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// A notification to enqueue (or a muted one to record).
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub receiver: &'a str,
    pub kind: &'a str,
    pub group_key: &'a str,
    /// `new,resolved`, `muted:silence:3`, ...
    pub reasons: &'a str,
    /// `pending` or `muted`.
    pub status: &'a str,
    pub payload: &'a str,
    pub fault_ids: &'a [i64],
    pub now_ms: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub receiver: String,
    pub kind: String,
    pub group_key: String,
    pub reasons: String,
    pub status: String,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub last_error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, receiver, kind, group_key, reasons, status, payload, \
    attempts, next_attempt_at, created_at, finished_at, last_error";

impl Store {
    /// Open and acknowledged faults (what alerts are about).
    pub async fn open_faults(&self, limit: u32) -> Result<Vec<FaultRow>, StoreError> {
        let sql = format!(
            "SELECT {FAULT_COLUMNS} FROM fault_records WHERE status <> 'resolved' \
             ORDER BY id LIMIT ?"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, FaultRow>(sqlx::AssertSqlSafe(sql))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    pub async fn load_alert_states(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as("SELECT fingerprint, state FROM alert_state")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Write changed alert states and drop the ones the engine forgot, in one transaction.
    pub async fn save_alert_states(
        &self,
        upserts: &[(String, String)],
        deletes: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        with_pool!(self, StoreOp::Alerting, pool => {
            let mut tx = pool.begin().await?;
            for fp in deletes {
                sqlx::query("DELETE FROM alert_state WHERE fingerprint = ?")
                    .bind(fp)
                    .execute(&mut *tx)
                    .await?;
            }
            for (fp, state) in upserts {
                let sql = match self.kind() {
                    crate::config::DbKind::MySql => "INSERT INTO alert_state (fingerprint, state, updated_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE state = VALUES(state), updated_at = VALUES(updated_at)",
                    crate::config::DbKind::Sqlite => "INSERT INTO alert_state (fingerprint, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                };
                sqlx::query(sql)
                    .bind(fp)
                    .bind(state)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Enqueue a notification (or record a muted one) with its faults, in one transaction.
    pub async fn enqueue_delivery(&self, d: &NewDelivery<'_>) -> Result<i64, StoreError> {
        let id = with_pool!(self, StoreOp::Alerting, pool => {
            let mut tx = pool.begin().await?;
            let finished: Option<i64> = (d.status != "pending").then_some(d.now_ms);
            let id = sqlx::query(
                "INSERT INTO alert_outbox (receiver, kind, group_key, reasons, status, payload, \
                 attempts, next_attempt_at, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            )
            .bind(truncate_str(d.receiver, 64))
            .bind(d.kind)
            .bind(truncate_str(d.group_key, 512))
            .bind(truncate_str(d.reasons, 128))
            .bind(d.status)
            .bind(d.payload)
            .bind(d.now_ms)
            .bind(d.now_ms)
            .bind(finished)
            .execute(&mut *tx)
            .await?
            .last_insert_id_i64();
            for f in d.fault_ids {
                let sql = match self.kind() {
                    crate::config::DbKind::MySql => "INSERT IGNORE INTO alert_outbox_faults (outbox_id, fault_id) VALUES (?, ?)",
                    crate::config::DbKind::Sqlite => "INSERT OR IGNORE INTO alert_outbox_faults (outbox_id, fault_id) VALUES (?, ?)",
                };
                sqlx::query(sql).bind(id).bind(*f).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            id
        });
        self.wrote(Table::AlertOutbox, 1);
        Ok(id)
    }

    /// Pending notifications whose next attempt is due, oldest first.
    pub async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_outbox WHERE status = 'pending' \
             AND next_attempt_at <= ? ORDER BY id LIMIT ?"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Take a pending notification for one delivery attempt (`pending` → `sending`); `false`
    /// when another deliverer has it.
    pub async fn claim_delivery(&self, id: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, StoreOp::Alerting, pool => {
            sqlx::query("UPDATE alert_outbox SET status = 'sending' WHERE id = ? AND status = 'pending'")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.wrote(Table::AlertOutbox, n);
        Ok(n > 0)
    }

    /// At start: attempts cut short by a stop are pending again.
    pub async fn release_deliveries(&self) -> Result<u64, StoreError> {
        let n = with_pool!(self, StoreOp::Alerting, pool => {
            sqlx::query("UPDATE alert_outbox SET status = 'pending' WHERE status = 'sending'")
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.wrote(Table::AlertOutbox, n);
        Ok(n)
    }

    /// Delete finished outbox rows (with their fault links) and silences that ended before
    /// `before_ms`.
    pub async fn prune_alerting(&self, before_ms: i64) -> Result<u64, StoreError> {
        let n = with_pool!(self, StoreOp::Alerting, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "DELETE FROM alert_outbox_faults WHERE outbox_id IN (SELECT id FROM alert_outbox \
                 WHERE status IN ('sent', 'failed', 'muted') AND finished_at < ?)",
            )
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
            let n = sqlx::query(
                "DELETE FROM alert_outbox WHERE status IN ('sent', 'failed', 'muted') AND finished_at < ?",
            )
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM silences WHERE ends_at < ? OR deleted_at < ?")
                .bind(before_ms)
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Notifications waiting in the outbox.
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = with_pool!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM alert_outbox WHERE status IN ('pending', 'sending')")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Record an attempt: `sent`, `failed` (given up), or still `pending` until `next_ms`.
    pub async fn record_attempt(
        &self,
        id: i64,
        status: &str,
        next_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let finished: Option<i64> = (status != "pending").then_some(now_ms);
        let n = with_pool!(self, StoreOp::Alerting, pool => {
            sqlx::query(
                "UPDATE alert_outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?, \
                 finished_at = ?, last_error = ? WHERE id = ? AND status = 'sending'",
            )
            .bind(status)
            .bind(next_ms)
            .bind(finished)
            .bind(error.map(|e| truncate_str(e, 2000).to_string()))
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::AlertOutbox, n);
        Ok(())
    }

    /// The delivery log of one fault, newest first.
    pub async fn fault_deliveries(
        &self,
        fault_id: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let cols: Vec<String> = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect();
        let sql = format!(
            "SELECT {} FROM alert_outbox o JOIN alert_outbox_faults f ON f.outbox_id = o.id \
             WHERE f.fault_id = ? ORDER BY o.id DESC LIMIT ?",
            cols.join(", ")
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
                .bind(fault_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    pub async fn insert_silence(
        &self,
        matchers_json: &str,
        starts_at: i64,
        ends_at: i64,
        created_by: &str,
        comment: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let id = with_pool!(self, StoreOp::Alerting, pool => {
            sqlx::query(
                "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(matchers_json)
            .bind(starts_at)
            .bind(ends_at)
            .bind(truncate_str(created_by, 128))
            .bind(truncate_str(comment, 4000))
            .bind(now_ms)
            .execute(pool)
            .await?
            .last_insert_id_i64()
        });
        self.wrote(Table::Silences, 1);
        Ok(id)
    }

    /// Silences not expired or deleted at `now_ms` (pending ones included), by end.
    pub async fn current_silences(&self, now_ms: i64) -> Result<Vec<SilenceRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, SilenceRow>(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, deleted_at \
                 FROM silences WHERE deleted_at IS NULL AND ends_at > ? ORDER BY ends_at, id",
            )
            .bind(now_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Expire a silence now. `false` when there is no such current silence.
    pub async fn delete_silence(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, StoreOp::Alerting, pool => {
            sqlx::query("UPDATE silences SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL AND ends_at > ?")
                .bind(now_ms)
                .bind(id)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.wrote(Table::Silences, n);
        Ok(n > 0)
    }
}
