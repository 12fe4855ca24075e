//! The escalation service (no actix): one LLM call per message template, answers cached in
//! `llm_cache`, an hourly budget, a concurrency limit, one repair retry, and the fault updates.
//!
//! Flow of one request: render the diagnosis prompt → mask it (the map is this fault's own) →
//! cache lookup by (template, service, model, prompt version) → on a miss, within budget and
//! concurrency: call, validate, repair once → cache the masked answer → unmask with the
//! fault's map. Faults sharing a template get the cached answer unmasked with their own values.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::answer::{self, AnswerProblem, Diagnosis};
use super::budget::{Budget, Exhausted};
use super::client::{LlmClient, LlmError, Message};
use super::mask::{Masked, Masker};
use super::prompt::{ClassInfo, DiagnosisVars, Prompts};
use super::settings::{LlmSettings, OnBudgetExhausted};
use crate::cluster::snapshot::Thresholds;
use crate::metrics::Metrics;
use crate::rules::engine::{SnapshotLookup, short_hash};
use crate::rules::{Finding, RulesHandle};
use crate::storage::{CacheEntry, FaultRow, LlmUpdate, Store, StoreError};

/// What one escalation is about.
#[derive(Debug, Clone)]
pub struct Request {
    pub template_key: String,
    pub template: String,
    pub rule_id: Option<String>,
    pub cluster: String,
    pub host: String,
    pub service: String,
    /// The excerpt (original values; masked when the prompt is built).
    pub lines: Vec<String>,
}

impl Request {
    /// From an unknown finding (`POST /api/llm/diagnose`).
    pub fn from_finding(f: &Finding, max_lines: usize) -> Option<Request> {
        let template_key = f.template_key()?;
        let lines = f
            .evidence
            .iter()
            .flat_map(|e| e.lines.iter().cloned())
            .take(max_lines)
            .collect();
        Some(Request {
            template_key,
            template: f.captures.get("template").cloned().unwrap_or_default(),
            rule_id: f.rule_id.clone(),
            cluster: f.cluster.clone(),
            host: f.host.clone(),
            service: f.service.clone(),
            lines,
        })
    }

    /// From a stored unknown fault (its evidence JSON).
    pub fn from_fault(row: &FaultRow, max_lines: usize) -> Option<Request> {
        let template_key = row.template_key.clone()?;
        let ev: serde_json::Value = serde_json::from_str(&row.evidence).ok()?;
        let lines: Vec<String> = ev
            .get("records")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("lines").and_then(|l| l.as_array()))
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_string))
            .take(max_lines)
            .collect();
        if lines.is_empty() {
            return None;
        }
        Some(Request {
            template_key,
            template: ev
                .pointer("/captures/template")
                .and_then(|t| t.as_str())
                .unwrap_or(&row.title)
                .to_string(),
            rule_id: ev
                .get("rule_id")
                .and_then(|r| r.as_str())
                .map(str::to_string),
            cluster: row.cluster.clone(),
            host: row.host.clone(),
            service: row.service.clone(),
            lines,
        })
    }
}

/// The result of an escalation, as shown to the operator (values restored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Escalation {
    pub template_key: String,
    /// `diagnosed` (valid JSON citing valid evidence) or `unverified`.
    pub status: String,
    pub source: String,
    pub cached: bool,
    pub model: String,
    pub prompt_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// The excerpt lines the diagnosis cites.
    pub evidence_lines: Vec<String>,
    /// Why an unverified answer was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// An unverified answer's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_answer: Option<String>,
}

/// What the cache keeps (masked).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedBody {
    diagnosis: Option<Diagnosis>,
    problem: Option<String>,
    raw_answer: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EscalateError {
    #[error("no LLM is configured ([llm] base_url is empty)")]
    NotConfigured,
    #[error("the hourly LLM budget of {what} is spent; it frees at {retry_at_ms} (epoch ms)")]
    Budget {
        what: &'static str,
        retry_at_ms: i64,
    },
    #[error("the LLM server asked to wait (429 Retry-After) until {until_ms} (epoch ms)")]
    Cooldown { until_ms: i64 },
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("rendering the prompt failed: {0}")]
    Prompt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Per-template retry state of the background sweep.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    until_ms: i64,
    failures: u32,
}

