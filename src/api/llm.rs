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
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::domain::StreamKey;
use crate::llm::escalator::{Escalation, Request};
use crate::rules::FindingSource;
use crate::rules::diagnose::Diagnosis;
use crate::rules::draft::{self, DraftInput};

/// Most templates escalated by one request.
const MAX_TEMPLATES: usize = 5;
/// Most lines of one request.
const MAX_LINES: usize = 5000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiagnoseBody {
    text: Option<String>,
    lines: Option<Vec<String>>,
    cluster: Option<String>,
    host: Option<String>,
    service: Option<String>,
}

pub async fn diagnose(
    req: HttpRequest,
    body: web::Bytes,
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
    let partial = serde_json::json!({ "findings": rule, "unknowns": unknown.len() });
    if wants_ndjson(&req) {
        return Ok(stream_ndjson(
            partial,
            requests,
            skipped,
            state.escalator.clone(),
        ));
    }
    let mut diagnoses: Vec<Escalation> = Vec::new();
    for r in &requests {
        match state.escalator.diagnose(r).await {
            Ok(d) => diagnoses.push(d),
            Err(e) => {
                let mut partial = partial.clone();
                partial["diagnoses"] = serde_json::json!(diagnoses);
                return Err(ApiError::from_escalation(e, Some(partial)));
            }
        }
    }
    let mut out = partial;
    out["diagnoses"] = serde_json::json!(diagnoses);
    out["templates_not_escalated"] = serde_json::json!(skipped);
    Ok(HttpResponse::Ok().json(out))
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
    mut head: serde_json::Value,
    requests: Vec<Request>,
    skipped: usize,
    escalator: Arc<crate::llm::escalator::Escalator>,
) -> HttpResponse {
    type Item = Result<web::Bytes, actix_web::Error>;
    let line = |v: serde_json::Value| -> Item { Ok(web::Bytes::from(format!("{v}\n"))) };
    head["templates"] = serde_json::json!(requests.len());
    head["templates_not_escalated"] = serde_json::json!(skipped);
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(requests.len() + 1);
    let _ = tx.try_send(line(head));
    actix_web::rt::spawn(async move {
        for r in requests {
            let out = match escalator.diagnose(&r).await {
                Ok(d) => serde_json::json!({ "diagnosis": d }),
                Err(e) => {
                    let mut body = ApiError::from_escalation(e, None).body();
                    body["template_key"] = serde_json::json!(r.template_key);
                    body
                }
            };
            if tx.send(line(out)).await.is_err() {
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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    by: Option<String>,
}

pub async fn confirm(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = path
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("fault id must be an integer, not `{path}`")))?;
    let body: ConfirmBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConfirmBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let by = body.by.unwrap_or_else(|| "api".into());
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
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "fault_id": id,
        "rule_id": d.id,
        "class": diagnosis.fault_class,
        "rule_file": rule_path.display().to_string(),
        "case_file": case_path.display().to_string(),
        "cases": report.cases,
        "rules_loaded": reloaded,
    })))
}

pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.escalator.status())
}
