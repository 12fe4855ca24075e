//! Health checks and cluster status:
//! `POST /api/health-checks/run` (`cluster`, `check` narrow it; answers once recorded),
//! `GET /api/health-checks` (every check: schedule, next run, last result, runs, skips),
//! `GET /api/cluster/status` (the newest reading of each cluster, its health, what changed),
//! `GET /api/cluster/status/history` (`cluster`, `limit`, `before`: stored snapshots).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, AppState, params};
use crate::actors::scheduler::{CheckState, RunNow};
use crate::cluster::runner::RunReport;
use crate::cluster::settings::CHECKS;
use crate::cluster::snapshot::{Change, ClusterSnapshot, Health};
use crate::storage::SnapshotRow;

/// The query of `POST /api/health-checks/run` (an empty value is the same as none).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunParams {
    /// Only this configured cluster (all when absent).
    #[param(example = "prod")]
    cluster: Option<String>,
    /// Only this check (all when absent).
    #[param(schema_with = super::openapi::check_param, example = "namenode")]
    check: Option<String>,
}

/// `POST /api/health-checks/run`: what each run did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunsOut {
    runs: Vec<RunReport>,
}

/// `GET /api/health-checks`: every check of every cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecksOut {
    checks: Vec<CheckState>,
}

fn known_cluster(state: &AppState, name: &Option<String>) -> Result<(), ApiError> {
    match name {
        Some(n) if !state.settings.clusters.iter().any(|c| &c.name == n) => Err(
            ApiError::NotFound(format!("no cluster `{n}` in the configuration")),
        ),
        _ => Ok(()),
    }
}

#[utoipa::path(
    post,
    path = "/api/health-checks/run",
    tag = "cluster",
    summary = "Run health checks now; answers once their results are recorded",
    security(("bearer" = ["operator"])),
    params(RunParams),
    responses(
        (status = 200, description = "One report per cluster run", body = RunsOut, example = json!({
            "runs": [{
                "cluster": "prod", "checks": ["namenode"], "started_at": 1715508852118_i64,
                "health": "ok", "snapshot_id": 12, "exec_log_ids": [31],
                "statuses": {"success": 1}, "errors": [],
                "faults": {"opened": [], "confirmed": [], "resolved": []}
            }]
        })),
        (status = 400, description = "An unknown parameter or check", body = ErrorBody,
            example = json!({"error": "unknown check `disk` (one of namenode, resourcemanager, flume, ports, ssh, scripts)", "status": 400})),
        (status = 404, description = "No such cluster in the configuration", body = ErrorBody,
            example = json!({"error": "no cluster `prod` in the configuration", "status": 404})),
        (status = 409, description = "No cluster is configured", body = ErrorBody,
            example = json!({"error": "no cluster is configured ([[clusters]] in faultline.toml)", "status": 409})),
        (status = 503, description = "The scheduler is not running", body = ErrorBody),
    )
)]
pub async fn run(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p: RunParams = params::query(&req)?;
    let (cluster, check) = (params::non_empty(p.cluster), params::non_empty(p.check));
    known_cluster(&state, &cluster)?;
    if let Some(c) = check.as_ref().filter(|c| !CHECKS.contains(&c.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown check `{c}` (one of {})",
            CHECKS.join(", ")
        )));
    }
    if state.settings.clusters.is_empty() {
        return Err(ApiError::Conflict(
            "no cluster is configured ([[clusters]] in faultline.toml)".into(),
        ));
    }
    let runs = state
        .scheduler
        .send(RunNow { cluster, check })
        .await
        .map_err(|e| ApiError::Unavailable(format!("the scheduler is not running: {e}")))?;
    Ok(HttpResponse::Ok().json(RunsOut { runs }))
}

#[utoipa::path(
    get,
    path = "/api/health-checks",
    tag = "cluster",
    summary = "Every check: schedule, next run, last result, runs, skips",
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Every check of every configured cluster", body = ChecksOut, example = json!({
            "checks": [{
                "cluster": "prod", "check": "namenode", "schedule": "0 * * * * *",
                "next_due_ms": 1715508900000_i64, "running": false, "runs": 12, "skipped": 0,
                "last": {"started_at": 1715508840000_i64, "finished_at": 1715508840150_i64, "status": "success", "message": ""}
            }]
        })),
    )
)]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let checks = state
        .scheduler_shared
        .checks
        .lock()
        .map(|c| c.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    HttpResponse::Ok().json(ChecksOut { checks })
}

/// The query of `GET /api/cluster/status` (an empty value is the same as none).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusParams {
    /// Only this configured cluster (all when absent).
    #[param(example = "prod")]
    cluster: Option<String>,
}

/// `GET /api/cluster/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatusList {
    /// One per configured cluster that has been read at least once.
    clusters: Vec<ClusterStatusOut>,
}

/// The newest reading of one cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatusOut {
    cluster: String,
    /// When the newest part was read (epoch ms).
    taken_at: i64,
    health: Health,
    /// Faults this reading shows (the fault records are in `/api/faults`).
    faults: Vec<SnapshotFaultOut>,
    /// What changed with the last run.
    changes: Vec<Change>,
    /// Every part as last read (a part that failed to read shows its error instead).
    snapshot: ClusterSnapshot,
}

