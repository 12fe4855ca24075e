//! Query-string helpers shared by the list endpoints.

use actix_web::HttpRequest;
use chrono::DateTime;
use serde::de::DeserializeOwned;

use super::ApiError;
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
