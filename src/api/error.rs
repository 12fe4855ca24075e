//! The one place where errors become HTTP answers. Every answer >= 400 has a JSON body
//! (`{"error": "..."}`): Flume's HttpSink on JDK 8 mis-handles empty error bodies.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

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
    #[error("method not allowed")]
    MethodNotAllowed,
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
        record: serde_json::Value,
    },
    /// The LLM part of a request could not run: no LLM configured (503), the hourly budget
    /// spent (429), the provider rate limiting (503) or failing (502). `partial` is what was
    /// done before (the rule findings), returned in the body.
    #[error("{reason}")]
    Llm {
        kind: LlmFailure,
        reason: String,
        retry_after_secs: Option<u64>,
        partial: Option<serde_json::Value>,
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
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
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
        resp.body(self.body().to_string())
    }
}

impl ApiError {
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Llm {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// The JSON error body (also one line of a streamed answer).
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({ "error": self.to_string(), "status": self.status_code().as_u16() });
        if let Some(secs) = self.retry_after_secs() {
            body["retry_after_secs"] = json!(secs);
        }
        if let ApiError::InvalidRules(e) = self {
            body["errors"] = json!(e.errors);
        }
        if let ApiError::Refused { record, .. } = self {
            body["remediation"] = record.clone();
        }
        if let ApiError::Llm { kind, partial, .. } = self {
            body["code"] = json!(kind.code());
            if let Some(serde_json::Value::Object(extra)) = partial {
                for (k, v) in extra {
                    body[k] = v.clone();
                }
            }
        }
        body
    }
}

/// Why the LLM part of a request did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmFailure {
    NotConfigured,
    BudgetExhausted,
    RateLimited,
    Failed,
}

impl LlmFailure {
    pub fn code(self) -> &'static str {
        match self {
            LlmFailure::NotConfigured => "llm_not_configured",
            LlmFailure::BudgetExhausted => "llm_budget_exhausted",
            LlmFailure::RateLimited => "llm_rate_limited",
            LlmFailure::Failed => "llm_failed",
        }
    }
}

impl ApiError {
    /// An escalation that did not run, with what was done before it (`partial`).
    pub fn from_escalation(
        e: crate::llm::escalator::EscalateError,
        partial: Option<serde_json::Value>,
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
            partial,
        }
    }
}
