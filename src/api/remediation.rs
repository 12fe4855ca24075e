//! Remediation: `POST /api/faults/{id}/remediate` (optional `{"by": "alice"}`) proposes what
//! would run (a dry run; 422 with the audit record when a parameter is refused),
//! `POST /api/remediations/{id}/approve` (optional `{"by": "alice"}`; the audit records the
//! token's name in any case) runs it in the
//! background, `GET /api/remediations/{id}` shows it with its exec log,
//! `GET /api/faults/{id}/remediations` lists a fault's.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::logs::rfc3339_ms;
use super::{ApiError, AppState, params};
use crate::remediation::RemediateError;
use crate::storage::{ExecLogRow, RemediationRow};

/// Who proposes or approves (an empty body or `null` is the same as `{}`).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"by": "alice"}))]
pub struct ByBody {
    /// Who acts, as the audit trail records it next to the token's name
    /// (`alice (token ops-team)`); absent: the token's name alone.
    by: Option<String>,
}

/// A remediation: what would run (or ran) for a fault, who decided, and how it ended.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "fault_id": 42, "script": "restart-datanode.sh",
    "args": ["--host", "worker3", "--cluster", "prod"],
    "command": ["/etc/faultline/remediation/restart-datanode.sh", "--host", "worker3", "--cluster", "prod"],
    "cluster": "prod", "host": "worker3", "status": "proposed", "mode": "approval",
    "proposed_by": "alice", "proposed_at": "2024-05-12T10:14:12.000Z", "approved_by": null,
    "approved_at": null, "exec_log_id": null, "finished_at": null,
    "message": "would run restart-datanode.sh on worker3"
}))]
pub struct RemediationOut {
    pub id: i64,
    pub fault_id: i64,
    /// The allow-listed script (empty when none applies).
    pub script: String,
    /// Its arguments, each passed separately (no shell).
    pub args: Vec<String>,
    /// The program and arguments that run (`null` when no script applies).
    pub command: Option<Vec<String>>,
    pub cluster: String,
    pub host: String,
    /// `proposed`, `running`, `succeeded`, `failed`, `timeout`, `refused`, `effective` or
    /// `not_effective`.
    pub status: String,
    /// `approval` or `auto`.
    pub mode: String,
    pub proposed_by: String,
    #[schema(format = DateTime)]
    pub proposed_at: String,
    pub approved_by: Option<String>,
    #[schema(format = DateTime)]
    pub approved_at: Option<String>,
    /// The `exec_logs` record of the run (or of the refusal).
    pub exec_log_id: Option<i64>,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub message: String,
    /// `GET /api/remediations/{id}` only, once there is one: the run's record (command,
    /// exit code, output).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exec_log: Option<ExecLogRow>,
}

/// `GET /api/faults/{id}/remediations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultRemediations {
    pub fault_id: i64,
    pub remediations: Vec<RemediationOut>,
}

