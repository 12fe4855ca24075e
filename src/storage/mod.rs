//! All SQL lives here: one [`Store`] over SQLite (embedded default) and MySQL 8 / MariaDB.
//!
//! The backend is chosen by the URL scheme. Queries are runtime-built (`sqlx::query`,
//! `QueryBuilder`) so the same code serves both pools; where the dialects differ (upserts,
//! placeholders are the same `?`) the difference is spelled out next to the query.
//! Times are UTC epoch milliseconds in `BIGINT` columns on both backends.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};

use crate::config::{DatabaseSettings, DbKind, redact_url};
use crate::domain::{Level, LogRecord, StreamKey};
use crate::metrics::Metrics;
use crate::rules::Finding;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("unsupported database url {0}")]
    Url(String),
}

impl StoreError {
    /// A unique constraint refused the row (e.g. an active token name taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sql(sqlx::Error::Database(db)) if db.is_unique_violation())
    }

    /// The server refused the statement's *data* (too long, a constraint, a trigger, a packet
    /// over the limit), so the same batch would be refused again and must be salvaged record
    /// by record. Anything else (unreachable server, missing table, lock timeout) is worth
    /// retrying whole and must never drop a record.
    pub fn is_rejected_data(&self) -> bool {
        let StoreError::Sql(sqlx::Error::Database(db)) = self else {
            return false;
        };
        if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            // 1048 NULL into NOT NULL, 1153/1301 packet over max_allowed_packet, 1264 out of
            // range, 1292 bad value, 1366 bad string, 1406 data too long, 1644 SIGNAL from a
            // trigger, 3819 / 4025 CHECK constraint (MySQL / MariaDB).
            return matches!(
                my.number(),
                1048 | 1153 | 1264 | 1292 | 1301 | 1366 | 1406 | 1644 | 3819 | 4025
            );
        }
        if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            // Primary result codes: 18 TOOBIG, 19 CONSTRAINT (incl. RAISE in a trigger),
            // 20 MISMATCH, 25 RANGE.
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            return matches!(code & 0xff, 18 | 19 | 20 | 25);
        }
        false
    }
}

/// What [`Store::insert_logs_one_by_one`] did with a batch the database refused as a whole.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Salvage {
    pub stored: u64,
    pub truncated: u64,
    pub dropped: u64,
    pub findings_dropped: u64,
}

/// Size a refused record's message is cut to before the last try.
const SALVAGE_MESSAGE_BYTES: usize = 64 * 1024;

/// The connection pool of the configured backend.
#[derive(Clone, Debug)]
pub enum StorePool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
}

/// The database, and the metrics its writes and failures are counted in: none for a store
/// opened alone (CLI commands, tests); the application attaches its own
/// ([`Store::with_metrics`]).
#[derive(Clone)]
pub struct Store {
    pool: StorePool,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// What a store operation does, for `storage_errors_total{op}`: a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Log records and their findings, checkpoint and watermarks (one transaction).
    InsertLogs,
    /// The retention sweep of `system_logs`.
    Retention,
    /// Acknowledging or resolving a fault.
    FaultStatus,
    /// A health-check run: its snapshot row, the faults it opens, confirms or resolves, and
    /// the pruning of old snapshots.
    Snapshot,
    ExecLog,
    /// Alert states, the outbox, silences.
    Alerting,
    /// Escalation results and the LLM answer cache.
    Llm,
    Remediation,
    /// Creating and revoking API tokens.
    Tokens,
    /// Any query that only reads.
    Read,
}

impl StoreOp {
    pub const ALL: [StoreOp; 10] = [
        StoreOp::InsertLogs,
        StoreOp::Retention,
        StoreOp::FaultStatus,
        StoreOp::Snapshot,
        StoreOp::ExecLog,
        StoreOp::Alerting,
        StoreOp::Llm,
        StoreOp::Remediation,
        StoreOp::Tokens,
        StoreOp::Read,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::InsertLogs => "insert_logs",
            StoreOp::Retention => "retention",
            StoreOp::FaultStatus => "fault_status",
            StoreOp::Snapshot => "snapshot",
            StoreOp::ExecLog => "exec_log",
            StoreOp::Alerting => "alerting",
            StoreOp::Llm => "llm",
            StoreOp::Remediation => "remediation",
            StoreOp::Tokens => "tokens",
            StoreOp::Read => "read",
        }
    }
}

