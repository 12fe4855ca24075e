//! `GET /healthz` (the process answers), `GET /readyz` (database reachable, pipeline healthy,
//! ingest not saturated) and `GET /metrics` (Prometheus text format).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState};

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let db = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let db_problem = match db {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("database unreachable: {e}")),
        Err(_) => Some("database did not answer within 2s".to_string()),
    };
    let pending = state.pipeline.wal.pending();
    let backlog_problem = (pending >= state.settings.ingest.max_pending_lines)
        .then(|| format!("ingest backlog is full ({pending} lines waiting for the database)"));
    let problems: Vec<String> = [db_problem, state.pipeline.problem(), backlog_problem]
        .into_iter()
        .flatten()
        .collect();
    if problems.is_empty() {
        Ok(HttpResponse::Ok().json(json!({ "status": "ready", "pending_lines": pending })))
    } else {
        Err(ApiError::Unavailable(format!(
            "not ready: {}",
            problems.join("; ")
        )))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .metrics
        .pending_lines
        .set(state.pipeline.wal.pending() as i64);
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot encode metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