pub struct Escalator {
    store: Store,
    metrics: Arc<Metrics>,
    settings: LlmSettings,
    client: Option<LlmClient>,
    prompts: Prompts,
    rules: Arc<RulesHandle>,
    snapshots: Option<Arc<dyn SnapshotLookup>>,
    thresholds: Thresholds,
    /// Host names of the configured clusters (masked wherever they appear).
    known_hosts: Vec<String>,
    budget: Mutex<Budget>,
    permits: tokio::sync::Semaphore,
    /// One escalation per template at a time (the second finds the cache filled).
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<String, Backoff>>,
    running: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Escalator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalator")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parts needed to build an [`Escalator`].
pub struct EscalatorParts {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub settings: LlmSettings,
    pub client: Option<LlmClient>,
    pub prompts: Prompts,
    pub rules: Arc<RulesHandle>,
    pub snapshots: Option<Arc<dyn SnapshotLookup>>,
    pub thresholds: Thresholds,
    pub known_hosts: Vec<String>,
}

impl Escalator {
    pub fn new(p: EscalatorParts) -> Escalator {
        let budget = Budget::new(p.settings.requests_per_hour, p.settings.tokens_per_hour);
        let permits = tokio::sync::Semaphore::new(p.settings.concurrency);
        let e = Escalator {
            store: p.store,
            metrics: p.metrics,
            client: p.client,
            prompts: p.prompts,
            rules: p.rules,
            snapshots: p.snapshots,
            thresholds: p.thresholds,
            known_hosts: p.known_hosts,
            budget: Mutex::new(budget),
            permits,
            key_locks: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            running: Mutex::new(Default::default()),
            settings: p.settings,
        };
        e.publish_budget();
        e
    }

