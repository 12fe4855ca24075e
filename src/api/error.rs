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
        let mut body = json!({ "error": self.to_string(), "status": status.as_u16() });
        if let ApiError::Overloaded {
            retry_after_secs, ..
        } = self
        {
            resp.insert_header((RETRY_AFTER, retry_after_secs.to_string()));
            body["retry_after_secs"] = json!(retry_after_secs);
        }
        if let ApiError::InvalidRules(e) = self {
            body["errors"] = json!(e.errors);
        }
        resp.body(body.to_string())
    }
}
