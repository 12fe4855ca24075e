//! The request gate (one actix middleware): per-address limit → token check (401 / 403) →
//! per-token limit → handler. What each route needs comes from the OpenAPI document
//! ([`crate::auth::access::AccessTable`]); the authenticated [`Principal`] is put in the
//! request's extensions. Tokens are never logged.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderName};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, web};

use super::ApiError;
use crate::auth::access::{Access, AccessTable, Limit, Limiter, retry_after_secs};
use crate::auth::{AuthError, Authenticator, Principal, Role};
use crate::metrics::Metrics;

pub const INGEST_PATH: &str = "/api/log/auto-upload";
const DIAGNOSE_PATH: &str = "/api/llm/diagnose";

pub struct Gate {
    pub auth: Arc<Authenticator>,
    pub table: AccessTable,
    pub ingest_open: bool,
    pub metrics_open: bool,
    pub limiter: Option<Limiter>,
    pub client_ip_header: Option<HeaderName>,
    pub metrics: Arc<Metrics>,
}

impl Gate {
    fn access(&self, method: &str, pattern: Option<&str>) -> Access {
        match pattern {
            Some(INGEST_PATH) if self.ingest_open => Access::Public,
            Some("/metrics") if self.metrics_open => Access::Public,
            _ => self.table.lookup(method, pattern),
        }
    }

    fn client_ip(&self, req: &ServiceRequest) -> Option<IpAddr> {
        // The last line of the header: a proxy may add its own line after the client's.
        let forwarded = self
            .client_ip_header
            .as_ref()
            .and_then(|h| req.headers().get_all(h).last())
            .and_then(|v| v.to_str().ok());
        crate::auth::access::client_ip(forwarded, req.peer_addr().map(|a| a.ip()))
    }

    fn refuse(&self, reason: &'static str, e: ApiError) -> actix_web::Error {
        self.metrics.api_refusals.with_label_values(&[reason]).inc();
        e.into()
    }

    fn limited(&self, (limit, wait): (Limit, std::time::Duration)) -> actix_web::Error {
        let what = match limit {
            Limit::Ip => "this client address",
            Limit::Token => "this token",
            Limit::Diagnose => "diagnoses with this token",
        };
        self.refuse(
            "rate_limited",
            ApiError::RateLimited {
                reason: format!("too many requests for {what}; retry later"),
                retry_after_secs: retry_after_secs(wait),
            },
        )
    }
}

/// The bearer credential: `Authorization: Bearer <token>`, or — on the upload endpoint only,
/// because Flume's HttpSink cannot send headers — `?access_token=<token>` (RFC 6750 §2.3).
fn credential(req: &ServiceRequest, allow_query: bool) -> Option<String> {
    if let Some(v) = req.headers().get(AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string())
            .filter(|t| !t.is_empty());
    }
    if !allow_query {
        return None;
    }
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
        .filter(|t| !t.is_empty())
}

pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(gate) = req.app_data::<web::Data<Gate>>().cloned() else {
        return Err(
            ApiError::Internal(anyhow::anyhow!("the request gate is not configured")).into(),
        );
    };
    // The pattern of the path as the router will see it (percent-decoded, as actix-router
    // decodes it): `req.match_pattern()` would match the raw path before routing, so
    // `/api/%74okens` would match no pattern here yet reach `/api/tokens`.
    // The upload path (the hot one: one Flume line per request) has no parameters, so the
    // decoded path equal to it is that route; everything else is matched in the map.
    let path = req.match_info().as_str();
    let pattern: Option<std::borrow::Cow<'_, str>> = if path == INGEST_PATH {
        Some(INGEST_PATH.into())
    } else {
        req.resource_map().match_pattern(path).map(Into::into)
    };
    let access = gate.access(req.method().as_str(), pattern.as_deref());
    let required = match access {
        Access::Public => return next.call(req).await,
        Access::Role(r) => r,
    };
    // Ingest is governed by backpressure (503), never by a request limit.
    let limits = gate.limiter.as_ref().filter(|_| required != Role::Ingest);
    if let (Some(l), Some(ip)) = (limits, gate.client_ip(&req)) {
        l.check_ip(ip).map_err(|w| gate.limited(w))?;
    }
    // On the upload path, which has no request limit, refused credentials count against the
    // client address's limit: guessing tokens there is throttled like everywhere else.
    let refuse = |reason: &'static str, e: ApiError| -> actix_web::Error {
        if required == Role::Ingest
            && let (Some(l), Some(ip)) = (gate.limiter.as_ref(), gate.client_ip(&req))
            && let Err(w) = l.check_ip(ip)
        {
            return gate.limited(w);
        }
        gate.refuse(reason, e)
    };
    let Some(token) = credential(&req, required == Role::Ingest) else {
        return Err(refuse(
            "missing_token",
            ApiError::Unauthorized {
                reason: "a bearer token is required: send `Authorization: Bearer <token>`".into(),
                invalid: false,
            },
        ));
    };
    let principal: Principal = gate.auth.verify(&token).map_err(|e| {
        tracing::debug!(path = req.path(), error = %e, "refused a credential");
        match e {
            // Who it is was proven; it just has no Faultline role.
            AuthError::NoRole(_) => refuse("forbidden", ApiError::Forbidden(e.to_string())),
            _ => refuse(
                "invalid_token",
                ApiError::Unauthorized {
                    reason: e.to_string(),
                    invalid: true,
                },
            ),
        }
    })?;
    if !principal.role.grants(required) {
        tracing::debug!(path = req.path(), who = %principal.name, role = %principal.role, "refused a role");
        return Err(refuse(
            "forbidden",
            ApiError::Forbidden(format!(
                "`{}` has the role `{}`; {} {} needs `{}`",
                principal.name,
                principal.role,
                req.method(),
                pattern.as_deref().unwrap_or(req.path()),
                required
            )),
        ));
    }
    if let Some(l) = limits {
        let key = format!("{:?}:{}", principal.kind, principal.name);
        let diagnose = pattern.as_deref() == Some(DIAGNOSE_PATH);
        l.check_token(&key, diagnose).map_err(|w| gate.limited(w))?;
    }
    req.extensions_mut().insert(principal);
    next.call(req).await
}

/// The authenticated caller of a request (set by [`gate`]), for audit fields.
pub fn principal(req: &actix_web::HttpRequest) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

/// Who did it, for audit fields (`acknowledged_by`, `approved_by`, `created_by`, ...): the
/// authenticated token's name, with the name the body claims (`by`) in front when it differs
/// — `alice (token ops-team)` — so a shared token cannot hide who used it, nor a claim who
/// holds the token. The claim is cut to 48 bytes, its control characters and parentheses
/// replaced, so it can neither push the token's name out of the column (128 bytes; token
/// names are at most 64 plain characters) nor pose as one.
pub fn actor(req: &actix_web::HttpRequest, claimed: Option<&str>) -> String {
    let claimed = claimed.map(sanitize_claim).filter(|c| !c.is_empty());
    match (principal(req), claimed) {
        (Some(p), Some(c)) if c != p.name => format!("{c} (token {})", p.name),
        (Some(p), _) => p.name,
        (None, Some(c)) => c,
        (None, None) => "anonymous".into(),
    }
}

fn sanitize_claim(c: &str) -> String {
    // Letters and digits of any script, space and `. _ @ -`; everything else (parentheses of
    // any width, control, bidi and zero-width characters) becomes `_`.
    let cleaned: String = c
        .trim()
        .chars()
        .map(|ch| {
            if ch.is_alphanumeric() || matches!(ch, ' ' | '.' | '_' | '@' | '-') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    crate::storage::truncate_str(&cleaned, 48)
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn claims_cannot_pose_as_tokens_or_hide_them() {
        assert_eq!(super::sanitize_claim(" alice "), "alice");
        assert_eq!(
            super::sanitize_claim("alice\u{7}(token admin-team)\n"),
            "alice__token admin-team_"
        );
        assert_eq!(super::sanitize_claim("张伟"), "张伟");
        assert_eq!(
            super::sanitize_claim("bob\u{202e}\u{200b}（token x）"),
            "bob___token x_"
        );
        let long = "x".repeat(300);
        assert_eq!(super::sanitize_claim(&long).len(), 48);
        // Cut on a character boundary.
        assert!(super::sanitize_claim(&"é".repeat(40)).len() <= 48);
    }
}
