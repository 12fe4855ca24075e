//! `GET /api/logs`: stored log records, newest first, with filters and cursor paging.
//!
//! Filters: `cluster`, `host`, `service` (exact), `level` (minimum: `WARN` = WARN, ERROR,
//! FATAL), `since` / `until` (RFC 3339, on event time; `until` exclusive), `q` (message
//! contains, ASCII case-insensitive), `fault_id` (lines evidencing that fault), `limit` (1..=1000, default 100), `cursor` (from the
//! previous page's `next_cursor`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, params};
use crate::domain::{Layout, Level};
use crate::storage::{LogQuery, LogRow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    cluster: Option<String>,
    host: Option<String>,
    service: Option<String>,
    level: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    fault_id: Option<i64>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LogOut {
    pub id: i64,
    pub received_at: String,
    pub event_time: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub file: String,
    pub level: Level,
    pub logger: String,
    pub thread: String,
    pub layout: String,
    pub line_count: i32,
    pub message: String,
}

#[derive(Debug, Serialize)]
struct Page {
    logs: Vec<LogOut>,
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
    Ok(HttpResponse::Ok().json(Page {
        logs: rows.into_iter().map(LogOut::from).collect(),
        next_cursor,
    }))
}