/// A fault a cluster reading shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotFaultOut {
    /// A class id of the taxonomy, or `unknown`.
    #[schema(value_type = String)]
    fault_type: &'static str,
    /// What it is about (a DataNode address, a host, an agent/channel).
    entity: String,
    severity: crate::rules::Severity,
    title: String,
    /// The snapshot values it rests on.
    evidence: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/cluster/status",
    tag = "cluster",
    summary = "The newest reading of each cluster: its health, the faults it shows, what changed",
    security(("bearer" = ["read"])),
    params(StatusParams),
    responses(
        (status = 200, description = "The clusters' status", body = ClusterStatusList,
            example = json!({"clusters": []})),
        (status = 400, description = "An unknown parameter", body = ErrorBody),
        (status = 404, description = "No such cluster in the configuration", body = ErrorBody,
            example = json!({"error": "no cluster `prod` in the configuration", "status": 404})),
    )
)]
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p: StatusParams = params::query(&req)?;
    let cluster = params::non_empty(p.cluster);
    known_cluster(&state, &cluster)?;
    let shared = &state.scheduler_shared;
    let views = shared.views.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::new();
    for c in state.settings.clusters.iter() {
        if cluster.as_ref().is_some_and(|n| *n != c.name) {
            continue;
        }
        let Some(v) = views.get(&c.name) else {
            continue;
        };
        let history: Vec<ClusterSnapshot> = v.runs.iter().skip(1).cloned().collect();
        let faults = v
            .latest
            .faults(&history, &shared.thresholds)
            .into_iter()
            .map(|f| SnapshotFaultOut {
                fault_type: f.fault_type,
                entity: f.entity,
                severity: f.severity,
                title: f.title,
                evidence: f.evidence,
            })
            .collect();
        out.push(ClusterStatusOut {
            cluster: c.name.clone(),
            taken_at: v.latest.taken_ms,
            health: v.latest.health(&shared.thresholds),
            faults,
            changes: v.changes(),
            snapshot: v.latest.clone(),
        });
    }
    Ok(HttpResponse::Ok().json(ClusterStatusList { clusters: out }))
}

/// The query of `GET /api/cluster/status/history` (an empty value is the same as none).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// The configured cluster (may be left out when only one is configured).
    #[param(example = "prod")]
    cluster: Option<String>,
    /// Page size.
    #[param(schema_with = super::openapi::limit_500_param, example = 50)]
    limit: Option<String>,
    /// Only snapshots older than this snapshot id (the previous page's `next_before`).
    #[param(schema_with = super::openapi::id_param, example = 120)]
    before: Option<String>,
}

/// `GET /api/cluster/status/history`: stored snapshots, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    cluster: String,
    snapshots: Vec<SnapshotRow>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_before: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/cluster/status/history",
    tag = "cluster",
    summary = "A cluster's stored snapshots, newest first, with paging",
    security(("bearer" = ["read"])),
    params(HistoryParams),
    responses(
        (status = 200, description = "A page of snapshots", body = HistoryOut, example = json!({
            "cluster": "prod",
            "snapshots": [{
                "id": 12, "taken_at": 1715508852118_i64, "cluster": "prod", "health": "ok",
                "snapshot": {"cluster": "prod", "taken_ms": 1715508852118_i64, "namenode_address": null,
                    "namenode": null, "resourcemanager": null, "flume": [], "ports": [], "ssh": [], "errors": []}
            }],
            "next_before": null
        })),
        (status = 400, description = "An unknown parameter, a bad `limit` or `before`, or no `cluster` while several are configured", body = ErrorBody,
            example = json!({"error": "`cluster` is required when several clusters are configured", "status": 400})),
        (status = 404, description = "No such cluster in the configuration", body = ErrorBody),
        (status = 409, description = "No cluster is configured", body = ErrorBody,
            example = json!({"error": "no cluster is configured ([[clusters]] in faultline.toml)", "status": 409})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn history(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let p: HistoryParams = params::query(&req)?;
    let cluster = match params::non_empty(p.cluster) {
        Some(c) => c,
        None if state.settings.clusters.len() == 1 => state.settings.clusters[0].name.clone(),
        None if state.settings.clusters.is_empty() => {
            return Err(ApiError::Conflict(
                "no cluster is configured ([[clusters]] in faultline.toml)".into(),
            ));
        }
        None => {
            return Err(ApiError::BadRequest(
                "`cluster` is required when several clusters are configured".into(),
            ));
        }
    };
    known_cluster(&state, &Some(cluster.clone()))?;
    let limit = params::limit(p.limit.as_deref(), 50, 500)?;
    let before = match params::non_empty(p.before) {
        None => None,
        Some(b) => Some(b.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("`before` must be a snapshot id, not `{b}`"))
        })?),
    };
    let rows = state
        .store
        .snapshot_history(&cluster, before, limit)
        .await?;
    let next_before = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(HistoryOut {
        cluster,
        snapshots: rows,
        next_before,
    }))
}
