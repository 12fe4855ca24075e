//! Faults: `GET /api/faults` (filters `status`, `fault_type`, `host`, `severity`, `cluster`,
//! `since` / `until` (RFC 3339, on the time the fault was seen), `limit`, `cursor`),
//! `GET /api/faults/{id}` (with the ids of the stored log lines that evidence it),
//! `POST /api/faults/{id}/ack` (optional JSON body `{"by": "alice"}`), `POST /api/faults/{id}/resolve`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::logs::rfc3339_ms;
use super::{ApiError, AppState, params};
use crate::rules::ReloadSummary;
use crate::storage::{FaultQuery, FaultRow, FaultStatusChange};

/// The query of `GET /api/faults` (an empty value is the same as none).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Params {
    /// Only faults in this status.
    #[param(schema_with = super::openapi::fault_status_param, example = "open")]
    status: Option<String>,
    /// Only this fault class (exact), e.g. `datanode_disk_full` or `unknown`.
    #[param(example = "datanode_disk_full")]
    fault_type: Option<String>,
    /// Only this host (exact).
    #[param(example = "worker3")]
    host: Option<String>,
    /// Only this severity.
    #[param(schema_with = super::openapi::severity_param, example = "error")]
    severity: Option<String>,
    /// Only this cluster (exact).
    #[param(example = "prod")]
    cluster: Option<String>,
    /// Last seen at or after (RFC 3339).
    #[param(schema_with = super::openapi::time_param, example = "2024-05-12T10:00:00Z")]
    since: Option<String>,
    /// Last seen before (RFC 3339, exclusive).
    #[param(schema_with = super::openapi::time_param, example = "2024-05-12T11:00:00Z")]
    until: Option<String>,
    /// Page size.
    #[param(schema_with = super::openapi::limit_500_param, example = 50)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(schema_with = super::openapi::cursor_param, example = "1715508852118:42")]
    cursor: Option<String>,
}

/// A fault record: one fault (repeats share it), how it was diagnosed and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultOut {
    pub id: i64,
    /// The identity repeats share (`<class>:<cluster>:<entity>`).
    pub fingerprint: String,
    /// A class id of the taxonomy, or `unknown`.
    pub fault_type: String,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    /// What found it: `rule`, `unknown`, `llm` or `health_check`.
    pub source: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub title: String,
    /// The root cause, as the rule (or the LLM) states it.
    pub diagnosis: String,
    /// The remediation steps: a JSON array of strings (plain text for records that hold
    /// text).
    #[schema(value_type = Value)]
    pub remediation: serde_json::Value,
    /// The evidence as recorded (log lines, captures, snapshot values); `null` if unreadable.
    #[schema(value_type = Option<Object>)]
    pub evidence: serde_json::Value,
    pub occurrences: i64,
    #[schema(format = DateTime)]
    pub first_seen: String,
    #[schema(format = DateTime)]
    pub last_seen: String,
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The LLM escalation of an unknown fault (absent for rule and health-check faults).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub llm: Option<FaultLlm>,
    /// `GET /api/faults/{id}` only: the ids of the stored log records that evidence it (at
    /// most 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub log_ids: Option<Vec<i64>>,
}

/// The LLM escalation of an unknown fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultLlm {
    /// The message template the fault was escalated for.
    pub template_key: String,
    /// `pending` until the escalation ran, then `diagnosed`, `unverified`, `skipped` or
    /// `confirmed`.
    pub status: String,
    pub model: Option<String>,
    pub confidence: Option<f64>,
    /// The structured answer with the fault's own values restored (an escalation, or
    /// `{"status": "skipped", "problem": ...}`); `null` while pending.
    #[schema(value_type = Option<Object>)]
    pub answer: Option<serde_json::Value>,
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
) -> Option<FaultLlm> {
    Some(FaultLlm {
        template_key: template_key?,
        status: status.unwrap_or_else(|| "pending".into()),
        model,
        confidence,
        answer: answer.and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok()),
    })
}

/// A page of faults, most recently seen first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultPage {
    faults: Vec<FaultOut>,
    /// Pass as `cursor` for the next page; `null` on the last page.
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

