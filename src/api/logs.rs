//! `GET /api/logs`: stored log records, newest first, with filters and cursor paging.
//!
//! Filters: `cluster`, `host`, `service` (exact), `level` (minimum: `WARN` = WARN, ERROR,
//! FATAL), `since` / `until` (RFC 3339, on event time; `until` exclusive), `q` (message
//! contains, ASCII case-insensitive), `fault_id` (lines evidencing that fault), `limit` (1..=1000, default 100), `cursor` (from the
//! previous page's `next_cursor`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, AppState, params};
use crate::domain::{Layout, Level};
use crate::storage::{LogQuery, LogRow};

/// The query of `GET /api/logs` (an empty value is the same as none).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Params {
    /// Only this cluster (exact).
    #[param(example = "prod")]
    cluster: Option<String>,
    /// Only this host (exact).
    #[param(example = "worker3")]
    host: Option<String>,
    /// Only this service (exact).
    #[param(example = "datanode")]
    service: Option<String>,
    /// Minimum level: `WARN` is WARN, ERROR and FATAL (case-insensitive; `WARNING`, `ERR`,
    /// `CRITICAL` and other syslog names are accepted too).
    #[param(schema_with = super::openapi::level_param, example = "WARN")]
    level: Option<String>,
    /// Event time at or after (RFC 3339).
    #[param(schema_with = super::openapi::time_param, example = "2024-05-12T10:00:00Z")]
    since: Option<String>,
    /// Event time before (RFC 3339, exclusive).
    #[param(schema_with = super::openapi::time_param, example = "2024-05-12T11:00:00Z")]
    until: Option<String>,
    /// The message contains this text (ASCII case-insensitive).
    #[param(example = "DiskOutOfSpace")]
    q: Option<String>,
    /// Only the lines that evidence this fault.
    #[param(example = 42)]
    fault_id: Option<i64>,
    /// Page size.
    #[param(schema_with = super::openapi::logs_limit_param, example = 100)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(schema_with = super::openapi::cursor_param, example = "1715508852118:1234")]
    cursor: Option<String>,
}

/// One stored log record (a first line and its continuation lines).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogOut {
    pub id: i64,
    /// When the engine received it.
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The time in the line itself (the receive time when it has none).
    #[schema(format = DateTime)]
    pub event_time: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub file: String,
    pub level: Level,
    pub logger: String,
    pub thread: String,
    /// Which layout the first line was recognised as.
    pub layout: String,
    /// Physical lines in the record.
    pub line_count: i32,
    pub message: String,
}

/// A page of log records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    logs: Vec<LogOut>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

const MAX_LIMIT: u32 = 1000;

pub fn rfc3339_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

impl From<LogRow> for LogOut {
    fn from(r: LogRow) -> Self {
        LogOut {
            id: r.id,
            received_at: rfc3339_ms(r.received_at),
            event_time: rfc3339_ms(r.event_time),
            cluster: r.cluster,
            host: r.host,
            service: r.service,
            file: r.source_file,
            level: Level::from_code(r.level),
            logger: r.logger,
            thread: r.thread,
            layout: Layout::from_str_opt(&r.layout)
                .map(|l| l.as_str().to_string())
                .unwrap_or(r.layout),
            line_count: r.line_count,
            message: r.message,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/logs",
    tag = "logs",
    summary = "Stored log records, newest first, with filters and cursor paging",
    security(("bearer" = ["read"])),
    params(Params),
    responses(
        (status = 200, description = "A page of records", body = LogPage, example = json!({
            "logs": [{
                "id": 1234, "received_at": "2024-05-12T10:14:12.345Z",
                "event_time": "2024-05-12T10:14:12.118Z", "cluster": "prod", "host": "worker3",
                "service": "datanode", "file": "hadoop-hdfs-datanode-worker3.log", "level": "ERROR",
                "logger": "org.apache.hadoop.hdfs.server.datanode.DataNode", "thread": "",
                "layout": "log4j", "line_count": 1,
                "message": "DiskOutOfSpaceException: No space left on device"
            }],
            "next_cursor": null
        })),
        (status = 400, description = "A parameter is invalid (unknown parameter, level, time, limit or cursor)", body = ErrorBody,
            example = json!({"error": "`limit` must be between 1 and 1000", "status": 400})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p: Params = params::query(&req)?;
    let min_level = match p.level.as_deref() {
        None | Some("") => None,
        Some(l) => Some(Level::parse_lenient(l).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown level `{l}` (use TRACE, DEBUG, INFO, WARN, ERROR or FATAL)"
            ))
        })?),
    };
    let limit = params::limit(p.limit.as_deref(), 100, MAX_LIMIT)?;
    let query = LogQuery {
        cluster: params::non_empty(p.cluster),
        host: params::non_empty(p.host),
        service: params::non_empty(p.service),
        min_level,
        since_ms: params::time("since", p.since.as_deref())?,
        until_ms: params::time("until", p.until.as_deref())?,
        text: params::non_empty(p.q),
        fault_id: p.fault_id,
        before: params::cursor(p.cursor.as_deref())?,
        limit,
    };
    let rows = state.store.query_logs(&query).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| format!("{}:{}", r.event_time, r.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(LogPage {
        logs: rows.into_iter().map(LogOut::from).collect(),
        next_cursor,
    }))
}
