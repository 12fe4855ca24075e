//! `GET /healthz` (the process answers), `GET /readyz` (database reachable, pipeline healthy,
//! ingest not saturated) and `GET /metrics` (Prometheus text format).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState};

/// `GET /healthz`: the process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Healthy {
    #[schema(value_type = String, pattern = "^ok$", example = "ok")]
    status: &'static str,
}

/// `GET /readyz`: ready to take lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    #[schema(value_type = String, pattern = "^ready$", example = "ready")]
    status: &'static str,
    /// Lines accepted into the write-ahead log and not yet in the database.
    pending_lines: u64,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness: the process answers",
    security(()),
    responses(
        (status = 200, description = "Alive", body = Healthy, example = json!({"status": "ok"})),
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Healthy { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness: database reachable, pipeline healthy, ingest backlog not full",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Ready,
            example = json!({"status": "ready", "pending_lines": 0})),
        (status = 503, description = "Not ready; `error` names every problem", body = ErrorBody,
            example = json!({"error": "not ready: database did not answer within 2s", "status": 503})),
    )
)]
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
        Ok(HttpResponse::Ok().json(Ready {
            status: "ready",
            pending_lines: pending,
        }))
    } else {
        Err(ApiError::Unavailable(format!(
            "not ready: {}",
            problems.join("; ")
        )))
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Every metric of the engine",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String,
            example = "# TYPE faultline_pipeline_pending_lines gauge\nfaultline_pipeline_pending_lines 0\n"),
        (status = 500, description = "The metrics could not be encoded", body = ErrorBody),
    )
)]
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
