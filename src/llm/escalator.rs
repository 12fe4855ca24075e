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

/// Where the (separately masked) snapshot summary goes in the rendered prompt.
const SNAPSHOT_SLOT: &str = "\u{1}SNAPSHOT\u{1}";

/// A placeholder-shaped token (`HOST_1`, `SNAPIP_2`).
static PLACEHOLDER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\b[A-Z]+_[0-9]+\b").expect("valid placeholder regex")
});

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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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

/// `GET /api/llm`: the configuration, the prompt version and what is left of the budget.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LlmStatus {
    /// Whether an LLM is configured (`[llm] base_url` is set).
    pub configured: bool,
    /// The provider's URL, credentials redacted.
    pub base_url: String,
    pub model: String,
    /// The prompt language.
    pub language: super::settings::Language,
    pub prompt_version: String,
    /// Escalations run at once.
    pub concurrency: usize,
    /// What happens to an escalation when the hourly budget is spent.
    pub on_budget_exhausted: super::settings::OnBudgetExhausted,
    pub budget: LlmBudget,
    /// The provider asked to wait (429) until then (epoch ms); `null` when it does not.
    pub rate_limited_until_ms: Option<i64>,
}

/// The hourly LLM budget and what is left of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LlmBudget {
    pub requests_per_hour: u32,
    pub tokens_per_hour: u64,
    pub requests_remaining: u64,
    pub tokens_remaining: u64,
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
    sweep: Mutex<SweepState>,
}

/// Which templates the background sweep is working on or holding back (one lock, so a
/// template is never both checked free and started twice).
#[derive(Debug, Default)]
struct SweepState {
    backoff: HashMap<String, Backoff>,
    running: std::collections::HashSet<String>,
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
            sweep: Mutex::new(SweepState::default()),
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
    pub fn status(&self) -> LlmStatus {
        let (requests_left, tokens_left) = lock(&self.budget).remaining(crate::now_ms());
        let s = &self.settings;
        LlmStatus {
            configured: self.configured(),
            base_url: super::settings::display_url(&s.base_url),
            model: s.model.clone(),
            language: s.language,
            prompt_version: self.prompts.version().to_string(),
            concurrency: s.concurrency,
            on_budget_exhausted: s.on_budget_exhausted,
            budget: LlmBudget {
                requests_per_hour: s.requests_per_hour,
                tokens_per_hour: s.tokens_per_hour,
                requests_remaining: requests_left,
                tokens_remaining: tokens_left,
            },
            rate_limited_until_ms: self
                .client
                .as_ref()
                .map(|c| c.cooldown_until_ms())
                .filter(|t| *t > crate::now_ms()),
        }
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

    fn masker(&self, req: &Request) -> Result<Masker, EscalateError> {
        let mut hosts = self.known_hosts.clone();
        hosts.push(req.host.clone());
        Masker::new(&hosts, &self.settings.mask_pairs()).map_err(EscalateError::Prompt)
    }

    /// The masked diagnosis prompt of `req` and its map. The snapshot summary is masked on its
    /// own with `SNAP`-prefixed placeholders, so the placeholders of the stream and the excerpt
    /// are numbered the same for every fault of a template whatever the snapshot holds (a
    /// cached answer is restored with each fault's own values).
    fn masked_prompt(&self, req: &Request, masker: &Masker) -> Result<Masked, EscalateError> {
        let snapshot = self.snapshot_summary(&req.cluster);
        let vars = DiagnosisVars {
            cluster: req.cluster.clone(),
            host: req.host.clone(),
            service: req.service.clone(),
            rule_id: req.rule_id.clone().unwrap_or_default(),
            template: req.template.clone(),
            snapshot: if snapshot.is_empty() {
                String::new()
            } else {
                SNAPSHOT_SLOT.to_string()
            },
            classes: self.classes(),
            excerpt: DiagnosisVars::excerpt_of(&req.lines),
            max_index: req.lines.len().saturating_sub(1),
        };
        let text = self
            .prompts
            .diagnosis(&vars)
            .map_err(|e| EscalateError::Prompt(e.to_string()))?;
        let mut masked = masker.mask(&text);
        if !snapshot.is_empty() {
            let snap = masker.mask(&crate::llm::prompt::defuse(&snapshot));
            let renamed = PLACEHOLDER.replace_all(&snap.text, |c: &regex::Captures<'_>| {
                let t = &c[0];
                if snap.map.iter().any(|(p, _)| p == t) {
                    format!("SNAP{t}")
                } else {
                    t.to_string()
                }
            });
            masked.text = masked.text.replace(SNAPSHOT_SLOT, &renamed);
            masked
                .map
                .extend(snap.map.into_iter().map(|(p, v)| (format!("SNAP{p}"), v)));
        }
        Ok(masked)
    }

