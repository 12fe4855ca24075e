//! The one place where errors become HTTP answers. Every answer >= 400 has a JSON body
//! (`{"error": "..."}`): Flume's HttpSink on JDK 8 mis-handles empty error bodies.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use super::remediation::RemediationOut;
use crate::llm::escalator::Escalation;
use crate::rules::Finding;
use crate::rules::RuleError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(
        "{lines} lines in one request can never fit the ingest backlog of {limit} lines; send smaller batches"
    )]
    TooManyLines { lines: usize, limit: u64 },
    #[error("unsupported Content-Encoding `{0}` (use gzip, deflate or none)")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    NotFound(String),
    /// `allow` lists the methods the resource supports (the `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// No usable credential (401 with `WWW-Authenticate: Bearer`); `invalid` = one was
    /// presented but is unknown, revoked, expired or badly signed.
    #[error("{reason}")]
    Unauthorized { reason: String, invalid: bool },
    /// Authenticated, but the role does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Over a request limit (429 with `Retry-After`).
    #[error("{reason}")]
    RateLimited {
        reason: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Conflict(String),
    /// A rule reload refused: the old rule set stays active.
    #[error("rules not reloaded, the previous set stays active: {0}")]
    InvalidRules(crate::rules::RuleSetError),
    /// Temporarily unable to accept: the client should retry after `retry_after_secs`.
    #[error("{reason}")]
    Overloaded {
        reason: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// The request is well-formed but cannot be carried out as asked (422).
    #[error("{0}")]
    Unprocessable(String),
    /// Refused for safety, with the audit record of the refusal (422).
    #[error("{reason}")]
    Refused {
        reason: String,
        record: Box<RemediationOut>,
    },
    /// The LLM part of a request could not run: no LLM configured (503), the hourly budget
    /// spent (429), the provider rate limiting (503) or failing (502). `partial` is what was
    /// done before (the rule findings), returned in the body.
    #[error("{reason}")]
    Llm {
        kind: LlmFailure,
        reason: String,
        retry_after_secs: Option<u64>,
        partial: Option<Box<LlmPartial>>,
    },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyLines { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::InvalidRules(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unprocessable(_) | ApiError::Refused { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Llm { kind, .. } => match kind {
                LlmFailure::BudgetExhausted => StatusCode::TOO_MANY_REQUESTS,
                LlmFailure::NotConfigured | LlmFailure::RateLimited => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                LlmFailure::Failed => StatusCode::BAD_GATEWAY,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut resp = HttpResponse::build(status);
        resp.insert_header((CONTENT_TYPE, "application/json"));
        if let Some(secs) = self.retry_after_secs() {
            resp.insert_header((RETRY_AFTER, secs.to_string()));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            resp.insert_header((ALLOW, *allow));
        }
        if let ApiError::Unauthorized { invalid, .. } = self {
            // RFC 6750 §3.
            let challenge = if *invalid {
                r#"Bearer realm="faultline", error="invalid_token""#
            } else {
                r#"Bearer realm="faultline""#
            };
            resp.insert_header((actix_web::http::header::WWW_AUTHENTICATE, challenge));
        }
        resp.json(self.body())
    }
}

impl ApiError {
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Overloaded {
                retry_after_secs, ..
            }
            | ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Llm {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// The JSON error body (also one line of a streamed answer).
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody {
            error: self.to_string(),
            status: self.status_code().as_u16(),
            retry_after_secs: self.retry_after_secs(),
            ..ErrorBody::default()
        };
        match self {
            ApiError::InvalidRules(e) => body.errors = Some(e.errors.clone()),
            ApiError::Refused { record, .. } => body.remediation = Some(record.clone()),
            ApiError::Llm { kind, partial, .. } => {
                body.code = Some(*kind);
                if let Some(p) = partial {
                    body.findings = Some(p.findings.clone());
                    body.unknowns = Some(p.unknowns);
                    body.diagnoses = Some(p.diagnoses.clone());
                }
            }
            _ => {}
        }
        body
    }
}

/// The JSON body of every answer >= 400 (and of the error lines of a streamed diagnosis).
/// Besides `error` and `status`, a field is present only for the errors it names.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(example = json!({"error": "no fault with id 42", "status": 404}))]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    pub status: u16,
    /// Seconds to wait before retrying, as in the `Retry-After` header (503 from ingest
    /// backpressure, 429 and 503 from the LLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry_after_secs: Option<u64>,
    /// 422 from `POST /api/rules/reload`: every problem found in the rule files.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<RuleError>>,
    /// 422 from a refused remediation: the audit record of the refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub remediation: Option<Box<RemediationOut>>,
    /// Why the LLM part of a request did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub code: Option<LlmFailure>,
    /// `POST /api/llm/diagnose` failing in its LLM part: the rule findings made before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub findings: Option<Vec<Finding>>,
    /// `POST /api/llm/diagnose` failing in its LLM part: how many findings nothing known explains.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub unknowns: Option<usize>,
    /// `POST /api/llm/diagnose` failing in its LLM part: the diagnoses that did arrive.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub diagnoses: Option<Vec<Escalation>>,
    /// An error line of a streamed diagnosis: the message template that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub template_key: Option<String>,
}

/// What a diagnosis did before its LLM part failed (returned in the error body).
#[derive(Debug, Clone, Default)]
pub struct LlmPartial {
    pub findings: Vec<Finding>,
    pub unknowns: usize,
    pub diagnoses: Vec<Escalation>,
}

/// Why the LLM part of a request did not run: no LLM configured (503), the hourly budget
/// spent (429), the provider rate limiting (503) or failing (502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum LlmFailure {
    #[serde(rename = "llm_not_configured")]
    NotConfigured,
    #[serde(rename = "llm_budget_exhausted")]
    BudgetExhausted,
    #[serde(rename = "llm_rate_limited")]
    RateLimited,
    #[serde(rename = "llm_failed")]
    Failed,
}

impl ApiError {
    /// An escalation that did not run, with what was done before it (`partial`).
    pub fn from_escalation(
        e: crate::llm::escalator::EscalateError,
        partial: Option<LlmPartial>,
    ) -> ApiError {
        use crate::llm::escalator::EscalateError as E;
        let secs_until =
            |ms: i64| Some(u64::try_from((ms - crate::now_ms()) / 1000 + 1).unwrap_or(1));
        let (kind, retry_after_secs) = match &e {
            E::NotConfigured => (LlmFailure::NotConfigured, None),
            E::Budget { retry_at_ms, .. } => {
                (LlmFailure::BudgetExhausted, secs_until(*retry_at_ms))
            }
            E::Cooldown { until_ms } => (LlmFailure::RateLimited, secs_until(*until_ms)),
            E::Llm(crate::llm::client::LlmError::RateLimited(_)) => (LlmFailure::RateLimited, None),
            // The database failing mid-escalation is reported with what was done, not as a
            // bare 500.
            E::Llm(_) | E::Prompt(_) | E::Store(_) => (LlmFailure::Failed, None),
        };
        ApiError::Llm {
            kind,
            reason: e.to_string(),
            retry_after_secs,
            partial: partial.map(Box::new),
        }
    }
}
