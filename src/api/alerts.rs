//! Silences and delivery logs:
//! - `POST /api/silences` `{"matchers": ["host=\"dn1\""], "ends_at": RFC 3339 | "duration":
//!   "2h", "starts_at"?, "created_by", "comment"}` → 201 `{"id": ..}`;
//! - `GET /api/silences`: current silences with their state (`active` / `pending`), flagged
//!   `expiring` (ends within an hour) and `long_lived` (over a week);
//! - `DELETE /api/silences/{id}`: expire it now;
//! - `GET /api/faults/{id}/deliveries`: every notification (and mute) about a fault.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::logs::rfc3339_ms;
use super::{ApiError, AppState, params};
use crate::alerting::matcher::parse_all;

/// A new silence: notifications about faults whose labels match every matcher are muted
/// (recorded, not sent) from `starts_at` until `ends_at` (or `starts_at` + `duration`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "matchers": ["host=\"worker3\"", "fault_type=~\"datanode_.*\""],
    "duration": "2h",
    "created_by": "alice",
    "comment": "disk replacement on worker3"
}))]
pub struct NewSilence {
    /// Alertmanager-style matchers over the fault's labels: `name="value"`, `name!="value"`,
    /// `name=~"regex"`, `name!~"regex"` (anchored regexes). At least one.
    #[schema(schema_with = super::openapi::matchers_schema)]
    matchers: Vec<String>,
    /// When it starts (RFC 3339; now when absent).
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// When it ends (RFC 3339, in the future). Give this or `duration`, not both.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    /// How long it lasts from `starts_at`: a number and a unit (`ms`, `s`, `m`, `h`, `d`),
    /// e.g. `90m`, `2h`. Give this or `ends_at`, not both.
    #[schema(pattern = "^\\s*[0-9]+(ms|s|m|h|d)\\s*$", example = "2h")]
    duration: Option<String>,
    /// Who creates it (not blank).
    #[schema(
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    created_by: String,
    #[serde(default)]
    comment: String,
}

/// `POST /api/silences`: the new silence's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceCreated {
    id: i64,
}

/// A current silence.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceOut {
    id: i64,
    matchers: Vec<String>,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime)]
    ends_at: String,
    created_by: String,
    comment: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// `active` (muting now) or `pending` (starts later).
    state: SilenceState,
    /// Ends within an hour.
    expiring: bool,
    /// Lasts over a week.
    long_lived: bool,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Active,
    Pending,
}

/// `GET /api/silences`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Silences {
    silences: Vec<SilenceOut>,
}

/// `DELETE /api/silences/{id}`: the silence is expired.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceExpired {
    id: i64,
    expired: bool,
}

/// A notification about a fault (or a muted one).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    id: i64,
    /// The receiver it went (or would have gone) to.
    receiver: String,
    /// What kind of receiver: `webhook`, `alertmanager`, ...
    kind: String,
    group_key: String,
    /// Why: `new`, `resolved`, `repeat`, `muted:silence:<id>`, ... (comma-separated).
    reasons: String,
    /// `pending`, `sent`, `failed`, `muted`, ...
    status: String,
    attempts: i64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    last_error: Option<String>,
}

/// `GET /api/faults/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaultDeliveries {
    fault_id: i64,
    deliveries: Vec<DeliveryOut>,
}

