//! Request helpers shared by the handlers: query strings of the list endpoints, and bodies.

use actix_web::dev::{Decompress, Payload};
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use actix_web::{FromRequest, HttpRequest, web};
use chrono::DateTime;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::storage::StoreError;

/// The request's query string as `T` (unknown parameters are refused by `T`).
pub(crate) fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    actix_web::web::Query::<T>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))
}

/// `limit`, defaulted (also when empty) and checked against `1..=max`.
pub(crate) fn limit(v: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = match v.filter(|s| !s.is_empty()) {
        None => default,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("`limit` must be a number, not `{s}`")))?,
    };
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {max}"
        )))
    }
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
pub(crate) const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// An optional RFC 3339 time parameter as epoch milliseconds.
pub(crate) fn time(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ApiError::BadRequest(format!(
                        "`{name}` must be an RFC 3339 time like 2024-05-12T10:14:12Z: {e}"
                    ))
                })
        })
        .transpose()
}

/// A `next_cursor` of the form `<ms>:<id>`.
pub(crate) fn cursor(c: Option<&str>) -> Result<Option<(i64, i64)>, ApiError> {
    c.filter(|c| !c.is_empty())
        .map(|c| {
            let bad = || ApiError::BadRequest(format!("invalid cursor `{c}`"));
            let (t, id) = c.split_once(':').ok_or_else(bad)?;
            Ok((
                t.parse().map_err(|_| bad())?,
                id.parse().map_err(|_| bad())?,
            ))
        })
        .transpose()
}

/// `Some(v)` unless empty.
pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Unavailable(format!("database: {e}"))
    }
}

/// Read the whole body (decompressing `Content-Encoding: gzip` / `deflate`), refusing (413) as
/// soon as it is known to exceed `limit` bytes, compressed or not.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    if let Some(enc) = &encoding
        && !matches!(
            enc.as_str(),
            "" | "identity" | "gzip" | "x-gzip" | "deflate"
        )
    {
        return Err(ApiError::UnsupportedEncoding(enc.clone()));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut stream = Decompress::from_headers(payload, req.headers());
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request body read whole by [`read_body`] under `server.max_body_bytes`: over it, or in an
/// unsupported encoding, the answer is a JSON error like every other (413, 415), not the
/// plain-text one of actix's `Bytes` extractor (whose limit is 256 KiB).
pub struct Body(pub web::BytesMut);

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let limit = req
                .app_data::<web::Data<AppState>>()
                .map(|s| s.settings.server.max_body_bytes)
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no application state")))?;
            read_body(&req, payload, limit).await.map(Body)
        })
    }
}
