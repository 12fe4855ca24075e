//! `POST /api/log/auto-upload`: accept lines from Flume and other shippers.
//!
//! Answers 200 `{"accepted": N}` only after the lines are in the write-ahead log; 503 with
//! `Retry-After` when the backlog is full or the WAL cannot be written (Flume retries, nothing
//! is lost); 413 over `server.max_body_bytes`; 400 for undecodable JSON/NDJSON.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::{IngestJson, IngestNdjson, IngestText};
use super::{ApiError, AppState, params};
use crate::actors::messages::Append;
use crate::domain::StreamKey;
use crate::ingest::{self, DecodeError, Shape};
use crate::wal::WalError;

/// The stream the lines come from; fields of JSON and NDJSON events override it. Other
/// parameters are ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamParams {
    /// The host the lines come from (the peer address when absent or blank).
    #[param(example = "worker3")]
    host: Option<String>,
    /// The service (`namenode`, `datanode`, `resourcemanager`, ...).
    #[param(example = "datanode")]
    service: Option<String>,
    /// The log file.
    #[param(example = "hadoop-hdfs-datanode-worker3.log")]
    file: Option<String>,
    /// The cluster (`ingest.default_cluster` when absent or blank).
    #[param(example = "prod")]
    cluster: Option<String>,
}

/// The lines are in the write-ahead log: they will be parsed and stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// How many lines were accepted.
    accepted: usize,
}

#[utoipa::path(
    post,
    path = "/api/log/auto-upload",
    tag = "ingest",
    summary = "Accept log lines from Flume and other shippers",
    description = "Answers 200 only once the lines are in the write-ahead log. A body is accepted \
        whole or refused whole, so a shipper can always resend it. Bytes that are not UTF-8 are \
        decoded lossily, never refused. The body may be compressed (`Content-Encoding: gzip` or \
        `deflate`); `max_body_bytes` applies to it compressed and decompressed.\n\n\
        Shapes, by `Content-Type`:\n\
        - `text/plain` (or none): Flume HttpSink's single raw line, or a newline-separated batch \
        (a whitespace-only line is a line; only an empty body is refused);\n\
        - `application/json`: a Flume JSONHandler array `[{\"headers\": {...}, \"body\": \"...\"}]`, \
        an array of strings, or one such object;\n\
        - `application/x-ndjson` (also `application/ndjson`, `application/jsonl`): one JSON object \
        per line with `message` (or `body`, `log`, `msg`) and optional `host`, `service`, \
        `file` (or `path`), `cluster`.\n\n\
        Flume's HttpSink cannot send headers: it may pass the token as `?access_token=` on this \
        URL (this endpoint only).",
    security(("bearer" = ["ingest"])),
    params(StreamParams),
    request_body(description = "Log lines", content(
        (IngestText = "text/plain", example = "2024-05-12 10:15:32,118 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: Slow BlockReceiver write data to disk cost:5012ms"),
        (IngestJson = "application/json", example = json!([
            {"headers": {"host": "worker3", "service": "datanode"}, "body": "2024-05-12 10:15:32,118 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService"},
            "2024-05-12 10:15:33,001 INFO org.apache.hadoop.hdfs.server.datanode.DataNode: Receiving block"
        ])),
        (IngestNdjson = "application/x-ndjson", example = "{\"message\": \"2024-05-12 10:15:32,118 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService\", \"host\": \"worker3\", \"service\": \"datanode\"}\n"),
    )),
    responses(
        (status = 200, description = "Accepted: the lines are in the write-ahead log", body = Accepted,
            example = json!({"accepted": 2})),
        (status = 400, description = "An empty body, undecodable JSON / NDJSON, an event without its text, or an unreadable body", body = ErrorBody,
            example = json!({"error": "empty body: nothing to ingest", "status": 400})),
        (status = 413, description = "The body is over `server.max_body_bytes`, or holds more lines than the ingest backlog can ever take", body = ErrorBody,
            example = json!({"error": "request body is larger than the limit of 10485760 bytes", "status": 413})),
        (status = 415, description = "An unsupported `Content-Encoding`", body = ErrorBody,
            example = json!({"error": "unsupported Content-Encoding `br` (use gzip, deflate or none)", "status": 415})),
        (status = 503, description = "Backpressure: the backlog is full or the write-ahead log cannot be written; retry after `Retry-After` seconds (nothing was kept)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before resending the same body")),
            example = json!({"error": "ingest backlog is full", "status": 503, "retry_after_secs": 5})),
    )
)]
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
            Ok(HttpResponse::Ok().json(Accepted { accepted }))
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
    let body = params::read_body(req, payload.into_inner(), limit).await?;
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
