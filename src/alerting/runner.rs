//! The alerting I/O without actix: one evaluation (open faults and silences from the store →
//! the engine → alert states saved, notifications and mutes written to the outbox), delivery
//! of the outbox with retries and backoff, and the periodic re-push of firing alerts to real
//! Alertmanagers (which resolve alerts not refreshed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::engine::{AlertEngine, AlertEvent, AlertState, FaultView, Phase, Silence};
use super::matcher::{Matcher, all_match};
use super::payload::{self, Context};
use super::settings::{AlertingSettings, ReceiverKind, ReceiverSettings};
use crate::metrics::Metrics;
use crate::rules::Severity;
use crate::storage::{DeliveryRow, FaultRow, NewDelivery, Store, StoreError};

/// How often firing alerts are pushed again to Alertmanager receivers, and how long each push
/// keeps them firing there.
const AM_REFRESH_MS: i64 = 60_000;
const AM_HOLD_MS: i64 = 300_000;

impl FaultView {
    pub fn from_row(r: &FaultRow) -> FaultView {
        let remediation: Vec<String> = serde_json::from_str(&r.remediation).unwrap_or_default();
        let ev: serde_json::Value = serde_json::from_str(&r.evidence).unwrap_or_default();
        let evidence: Vec<String> = ev
            .pointer("/records/0/lines")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_string))
            .take(3)
            .chain(
                ev.get("snapshot_values")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .take(3),
            )
            .collect();
        FaultView {
            id: r.id,
            fingerprint: r.fingerprint.clone(),
            fault_type: r.fault_type.clone(),
            severity: Severity::parse(&r.severity).unwrap_or(Severity::Warning),
            acknowledged: r.status == "acknowledged",
            source: r.source.clone(),
            cluster: r.cluster.clone(),
            host: r.host.clone(),
            service: r.service.clone(),
            entity: ev
                .get("entity")
                .and_then(|e| e.as_str())
                .unwrap_or(&r.host)
                .to_string(),
            title: r.title.clone(),
            root_cause: r.root_cause.clone(),
            remediation,
            evidence,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            occurrences: r.occurrences,
        }
    }
}

/// What one delivery attempt did.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Sent,
    Retry { next_ms: i64, error: String },
    Failed { error: String },
}

