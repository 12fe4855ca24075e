//! LLM endpoints:
//! - `POST /api/llm/diagnose`: body `{"text": "..."}` or `{"lines": [...]}`, optional
//!   `cluster`, `host`, `service`. Parse + rules first; what the rules do not explain (one
//!   escalation per message template, at most `MAX_TEMPLATES`) goes to the LLM or comes from
//!   the cache. Errors name what happened and still carry the rule findings. With
//!   `Accept: application/x-ndjson` the rule findings come at once as the first line and each
//!   diagnosis follows as its own line when it arrives.
//! - `POST /api/faults/{id}/confirm`: an operator confirms an LLM diagnosis; a draft rule and
//!   its case file are written for review and loaded at once.
//! - `GET /api/llm`: configuration, prompt version and what is left of the budget.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ErrorBody, LlmPartial};
use super::openapi::DiagnoseRequest;
use super::{ApiError, AppState, params};
use crate::domain::StreamKey;
use crate::llm::escalator::{Escalation, LlmStatus, Request};
use crate::rules::diagnose::Diagnosis;
use crate::rules::draft::{self, DraftInput};
use crate::rules::{Finding, FindingSource};

/// Most templates escalated by one request.
const MAX_TEMPLATES: usize = 5;
/// Most lines of one request.
const MAX_LINES: usize = 5000;

/// The body of `POST /api/llm/diagnose` (its schema is [`DiagnoseRequest`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiagnoseBody {
    text: Option<String>,
    lines: Option<Vec<String>>,
    cluster: Option<String>,
    host: Option<String>,
    service: Option<String>,
}

/// `POST /api/llm/diagnose`: the rule findings and the LLM diagnoses.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnoseOut {
    /// What the rules found (known fault classes).
    findings: Vec<Finding>,
    /// How many findings nothing known explains (escalated to the LLM, one per template).
    unknowns: usize,
    /// One per escalated message template (at most 5), from the LLM or its cache.
    diagnoses: Vec<Escalation>,
    /// Templates beyond the 5 escalated per request.
    templates_not_escalated: usize,
}

/// The first line of a streamed diagnosis (`Accept: application/x-ndjson`): the rule
/// findings, at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnoseStreamHead {
    findings: Vec<Finding>,
    unknowns: usize,
    /// How many diagnosis lines follow.
    templates: usize,
    templates_not_escalated: usize,
}

/// A later line of a streamed diagnosis: one template's diagnosis.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnoseStreamItem {
    diagnosis: Escalation,
}

/// One line of a streamed diagnosis (`application/x-ndjson`, described as the array of its
/// lines): the head first, then one line per escalated template, a diagnosis or an error (an
/// error body with `code` and `template_key`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DiagnoseStreamLine {
    Head(DiagnoseStreamHead),
    Diagnosis(DiagnoseStreamItem),
    Error(ErrorBody),
}

