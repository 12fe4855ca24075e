//! `api_tokens`: tokens created at run time (hashes only).

use serde::Serialize;

use super::faults::LastInsertId as _;
use super::{Store, StoreError, StoreOp, truncate_str};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// Hex SHA-256 of the token (never the token).
    #[serde(skip)]
    pub token_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "id, name, role, token_hash, created_by, created_at, revoked_at";

impl Store {
    pub async fn insert_token(
        &self,
        name: &str,
        role: &str,
        token_hash: &str,
        created_by: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let id = with_pool!(self, StoreOp::Tokens, pool => {
            sqlx::query(
                "INSERT INTO api_tokens (name, role, token_hash, created_by, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(truncate_str(name, 128))
            .bind(role)
            .bind(token_hash)
            .bind(truncate_str(created_by, 128))
            .bind(now_ms)
            .execute(pool)
            .await?
            .last_insert_id_i64()
        });
        Ok(id)
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Revoke a token; false when it does not exist or was already revoked.
    pub async fn revoke_token(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, StoreOp::Tokens, pool => {
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
