//! `POST /api/log/auto-upload`: accept lines from Flume and other shippers.
//!
//! Answers 200 `{"accepted": N}` only after the lines are in the write-ahead log; 503 with
//! `Retry-After` when the backlog is full or the WAL cannot be written (Flume retries, nothing
//! is lost); 413 over `server.max_body_bytes`; 400 for undecodable JSON/NDJSON.

use actix_web::dev::Decompress;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::actors::messages::Append;
use crate::domain::StreamKey;
use crate::ingest::{self, DecodeError, Shape};
use crate::wal::WalError;

#[derive(Debug, Deserialize)]
struct StreamParams {
    host: Option<String>,
    service: Option<String>,
    file: Option<String>,
    cluster: Option<String>,
}

pub async fn auto_upload(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = Shape::from_content_type(content_type.as_deref());
    let result = accept(&req, payload, &state, content_type.as_deref()).await;
    let (shape, status) = match &result {
        Ok((shape, _)) => (*shape, 200),
        Err(e) => (declared, actix_web::ResponseError::status_code(e).as_u16()),
    };
    let status = status.to_string();
    state
        .metrics
        .ingest_requests
        .with_label_values(&[shape.as_str(), &status])
        .inc();
    match result {
        Ok((shape, accepted)) => {
            state
                .metrics
                .ingest_batch_lines
                .with_label_values(&[shape.as_str()])
                .observe(accepted as f64);
            Ok(HttpResponse::Ok().json(json!({ "accepted": accepted })))
        }
        Err(e) => {
            state
                .metrics
                .ingest_rejections
                .with_label_values(&[&status])
                .inc();
            Err(e)
        }
    }
}

async fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    content_type: Option<&str>,
) -> Result<(Shape, usize), ApiError> {
    let params = web::Query::<StreamParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?
        .into_inner();
    let limit = state.settings.server.max_body_bytes;
    let body = read_body(req, payload, limit).await?;
    state.metrics.bytes_received.inc_by(body.len() as u64);

    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let default = StreamKey {
        cluster: nonempty(params.cluster)
            .unwrap_or_else(|| state.settings.ingest.default_cluster.clone()),
        host: nonempty(params.host).unwrap_or(peer),
        service: nonempty(params.service).unwrap_or_default(),
        file: nonempty(params.file).unwrap_or_default(),
    };
    let decoded = ingest::decode(&body, content_type, &default).map_err(|e| match e {
        DecodeError::Empty | DecodeError::Json(_) | DecodeError::Shape(_) => {
            ApiError::BadRequest(e.to_string())
        }
    })?;
    if decoded.lines == 0 {
        return Ok((decoded.shape, 0));
    }
    let backlog_limit = state.settings.ingest.max_pending_lines;
    if decoded.lines as u64 > backlog_limit {
        // Could never be accepted, however long the shipper retries: say so.
        return Err(ApiError::TooManyLines {
            lines: decoded.lines,
            limit: backlog_limit,
        });
    }
    let retry_after_secs = state.settings.ingest.retry_after_secs;
    let ack = state
        .pipeline
        .ingest
        .send(Append {
            batches: decoded.batches,
            received_ms: crate::now_ms(),
        })
        .await
        .map_err(|e| ApiError::Overloaded {
            reason: format!("ingest stage unavailable: {e}"),
            retry_after_secs,
        })?;
    match ack {
        Ok(_) => {
            state
                .metrics
                .lines_received
                .with_label_values(&[decoded.shape.as_str()])
                .inc_by(decoded.lines as u64);
            Ok((decoded.shape, decoded.lines))
        }
        Err(e @ WalError::Backlog { .. }) => Err(ApiError::Overloaded {
            reason: e.to_string(),
            retry_after_secs,
        }),
        Err(e @ (WalError::Io { .. } | WalError::Locked(_))) => Err(ApiError::Overloaded {
            reason: format!("cannot persist lines right now: {e}"),
            retry_after_secs,
        }),
    }
}

/// Read the whole body (decompressing `Content-Encoding: gzip` / `deflate`), refusing (413) as
/// soon as it is known to exceed `limit` bytes, compressed or not.
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
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
    let mut stream = Decompress::from_headers(payload.into_inner(), req.headers());
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