#[utoipa::path(
    post,
    path = "/api/silences",
    tag = "alerting",
    summary = "Create a silence",
    security(("bearer" = ["operator"])),
    request_body(content = NewSilence, content_type = "application/json", example = json!({
        "matchers": ["host=\"worker3\""], "duration": "2h", "created_by": "alice",
        "comment": "disk replacement on worker3"
    })),
    responses(
        (status = 201, description = "Created", body = SilenceCreated, example = json!({"id": 7})),
        (status = 400, description = "Invalid: not the JSON object described, no or bad matchers, blank `created_by`, bad times or duration, both or neither of `ends_at` and `duration`, or an end not after the start, in the future and before the year 10000", body = ErrorBody,
            example = json!({"error": "the silence must end after it starts and in the future", "status": 400})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn create_silence(
    req: actix_web::HttpRequest,
    body: params::Body,
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
    if ends > params::MAX_TIME_MS {
        return Err(ApiError::BadRequest(
            "the silence must end before the year 10000".into(),
        ));
    }
    let matchers = serde_json::to_string(&s.matchers).unwrap_or_else(|_| "[]".into());
    let id = state
        .store
        .insert_silence(
            &matchers,
            starts,
            ends,
            &super::guard::actor(&req, Some(&s.created_by)),
            &s.comment,
            now,
        )
        .await?;
    Ok(HttpResponse::Created().json(SilenceCreated { id }))
}

#[utoipa::path(
    get,
    path = "/api/silences",
    tag = "alerting",
    summary = "Current silences (active and pending)",
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The current silences", body = Silences, example = json!({
            "silences": [{
                "id": 7, "matchers": ["host=\"worker3\""],
                "starts_at": "2024-05-12T10:00:00.000Z", "ends_at": "2024-05-12T12:00:00.000Z",
                "created_by": "alice", "comment": "disk replacement on worker3",
                "created_at": "2024-05-12T10:00:00.000Z", "state": "active",
                "expiring": false, "long_lived": false
            }]
        })),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_silences(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = crate::now_ms();
    let rows = state.store.current_silences(now).await?;
    let (mut active, mut pending, mut expiring, mut long_lived) = (0, 0, 0, 0);
    let out: Vec<SilenceOut> = rows
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
            SilenceOut {
                id: r.id,
                matchers: serde_json::from_str(&r.matchers).unwrap_or_default(),
                starts_at: rfc3339_ms(r.starts_at),
                ends_at: rfc3339_ms(r.ends_at),
                created_by: r.created_by,
                comment: r.comment,
                created_at: rfc3339_ms(r.created_at),
                state: if is_active {
                    SilenceState::Active
                } else {
                    SilenceState::Pending
                },
                expiring: is_expiring,
                long_lived: is_long,
            }
        })
        .collect();
    state
        .metrics
        .set_silences(active, pending, expiring, long_lived);
    Ok(HttpResponse::Ok().json(Silences { silences: out }))
}

fn id_of(path: &str, what: &str) -> Result<i64, ApiError> {
    path.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer, not `{path}`")))
}

#[utoipa::path(
    delete,
    path = "/api/silences/{id}",
    tag = "alerting",
    summary = "Expire a silence now",
    security(("bearer" = ["operator"])),
    params(("id" = i64, Path, description = "Silence id", example = 7)),
    responses(
        (status = 200, description = "Expired", body = SilenceExpired, example = json!({"id": 7, "expired": true})),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No current silence with this id", body = ErrorBody,
            example = json!({"error": "no current silence with id 7", "status": 404})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn delete_silence(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "silence")?;
    if state.store.delete_silence(id, crate::now_ms()).await? {
        Ok(HttpResponse::Ok().json(SilenceExpired { id, expired: true }))
    } else {
        Err(ApiError::NotFound(format!(
            "no current silence with id {id}"
        )))
    }
}

#[utoipa::path(
    get,
    path = "/api/faults/{id}/deliveries",
    tag = "alerting",
    summary = "Every notification (and mute) about a fault, newest first (at most 200)",
    security(("bearer" = ["read"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    responses(
        (status = 200, description = "The fault's deliveries", body = FaultDeliveries, example = json!({
            "fault_id": 42,
            "deliveries": [{
                "id": 5, "receiver": "ops-webhook", "kind": "webhook",
                "group_key": "prod/datanode_disk_full", "reasons": "new", "status": "sent",
                "attempts": 1, "created_at": "2024-05-12T10:14:13.000Z",
                "finished_at": "2024-05-12T10:14:13.200Z", "last_error": null
            }]
        })),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No fault with this id", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn fault_deliveries(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id_of(&path, "fault")?;
    if state.store.get_fault(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no fault with id {id}")));
    }
    let rows = state.store.fault_deliveries(id, 200).await?;
    let deliveries = rows
        .into_iter()
        .map(|r| DeliveryOut {
            id: r.id,
            receiver: r.receiver,
            kind: r.kind,
            group_key: r.group_key,
            reasons: r.reasons,
            status: r.status,
            attempts: r.attempts,
            created_at: rfc3339_ms(r.created_at),
            finished_at: r.finished_at.map(rfc3339_ms),
            last_error: r.last_error,
        })
        .collect();
    Ok(HttpResponse::Ok().json(FaultDeliveries {
        fault_id: id,
        deliveries,
    }))
}