    pub fn configured(&self) -> bool {
        self.client.is_some()
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// `GET /api/llm`: configuration (never the key), prompts and the budget left.
    pub fn status(&self) -> serde_json::Value {
        let (requests_left, tokens_left) = lock(&self.budget).remaining(crate::now_ms());
        let s = &self.settings;
        serde_json::json!({
            "configured": self.configured(),
            "base_url": s.base_url,
            "model": s.model,
            "language": s.language.as_str(),
            "prompt_version": self.prompts.version(),
            "concurrency": s.concurrency,
            "on_budget_exhausted": s.on_budget_exhausted,
            "budget": {
                "requests_per_hour": s.requests_per_hour,
                "tokens_per_hour": s.tokens_per_hour,
                "requests_remaining": requests_left,
                "tokens_remaining": tokens_left,
            },
            "rate_limited_until_ms": self.client.as_ref().map(|c| c.cooldown_until_ms()).filter(|t| *t > crate::now_ms()),
        })
    }

    fn publish_budget(&self) {
        let (req, tok) = lock(&self.budget).remaining(crate::now_ms());
        let g = &self.metrics.llm_budget_remaining;
        g.with_label_values(&["requests"])
            .set(i64::try_from(req).unwrap_or(i64::MAX));
        g.with_label_values(&["tokens"])
            .set(i64::try_from(tok).unwrap_or(i64::MAX));
    }

    fn classes(&self) -> Vec<ClassInfo> {
        let set = self.rules.current();
        let mut seen = BTreeMap::new();
        for r in set
            .rules
            .iter()
            .filter(|r| r.kind == crate::rules::spec::RuleKind::Fault)
        {
            seen.entry(r.class.clone())
                .or_insert_with(|| r.title.clone());
        }
        seen.into_iter()
            .map(|(id, title)| ClassInfo { id, title })
            .collect()
    }

    fn snapshot_summary(&self, cluster: &str) -> String {
        let mut out = String::new();
        if let Some(s) = &self.snapshots {
            s.with_snapshot(cluster, &mut |snap| {
                out = snap.summary(&self.thresholds, 30);
            });
        }
        out
    }

    /// The masked diagnosis prompt of `req` and its map.
    fn masked_prompt(&self, req: &Request) -> Result<Masked, EscalateError> {
        let vars = DiagnosisVars {
            cluster: req.cluster.clone(),
            host: req.host.clone(),
            service: req.service.clone(),
            rule_id: req.rule_id.clone().unwrap_or_default(),
            template: req.template.clone(),
            snapshot: self.snapshot_summary(&req.cluster),
            classes: self.classes(),
            excerpt: DiagnosisVars::excerpt_of(&req.lines),
            max_index: req.lines.len().saturating_sub(1),
        };
        let text = self
            .prompts
            .diagnosis(&vars)
            .map_err(|e| EscalateError::Prompt(e.to_string()))?;
        let mut hosts = self.known_hosts.clone();
        hosts.push(req.host.clone());
        let masker =
            Masker::new(&hosts, &self.settings.mask_pairs()).map_err(EscalateError::Prompt)?;
        Ok(masker.mask(&text))
    }

    fn cache_key(&self, req: &Request, model: &str) -> String {
        let k = format!(
            "{}\n{}\n{}\n{}",
            req.template_key,
            req.service,
            model,
            self.prompts.version()
        );
        format!(
            "{}{}",
            short_hash(&k),
            short_hash(&format!("faultline\n{k}"))
        )
    }

    fn finish(
        &self,
        req: &Request,
        masked: &Masked,
        body: CachedBody,
        cached: bool,
        model: &str,
    ) -> Escalation {
        let unmask = |s: &str| masked.unmask(s);
        let diagnosis = body.diagnosis.map(|d| d.map_text(unmask));
        let evidence_lines = diagnosis
            .as_ref()
            .map(|d| {
                d.evidence
                    .iter()
                    .filter_map(|i| req.lines.get(*i).cloned())
                    .collect()
            })
            .unwrap_or_default();
        Escalation {
            template_key: req.template_key.clone(),
            status: if diagnosis.is_some() {
                "diagnosed"
            } else {
                "unverified"
            }
            .into(),
            source: "llm".into(),
            cached,
            model: model.to_string(),
            prompt_version: self.prompts.version().to_string(),
            diagnosis,
            evidence_lines,
            problem: body.problem,
            raw_answer: body.raw_answer.map(|r| unmask(&r)),
        }
    }

    /// Diagnose `req`: from the cache, or by calling the LLM (within budget).
    pub async fn diagnose(&self, req: &Request) -> Result<Escalation, EscalateError> {
        let client = self.client.as_ref().ok_or(EscalateError::NotConfigured)?;
        let masked = self.masked_prompt(req)?;
        let key = self.cache_key(req, client.model());
        let key_lock = lock(&self.key_locks)
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _one_at_a_time = key_lock.lock().await;
            self.diagnose_locked(client, req, &masked, &key).await
        };
        drop(key_lock);
        {
            let mut locks = lock(&self.key_locks);
            if locks.get(&key).is_some_and(|l| Arc::strong_count(l) == 1) {
                locks.remove(&key);
            }
        }
        result
    }

    async fn diagnose_locked(
        &self,
        client: &LlmClient,
        req: &Request,
        masked: &Masked,
        key: &str,
    ) -> Result<Escalation, EscalateError> {
        if let Some(hit) = self.store.llm_cache_get(key, crate::now_ms()).await?
            && let Ok(body) = serde_json::from_str::<CachedBody>(&hit.answer)
        {
            self.metrics.llm_cache.with_label_values(&["hit"]).inc();
            return Ok(self.finish(req, masked, body, true, &hit.model));
        }
        self.metrics.llm_cache.with_label_values(&["miss"]).inc();
        let now = crate::now_ms();
        let cooldown = client.cooldown_until_ms();
        if cooldown > now {
            return Err(EscalateError::Cooldown { until_ms: cooldown });
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EscalateError::NotConfigured)?;
        let system = self
            .prompts
            .system()
            .map_err(|e| EscalateError::Prompt(e.to_string()))?;
        let n = req.lines.len();
        let mut messages = vec![Message::System(system), Message::User(masked.text.clone())];
        let (first, mut tokens) = self.call(client, &messages).await?;
        let mut model = first.model.clone();
        let body = match answer::parse(&first.text, n) {
            Ok(d) => CachedBody {
                diagnosis: Some(d),
                problem: None,
                raw_answer: None,
            },
            Err(problem) => {
                let repair = self
                    .prompts
                    .repair(&problem.to_string(), n.saturating_sub(1))
                    .map_err(|e| EscalateError::Prompt(e.to_string()))?;
                messages.push(Message::Assistant(first.text.clone()));
                messages.push(Message::User(repair));
                match self.call(client, &messages).await {
                    Ok((second, t)) => {
                        tokens = (tokens.0 + t.0, tokens.1 + t.1);
                        model = second.model.clone();
                        match answer::parse(&second.text, n) {
                            Ok(d) => CachedBody {
                                diagnosis: Some(d),
                                problem: None,
                                raw_answer: None,
                            },
                            Err(p) => unverified(p, &second.text),
                        }
                    }
                    // No budget left for the repair: the first answer stays unverified.
                    Err(EscalateError::Budget { .. }) => unverified(problem, &first.text),
                    Err(e) => return Err(e),
                }
            }
        };
        if body.diagnosis.is_none() {
            self.metrics.llm_unverified.inc();
        }
        let answer_json = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
        self.store
            .llm_cache_put(&CacheEntry {
                cache_key: key,
                template_key: &req.template_key,
                model: &model,
                prompt_version: self.prompts.version(),
                language: self.prompts.language().as_str(),
                verified: body.diagnosis.is_some(),
                answer: &answer_json,
                tokens_in: tokens.0,
                tokens_out: tokens.1,
                now_ms: crate::now_ms(),
            })
            .await?;
        Ok(self.finish(req, masked, body, false, &model))
    }