#[utoipa::path(
    post,
    path = "/api/llm/diagnose",
    tag = "llm",
    summary = "Diagnose a log excerpt: rules first, then the LLM for what they do not explain",
    description = "The excerpt is parsed and run through the rules; what the rules do not explain \
        is escalated to the LLM (or answered from its cache), one escalation per message template, \
        at most 5 per request. Errors name what happened and still carry the rule findings. With \
        `Accept: application/x-ndjson` the rule findings come at once as the first line and each \
        diagnosis follows as its own line when it arrives.",
    security(("bearer" = ["read"])),
    request_body(content = DiagnoseRequest, content_type = "application/json", examples(
        ("text" = (summary = "The excerpt as one string", value = json!({
            "text": "2024-05-12 10:15:32,118 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService\njava.io.IOException: No space left on device",
            "cluster": "prod", "host": "worker3", "service": "datanode"
        }))),
        ("lines" = (summary = "The excerpt as lines", value = json!({
            "lines": ["2024-05-12 10:15:32,118 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService"]
        }))),
    )),
    responses(
        (status = 200, description = "The findings and diagnoses", content(
            (DiagnoseOut = "application/json", example = json!({
                "findings": [], "unknowns": 0, "diagnoses": [], "templates_not_escalated": 0
            })),
            ([DiagnoseStreamLine] = "application/x-ndjson", example = json!([
                {"findings": [], "unknowns": 1, "templates": 1, "templates_not_escalated": 0},
                {"error": "no LLM is configured ([llm] base_url is empty)", "status": 503,
                    "code": "llm_not_configured", "template_key": "3f9a0c1d2b4e5f60"}
            ])),
        )),
        (status = 400, description = "Not the JSON object described, both or neither of `text` and `lines`, an empty excerpt, or over 5000 lines", body = ErrorBody,
            example = json!({"error": "the log excerpt is empty", "status": 400})),
        (status = 429, description = "The hourly LLM budget is spent (`code` `llm_budget_exhausted`); the body carries the rule findings", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the budget frees"))),
        (status = 500, description = "The diagnosis task failed", body = ErrorBody),
        (status = 502, description = "The LLM failed (`code` `llm_failed`); the body carries the rule findings", body = ErrorBody),
        (status = 503, description = "No LLM is configured (`code` `llm_not_configured`) or the provider is rate limiting (`code` `llm_rate_limited`, with `Retry-After` when known); the body carries the rule findings", body = ErrorBody,
            example = json!({"error": "no LLM is configured ([llm] base_url is empty)", "status": 503,
                "code": "llm_not_configured", "findings": [], "unknowns": 1, "diagnoses": []})),
    )
)]
pub async fn diagnose(
    req: HttpRequest,
    body: params::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: DiagnoseBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let lines: Vec<String> = match (body.text, body.lines) {
        (Some(t), None) => t.lines().map(str::to_string).collect(),
        (None, Some(l)) => l,
        _ => {
            return Err(ApiError::BadRequest(
                "give the log as `text` (a string) or as `lines` (an array), not both".into(),
            ));
        }
    };
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(ApiError::BadRequest("the log excerpt is empty".into()));
    }
    if lines.len() > MAX_LINES {
        return Err(ApiError::BadRequest(format!(
            "{} lines; at most {MAX_LINES} per request",
            lines.len()
        )));
    }
    let stream = Arc::new(StreamKey {
        cluster: body
            .cluster
            .unwrap_or_else(|| state.settings.ingest.default_cluster.clone()),
        host: body.host.unwrap_or_default(),
        service: body.service.unwrap_or_default(),
        file: "api".into(),
    });
    let set = state.rules.current();
    let snapshots = crate::cluster::runner::ViewsLookup(state.scheduler_shared.views.clone());
    let findings = web::block(move || {
        let mut d = Diagnosis::new(set);
        d.set_snapshots(Arc::new(snapshots));
        d.feed_lines(stream, lines.iter().map(String::as_str));
        d.finish()
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("diagnosis task failed: {e}")))?;
    let (rule, unknown): (Vec<_>, Vec<_>) = findings
        .into_iter()
        .partition(|f| f.source == FindingSource::Rule);
    let excerpt_lines = state.escalator.settings().excerpt_lines;
    let mut requests: Vec<Request> = Vec::new();
    for f in &unknown {
        if let Some(r) = Request::from_finding(f, excerpt_lines)
            && !requests.iter().any(|x| x.template_key == r.template_key)
        {
            requests.push(r);
        }
    }
    let skipped = requests.len().saturating_sub(MAX_TEMPLATES);
    requests.truncate(MAX_TEMPLATES);
    let unknowns = unknown.len();
    if wants_ndjson(&req) {
        let head = DiagnoseStreamHead {
            findings: rule,
            unknowns,
            templates: requests.len(),
            templates_not_escalated: skipped,
        };
        return Ok(stream_ndjson(head, requests, state.escalator.clone()));
    }
    let mut diagnoses: Vec<Escalation> = Vec::new();
    for r in &requests {
        match state.escalator.diagnose(r).await {
            Ok(d) => diagnoses.push(d),
            Err(e) => {
                let partial = LlmPartial {
                    findings: rule,
                    unknowns,
                    diagnoses,
                };
                return Err(ApiError::from_escalation(e, Some(partial)));
            }
        }
    }
    Ok(HttpResponse::Ok().json(DiagnoseOut {
        findings: rule,
        unknowns,
        diagnoses,
        templates_not_escalated: skipped,
    }))
}

