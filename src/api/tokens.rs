//! Token administration (admin role):
//! - `GET /api/tokens`: run-time tokens (never the tokens, never their hashes) and the
//!   configured ones by name and role;
//! - `POST /api/tokens` `{"name": "flume-prod", "role": "ingest"}` → 201 with the token,
//!   shown this once (only its SHA-256 is stored);
//! - `DELETE /api/tokens/{id}`: revoke it, effective at once;
//! - `GET /api/config`: the running settings with secrets redacted.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::logs::rfc3339_ms;
use super::{ApiError, AppState};
use crate::auth::{Role, generate_token, hash_token, to_hex};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "flume-prod", "role": "ingest"}))]
pub struct NewToken {
    /// A label for the token's holder (shown in audits and refusals): 1 to 64 of
    /// `A-Z a-z 0-9 . _ @ -`, unique among active tokens.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredTokenOut {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfiguredTokenOut {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<StoredTokenOut>,
    /// `[auth] tokens` from the configuration file.
    pub configured: Vec<ConfiguredTokenOut>,
    /// Whether `FAULTLINE_ADMIN_TOKEN` is accepted.
    pub bootstrap_admin: bool,
    /// `HS256`, `RS256` or empty (JWTs refused).
    pub jwt_algorithm: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The token. It is shown only in this answer.
    pub token: String,
}

/// Re-read `api_tokens` into the authenticator after a change.
async fn refresh(state: &AppState) -> Result<(), crate::storage::StoreError> {
    let rows = state.store.tokens().await?;
    state.auth.set_stored(&rows);
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "tokens",
    summary = "API tokens: run-time ones (never the tokens or their hashes) and configured ones",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The tokens", body = TokenList, example = json!({
            "tokens": [{"id": 1, "name": "initial-admin", "role": "admin", "created_by": "first start",
                "created_at": "2024-05-12T10:00:00.000Z", "revoked_at": null}],
            "configured": [{"name": "flume-prod", "role": "ingest"}],
            "bootstrap_admin": false, "jwt_algorithm": ""})),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state.store.tokens().await?;
    let auth = &state.settings.auth;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: rows
            .into_iter()
            .map(|r| StoredTokenOut {
                id: r.id,
                name: r.name,
                role: r.role,
                created_by: r.created_by,
                created_at: rfc3339_ms(r.created_at),
                revoked_at: r.revoked_at.map(rfc3339_ms),
            })
            .collect(),
        configured: auth
            .tokens
            .iter()
            .map(|t| ConfiguredTokenOut {
                name: t.name.clone(),
                role: t.role,
            })
            .collect(),
        bootstrap_admin: auth.admin_token.is_some(),
        jwt_algorithm: auth.jwt.algorithm.clone(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "tokens",
    summary = "Create a token; the answer is the only time the token is shown",
    security(("bearer" = ["admin"])),
    request_body(content = NewToken, content_type = "application/json"),
    responses(
        (status = 201, description = "The token (only its SHA-256 is stored)", body = CreatedToken,
            example = json!({"id": 2, "name": "flume-prod", "role": "ingest",
                "token": "flt_Vq3oB1n2cS9yXq0d4QbqkHcG2v3R1t0wQe5zX7mK8aP"})),
        (status = 400, description = "The body is not `{name, role}` with a valid role and name", body = ErrorBody),
        (status = 409, description = "An active token has this name", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    body: super::params::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let t: NewToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let name = t.name.as_str();
    if !crate::auth::valid_token_name(name) {
        return Err(ApiError::BadRequest(
            "`name` must be 1 to 64 of A-Z a-z 0-9 . _ @ -".into(),
        ));
    }
    let taken = name == crate::auth::BOOTSTRAP_NAME
        || state.settings.auth.tokens.iter().any(|t| t.name == name)
        || state
            .store
            .tokens()
            .await?
            .iter()
            .any(|r| r.revoked_at.is_none() && r.name == name);
    if taken {
        return Err(ApiError::Conflict(format!(
            "a token named `{name}` exists; revoke it first or choose another name"
        )));
    }
    let token = generate_token()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness for a token: {e}")))?;
    let by = super::guard::principal(&req)
        .map(|p| p.name)
        .unwrap_or_else(|| "unknown".into());
    let id = state
        .store
        .insert_token(
            name,
            t.role.as_str(),
            &to_hex(&hash_token(&token)),
            &by,
            crate::now_ms(),
        )
        .await
        .map_err(|e| {
            // Created by a concurrent request or another engine since the check above.
            if e.is_unique_violation() {
                ApiError::Conflict(format!("a token named `{name}` exists"))
            } else {
                e.into()
            }
        })?;
    refresh(&state).await?;
    tracing::info!(id, name, role = %t.role, by, "API token created");
    Ok(HttpResponse::Created().json(CreatedToken {
        id,
        name: name.to_string(),
        role: t.role,
        token,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "tokens",
    summary = "Revoke a run-time token (refused from now on)",
    security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "Token id", example = 2)),
    responses(
        (status = 200, description = "Revoked", body = Revoked, example = json!({"id": 2, "revoked": true})),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 404, description = "No active run-time token with this id", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn revoke(
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("token id must be an integer, not `{path}`")))?;
    let not_found = || {
        ApiError::NotFound(format!(
            "no active run-time token {id} (configured tokens are removed from the file)"
        ))
    };
    let rows = state.store.tokens().await?;
    let row = rows
        .iter()
        .find(|r| r.id == id && r.revoked_at.is_none())
        .ok_or_else(not_found)?;
    // Refused here at once, even if the database write below fails.
    state.auth.revoke_stored(&row.token_hash);
    if !state.store.revoke_token(id, crate::now_ms()).await? {
        return Err(not_found());
    }
    refresh(&state).await?;
    let by = super::guard::principal(&req).map(|p| p.name);
    tracing::info!(
        id,
        by = by.as_deref().unwrap_or("unknown"),
        "API token revoked"
    );
    Ok(HttpResponse::Ok().json(Revoked { id, revoked: true }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    pub id: i64,
    pub revoked: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConfigOut {
    /// Every setting, as in `faultline.toml`, with the database password, receiver URLs'
    /// query strings and signing secrets redacted.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

#[utoipa::path(
    get,
    path = "/api/config",
    tag = "tokens",
    summary = "The running configuration, secrets redacted",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The settings", body = ConfigOut),
    )
)]
pub async fn config(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = serde_json::to_value(state.settings.redacted())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("rendering the settings: {e}")))?;
    Ok(HttpResponse::Ok().json(ConfigOut { settings }))
}