    /// One HTTP call within the budget, with its metrics.
    async fn call(
        &self,
        client: &LlmClient,
        messages: &[Message],
    ) -> Result<(super::client::Completion, (u64, u64)), EscalateError> {
        let chars: usize = messages
            .iter()
            .map(|m| match m {
                Message::System(t) | Message::User(t) | Message::Assistant(t) => t.len(),
            })
            .sum();
        let estimate = (chars / 3) as u64 + u64::from(client.max_tokens());
        let reservation = lock(&self.budget)
            .reserve(crate::now_ms(), estimate)
            .map_err(|Exhausted { retry_at_ms, what }| EscalateError::Budget {
                what,
                retry_at_ms,
            })?;
        let started = Instant::now();
        let result = client.complete(messages).await;
        self.metrics
            .llm_request_seconds
            .observe(started.elapsed().as_secs_f64());
        let used = match &result {
            Ok(c) => c.tokens_in + c.tokens_out,
            Err(_) => 0,
        };
        lock(&self.budget).settle(reservation, used.max(1));
        self.publish_budget();
        match result {
            Ok(c) => {
                self.metrics.llm_requests.with_label_values(&["ok"]).inc();
                self.metrics
                    .llm_tokens
                    .with_label_values(&["in"])
                    .inc_by(c.tokens_in);
                self.metrics
                    .llm_tokens
                    .with_label_values(&["out"])
                    .inc_by(c.tokens_out);
                let cost = c.tokens_in as f64 / 1000.0 * self.settings.price_per_1k_input
                    + c.tokens_out as f64 / 1000.0 * self.settings.price_per_1k_output;
                self.metrics
                    .llm_cost_micros
                    .inc_by((cost * 1e6).round() as u64);
                let t = (c.tokens_in, c.tokens_out);
                Ok((c, t))
            }
            Err(e) => {
                self.metrics
                    .llm_requests
                    .with_label_values(&[e.outcome()])
                    .inc();
                Err(e.into())
            }
        }
    }

    /// Escalate the unknown faults waiting in the store: one task per template (at most
    /// `concurrency` calls at once); each task diagnoses the template once and gives every
    /// waiting fault of it the answer. Returns the number of tasks started.
    pub async fn sweep(self: &Arc<Self>) -> Result<usize, StoreError> {
        if !self.configured() {
            return Ok(0);
        }
        let rows = self.store.pending_escalations(500).await?;
        let mut groups: BTreeMap<String, Vec<FaultRow>> = BTreeMap::new();
        for row in rows {
            if let Some(k) = row.template_key.clone() {
                groups.entry(k).or_default().push(row);
            }
        }
        let now = crate::now_ms();
        let mut started = 0;
        for (key, rows) in groups {
            if lock(&self.backoff)
                .get(&key)
                .is_some_and(|b| b.until_ms > now)
            {
                continue;
            }
            if !lock(&self.running).insert(key.clone()) {
                continue;
            }
            started += 1;
            let this = Arc::clone(self);
            tokio::spawn(async move {
                this.escalate_group(&key, rows).await;
                lock(&this.running).remove(&key);
            });
        }
        Ok(started)
    }