    /// Can a cached answer be restored for this fault: every placeholder it uses exists in
    /// this fault's prompt and every evidence index is one of its lines?
    fn fits(&self, body: &CachedBody, masked: &Masked, masker: &Masker, lines: usize) -> bool {
        let texts: Vec<&str> = match (&body.diagnosis, &body.raw_answer) {
            (Some(d), _) => {
                if d.evidence.iter().any(|i| *i >= lines) {
                    return false;
                }
                std::iter::once(d.title.as_str())
                    .chain(std::iter::once(d.root_cause.as_str()))
                    .chain(d.remediation.iter().map(String::as_str))
                    .collect()
            }
            (None, Some(raw)) => vec![raw.as_str()],
            (None, None) => Vec::new(),
        };
        texts.iter().all(|t| {
            PLACEHOLDER.find_iter(t).all(|m| {
                let tok = m.as_str();
                !(masker.makes_placeholder(tok, "") || masker.makes_placeholder(tok, "SNAP"))
                    || masked.map.iter().any(|(p, _)| p == tok)
            })
        })
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
        let masker = self.masker(req)?;
        let masked = self.masked_prompt(req, &masker)?;
        let key = self.cache_key(req, client.model());
        let key_lock = lock(&self.key_locks)
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _one_at_a_time = key_lock.lock().await;
            self.diagnose_locked(client, req, &masked, &masker, &key)
                .await
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
        masker: &Masker,
        key: &str,
    ) -> Result<Escalation, EscalateError> {
        let mut stale = false;
        match self.store.llm_cache_get(key, crate::now_ms()).await {
            Ok(Some(hit)) => match serde_json::from_str::<CachedBody>(&hit.answer) {
                Ok(body) if self.fits(&body, masked, masker, req.lines.len()) => {
                    self.metrics.llm_cache.with_label_values(&["hit"]).inc();
                    return Ok(self.finish(req, masked, body, true, &hit.model));
                }
                _ => stale = true,
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading the LLM cache failed; asking the LLM"),
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
                // No budget for the repair: the escalation waits (nothing is cached).
                let (second, t) = self.call(client, &messages).await?;
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
        };
        if body.diagnosis.is_none() {
            self.metrics.llm_unverified.inc();
        }
        let answer_json = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
        let entry = CacheEntry {
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
        };
        // A paid answer is used even if it cannot be cached.
        if let Err(e) = self.store.llm_cache_put(&entry, stale).await {
            tracing::warn!(error = %e, "storing an LLM answer in the cache failed");
        }
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
        // A server that reports no usage is charged the estimate; a failed call, one token
        // (it still counts as a request).
        let used = match &result {
            Ok(c) if c.tokens_in + c.tokens_out > 0 => c.tokens_in + c.tokens_out,
            Ok(_) => estimate,
            Err(_) => 1,
        };
        lock(&self.budget).settle(reservation, used);
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
    /// waiting fault of it the answer. Templates held back are left out of the query, so they
    /// never crowd out newer ones. Returns the number of tasks started.
    pub async fn sweep(self: &Arc<Self>) -> Result<usize, StoreError> {
        if !self.configured() {
            return Ok(0);
        }
        let now = crate::now_ms();
        let held: Vec<String> = {
            let st = lock(&self.sweep);
            st.backoff
                .iter()
                .filter(|(_, b)| b.until_ms > now)
                .map(|(k, _)| k.clone())
                .chain(st.running.iter().cloned())
                .take(1000)
                .collect()
        };
        let keys = self.store.pending_templates(&held, 200).await?;
        let mut started = 0;
        for key in keys {
            {
                let mut st = lock(&self.sweep);
                if st.backoff.get(&key).is_some_and(|b| b.until_ms > now)
                    || !st.running.insert(key.clone())
                {
                    continue;
                }
            }
            started += 1;
            let this = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = this.escalate_group(&key).await {
                    tracing::warn!(error = %e, template = %key, "escalating a template failed; retried at a later sweep");
                }
                lock(&this.sweep).running.remove(&key);
            });
        }
        Ok(started)
    }