fn wants_ndjson(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"))
}

/// `Accept: application/x-ndjson`: the rule findings at once as the first line, then one line
/// per template as each LLM diagnosis (or its error) arrives.
fn stream_ndjson(
    head: DiagnoseStreamHead,
    requests: Vec<Request>,
    escalator: Arc<crate::llm::escalator::Escalator>,
) -> HttpResponse {
    type Item = Result<web::Bytes, actix_web::Error>;
    fn line<T: Serialize>(v: &T) -> Item {
        let mut text =
            serde_json::to_string(v).map_err(actix_web::error::ErrorInternalServerError)?;
        text.push('\n');
        Ok(web::Bytes::from(text))
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(requests.len() + 1);
    let _ = tx.try_send(line(&head));
    actix_web::rt::spawn(async move {
        for r in requests {
            let out = match escalator.diagnose(&r).await {
                Ok(d) => line(&DiagnoseStreamItem { diagnosis: d }),
                Err(e) => {
                    let mut body = ApiError::from_escalation(e, None).body();
                    body.template_key = Some(r.template_key.clone());
                    line(&body)
                }
            };
            if tx.send(out).await.is_err() {
                break;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body)
}

/// Who confirms (an empty body or `null` is the same as `{}`).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"by": "alice"}))]
pub struct ConfirmBody {
    /// Who confirms (`api` when absent).
    by: Option<String>,
}

/// `POST /api/faults/{id}/confirm`: the draft rule written from the confirmed diagnosis.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmOut {
    fault_id: i64,
    /// The draft rule's id.
    rule_id: String,
    /// The fault class the LLM named.
    class: String,
    /// Where the draft rule was written (for review).
    rule_file: String,
    /// Where its case file was written.
    case_file: String,
    /// How many cases the draft's case file holds (all of them pass).
    cases: usize,
    /// Rules active after loading the draft (0 when the reload failed; the draft stays on disk).
    rules_loaded: usize,
}

#[utoipa::path(
    post,
    path = "/api/faults/{id}/confirm",
    tag = "llm",
    summary = "Confirm a fault's LLM diagnosis: a draft rule and its case file are written and loaded",
    security(("bearer" = ["operator"])),
    params(("id" = i64, Path, description = "Fault id", example = 42)),
    request_body(content = Option<ConfirmBody>, content_type = "application/json",
        description = "Optional: who confirms (an empty body is allowed)",
        example = json!({"by": "alice"})),
    responses(
        (status = 200, description = "Confirmed; the draft rule is written and loaded", body = ConfirmOut, example = json!({
            "fault_id": 42, "rule_id": "draft_namenode_edit_log_gap", "class": "namenode_edit_log_gap",
            "rule_file": "/var/lib/faultline/rules/drafts/draft_namenode_edit_log_gap.toml",
            "case_file": "/var/lib/faultline/cases/drafts/draft_namenode_edit_log_gap.toml",
            "cases": 2, "rules_loaded": 65
        })),
        (status = 400, description = "The id is not an integer, or the body is not the JSON object described", body = ErrorBody),
        (status = 404, description = "No fault with this id", body = ErrorBody),
        (status = 409, description = "The fault has no verified LLM diagnosis to confirm, it is already confirmed, or drafts are turned off", body = ErrorBody,
            example = json!({"error": "fault 42 has no verified LLM diagnosis to confirm (LLM status: none: not an unknown fault)", "status": 409})),
        (status = 422, description = "The draft rule cannot be made or does not pass its cases", body = ErrorBody),
        (status = 500, description = "The draft files could not be written", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]

pub async fn confirm(
    req: HttpRequest,
    path: web::Path<String>,
    body: params::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("fault id must be an integer, not `{path}`")))?;
    let body: ConfirmBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConfirmBody::default()
    } else {
        serde_json::from_slice::<Option<ConfirmBody>>(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
            .unwrap_or_default()
    };
    let by = super::guard::actor(&req, body.by.as_deref());
    let row = state
        .store
        .get_fault(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no fault with id {id}")))?;
    match row.llm_status.as_deref() {
        Some("diagnosed") => {}
        Some("confirmed") => {
            return Err(ApiError::Conflict(format!(
                "the LLM diagnosis of fault {id} is already confirmed"
            )));
        }
        other => {
            return Err(ApiError::Conflict(format!(
                "fault {id} has no verified LLM diagnosis to confirm (LLM status: {})",
                other.unwrap_or(if row.template_key.is_some() {
                    "pending"
                } else {
                    "none: not an unknown fault"
                })
            )));
        }
    }
    let esc: Escalation = row
        .llm_answer
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .ok_or_else(|| ApiError::Conflict(format!("fault {id} has no readable LLM answer")))?;
    let diagnosis = esc
        .diagnosis
        .as_ref()
        .ok_or_else(|| ApiError::Conflict(format!("fault {id} has no verified LLM diagnosis")))?;
    let ev: serde_json::Value = serde_json::from_str(&row.evidence).unwrap_or_default();
    let template = ev
        .pointer("/captures/template")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    let lines: Vec<String> = ev
        .pointer("/records/0/lines")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    let settings = &state.settings.rules;
    if settings.drafts_dir.trim().is_empty() || settings.draft_cases_dir.trim().is_empty() {
        return Err(ApiError::Conflict(
            "rules.drafts_dir / rules.draft_cases_dir are empty: drafts are turned off".into(),
        ));
    }
    let confirmed_at = super::logs::rfc3339_ms(crate::now_ms());
    let d = draft::draft(&DraftInput {
        fault_id: id,
        class: &diagnosis.fault_class,
        title: &diagnosis.title,
        severity: &row.severity,
        service: &row.service,
        host: &row.host,
        root_cause: &diagnosis.root_cause,
        remediation: &diagnosis.remediation,
        template: &template,
        template_key: row.template_key.as_deref().unwrap_or_default(),
        lines: &lines,
        model: &esc.model,
        confidence: diagnosis.confidence,
        confirmed_by: &by,
        confirmed_at: &confirmed_at,
    })
    .map_err(ApiError::Unprocessable)?;
    let live = crate::rules::rule_files(state.rules.source())
        .map_err(|e| ApiError::Unprocessable(format!("the live rules cannot be read: {e}")))?;
    // The other rules' case files, when this installation has them (a source checkout).
    let cases_root = std::path::Path::new(settings.draft_cases_dir.trim()).parent();
    let report = draft::check(&live, &d, cases_root).map_err(ApiError::Unprocessable)?;
    let rule_path = std::path::Path::new(settings.drafts_dir.trim()).join(format!("{}.toml", d.id));
    let case_path =
        std::path::Path::new(settings.draft_cases_dir.trim()).join(format!("{}.toml", d.id));
    let write = |path: &std::path::Path, text: &str| -> anyhow::Result<()> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(&rule_path, &d.rule)?;
    write(&case_path, &d.case)?;
    state.store.confirm_llm(id, crate::now_ms()).await?;
    // Load the draft now: the next occurrence is matched without the LLM.
    let reloaded = match state.rules.reload() {
        Ok(s) => s.rules,
        Err(e) => {
            tracing::warn!(error = %e, "the rules did not reload after writing a draft");
            0
        }
    };
    tracing::info!(fault = id, rule = %d.id, by = %by, "LLM diagnosis confirmed; draft rule written");
    Ok(HttpResponse::Ok().json(ConfirmOut {
        fault_id: id,
        rule_id: d.id,
        class: diagnosis.fault_class.clone(),
        rule_file: rule_path.display().to_string(),
        case_file: case_path.display().to_string(),
        cases: report.cases,
        rules_loaded: reloaded,
    }))
}

#[utoipa::path(
    get,
    path = "/api/llm",
    tag = "llm",
    summary = "The LLM configuration, prompt version and what is left of the hourly budget",
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The LLM status", body = LlmStatus, example = json!({
            "configured": true, "base_url": "https://llm.example.internal/v1", "model": "qwen2.5-32b-instruct",
            "language": "en", "prompt_version": "v3", "concurrency": 2, "on_budget_exhausted": "queue",
            "budget": {"requests_per_hour": 60, "tokens_per_hour": 200000, "requests_remaining": 58, "tokens_remaining": 191250},
            "rate_limited_until_ms": null
        })),
    )
)]
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.escalator.status())
}