#[utoipa::path(
    get,
    path = "/api/faults",
    tag = "faults",
    summary = "Fault records, most recently seen first, with filters and cursor paging",
    security(("bearer" = ["read"])),
    params(Params),
    responses(
        (status = 200, description = "A page of faults", body = FaultPage,
            example = json!({"faults": [], "next_cursor": null})),
        (status = 400, description = "A parameter is invalid (unknown parameter, status, severity, time, limit or cursor)", body = ErrorBody,
            example = json!({"error": "`status` must be one of open, acknowledged, resolved, not `closed`", "status": 400})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
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
    Ok(HttpResponse::Ok().json(FaultPage {
        faults: rows.into_iter().map(FaultOut::from).collect(),
        next_cursor,
    }))
}

fn fault_id(path: &str) -> Result<i64, ApiError> {
    path.parse()
        .map_err(|_| ApiError::BadRequest(format!("fault id must be an integer, not `{path}`")))
}

#[utoipa::path(
    get,
    path = "/api/faults/{id}",
    tag = "faults",
    summary = "One fault, with the ids of the log records that evidence it",
    security(("bearer" = ["read"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    responses(
        (status = 200, description = "The fault", body = FaultOut, example = json!({
            "id": 42, "fingerprint": "datanode_disk_full:prod:worker3",
            "fault_type": "datanode_disk_full", "severity": "error", "status": "open",
            "source": "rule", "cluster": "prod", "host": "worker3", "service": "datanode",
            "title": "DataNode disk full on worker3",
            "diagnosis": "A data volume of the DataNode on worker3 has no space left.",
            "remediation": ["Free space on the volume or add a volume", "Run the balancer"],
            "evidence": {"rule_id": "datanode_disk_full", "entity": "worker3", "captures": {}, "references": [], "records": [], "snapshot_values": []},
            "occurrences": 3, "first_seen": "2024-05-12T10:14:12.118Z",
            "last_seen": "2024-05-12T10:20:01.004Z", "acknowledged_at": null,
            "acknowledged_by": null, "resolved_at": null,
            "created_at": "2024-05-12T10:14:13.000Z", "updated_at": "2024-05-12T10:20:02.000Z"
        })),
        (status = 400, description = "The id is not an integer", body = ErrorBody,
            example = json!({"error": "fault id must be an integer, not `x`", "status": 400})),
        (status = 404, description = "No fault with this id", body = ErrorBody,
            example = json!({"error": "no fault with id 42", "status": 404})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
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

/// Who acknowledges (an empty body or `null` is the same as `{}`).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"by": "alice"}))]
pub struct AckBody {
    /// Who acknowledges (`api` when absent).
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

#[utoipa::path(
    post,
    path = "/api/faults/{id}/ack",
    tag = "faults",
    summary = "Acknowledge an open fault",
    security(("bearer" = ["operator"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    request_body(content = Option<AckBody>, content_type = "application/json",
        description = "Optional: who acknowledges (an empty body is allowed)",
        example = json!({"by": "alice"})),
    responses(
        (status = 200, description = "The fault, now acknowledged", body = FaultOut),
        (status = 400, description = "The id is not an integer, or the body is not the JSON object described", body = ErrorBody),
        (status = 404, description = "No fault with this id", body = ErrorBody),
        (status = 409, description = "The fault is resolved and cannot be acknowledged (acknowledging an acknowledged fault changes nothing)", body = ErrorBody,
            example = json!({"error": "fault 42 is resolved; it cannot be acknowledged", "status": 409})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn ack(
    req: HttpRequest,
    path: web::Path<String>,
    body: params::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = fault_id(&path)?;
    let body: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        serde_json::from_slice::<Option<AckBody>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
            .unwrap_or_default()
    };
    let by = super::guard::actor(&req, body.by.as_deref());
    let change = state
        .store
        .acknowledge_fault(id, &by, crate::now_ms())
        .await?;
    answer(&state, id, change, "acknowledged").await
}

#[utoipa::path(
    post,
    path = "/api/faults/{id}/resolve",
    tag = "faults",
    summary = "Resolve a fault by hand (resolving a resolved fault changes nothing)",
    security(("bearer" = ["operator"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    responses(
        (status = 200, description = "The fault, now resolved", body = FaultOut),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No fault with this id", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/rules/reload",
    tag = "rules",
    summary = "Reload the rule files; on any problem the previous set stays active",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The new rule set is active", body = ReloadSummary,
            example = json!({"source": "/etc/faultline/rules", "rules": 64, "fault_rules": 52})),
        (status = 422, description = "Not reloaded: every problem found (file, field, reason); the previous set stays active", body = ErrorBody,
            example = json!({
                "error": "rules not reloaded, the previous set stays active: 1 invalid rule file(s):\n  disk.toml: severity: unknown severity `urgent`",
                "status": 422,
                "errors": [{"file": "disk.toml", "field": "severity", "reason": "unknown severity `urgent`"}]
            })),
    )
)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesOut {
    /// Where the rules come from (a directory, or the rules built into the binary).
    source: String,
    rules: Vec<RuleOut>,
}

/// One active rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleOut {
    id: String,
    /// `fault` (a known class), `benign` (a documented look-alike) or `escalate` (a real
    /// fault no class covers, sent to the LLM).
    kind: String,
    title: String,
    severity: crate::rules::Severity,
    component: String,
    priority: i32,
    /// The rule file.
    file: String,
    /// The names of its signals.
    signals: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/rules",
    tag = "rules",
    summary = "The active rule set",
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Every active rule", body = RulesOut, example = json!({
            "source": "/etc/faultline/rules",
            "rules": [{
                "id": "datanode_disk_full", "kind": "fault", "title": "DataNode disk full",
                "severity": "error", "component": "hdfs", "priority": 50,
                "file": "hdfs/datanode_disk_full.toml", "signals": ["disk_out_of_space"]
            }]
        })),
    )
)]
pub async fn list_rules(state: web::Data<AppState>) -> HttpResponse {
    let set = state.rules.current();
    let rules = set
        .rules
        .iter()
        .map(|r| RuleOut {
            id: r.id.clone(),
            kind: format!("{:?}", r.kind).to_lowercase(),
            title: r.title.clone(),
            severity: r.severity,
            component: r.component.clone(),
            priority: r.priority,
            file: r.file.clone(),
            signals: r.signals.iter().map(|s| s.name.clone()).collect(),
        })
        .collect();
    HttpResponse::Ok().json(RulesOut {
        source: state.rules.source().to_string(),
        rules,
    })
}
