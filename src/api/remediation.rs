//! Remediation: `POST /api/faults/{id}/remediate` (optional `{"by": "alice"}`) proposes what
//! would run (a dry run; 422 with the audit record when a parameter is refused),
//! `POST /api/remediations/{id}/approve` (`{"by": "alice"}`, required) runs it in the
//! background, `GET /api/remediations/{id}` shows it with its exec log,
//! `GET /api/faults/{id}/remediations` lists a fault's.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::remediation::RemediateError;
use crate::storage::RemediationRow;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ByBody {
    by: Option<String>,
}

fn body(bytes: &[u8]) -> Result<ByBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ByBody::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn id_of(path: &str, what: &str) -> Result<i64, ApiError> {
    path.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer, not `{path}`")))
}

fn out(r: &RemediationRow, program_dir: &str) -> serde_json::Value {
    let args: Vec<String> = serde_json::from_str(&r.args).unwrap_or_default();
    serde_json::json!({
        "id": r.id,
        "fault_id": r.fault_id,
        "script": r.script,
        "args": args,
        "command": if r.script.is_empty() { serde_json::Value::Null } else {
            serde_json::json!(std::iter::once(format!("{}/{}", program_dir.trim_end_matches('/'), r.script)).chain(args.iter().cloned()).collect::<Vec<_>>())
        },
        "cluster": r.cluster,
        "host": r.host,
        "status": r.status,
        "mode": r.mode,
        "proposed_by": r.proposed_by,
        "proposed_at": super::logs::rfc3339_ms(r.proposed_at),
        "approved_by": r.approved_by,
        "approved_at": r.approved_at.map(super::logs::rfc3339_ms),
        "exec_log_id": r.exec_log_id,
        "finished_at": r.finished_at.map(super::logs::rfc3339_ms),
        "message": r.message,
    })
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
            record: out(&remediation, dir),
        },
        RemediateError::Store(s) => ApiError::from(s),
    }
}

pub async fn propose(
    path: web::Path<String>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "fault")?;
    let by = body(&bytes)?.by.unwrap_or_else(|| "api".into());
    let dir = &state.settings.remediation.scripts_dir;
    let row = state
        .remediator
        .propose(id, &by, "approval")
        .await
        .map_err(|e| map(e, dir))?;
    Ok(HttpResponse::Created().json(out(&row, dir)))
}

pub async fn approve(
    path: web::Path<String>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "remediation")?;
    let by = body(&bytes)?
        .by
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("`by` (who approves) is required".into()))?;
    let dir = &state.settings.remediation.scripts_dir;
    let row = state
        .remediator
        .approve(id, &by)
        .await
        .map_err(|e| map(e, dir))?;
    Ok(HttpResponse::Accepted().json(out(&row, dir)))
}

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
    if let Some(exec_id) = row.exec_log_id
        && let Some(l) = state.store.get_exec_log(exec_id).await?
    {
        v["exec_log"] = serde_json::to_value(l).unwrap_or_default();
    }
    Ok(HttpResponse::Ok().json(v))
}

pub async fn list_for_fault(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "fault")?;
    let dir = &state.settings.remediation.scripts_dir;
    let rows = state.store.fault_remediations(id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "fault_id": id,
        "remediations": rows.iter().map(|r| out(r, dir)).collect::<Vec<_>>(),
    })))
}