    async fn escalate_group(&self, key: &str, rows: Vec<FaultRow>) {
        for row in rows {
            let Some(req) = Request::from_fault(&row, self.settings.excerpt_lines) else {
                continue;
            };
            match self.diagnose(&req).await {
                Ok(esc) => {
                    lock(&self.backoff).remove(key);
                    if let Err(e) = self.apply(row.id, &esc).await {
                        tracing::warn!(error = %e, fault = row.id, "storing an LLM diagnosis failed; it is retried");
                        return;
                    }
                }
                Err(EscalateError::Budget { what, retry_at_ms }) => {
                    match self.settings.on_budget_exhausted {
                        OnBudgetExhausted::Queue => {
                            self.metrics
                                .llm_budget_exhausted
                                .with_label_values(&["queued"])
                                .inc();
                            self.delay(key, retry_at_ms, false);
                        }
                        OnBudgetExhausted::Skip => {
                            self.metrics
                                .llm_budget_exhausted
                                .with_label_values(&["skipped"])
                                .inc();
                            if let Err(e) = self.store.skip_escalation(key, crate::now_ms()).await {
                                tracing::warn!(error = %e, "marking faults skipped failed");
                            }
                        }
                    }
                    tracing::info!(
                        what,
                        template = key,
                        "LLM budget spent; escalation deferred"
                    );
                    return;
                }
                Err(EscalateError::Cooldown { until_ms }) => {
                    self.delay(key, until_ms, false);
                    return;
                }
                Err(e) => {
                    self.metrics
                        .llm_escalations
                        .with_label_values(&["failed"])
                        .inc();
                    let until = self.delay(key, 0, true);
                    tracing::warn!(error = %e, template = key, retry_at_ms = until, "LLM escalation failed; retried later");
                    return;
                }
            }
        }
    }

    /// Hold a template back until `until_ms`, or (on a failure) for a doubling delay from
    /// the sweep interval up to an hour. Returns the time it is held until.
    fn delay(&self, key: &str, until_ms: i64, failure: bool) -> i64 {
        let mut b = lock(&self.backoff);
        let entry = b.entry(key.to_string()).or_insert(Backoff {
            until_ms: 0,
            failures: 0,
        });
        if failure {
            entry.failures = entry.failures.saturating_add(1);
            let base = i64::try_from(self.settings.sweep_interval_secs).unwrap_or(30) * 1000;
            let wait = base
                .saturating_mul(1i64 << entry.failures.min(10).saturating_sub(1))
                .min(3_600_000);
            entry.until_ms = crate::now_ms() + wait;
        } else {
            entry.until_ms = until_ms;
        }
        entry.until_ms
    }

    /// Write an escalation into a fault.
    pub async fn apply(&self, id: i64, esc: &Escalation) -> Result<bool, StoreError> {
        let answer = serde_json::to_string(esc).unwrap_or_else(|_| "{}".into());
        let update = match &esc.diagnosis {
            Some(d) => LlmUpdate {
                status: "diagnosed",
                fault_type: d.fault_class.clone(),
                title: d.title.clone(),
                root_cause: d.root_cause.clone(),
                remediation: d.remediation.clone(),
                model: esc.model.clone(),
                confidence: Some(d.confidence),
                answer,
            },
            None => LlmUpdate {
                status: "unverified",
                fault_type: String::new(),
                title: String::new(),
                root_cause: String::new(),
                remediation: Vec::new(),
                model: esc.model.clone(),
                confidence: None,
                answer,
            },
        };
        let applied = self.store.apply_llm(id, &update, crate::now_ms()).await?;
        if applied {
            self.metrics
                .llm_escalations
                .with_label_values(&[update.status])
                .inc();
        }
        Ok(applied)
    }
}

fn unverified(problem: AnswerProblem, raw: &str) -> CachedBody {
    CachedBody {
        diagnosis: None,
        problem: Some(problem.to_string()),
        raw_answer: Some(crate::storage::truncate_str(raw, 8 * 1024).to_string()),
    }
}
