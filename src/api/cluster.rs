//! Health checks and cluster status:
//! `POST /api/health-checks/run` (`cluster`, `check` narrow it; answers once recorded),
//! `GET /api/health-checks` (every check: schedule, next run, last result, runs, skips),
//! `GET /api/cluster/status` (the newest reading of each cluster, its health, what changed),
//! `GET /api/cluster/status/history` (`cluster`, `limit`, `before`: stored snapshots).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, params};
use crate::actors::scheduler::RunNow;
use crate::cluster::settings::CHECKS;
use crate::cluster::snapshot::{Change, ClusterSnapshot, Health};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunParams {
    cluster: Option<String>,
    check: Option<String>,
}

fn known_cluster(state: &AppState, name: &Option<String>) -> Result<(), ApiError> {
    match name {
        Some(n) if !state.settings.clusters.iter().any(|c| &c.name == n) => Err(
            ApiError::NotFound(format!("no cluster `{n}` in the configuration")),
        ),
        _ => Ok(()),
    }
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "runs": runs })))
}

pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let checks = state
        .scheduler_shared
        .checks
        .lock()
        .map(|c| c.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    HttpResponse::Ok().json(serde_json::json!({ "checks": checks }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusParams {
    cluster: Option<String>,
}

#[derive(Debug, Serialize)]
struct ClusterStatusOut {
    cluster: String,
    taken_at: i64,
    health: Health,
    /// Faults this reading shows (the fault records are in `/api/faults`).
    faults: Vec<FaultOut>,
    changes: Vec<Change>,
    snapshot: ClusterSnapshot,
}

#[derive(Debug, Serialize)]
struct FaultOut {
    fault_type: &'static str,
    entity: String,
    severity: &'static str,
    title: String,
    evidence: Vec<String>,
}

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
            .map(|f| FaultOut {
                fault_type: f.fault_type,
                entity: f.entity,
                severity: f.severity.as_str(),
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "clusters": out })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    cluster: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "cluster": cluster,
        "snapshots": rows,
        "next_before": next_before,
    })))
}
