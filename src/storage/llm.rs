//! LLM escalation state: the faults waiting for an escalation, the answer cache (`llm_cache`)
//! and the updates an answer makes to a fault.

use serde::Serialize;

use super::faults::{FAULT_COLUMNS, FaultRow, MAX_TEXT};
use super::{Store, StoreError, StoreOp, Table, truncate_str};

/// A cached answer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CachedAnswer {
    pub model: String,
    pub verified: i64,
    /// The masked answer (JSON).
    pub answer: String,
}

/// A new cache entry.
#[derive(Debug, Clone)]
pub struct CacheEntry<'a> {
    pub cache_key: &'a str,
    pub template_key: &'a str,
    pub model: &'a str,
    pub prompt_version: &'a str,
    pub language: &'a str,
    pub verified: bool,
    pub answer: &'a str,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub now_ms: i64,
}

/// What an escalation writes into a fault.
#[derive(Debug, Clone, Serialize)]
pub struct LlmUpdate {
    /// `diagnosed` (the fault becomes `source = llm` with the answer's class, title, root
    /// cause and remediation) or `unverified` (the answer is kept beside the fault only).
    pub status: &'static str,
    pub fault_type: String,
    pub title: String,
    pub root_cause: String,
    pub remediation: Vec<String>,
    pub model: String,
    pub confidence: Option<f64>,
    /// The structured answer shown to the operator (JSON).
    pub answer: String,
}