    async fn escalate_group(&self, key: &str) -> Result<(), StoreError> {
        let rows = self.store.pending_of_template(key, 500).await?;
        for row in rows {
            let Some(req) = Request::from_fault(&row, self.settings.excerpt_lines) else {
                self.store
                    .skip_fault(row.id, "no evidence lines to send", crate::now_ms())
                    .await?;
                continue;
            };
            match self.diagnose(&req).await {
                Ok(esc) => {
                    lock(&self.sweep).backoff.remove(key);
                    self.apply(row.id, &esc).await?;
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
                            self.store.skip_escalation(key, crate::now_ms()).await?;
                        }
                    }
                    tracing::info!(
                        what,
                        template = key,
                        "LLM budget spent; escalation deferred"
                    );
                    return Ok(());
                }
                Err(EscalateError::Cooldown { until_ms }) => {
                    self.delay(key, until_ms, false);
                    return Ok(());
                }
                Err(e) => {
                    self.metrics
                        .llm_escalations
                        .with_label_values(&["failed"])
                        .inc();
                    let until = self.delay(key, 0, true);
                    tracing::warn!(error = %e, template = key, retry_at_ms = until, "LLM escalation failed; retried later");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Hold a template back until `until_ms`, or (on a failure) for a doubling delay from
    /// the sweep interval up to an hour. Returns the time it is held until.
    fn delay(&self, key: &str, until_ms: i64, failure: bool) -> i64 {
        let mut st = lock(&self.sweep);
        let entry = st.backoff.entry(key.to_string()).or_insert(Backoff {
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

    /// Count the answers of the last hour (from the cache) against the budget, so a restart
    /// does not reset it.
    pub async fn seed_budget(&self) -> Result<(), StoreError> {
        let now = crate::now_ms();
        let spent = self.store.llm_spent_since(now - 3_600_000).await?;
        {
            let mut b = lock(&self.budget);
            for (at, tokens) in spent {
                b.record(at, tokens);
            }
        }
        self.publish_budget();
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::snapshot::{ClusterSnapshot, SourceError};
    use crate::llm::settings::Language;
    use crate::rules::RuleSource;
    use crate::rules::engine::StaticSnapshots;

    async fn escalator(dir: &std::path::Path) -> Escalator {
        let db = crate::config::DatabaseSettings {
            url: format!("sqlite://{}", dir.join("t.db").display()),
            ..Default::default()
        };
        let snap = ClusterSnapshot {
            cluster: "c".into(),
            errors: vec![SourceError {
                source: "namenode".into(),
                message: "connect to nn-a.corp.example.com:9870 refused".into(),
            }],
            ..Default::default()
        };
        let set = crate::rules::load(&RuleSource::Embedded).unwrap();
        Escalator::new(EscalatorParts {
            store: Store::connect(&db).await.unwrap(),
            metrics: Arc::new(Metrics::new()),
            settings: LlmSettings::default(),
            client: None,
            prompts: Prompts::load(None, Language::En).unwrap(),
            rules: Arc::new(RulesHandle::from_set(RuleSource::Embedded, set)),
            snapshots: Some(Arc::new(StaticSnapshots {
                by_cluster: HashMap::from([("c".to_string(), snap)]),
            })),
            thresholds: Thresholds::default(),
            known_hosts: Vec::new(),
        })
    }

    fn req(host: &str, n: u32) -> Request {
        Request {
            template_key: "k".into(),
            template: "Call From <*> to <*> failed".into(),
            rule_id: None,
            cluster: "c".into(),
            host: host.into(),
            service: "datanode".into(),
            lines: vec![format!(
                "Call From {host}/10.0.0.{n} to nn1.corp.example.com:8020 failed"
            )],
        }
    }

    #[tokio::test]
    async fn one_cached_answer_serves_every_fault_of_a_template() {
        let dir = tempfile::tempdir().unwrap();
        let e = escalator(dir.path()).await;
        let (a, b) = (
            req("dn1.corp.example.com", 1),
            req("dn2.corp.example.com", 2),
        );
        let (ka, kb) = (e.masker(&a).unwrap(), e.masker(&b).unwrap());
        let ma = e.masked_prompt(&a, &ka).unwrap();
        let mb = e.masked_prompt(&b, &kb).unwrap();
        // Same template, other values: the very same prompt text (the snapshot's values
        // have their own placeholders and do not shift the others).
        assert_eq!(ma.text, mb.text);
        assert!(ma.text.contains("SNAPHOST_1"), "{}", ma.text);
        for secret in ["nn-a.corp", "dn1.corp", "nn1.corp", "10.0.0.1"] {
            assert!(!ma.text.contains(secret), "{secret} in {}", ma.text);
        }
        let host_b = mb
            .map
            .iter()
            .find(|(_, v)| v == "dn2.corp.example.com")
            .map(|(p, _)| p.clone())
            .unwrap();
        let body = CachedBody {
            diagnosis: Some(Diagnosis {
                fault_class: "x_fault".into(),
                title: "t".into(),
                root_cause: format!("{host_b} cannot reach its NameNode (SNAPHOST_1)"),
                confidence: 0.5,
                remediation: vec![],
                evidence: vec![0],
            }),
            problem: None,
            raw_answer: None,
        };
        assert!(e.fits(&body, &mb, &kb, 1));
        let esc = e.finish(&b, &mb, body.clone(), true, "m");
        let cause = esc.diagnosis.unwrap().root_cause;
        assert_eq!(
            cause,
            "dn2.corp.example.com cannot reach its NameNode (nn-a.corp.example.com)"
        );
        // An answer naming a placeholder this fault lacks, or a line it does not have,
        // does not fit.
        let mut other = body.clone();
        if let Some(d) = other.diagnosis.as_mut() {
            d.root_cause = "HOST_9 is down".into();
        }
        assert!(!e.fits(&other, &mb, &kb, 1));
        let mut far = body;
        if let Some(d) = far.diagnosis.as_mut() {
            d.evidence = vec![3];
        }
        assert!(!e.fits(&far, &mb, &kb, 1));
    }
}
