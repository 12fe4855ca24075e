//! Faults: `GET /api/faults` (filters `status`, `fault_type`, `host`, `severity`, `cluster`,
//! `since` / `until` (RFC 3339, on the time the fault was seen), `limit`, `cursor`),
//! `GET /api/faults/{id}` (with the ids of the stored log lines that evidence it),
//! `POST /api/faults/{id}/ack` (optional JSON body `{"by": "alice"}`), `POST /api/faults/{id}/resolve`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::logs::rfc3339_ms;
use super::{ApiError, AppState, params};
use crate::storage::{FaultQuery, FaultRow, FaultStatusChange};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    status: Option<String>,
    fault_type: Option<String>,
    host: Option<String>,
    severity: Option<String>,
    cluster: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FaultOut {
    pub id: i64,
    pub fingerprint: String,
    pub fault_type: String,
    pub severity: String,
    pub status: String,
    pub source: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub title: String,
    pub diagnosis: String,
    pub remediation: serde_json::Value,
    pub evidence: serde_json::Value,
    pub occurrences: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The LLM escalation of an unknown fault (absent for rule and health-check faults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_ids: Option<Vec<i64>>,
}

impl From<FaultRow> for FaultOut {
    fn from(r: FaultRow) -> Self {
        FaultOut {
            id: r.id,
            fingerprint: r.fingerprint,
            fault_type: r.fault_type,
            severity: r.severity,
            status: r.status,
            source: r.source,
            cluster: r.cluster,
            host: r.host,
            service: r.service,
            title: r.title,
            diagnosis: r.root_cause,
            remediation: serde_json::from_str(&r.remediation)
                .unwrap_or(serde_json::Value::String(r.remediation)),
            evidence: serde_json::from_str(&r.evidence).unwrap_or(serde_json::Value::Null),
            occurrences: r.occurrences,
            first_seen: rfc3339_ms(r.first_seen),
            last_seen: rfc3339_ms(r.last_seen),
            acknowledged_at: r.acknowledged_at.map(rfc3339_ms),
            acknowledged_by: r.acknowledged_by,
            resolved_at: r.resolved_at.map(rfc3339_ms),
            created_at: rfc3339_ms(r.created_at),
            updated_at: rfc3339_ms(r.updated_at),
            llm: llm_out(
                r.template_key,
                r.llm_status,
                r.llm_model,
                r.llm_confidence,
                r.llm_answer,
            ),
            log_ids: None,
        }
    }
}

/// `status` is `pending` until the escalation ran; `answer` is the structured diagnosis with
/// the fault's own values restored.
fn llm_out(
    template_key: Option<String>,
    status: Option<String>,
    model: Option<String>,
    confidence: Option<f64>,
    answer: Option<String>,
) -> Option<serde_json::Value> {
    let template_key = template_key?;
    Some(serde_json::json!({
        "template_key": template_key,
        "status": status.unwrap_or_else(|| "pending".into()),
        "model": model,
        "confidence": confidence,
        "answer": answer.and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok()),
    }))
}

#[derive(Debug, Serialize)]
struct Page {
    faults: Vec<FaultOut>,
    next_cursor: Option<String>,
}

const MAX_LIMIT: u32 = 500;
const STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];
const SEVERITIES: [&str; 4] = ["info", "warning", "error", "critical"];

fn one_of(name: &str, v: Option<String>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
        Some(s) => Err(ApiError::BadRequest(format!(
            "`{name}` must be one of {}, not `{s}`",
            allowed.join(", ")
        ))),
    }
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p: Params = params::query(&req)?;
    let limit = params::limit(p.limit.as_deref(), 50, MAX_LIMIT)?;
    let q = FaultQuery {
        status: one_of("status", p.status, &STATUSES)?,
        severity: one_of("severity", p.severity, &SEVERITIES)?,
        fault_type: params::non_empty(p.fault_type),
        host: params::non_empty(p.host),
        cluster: params::non_empty(p.cluster),
        since_ms: params::time("since", p.since.as_deref())?,
        until_ms: params::time("until", p.until.as_deref())?,
        before: params::cursor(p.cursor.as_deref())?,
        limit,
    };
    let rows = state.store.query_faults(&q).await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| format!("{}:{}", r.last_seen, r.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        faults: rows.into_iter().map(FaultOut::from).collect(),
        next_cursor,
    }))
}

fn fault_id(path: &str) -> Result<i64, ApiError> {
    path.parse()
        .map_err(|_| ApiError::BadRequest(format!("fault id must be an integer, not `{path}`")))
}

pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = fault_id(&path)?;
    let row = state
        .store
        .get_fault(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no fault with id {id}")))?;
    let log_ids = state.store.fault_log_ids(id, 1000).await?;
    let mut out = FaultOut::from(row);
    out.log_ids = Some(log_ids);
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: Option<String>,
}

async fn answer(
    state: &AppState,
    id: i64,
    change: FaultStatusChange,
    verb: &str,
) -> Result<HttpResponse, ApiError> {
    match change {
        FaultStatusChange::Changed => {
            let row = state
                .store
                .get_fault(id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no fault with id {id}")))?;
            Ok(HttpResponse::Ok().json(FaultOut::from(row)))
        }
        FaultStatusChange::NotFound => Err(ApiError::NotFound(format!("no fault with id {id}"))),
        FaultStatusChange::Conflict(status) => Err(ApiError::Conflict(format!(
            "fault {id} is {status}; it cannot be {verb}"
        ))),
    }
}

pub async fn ack(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = fault_id(&path)?;
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let by = body.by.unwrap_or_else(|| "api".into());
    let change = state
        .store
        .acknowledge_fault(id, &by, crate::now_ms())
        .await?;
    answer(&state, id, change, "acknowledged").await
}

pub async fn resolve(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = fault_id(&path)?;
    let change = state.store.resolve_fault(id, crate::now_ms()).await?;
    answer(&state, id, change, "resolved").await
}

/// `POST /api/rules/reload`: compile the rule source anew and swap it in, or keep the old set
/// and answer 422 with every problem (file, field, reason).
pub async fn reload_rules(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.rules.reload() {
        Ok(summary) => {
            state.metrics.rule_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(rules = summary.rules, source = %summary.source, "rules reloaded");
            Ok(HttpResponse::Ok().json(summary))
        }
        Err(e) => {
            state
                .metrics
                .rule_reloads
                .with_label_values(&["error"])
                .inc();
            tracing::warn!(error = %e, "rule reload refused; the previous set stays active");
            Err(ApiError::InvalidRules(e))
        }
    }
}

/// `GET /api/rules`: the active rule set.
pub async fn list_rules(state: web::Data<AppState>) -> HttpResponse {
    let set = state.rules.current();
    let rules: Vec<serde_json::Value> = set
        .rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "kind": format!("{:?}", r.kind).to_lowercase(),
                "title": r.title,
                "severity": r.severity.as_str(),
                "component": r.component,
                "priority": r.priority,
                "file": r.file,
                "signals": r.signals.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({
        "source": state.rules.source().to_string(),
        "rules": rules,
    }))
}