/// Run the same body against whichever pool this store holds. The body's `?` ends the
/// enclosing function with the error, counted in `storage_errors_total{op}` (`op` is a
/// [`StoreOp`], `Read` unless given).
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        with_pool!($store, $crate::storage::StoreOp::Read, $pool => $body)
    };
    ($store:expr, $op:expr, $pool:ident => $body:expr) => {{
        let store: &$crate::storage::Store = $store;
        let res = async {
            Ok::<_, $crate::storage::StoreError>(match store.pool() {
                $crate::storage::StorePool::Sqlite($pool) => $body,
                $crate::storage::StorePool::MySql($pool) => $body,
            })
        }
        .await;
        match res {
            Ok(v) => v,
            Err(e) => {
                store.failed($op);
                return Err(e);
            }
        }
    }};
}

mod faults;
use faults::LastInsertId as _;
pub use faults::{FaultQuery, FaultRow, FaultStatusChange};
mod alerts;
pub use alerts::{DeliveryRow, NewDelivery, SilenceRow};
mod remediation;
pub use remediation::{NewRemediation, RemediationRow};
mod llm;
pub use llm::{CacheEntry, CachedAnswer, LlmUpdate};
mod status;
mod tokens;
pub use status::{ExecLog, ExecLogRow, ExecQuery, SnapshotFaultOutcome, SnapshotRow};
pub use tokens::TokenRow;

/// Column length limits of the MySQL schema (SQLite has none, but the data must fit both).
const MAX_CLUSTER: usize = 64;
const MAX_HOST: usize = 255;
const MAX_SERVICE: usize = 64;
const MAX_FILE: usize = 512;
const MAX_LOGGER: usize = 255;
const MAX_THREAD: usize = 255;
/// Rows per INSERT statement, and a soft cap on a statement's bytes (MySQL max_allowed_packet).
const INSERT_ROWS: usize = 500;
const INSERT_BYTES: usize = 4 * 1024 * 1024;

/// Cut `s` to at most `max` bytes on a char boundary.
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Filters of `GET /api/logs`.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub cluster: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    pub min_level: Option<Level>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub text: Option<String>,
    /// Only records linked to this fault as evidence.
    pub fault_id: Option<i64>,
    /// Resume after this (event_time, id), newest first.
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub received_at: i64,
    pub event_time: i64,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub source_file: String,
    pub level: i16,
    pub logger: String,
    pub thread: String,
    pub layout: String,
    pub line_count: i32,
    pub message: String,
}

const LOG_COLUMNS: &str = "id, received_at, event_time, cluster, host, service, source_file, \
                           level, logger, thread, layout, line_count, message";