pub struct Alerting {
    store: Store,
    metrics: Arc<Metrics>,
    settings: AlertingSettings,
    engine: Mutex<AlertEngine>,
    http: reqwest::Client,
    last_am_push_ms: Mutex<i64>,
    /// The last save failed: the next one writes every state.
    full_save: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Alerting {
    /// Build with the persisted alert states.
    pub async fn new(
        store: Store,
        metrics: Arc<Metrics>,
        settings: AlertingSettings,
    ) -> anyhow::Result<Alerting> {
        let policy = settings
            .compile()
            .map_err(|(k, r)| anyhow::anyhow!("{k}: {r}"))?;
        let mut engine = AlertEngine::new(policy);
        let mut bad = 0;
        let states = store.load_alert_states().await?;
        engine.restore(states.into_iter().filter_map(|(fp, json)| {
            match serde_json::from_str::<AlertState>(&json) {
                Ok(s) => Some((fp, s)),
                Err(_) => {
                    bad += 1;
                    None
                }
            }
        }));
        if bad > 0 {
            tracing::warn!(bad, "unreadable alert states were dropped");
        }
        let released = store.release_deliveries().await?;
        if released > 0 {
            tracing::info!(
                released,
                "notifications interrupted by the last stop are pending again"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .build()?;
        Ok(Alerting {
            store,
            metrics,
            settings,
            engine: Mutex::new(engine),
            http,
            last_am_push_ms: Mutex::new(0),
            full_save: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn settings(&self) -> &AlertingSettings {
        &self.settings
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            external_url: &self.settings.external_url,
            locale: self.settings.locale,
        }
    }

    fn receiver(&self, name: &str) -> Option<&ReceiverSettings> {
        self.settings.receivers.iter().find(|r| r.name == name)
    }

    /// One evaluation at `now_ms`; returns the notifications enqueued.
    pub async fn evaluate(&self, now_ms: i64) -> Result<usize, StoreError> {
        let rows = self.store.open_faults(20_000).await?;
        let views: Vec<FaultView> = rows.iter().map(FaultView::from_row).collect();
        let mut open: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
        for r in &rows {
            let t = crate::metrics::fault_type_label(&r.fault_type);
            *open.entry((t, r.severity.as_str())).or_default() += 1;
        }
        self.metrics.faults_open.reset();
        for ((t, sev), n) in open {
            self.metrics.faults_open.with_label_values(&[t, sev]).set(n);
        }
        let rows_s = self.store.current_silences(now_ms).await?;
        let (mut a, mut p, mut x, mut l) = (0, 0, 0, 0);
        for s in &rows_s {
            let (active, expiring, long) =
                super::engine::silence_flags(s.starts_at, s.ends_at, now_ms);
            if active {
                a += 1;
            } else {
                p += 1;
            }
            x += i64::from(expiring);
            l += i64::from(long);
        }
        self.metrics.set_silences(a, p, x, l);
        let silences: Vec<Silence> = rows_s
            .into_iter()
            .filter_map(|s| {
                let list: Vec<String> = serde_json::from_str(&s.matchers).ok()?;
                let matchers: Vec<Matcher> = super::matcher::parse_all(&list).ok()?;
                Some(Silence {
                    id: s.id,
                    matchers,
                    starts_ms: s.starts_at,
                    ends_ms: s.ends_at,
                })
            })
            .collect();
        // The engine moves on only once its notifications and states are stored: on a store
        // error it is put back as it was, and the same evaluation happens again next time.
        let (snapshot, eval, upserts, deletes) = {
            let mut engine = lock(&self.engine);
            let snapshot = engine.clone();
            let full = self.full_save.load(std::sync::atomic::Ordering::Acquire);
            let eval = engine.evaluate(now_ms, &views, &silences);
            let before = snapshot.states();
            let after = engine.states();
            let upserts: Vec<(String, String)> = after
                .iter()
                .filter(|(k, v)| full || before.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
                .collect();
            let deletes: Vec<String> = before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .cloned()
                .collect();
            (snapshot, eval, upserts, deletes)
        };
        let stored = self
            .store_evaluation(&eval, &upserts, &deletes, now_ms)
            .await;
        match stored {
            Ok(n) => {
                self.full_save
                    .store(false, std::sync::atomic::Ordering::Release);
                Ok(n)
            }
            Err(e) => {
                *lock(&self.engine) = snapshot;
                self.full_save
                    .store(true, std::sync::atomic::Ordering::Release);
                Err(e)
            }
        }
    }

    /// Outbox rows first, then the states: a crash in between sends a notification twice
    /// rather than never.
    async fn store_evaluation(
        &self,
        eval: &super::engine::Evaluation,
        upserts: &[(String, String)],
        deletes: &[String],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        let ctx = self.ctx();
        let mut enqueued = 0;
        for n in &eval.notifications {
            let Some(r) = self.receiver(&n.receiver) else {
                continue;
            };
            let body = payload::body(r.kind, n, &ctx).to_string();
            let mut reasons: Vec<&str> = n.alerts.iter().map(reason_str).collect();
            reasons.sort_unstable();
            reasons.dedup();
            let ids: Vec<i64> = n.alerts.iter().map(|a| a.fault.id).collect();
            self.store
                .enqueue_delivery(&NewDelivery {
                    receiver: &r.name,
                    kind: kind_str(r.kind),
                    group_key: &n.group_key,
                    reasons: &reasons.join(","),
                    status: "pending",
                    payload: &body,
                    fault_ids: &ids,
                    now_ms,
                })
                .await?;
            enqueued += 1;
        }
        for m in &eval.muted {
            self.store
                .enqueue_delivery(&NewDelivery {
                    receiver: "-",
                    kind: "-",
                    group_key: &m.fingerprint,
                    reasons: &format!("muted:{}", m.by),
                    status: "muted",
                    payload: "{}",
                    fault_ids: &[m.fault_id],
                    now_ms,
                })
                .await?;
            // Counted with its outbox row (a failed evaluation is done again, row and all).
            self.metrics
                .alert_notifications
                .with_label_values(&["-", "muted"])
                .inc();
        }
        self.store
            .save_alert_states(upserts, deletes, now_ms)
            .await?;
        Ok(enqueued)
    }

    /// Try every due notification once; returns how many were tried.
    pub async fn deliver_due(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.metrics
            .alert_outbox_pending
            .set(self.store.pending_deliveries().await?);
        let rows = self.store.due_deliveries(now_ms, 100).await?;
        let n = rows.len();
        for row in rows {
            // Claimed by one deliverer only (a second engine on the same database skips it).
            if !self.store.claim_delivery(row.id).await? {
                continue;
            }
            let outcome = self.attempt(&row, now_ms).await;
            let (status, next, error, label) = match &outcome {
                Attempt::Sent => ("sent", now_ms, None, "sent"),
                Attempt::Retry { next_ms, error } => {
                    ("pending", *next_ms, Some(error.as_str()), "retry")
                }
                Attempt::Failed { error } => ("failed", now_ms, Some(error.as_str()), "failed"),
            };
            self.metrics
                .alert_notifications
                .with_label_values(&[row.receiver.as_str(), label])
                .inc();
            if let Some(e) = error {
                tracing::warn!(receiver = %row.receiver, id = row.id, attempt = row.attempts + 1, error = %e, "notification not delivered");
            }
            self.store
                .record_attempt(row.id, status, next, error, crate::now_ms())
                .await?;
        }
        Ok(n)
    }

    async fn attempt(&self, row: &DeliveryRow, now_ms: i64) -> Attempt {
        let Some(r) = self.receiver(&row.receiver) else {
            return Attempt::Failed {
                error: format!("receiver {:?} is no longer configured", row.receiver),
            };
        };
        let body = if r.kind == ReceiverKind::Alertmanager {
            payload::alertmanager_hold(&row.payload, now_ms, AM_HOLD_MS)
        } else {
            row.payload.clone()
        };
        let result = self.post(r, &body, now_ms).await;
        match result {
            Ok(()) => Attempt::Sent,
            // The receiver refuses this request as such (not rate limiting): retrying cannot
            // help.
            Err(error) if error.starts_with("HTTP 4") && !error.starts_with("HTTP 429") => {
                Attempt::Failed { error }
            }
            Err(error) => {
                let attempts = u32::try_from(row.attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                if attempts >= self.settings.max_attempts {
                    Attempt::Failed { error }
                } else {
                    let backoff = 1000i64.saturating_mul(1 << attempts.min(20)).min(
                        i64::try_from(self.settings.max_backoff_secs * 1000).unwrap_or(i64::MAX),
                    );
                    Attempt::Retry {
                        next_ms: now_ms + backoff,
                        error,
                    }
                }
            }
        }
    }

    /// POST a body to a receiver; robots answering 200 with a non-zero `errcode` failed.
    async fn post(&self, r: &ReceiverSettings, body: &str, now_ms: i64) -> Result<(), String> {
        let url = match r.kind {
            ReceiverKind::Alertmanager => {
                format!("{}/api/v2/alerts", r.url.trim_end_matches('/'))
            }
            ReceiverKind::Dingtalk => payload::dingtalk_signed_url(&r.url, &r.secret, now_ms),
            _ => r.url.clone(),
        };
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "HTTP {}: {}",
                status.as_u16(),
                crate::storage::truncate_str(&text, 300)
            ));
        }
        if matches!(r.kind, ReceiverKind::Dingtalk | ReceiverKind::Wecom) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let code = v.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0);
            if code != 0 {
                return Err(format!(
                    "errcode {code}: {}",
                    v.get("errmsg").and_then(|m| m.as_str()).unwrap_or("")
                ));
            }
        }
        Ok(())
    }

    /// Delete finished outbox rows and ended silences older than `before_ms`.
    pub async fn prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.store.prune_alerting(before_ms).await
    }

    /// Push the alerts firing (notified, not muted) to each Alertmanager receiver again, at
    /// most every minute, so Alertmanager keeps them firing until they resolve.
    pub async fn refresh_alertmanagers(&self, now_ms: i64) {
        {
            let mut last = lock(&self.last_am_push_ms);
            if now_ms - *last < AM_REFRESH_MS {
                return;
            }
            *last = now_ms;
        }
        for r in self
            .settings
            .receivers
            .iter()
            .filter(|r| r.kind == ReceiverKind::Alertmanager)
        {
            let events: Vec<AlertEvent> = {
                let engine = lock(&self.engine);
                let route: Vec<Matcher> = engine
                    .policy()
                    .routes
                    .iter()
                    .find(|x| x.receiver == r.name)
                    .map(|x| x.matchers.clone())
                    .unwrap_or_default();
                engine
                    .states()
                    .iter()
                    .filter(|(_, s)| {
                        matches!(s.phase, Phase::Firing { .. } | Phase::Resolving { .. })
                            && s.notified.is_some()
                            && s.muted_by.is_none()
                            && all_match(&route, &s.labels)
                    })
                    .map(|(fp, s)| AlertEvent {
                        fingerprint: fp.clone(),
                        reason: super::engine::Reason::Reminder,
                        labels: s.labels.clone(),
                        fault: s.fault.clone(),
                        starts_ms: match s.phase {
                            Phase::Firing { since_ms }
                            | Phase::Resolving { since_ms, .. }
                            | Phase::Resolved { since_ms, .. }
                            | Phase::Pending { since_ms, .. } => since_ms,
                        },
                        ends_ms: None,
                        flaps: s.flaps,
                    })
                    .collect()
            };
            if events.is_empty() {
                continue;
            }
            let refs: Vec<&AlertEvent> = events.iter().collect();
            let body = payload::alertmanager(&refs, &self.ctx(), now_ms + AM_HOLD_MS).to_string();
            if let Err(e) = self.post(r, &body, now_ms).await {
                tracing::warn!(receiver = %r.name, error = %e, "refreshing firing alerts in Alertmanager failed");
            }
        }
    }
}

fn reason_str(a: &AlertEvent) -> &'static str {
    match a.reason {
        super::engine::Reason::New => "new",
        super::engine::Reason::Escalated => "escalated",
        super::engine::Reason::Reminder => "reminder",
        super::engine::Reason::Resolved => "resolved",
    }
}

fn kind_str(k: ReceiverKind) -> &'static str {
    match k {
        ReceiverKind::Webhook => "webhook",
        ReceiverKind::Alertmanager => "alertmanager",
        ReceiverKind::Dingtalk => "dingtalk",
        ReceiverKind::Wecom => "wecom",
        ReceiverKind::Slack => "slack",
    }
}