fn body(bytes: &[u8]) -> Result<ByBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ByBody::default());
    }
    serde_json::from_slice::<Option<ByBody>>(bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn id_of(path: &str, what: &str) -> Result<i64, ApiError> {
    path.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer, not `{path}`")))
}

fn out(r: &RemediationRow, program_dir: &str) -> RemediationOut {
    let args: Vec<String> = serde_json::from_str(&r.args).unwrap_or_default();
    let command = (!r.script.is_empty()).then(|| {
        std::iter::once(format!(
            "{}/{}",
            program_dir.trim_end_matches('/'),
            r.script
        ))
        .chain(args.iter().cloned())
        .collect()
    });
    RemediationOut {
        id: r.id,
        fault_id: r.fault_id,
        script: r.script.clone(),
        args,
        command,
        cluster: r.cluster.clone(),
        host: r.host.clone(),
        status: r.status.clone(),
        mode: r.mode.clone(),
        proposed_by: r.proposed_by.clone(),
        proposed_at: rfc3339_ms(r.proposed_at),
        approved_by: r.approved_by.clone(),
        approved_at: r.approved_at.map(rfc3339_ms),
        exec_log_id: r.exec_log_id,
        finished_at: r.finished_at.map(rfc3339_ms),
        message: r.message.clone(),
        exec_log: None,
    }
}

fn map(e: RemediateError, dir: &str) -> ApiError {
    match e {
        RemediateError::NoFault(_) | RemediateError::NotFound(_) => {
            ApiError::NotFound(e.to_string())
        }
        RemediateError::Conflict(m) => ApiError::Conflict(m),
        RemediateError::Refused {
            reason,
            remediation,
        } => ApiError::Refused {
            reason,
            record: Box::new(out(&remediation, dir)),
        },
        RemediateError::Store(s) => ApiError::from(s),
    }
}

#[utoipa::path(
    post,
    path = "/api/faults/{id}/remediate",
    tag = "remediation",
    summary = "Propose a remediation for a fault (a dry run: nothing runs until approved)",
    security(("bearer" = ["operator"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    request_body(content = Option<ByBody>, content_type = "application/json",
        description = "Optional: who proposes (an empty body is allowed; `api` when absent)",
        example = json!({"by": "alice"})),
    responses(
        (status = 201, description = "Proposed: what would run", body = RemediationOut),
        (status = 400, description = "The id is not an integer, or the body is not the JSON object described", body = ErrorBody),
        (status = 404, description = "No fault with this id", body = ErrorBody,
            example = json!({"error": "no fault with id 42", "status": 404})),
        (status = 409, description = "The fault is resolved, a remediation of it is already proposed or running, or no allowed script is known for its type", body = ErrorBody,
            example = json!({"error": "no remediation script is known for fault type \"unknown\"", "status": 409})),
        (status = 422, description = "Refused for safety (a parameter failed validation); `remediation` is the audit record of the refusal", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn propose(
    req: HttpRequest,
    path: web::Path<String>,
    bytes: params::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "fault")?;
    let by = super::guard::actor(&req, body(&bytes)?.by.as_deref());
    let dir = &state.settings.remediation.scripts_dir;
    let row = state
        .remediator
        .propose(id, &by, "approval")
        .await
        .map_err(|e| map(e, dir))?;
    Ok(HttpResponse::Created().json(out(&row, dir)))
}

#[utoipa::path(
    post,
    path = "/api/remediations/{id}/approve",
    tag = "remediation",
    summary = "Approve a proposed remediation: it runs in the background",
    security(("bearer" = ["operator"])),
    params(("id" = i64, Path, description = "Remediation id", example = 3)),
    request_body(content = Option<ByBody>, content_type = "application/json",
        description = "Optional: who approves (the token's name is recorded in any case)", example = json!({"by": "alice"})),
    responses(
        (status = 202, description = "Approved; it runs now (poll `GET /api/remediations/{id}`)", body = RemediationOut),
        (status = 400, description = "The id is not an integer, or the body is not the JSON object described", body = ErrorBody),
        (status = 404, description = "No remediation with this id", body = ErrorBody),
        (status = 409, description = "The remediation is not waiting for approval", body = ErrorBody,
            example = json!({"error": "remediation 3 is succeeded, not proposed", "status": 409})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn approve(
    req: HttpRequest,
    path: web::Path<String>,
    bytes: params::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "remediation")?;
    let by = super::guard::actor(&req, body(&bytes)?.by.as_deref());
    let dir = &state.settings.remediation.scripts_dir;
    let row = state
        .remediator
        .approve(id, &by)
        .await
        .map_err(|e| map(e, dir))?;
    Ok(HttpResponse::Accepted().json(out(&row, dir)))
}

#[utoipa::path(
    get,
    path = "/api/remediations/{id}",
    tag = "remediation",
    summary = "One remediation, with the record of its run",
    security(("bearer" = ["read"])),
    params(("id" = i64, Path, description = "Remediation id", example = 3)),
    responses(
        (status = 200, description = "The remediation", body = RemediationOut),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No remediation with this id", body = ErrorBody,
            example = json!({"error": "no remediation with id 3", "status": 404})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "remediation")?;
    let row = state
        .store
        .get_remediation(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no remediation with id {id}")))?;
    let mut v = out(&row, &state.settings.remediation.scripts_dir);
    if let Some(exec_id) = row.exec_log_id {
        v.exec_log = state.store.get_exec_log(exec_id).await?;
    }
    Ok(HttpResponse::Ok().json(v))
}

#[utoipa::path(
    get,
    path = "/api/faults/{id}/remediations",
    tag = "remediation",
    summary = "A fault's remediations",
    security(("bearer" = ["read"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    responses(
        (status = 200, description = "The fault's remediations (empty for an unknown fault)", body = FaultRemediations,
            example = json!({"fault_id": 42, "remediations": []})),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_for_fault(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "fault")?;
    let dir = &state.settings.remediation.scripts_dir;
    let rows = state.store.fault_remediations(id).await?;
    Ok(HttpResponse::Ok().json(FaultRemediations {
        fault_id: id,
        remediations: rows.iter().map(|r| out(r, dir)).collect(),
    }))
}