impl Store {
    pub async fn connect(db: &DatabaseSettings) -> Result<Store, StoreError> {
        let connect_err = |source| StoreError::Connect {
            url: redact_url(&db.url),
            source,
        };
        match db.kind() {
            Some(DbKind::Sqlite) => {
                let opts = SqliteConnectOptions::from_str(&db.url)
                    .map_err(connect_err)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL, NORMAL loses nothing on a process crash; our own WAL covers
                    // the ingest path's durability.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    // A 64 MiB page cache and memory-mapped reads: the time and host indexes
                    // are updated all over as the table grows, and the 2 MiB default cache
                    // turned every insert batch into thousands of pread/pwrite calls.
                    .pragma("cache_size", "-65536")
                    .pragma("mmap_size", "268435456")
                    .pragma("temp_store", "memory");
                let pool = SqlitePoolOptions::new()
                    .max_connections(db.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                Ok(Store::new(StorePool::Sqlite(pool)))
            }
            Some(DbKind::MySql) => {
                let url = db.url.replacen("mariadb://", "mysql://", 1);
                let opts = MySqlConnectOptions::from_str(&url)
                    .map_err(connect_err)?
                    .charset("utf8mb4");
                let pool = MySqlPoolOptions::new()
                    .max_connections(db.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                Ok(Store::new(StorePool::MySql(pool)))
            }
            None => Err(StoreError::Url(redact_url(&db.url))),
        }
    }

    fn new(pool: StorePool) -> Store {
        Store {
            pool,
            metrics: None,
        }
    }

    /// This store, counting its rows written, failures and fault transitions in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Store {
        self.metrics = Some(metrics);
        self
    }

    /// The pool (tests run their own SQL on it).
    pub fn pool(&self) -> &StorePool {
        &self.pool
    }

    pub fn kind(&self) -> DbKind {
        match self.pool {
            StorePool::Sqlite(_) => DbKind::Sqlite,
            StorePool::MySql(_) => DbKind::MySql,
        }
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_deref()
    }

    /// Count a failed operation.
    fn failed(&self, op: StoreOp) {
        if let Some(m) = self.metrics() {
            m.storage_errors.with_label_values(&[op.as_str()]).inc();
        }
    }

    /// Count rows inserted or updated (once the statement or its transaction succeeded).
    fn wrote(&self, table: Table, rows: u64) {
        if let Some(m) = self.metrics()
            && rows > 0
        {
            m.storage_rows_written
                .with_label_values(&[table.as_str()])
                .inc_by(rows);
        }
    }

    /// Apply pending migrations from `migrations/<dialect>/` (embedded in the binary).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            StorePool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            StorePool::MySql(pool) => sqlx::migrate!("./migrations/mysql").run(pool).await?,
        }
        Ok(())
    }

    pub async fn close(&self) {
        match &self.pool {
            StorePool::Sqlite(pool) => pool.close().await,
            StorePool::MySql(pool) => pool.close().await,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// The ingest checkpoint: every WAL line with a smaller seq is stored.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let v: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT next_seq FROM ingest_checkpoint WHERE id = 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// One past the highest stored record id (0 when empty).
    pub async fn next_log_id(&self) -> Result<u64, StoreError> {
        let v: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(id) FROM system_logs").fetch_one(pool).await?
        });
        Ok(v.map(|m| m.max(-1) + 1).unwrap_or(0) as u64)
    }

    /// Insert records (ignoring ids already present), raise each stream's replay watermark in
    /// `marks` and move the checkpoint to `checkpoint`, in one transaction. Watermarks below the
    /// checkpoint are pruned. Returns the number of rows newly inserted.
    pub async fn insert_logs(
        &self,
        records: &[LogRecord],
        checkpoint: u64,
        marks: &[(StreamKey, u64)],
    ) -> Result<u64, StoreError> {
        self.insert_batch(records, &[], checkpoint, marks).await
    }

    /// [`Store::insert_logs`] plus the batch's findings, all in one transaction: each finding
    /// updates the open fault with its fingerprint (or opens one) and links its evidence
    /// records; a finding already counted (a replay) changes nothing.
    pub async fn insert_batch(
        &self,
        records: &[LogRecord],
        findings: &[Finding],
        checkpoint: u64,
        marks: &[(StreamKey, u64)],
    ) -> Result<u64, StoreError> {
        let mut inserted = 0u64;
        let mut upserts = faults::UpsertTotals::default();
        let kind = self.kind();
        with_pool!(self, StoreOp::InsertLogs, pool => {
            let mut tx = pool.begin().await?;
            let mut start = 0;
            while start < records.len() {
                let mut end = start;
                let mut bytes = 0usize;
                while end < records.len() && end - start < INSERT_ROWS
                    && (end == start || bytes + records[end].message.len() < INSERT_BYTES)
                {
                    bytes += records[end].message.len() + 256;
                    end += 1;
                }
                // MySQL: INSERT IGNORE, whose affected-rows count is the rows inserted (with
                // ON DUPLICATE KEY UPDATE, sqlx's CLIENT_FOUND_ROWS counts duplicates too).
                let verb = match self.kind() {
                    DbKind::Sqlite => "INSERT",
                    DbKind::MySql => "INSERT IGNORE",
                };
                let mut qb = QueryBuilder::new(format!("{verb} INTO system_logs ({LOG_COLUMNS}) "));
                qb.push_values(&records[start..end], |mut b, r| {
                    b.push_bind(r.id as i64)
                        .push_bind(r.received_ms)
                        .push_bind(r.event_ms)
                        .push_bind(truncate_str(&r.cluster, MAX_CLUSTER).to_owned())
                        .push_bind(truncate_str(&r.host, MAX_HOST).to_owned())
                        .push_bind(truncate_str(&r.service, MAX_SERVICE).to_owned())
                        .push_bind(truncate_str(&r.source_file, MAX_FILE).to_owned())
                        .push_bind(r.level.code())
                        .push_bind(truncate_str(&r.logger, MAX_LOGGER).to_owned())
                        .push_bind(truncate_str(&r.thread, MAX_THREAD).to_owned())
                        .push_bind(r.layout.as_str())
                        .push_bind(r.line_count as i32)
                        .push_bind(r.message.clone());
                });
                // Replayed ids are skipped, never overwritten.
                if self.kind() == DbKind::Sqlite {
                    qb.push(" ON CONFLICT(id) DO NOTHING");
                }
                let res = qb.build().execute(&mut *tx).await?;
                inserted += res.rows_affected();
                start = end;
            }
            for f in findings {
                let done = faults::upsert_finding!(kind, &mut *tx, f);
                upserts.add(f, done);
            }
            for chunk in marks.chunks(INSERT_ROWS) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO ingest_streams (stream_id, cluster, host, service, file, last_seq) ",
                );
                qb.push_values(chunk, |mut b, (key, last_seq)| {
                    b.push_bind(key.stable_id())
                        .push_bind(key.cluster.clone())
                        .push_bind(key.host.clone())
                        .push_bind(key.service.clone())
                        .push_bind(key.file.clone())
                        .push_bind(*last_seq as i64);
                });
                qb.push(match self.kind() {
                    DbKind::Sqlite => " ON CONFLICT(stream_id) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                    DbKind::MySql => " ON DUPLICATE KEY UPDATE last_seq = GREATEST(last_seq, VALUES(last_seq))",
                });
                qb.build().execute(&mut *tx).await?;
            }
            let cp = checkpoint as i64;
            sqlx::query("DELETE FROM ingest_streams WHERE last_seq < ?")
                .bind(cp)
                .execute(&mut *tx)
                .await?;
            let upsert = match self.kind() {
                DbKind::Sqlite => "INSERT INTO ingest_checkpoint (id, next_seq) VALUES (1, ?) \
                                   ON CONFLICT(id) DO UPDATE SET next_seq = MAX(next_seq, excluded.next_seq)",
                DbKind::MySql => "INSERT INTO ingest_checkpoint (id, next_seq) VALUES (1, ?) \
                                  ON DUPLICATE KEY UPDATE next_seq = GREATEST(next_seq, VALUES(next_seq))",
            };
            sqlx::query(upsert).bind(cp).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        self.wrote(Table::SystemLogs, inserted);
        self.counted_upserts(&upserts);
        Ok(inserted)
    }

    /// Store a batch whose insert the database refused, record by record, so one bad record
    /// cannot stop the pipeline: a refused record is retried with its message cut to 64 KiB
    /// (marked), and dropped (logged, counted) only if that is refused too. Then the
    /// checkpoint and watermarks move as `insert_logs` would. Connection errors are returned.
    pub async fn insert_logs_one_by_one(
        &self,
        records: &[LogRecord],
        findings: &[Finding],
        checkpoint: u64,
        marks: &[(StreamKey, u64)],
    ) -> Result<Salvage, StoreError> {
        let mut report = Salvage::default();
        for r in records {
            match self.insert_logs(std::slice::from_ref(r), 0, &[]).await {
                Ok(_) => report.stored += 1,
                Err(e) if e.is_rejected_data() => {
                    let mut small = r.clone();
                    let cut = truncate_str(&r.message, SALVAGE_MESSAGE_BYTES).len();
                    small.message.truncate(cut);
                    small.message.push_str(&format!(
                        "\n[faultline: message cut from {} to {cut} bytes: the database refused it: {e}]",
                        r.message.len()
                    ));
                    match self.insert_logs(std::slice::from_ref(&small), 0, &[]).await {
                        Ok(_) => report.truncated += 1,
                        Err(e2) if e2.is_rejected_data() => {
                            tracing::error!(id = r.id, host = %r.host, error = %e2, "the database refused a log record even cut down; dropping it");
                            report.dropped += 1;
                        }
                        Err(e2) => return Err(e2),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // Findings too: one the database refuses (an oversized field) is dropped and logged,
        // never allowed to hold the checkpoint back.
        match self.insert_batch(&[], findings, 0, &[]).await {
            Ok(_) => {}
            Err(e) if e.is_rejected_data() => {
                for f in findings {
                    match self
                        .insert_batch(&[], std::slice::from_ref(f), 0, &[])
                        .await
                    {
                        Ok(_) => {}
                        Err(e2) if e2.is_rejected_data() => {
                            tracing::error!(fingerprint = %f.fingerprint, error = %e2, "the database refused a finding; dropping it");
                            report.findings_dropped += 1;
                        }
                        Err(e2) => return Err(e2),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        self.insert_batch(&[], &[], checkpoint, marks).await?;
        Ok(report)
    }

    /// Replay watermarks of streams that still matter (`last_seq >= checkpoint`).
    pub async fn stream_marks(&self, checkpoint: u64) -> Result<Vec<(StreamKey, u64)>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT cluster, host, service, file, last_seq FROM ingest_streams WHERE last_seq >= ?",
            )
            .bind(checkpoint as i64)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(cluster, host, service, file, last)| {
                (
                    StreamKey {
                        cluster,
                        host,
                        service,
                        file,
                    },
                    last.max(0) as u64,
                )
            })
            .collect())
    }

    /// Newest first by event time (then id), with the filters of `GET /api/logs`.
    pub async fn query_logs(&self, q: &LogQuery) -> Result<Vec<LogRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            let mut qb = QueryBuilder::new(format!("SELECT {LOG_COLUMNS} FROM system_logs WHERE 1 = 1"));
            if let Some(c) = &q.cluster {
                qb.push(" AND cluster = ").push_bind(c.clone());
            }
            if let Some(h) = &q.host {
                qb.push(" AND host = ").push_bind(h.clone());
            }
            if let Some(s) = &q.service {
                qb.push(" AND service = ").push_bind(s.clone());
            }
            if let Some(l) = q.min_level {
                qb.push(" AND level >= ").push_bind(l.code());
            }
            if let Some(t) = q.since_ms {
                qb.push(" AND event_time >= ").push_bind(t);
            }
            if let Some(t) = q.until_ms {
                qb.push(" AND event_time < ").push_bind(t);
            }
            if let Some(text) = &q.text {
                // '!' as the LIKE escape: backslash means different things in MySQL and SQLite literals.
                qb.push(" AND message LIKE ").push_bind(like_pattern(text)).push(" ESCAPE '!'");
            }
            if let Some(f) = q.fault_id {
                qb.push(" AND id IN (SELECT log_id FROM fault_evidence WHERE fault_id = ").push_bind(f).push(")");
            }
            if let Some((t, id)) = q.before {
                qb.push(" AND (event_time < ").push_bind(t)
                    .push(" OR (event_time = ").push_bind(t)
                    .push(" AND id < ").push_bind(id).push("))");
            }
            qb.push(" ORDER BY event_time DESC, id DESC LIMIT ").push_bind(i64::from(q.limit));
            qb.build_query_as::<LogRow>().fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// Delete `system_logs` rows received before `cutoff_ms`, in chunks along the primary key
    /// (ids grow with receive time, so old rows are mostly a prefix; a younger row among them,
    /// after a clock step, does not stop the sweep). Returns rows deleted.
    pub async fn delete_logs_received_before(
        &self,
        cutoff_ms: i64,
        chunk: u32,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let bound: Option<i64> = with_pool!(self, StoreOp::Retention, pool => {
                sqlx::query_scalar(
                    "SELECT MAX(id) FROM (SELECT id FROM system_logs WHERE received_at < ? \
                     ORDER BY id LIMIT ?) AS oldest",
                )
                .bind(cutoff_ms)
                .bind(i64::from(chunk))
                .fetch_one(pool)
                .await?
            });
            let Some(bound) = bound else { break };
            let deleted = with_pool!(self, StoreOp::Retention, pool => {
                sqlx::query("DELETE FROM system_logs WHERE id <= ? AND received_at < ?")
                    .bind(bound)
                    .bind(cutoff_ms)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            total += deleted;
            // Links from faults to the deleted lines go with them (the fault keeps its
            // evidence text).
            with_pool!(self, StoreOp::Retention, pool => {
                sqlx::query("DELETE FROM fault_evidence WHERE log_id <= ? AND log_id NOT IN (SELECT id FROM system_logs WHERE id <= ?)")
                    .bind(bound)
                    .bind(bound)
                    .execute(pool)
                    .await?;
            });
            if deleted == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Row count of a table this module knows (tests and diagnostics).
    pub async fn count_rows(&self, table: Table) -> Result<i64, StoreError> {
        // Table names are a closed set of static strings, never input.
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", table.as_str()));
        let n: i64 = with_pool!(self, pool => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?);
        Ok(n)
    }
}

/// The tables whose writes are counted (`storage_rows_written_total{table}`); bookkeeping
/// tables (checkpoint, stream watermarks, alert states, link tables of the outbox) are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    SystemLogs,
    FaultRecords,
    FaultEvidence,
    ExecLogs,
    ClusterStatus,
    AlertOutbox,
    Silences,
    LlmCache,
    Remediations,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::SystemLogs,
        Table::FaultRecords,
        Table::FaultEvidence,
        Table::ExecLogs,
        Table::ClusterStatus,
        Table::AlertOutbox,
        Table::Silences,
        Table::LlmCache,
        Table::Remediations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::SystemLogs => "system_logs",
            Table::FaultRecords => "fault_records",
            Table::FaultEvidence => "fault_evidence",
            Table::ExecLogs => "exec_logs",
            Table::ClusterStatus => "cluster_status",
            Table::AlertOutbox => "alert_outbox",
            Table::Silences => "silences",
            Table::LlmCache => "llm_cache",
            Table::Remediations => "remediations",
        }
    }
}

/// `%text%` with LIKE wildcards in `text` escaped by `!`.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a!"), "%50!%!_a!!%");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("abc", 10), "abc");
    }
}
