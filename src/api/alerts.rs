//! Silences and delivery logs:
//! - `POST /api/silences` `{"matchers": ["host=\"dn1\""], "ends_at": RFC 3339 | "duration":
//!   "2h", "starts_at"?, "created_by", "comment"}` → 201 `{"id": ..}`;
//! - `GET /api/silences`: current silences with their state (`active` / `pending`), flagged
//!   `expiring` (ends within an hour) and `long_lived` (over a week);
//! - `DELETE /api/silences/{id}`: expire it now;
//! - `GET /api/faults/{id}/deliveries`: every notification (and mute) about a fault.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::logs::rfc3339_ms;
use super::{ApiError, AppState, params};
use crate::alerting::matcher::parse_all;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    duration: Option<String>,
    created_by: String,
    #[serde(default)]
    comment: String,
}

pub async fn create_silence(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let s: NewSilence = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    if s.matchers.is_empty() {
        return Err(ApiError::BadRequest(
            "`matchers` must not be empty (a silence of everything is a maintenance window)".into(),
        ));
    }
    parse_all(&s.matchers).map_err(ApiError::BadRequest)?;
    if s.created_by.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`created_by` must not be empty".into(),
        ));
    }
    let now = crate::now_ms();
    let starts = params::time("starts_at", s.starts_at.as_deref())?.unwrap_or(now);
    let ends = match (params::time("ends_at", s.ends_at.as_deref())?, &s.duration) {
        (Some(e), None) => e,
        (None, Some(d)) => crate::rules::compile::parse_duration_ms(d)
            .map_err(|e| ApiError::BadRequest(format!("`duration`: {e}")))?
            .checked_add(starts)
            .ok_or_else(|| ApiError::BadRequest("`duration` is too long".into()))?,
        _ => {
            return Err(ApiError::BadRequest(
                "give `ends_at` (RFC 3339) or `duration` (\"90m\", \"2h\"), not both".into(),
            ));
        }
    };
    if ends <= starts || ends <= now {
        return Err(ApiError::BadRequest(
            "the silence must end after it starts and in the future".into(),
        ));
    }
    let matchers = serde_json::to_string(&s.matchers).unwrap_or_else(|_| "[]".into());
    let id = state
        .store
        .insert_silence(&matchers, starts, ends, &s.created_by, &s.comment, now)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id })))
}

pub async fn list_silences(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = crate::now_ms();
    let rows = state.store.current_silences(now).await?;
    let (mut active, mut pending, mut expiring, mut long_lived) = (0, 0, 0, 0);
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let (is_active, is_expiring, is_long) =
                crate::alerting::engine::silence_flags(r.starts_at, r.ends_at, now);
            if is_active {
                active += 1;
            } else {
                pending += 1;
            }
            expiring += i64::from(is_expiring);
            long_lived += i64::from(is_long);
            serde_json::json!({
                "id": r.id,
                "matchers": serde_json::from_str::<serde_json::Value>(&r.matchers).unwrap_or_default(),
                "starts_at": rfc3339_ms(r.starts_at),
                "ends_at": rfc3339_ms(r.ends_at),
                "created_by": r.created_by,
                "comment": r.comment,
                "created_at": rfc3339_ms(r.created_at),
                "state": if is_active { "active" } else { "pending" },
                "expiring": is_expiring,
                "long_lived": is_long,
            })
        })
        .collect();
    state
        .metrics
        .set_silences(active, pending, expiring, long_lived);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "silences": out })))
}

fn id_of(path: &str, what: &str) -> Result<i64, ApiError> {
    path.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer, not `{path}`")))
}

pub async fn delete_silence(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "silence")?;
    if state.store.delete_silence(id, crate::now_ms()).await? {
        Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "expired": true })))
    } else {
        Err(ApiError::NotFound(format!(
            "no current silence with id {id}"
        )))
    }
}

pub async fn fault_deliveries(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "fault")?;
    if state.store.get_fault(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no fault with id {id}")));
    }
    let rows = state.store.fault_deliveries(id, 200).await?;
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "receiver": r.receiver,
                "kind": r.kind,
                "group_key": r.group_key,
                "reasons": r.reasons,
                "status": r.status,
                "attempts": r.attempts,
                "created_at": rfc3339_ms(r.created_at),
                "finished_at": r.finished_at.map(rfc3339_ms),
                "last_error": r.last_error,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "fault_id": id, "deliveries": out })))
}