impl Store {
    /// Templates with open unknown faults not escalated yet, oldest first, leaving out
    /// `held` (templates in backoff or being escalated).
    pub async fn pending_templates(
        &self,
        held: &[String],
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT template_key, MIN(id) AS first_id FROM fault_records \
                 WHERE llm_status IS NULL AND template_key IS NOT NULL AND status <> 'resolved'",
            );
            if !held.is_empty() {
                qb.push(" AND template_key NOT IN (");
                let mut sep = qb.separated(", ");
                for k in held {
                    sep.push_bind(k.clone());
                }
                qb.push(")");
            }
            qb.push(" GROUP BY template_key ORDER BY first_id LIMIT ")
                .push_bind(i64::from(limit));
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(k, _)| k).collect())
    }

    /// The open faults of one template not escalated yet, oldest first.
    pub async fn pending_of_template(
        &self,
        template_key: &str,
        limit: u32,
    ) -> Result<Vec<FaultRow>, StoreError> {
        let sql = format!(
            "SELECT {FAULT_COLUMNS} FROM fault_records WHERE template_key = ? \
             AND llm_status IS NULL AND status <> 'resolved' ORDER BY id LIMIT ?"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, FaultRow>(sqlx::AssertSqlSafe(sql))
                .bind(template_key)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Mark one fault `skipped` with the reason (it cannot be escalated).
    pub async fn skip_fault(&self, id: i64, reason: &str, now_ms: i64) -> Result<(), StoreError> {
        let answer = serde_json::json!({ "status": "skipped", "problem": reason }).to_string();
        let n = with_pool!(self, StoreOp::Llm, pool => {
            sqlx::query(
                "UPDATE fault_records SET llm_status = 'skipped', llm_answer = ?, updated_at = ? \
                 WHERE id = ? AND llm_status IS NULL",
            )
            .bind(answer)
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::FaultRecords, n);
        Ok(())
    }

    /// (time, tokens) of the answers cached since `since_ms` (what the budget has spent).
    pub async fn llm_spent_since(&self, since_ms: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT created_at, tokens_in, tokens_out FROM llm_cache WHERE created_at >= ? \
                 ORDER BY created_at",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(t, i, o)| (t, u64::try_from(i.saturating_add(o)).unwrap_or(0)))
            .collect())
    }

    /// The cached answer of `key` (counted as a hit).
    pub async fn llm_cache_get(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<CachedAnswer>, StoreError> {
        let row = with_pool!(self, StoreOp::Llm, pool => {
            let row: Option<CachedAnswer> = sqlx::query_as(
                "SELECT model, verified, answer FROM llm_cache WHERE cache_key = ?",
            )
            .bind(key)
            .fetch_optional(pool)
            .await?;
            if row.is_some() {
                sqlx::query("UPDATE llm_cache SET hits = hits + 1, last_hit_at = ? WHERE cache_key = ?")
                    .bind(now_ms)
                    .bind(key)
                    .execute(pool)
                    .await?;
            }
            row
        });
        self.wrote(Table::LlmCache, u64::from(row.is_some()));
        Ok(row)
    }

    /// Store an answer. A second writer of the same key keeps the first answer, unless
    /// `replace` (the cached one could not serve a fault and was asked again).
    pub async fn llm_cache_put(&self, e: &CacheEntry<'_>, replace: bool) -> Result<(), StoreError> {
        let n = with_pool!(self, StoreOp::Llm, pool => {
            let insert = match (self.kind(), replace) {
                (crate::config::DbKind::MySql, false) => "INSERT IGNORE INTO llm_cache",
                (crate::config::DbKind::MySql, true) => "REPLACE INTO llm_cache",
                (crate::config::DbKind::Sqlite, false) => "INSERT OR IGNORE INTO llm_cache",
                (crate::config::DbKind::Sqlite, true) => "INSERT OR REPLACE INTO llm_cache",
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{insert} (cache_key, template_key, model, prompt_version, language, verified, \
                 answer, tokens_in, tokens_out, created_at, hits) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
            )))
            .bind(e.cache_key)
            .bind(e.template_key)
            .bind(truncate_str(e.model, 128))
            .bind(truncate_str(e.prompt_version, 64))
            .bind(e.language)
            .bind(i64::from(e.verified))
            .bind(e.answer)
            .bind(e.tokens_in as i64)
            .bind(e.tokens_out as i64)
            .bind(e.now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        // A replacement counts twice in MySQL's affected rows: one row was written.
        self.wrote(Table::LlmCache, n.min(1));
        Ok(())
    }

    /// Write an escalation's result into a fault still waiting for it. `false` when the fault
    /// was escalated meanwhile (or is gone).
    pub async fn apply_llm(&self, id: i64, u: &LlmUpdate, now_ms: i64) -> Result<bool, StoreError> {
        let diagnosed = u.status == "diagnosed";
        let affected = with_pool!(self, StoreOp::Llm, pool => {
            sqlx::query(
                "UPDATE fault_records SET llm_status = ?, llm_model = ?, llm_confidence = ?, \
                 llm_answer = ?, updated_at = ?, \
                 source = CASE WHEN ? THEN 'llm' ELSE source END, \
                 fault_type = CASE WHEN ? THEN ? ELSE fault_type END, \
                 title = CASE WHEN ? THEN ? ELSE title END, \
                 root_cause = CASE WHEN ? THEN ? ELSE root_cause END, \
                 remediation = CASE WHEN ? THEN ? ELSE remediation END \
                 WHERE id = ? AND llm_status IS NULL",
            )
            .bind(u.status)
            .bind(truncate_str(&u.model, 128))
            .bind(u.confidence)
            .bind(&u.answer)
            .bind(now_ms)
            .bind(diagnosed)
            .bind(diagnosed)
            .bind(truncate_str(&u.fault_type, 64))
            .bind(diagnosed)
            .bind(truncate_str(&u.title, 512))
            .bind(diagnosed)
            .bind(truncate_str(&u.root_cause, MAX_TEXT))
            .bind(diagnosed)
            .bind(super::faults::remediation_json(&u.remediation))
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::FaultRecords, affected);
        Ok(affected > 0)
    }

    /// Mark waiting faults of a template `skipped` (the budget said no; `on_budget_exhausted =
    /// "skip"`).
    pub async fn skip_escalation(
        &self,
        template_key: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let n = with_pool!(self, StoreOp::Llm, pool => {
            sqlx::query(
                "UPDATE fault_records SET llm_status = 'skipped', updated_at = ? \
                 WHERE template_key = ? AND llm_status IS NULL",
            )
            .bind(now_ms)
            .bind(template_key)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::FaultRecords, n);
        Ok(n)
    }

    /// `diagnosed` → `confirmed` (an operator confirmed the LLM diagnosis).
    pub async fn confirm_llm(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, StoreOp::Llm, pool => {
            sqlx::query(
                "UPDATE fault_records SET llm_status = 'confirmed', updated_at = ? \
                 WHERE id = ? AND llm_status = 'diagnosed'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.wrote(Table::FaultRecords, n);
        Ok(n > 0)
    }
}
