//! The alert engine: pure, time passed in. Each evaluation takes the open faults and the
//! active silences and returns the notifications due, per receiver and group.
//!
//! Per fault identity (the fault's fingerprint, never LLM text):
//! - **pending** until the fault has been open `for_evaluations` evaluations and `for_ms`
//!   (flap damping); a fault gone before that never notifies;
//! - **firing**: notified once (`new`), again when its severity rises (`escalated`), and every
//!   `repeat_interval_ms` (`reminder`; not while acknowledged unless configured);
//! - **resolving** when the fault is gone: its `resolved` is sent once `flap_window_ms` passes
//!   without it coming back; a fault back within the window is one flapping alert (no new
//!   notification, a flap counted);
//! - silenced (silences, maintenance windows) or inhibited alerts are recorded, not sent, and
//!   notify once nothing mutes them any more.
//!
//! Events are routed to every receiver whose matchers hold and gathered per (receiver, values
//! of `group_by`) for `group_wait_ms`: ten hosts with the same fault make one message. An
//! alert counts as notified only when its group is flushed, so a restart in between sends it
//! again rather than never.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::matcher::{Labels, Matcher, all_match};
use super::settings::AlertPolicy;
use crate::rules::Severity;

/// A fault as the alert engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    pub id: i64,
    pub fingerprint: String,
    pub fault_type: String,
    pub severity: Severity,
    pub acknowledged: bool,
    pub source: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    /// What the fault is about (`nn1:8020`, a DataNode address), as its rule names it.
    #[serde(default)]
    pub entity: String,
    pub title: String,
    pub root_cause: String,
    pub remediation: Vec<String>,
    /// The first evidence lines.
    pub evidence: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub occurrences: i64,
}

impl FaultView {
    pub fn labels(&self) -> Labels {
        [
            ("alertname", self.fault_type.as_str()),
            ("fault_type", &self.fault_type),
            ("severity", self.severity.as_str()),
            ("cluster", &self.cluster),
            ("host", &self.host),
            ("service", &self.service),
            ("source", &self.source),
            ("entity", &self.entity),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// An operator's silence.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub starts_ms: i64,
    pub ends_ms: i64,
}

impl Silence {
    pub fn active(&self, now_ms: i64) -> bool {
        self.starts_ms <= now_ms && now_ms < self.ends_ms
    }
}

/// How a current silence stands: active (else pending), expiring (active, ends within an
/// hour), long-lived (spans over a week: likely forgotten).
pub fn silence_flags(starts_ms: i64, ends_ms: i64, now_ms: i64) -> (bool, bool, bool) {
    const HOUR_MS: i64 = 3_600_000;
    let active = starts_ms <= now_ms;
    (
        active,
        active && ends_ms - now_ms <= HOUR_MS,
        ends_ms - starts_ms > 7 * 24 * HOUR_MS,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    New,
    Escalated,
    Reminder,
    Resolved,
}

/// One alert in a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub fingerprint: String,
    pub reason: Reason,
    /// The labels the alert first fired with (stable, so receivers see one alert).
    pub labels: Labels,
    pub fault: FaultView,
    pub starts_ms: i64,
    /// Set when resolved.
    pub ends_ms: Option<i64>,
    /// Times it came back within the flap window.
    pub flaps: u32,
}

impl AlertEvent {
    pub fn resolved(&self) -> bool {
        self.reason == Reason::Resolved
    }
}

/// Alerts for one receiver, one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub receiver: String,
    /// `{fault_type="...", cluster="..."}`: stable per group.
    pub group_key: String,
    pub group_labels: Labels,
    pub alerts: Vec<AlertEvent>,
}

/// An alert a silence, a window or an inhibition started muting (reported once).
#[derive(Debug, Clone, PartialEq)]
pub struct Muted {
    pub fingerprint: String,
    pub fault_id: i64,
    /// `silence:<id>`, `maintenance:<name>` or `inhibited`.
    pub by: String,
}

#[derive(Debug, Default)]
pub struct Evaluation {
    pub notifications: Vec<Notification>,
    pub muted: Vec<Muted>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub enum Phase {
    Pending {
        since_ms: i64,
        evals: u32,
    },
    Firing {
        since_ms: i64,
    },
    Resolving {
        since_ms: i64,
        at_ms: i64,
    },
    /// Its `resolved` is in a group waiting to be sent.
    Resolved {
        since_ms: i64,
        at_ms: i64,
    },
}

/// The engine's memory of one alert (persisted, so a restart neither repeats nor forgets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub phase: Phase,
    pub labels: Labels,
    pub fault: FaultView,
    /// The severity last notified; `None` = not notified yet.
    pub notified: Option<Severity>,
    pub last_sent_ms: i64,
    pub flaps: u32,
    /// What mutes it now.
    #[serde(default)]
    pub muted_by: Option<String>,
    /// In a group waiting to be sent (not persisted: after a restart it is sent again).
    #[serde(skip)]
    pub queued: bool,
}

#[derive(Debug, Clone)]
struct Group {
    due_ms: i64,
    labels: Labels,
    alerts: Vec<AlertEvent>,
}

#[derive(Clone)]
pub struct AlertEngine {
    policy: AlertPolicy,
    states: HashMap<String, AlertState>,
    groups: BTreeMap<(String, String), Group>,
    evaluations: u64,
}

impl AlertEngine {
    pub fn new(policy: AlertPolicy) -> AlertEngine {
        AlertEngine {
            policy,
            states: HashMap::new(),
            groups: BTreeMap::new(),
            evaluations: 0,
        }
    }

    /// Take back persisted states (at start).
    pub fn restore(&mut self, states: impl IntoIterator<Item = (String, AlertState)>) {
        for (fp, mut st) in states {
            // A resolved message that was waiting in a group when the engine stopped is sent
            // again (`queued` is not persisted).
            if let Phase::Resolved { since_ms, at_ms } = st.phase {
                st.phase = Phase::Resolving { since_ms, at_ms };
            }
            self.states.insert(fp, st);
        }
    }

    pub fn states(&self) -> &HashMap<String, AlertState> {
        &self.states
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// One evaluation: `open` are the faults open (or acknowledged) now.
    pub fn evaluate(
        &mut self,
        now_ms: i64,
        open: &[FaultView],
        silences: &[Silence],
    ) -> Evaluation {
        self.evaluations += 1;
        let p = self.policy.clone();
        let mut events: Vec<AlertEvent> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut back: Vec<String> = Vec::new();

        for f in open {
            seen.insert(f.fingerprint.clone());
            let st = self
                .states
                .entry(f.fingerprint.clone())
                .or_insert_with(|| AlertState {
                    phase: Phase::Pending {
                        since_ms: now_ms,
                        evals: 0,
                    },
                    labels: f.labels(),
                    fault: f.clone(),
                    notified: None,
                    last_sent_ms: 0,
                    flaps: 0,
                    muted_by: None,
                    queued: false,
                });
            st.fault = f.clone();
            st.phase = match st.phase.clone() {
                Phase::Pending { since_ms, evals } => {
                    let evals = evals + 1;
                    if evals >= p.for_evaluations && now_ms - since_ms >= p.for_ms {
                        st.labels = f.labels();
                        Phase::Firing { since_ms }
                    } else {
                        Phase::Pending { since_ms, evals }
                    }
                }
                Phase::Firing { since_ms } => Phase::Firing { since_ms },
                // Back within the flap window (or before its resolved was sent): one alert.
                Phase::Resolving { since_ms, .. } | Phase::Resolved { since_ms, .. } => {
                    st.flaps += 1;
                    st.queued = false;
                    back.push(f.fingerprint.clone());
                    Phase::Firing { since_ms }
                }
            };
            // Routes, silences and messages see the fault as it is now (severity included);
            // its identity stays the fingerprint.
            if matches!(st.phase, Phase::Firing { .. }) {
                st.labels = f.labels();
            }
        }
        // A resolved message still waiting in a group is withdrawn when the fault is back.
        if !back.is_empty() {
            for g in self.groups.values_mut() {
                g.alerts
                    .retain(|a| !(a.resolved() && back.contains(&a.fingerprint)));
            }
            self.groups.retain(|_, g| !g.alerts.is_empty());
        }
        for (fp, st) in self.states.iter_mut() {
            if seen.contains(fp) {
                continue;
            }
            st.phase = match st.phase.clone() {
                Phase::Firing { since_ms } => Phase::Resolving {
                    since_ms,
                    at_ms: now_ms,
                },
                other => other,
            };
        }
        // Never-notified pending alerts that are gone, and resolving alerts never notified,
        // leave silently.
        self.states.retain(|fp, st| match st.phase {
            Phase::Pending { .. } => seen.contains(fp),
            Phase::Resolving { .. } => st.notified.is_some() || st.queued,
            _ => true,
        });

        // What each alert has to say now.
        let firing_labels: Vec<(String, Labels)> = self
            .states
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Firing { .. }))
            .map(|(fp, s)| (fp.clone(), s.labels.clone()))
            .collect();
        let mut muted = Vec::new();
        let mut keys: Vec<String> = self.states.keys().cloned().collect();
        keys.sort();
        for fp in keys {
            let Some(st) = self.states.get_mut(&fp) else {
                continue;
            };
            if matches!(st.phase, Phase::Firing { .. }) {
                let by = mute_reason(&p, &fp, &st.labels, now_ms, silences, &firing_labels);
                if by != st.muted_by {
                    if let Some(by) = &by {
                        muted.push(Muted {
                            fingerprint: fp.clone(),
                            fault_id: st.fault.id,
                            by: by.clone(),
                        });
                    }
                    st.muted_by = by;
                }
            }
            if st.queued {
                continue;
            }
            let reason = match st.phase {
                Phase::Pending { .. } | Phase::Resolved { .. } => None,
                Phase::Firing { .. } => match st.notified {
                    None => Some(Reason::New),
                    Some(s) if st.fault.severity > s => Some(Reason::Escalated),
                    Some(_)
                        if p.repeat_interval_ms > 0
                            && now_ms - st.last_sent_ms >= p.repeat_interval_ms
                            && (p.remind_acknowledged || !st.fault.acknowledged) =>
                    {
                        Some(Reason::Reminder)
                    }
                    Some(_) => None,
                },
                Phase::Resolving { at_ms, .. } if now_ms - at_ms >= p.flap_window_ms => {
                    Some(Reason::Resolved)
                }
                Phase::Resolving { .. } => None,
            };
            let Some(reason) = reason else { continue };
            if reason != Reason::Resolved {
                if st.muted_by.is_some() {
                    continue;
                }
            } else if st.notified.is_none() {
                // Muted all along: nothing was said, nothing to take back.
                self.states.remove(&fp);
                continue;
            }
            let (since_ms, ends_ms) = match st.phase {
                Phase::Firing { since_ms } => (since_ms, None),
                Phase::Resolving { since_ms, at_ms } | Phase::Resolved { since_ms, at_ms } => {
                    (since_ms, Some(at_ms))
                }
                Phase::Pending { since_ms, .. } => (since_ms, None),
            };
            if let Phase::Resolving { since_ms, at_ms } = st.phase {
                st.phase = Phase::Resolved { since_ms, at_ms };
            }
            st.queued = true;
            events.push(AlertEvent {
                fingerprint: fp.clone(),
                reason,
                labels: st.labels.clone(),
                fault: st.fault.clone(),
                starts_ms: since_ms,
                ends_ms,
                flaps: st.flaps,
            });
        }

        // Route into groups.
        for ev in events {
            let mut routed = false;
            for r in &p.routes {
                if !all_match(&r.matchers, &ev.labels) || (ev.resolved() && !r.send_resolved) {
                    continue;
                }
                routed = true;
                let group_labels: Labels = p
                    .group_by
                    .iter()
                    .map(|k| (k.clone(), ev.labels.get(k).cloned().unwrap_or_default()))
                    .collect();
                let key = group_key(&group_labels);
                let g = self
                    .groups
                    .entry((r.receiver.clone(), key))
                    .or_insert_with(|| Group {
                        due_ms: now_ms + p.group_wait_ms,
                        labels: group_labels,
                        alerts: Vec::new(),
                    });
                g.alerts.retain(|a| a.fingerprint != ev.fingerprint);
                g.alerts.push(ev.clone());
            }
            if !routed {
                // No receiver wants it: it is dealt with.
                self.mark_sent(&ev, now_ms);
            }
        }

        // Flush due groups.
        let due: Vec<(String, String)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.due_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut notifications = Vec::new();
        for k in due {
            let Some(mut g) = self.groups.remove(&k) else {
                continue;
            };
            for a in &mut g.alerts {
                // The latest view of the fault (occurrences, text) goes out.
                if let Some(st) = self.states.get(&a.fingerprint) {
                    a.fault = st.fault.clone();
                }
                self.mark_sent(a, now_ms);
            }
            notifications.push(Notification {
                receiver: k.0,
                group_key: k.1,
                group_labels: g.labels,
                alerts: g.alerts,
            });
        }
        Evaluation {
            notifications,
            muted,
        }
    }

    fn mark_sent(&mut self, ev: &AlertEvent, now_ms: i64) {
        if ev.resolved() {
            if matches!(
                self.states.get(&ev.fingerprint).map(|s| &s.phase),
                Some(Phase::Resolved { .. })
            ) {
                self.states.remove(&ev.fingerprint);
            }
            return;
        }
        if let Some(st) = self.states.get_mut(&ev.fingerprint) {
            st.queued = false;
            st.notified = Some(ev.fault.severity.max(st.notified.unwrap_or(Severity::Info)));
            st.last_sent_ms = now_ms;
        }
    }
}

fn group_key(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(","))
}

/// What mutes an alert now: a silence, a maintenance window, or an inhibition by another
/// firing alert.
fn mute_reason(
    p: &AlertPolicy,
    fp: &str,
    labels: &Labels,
    now_ms: i64,
    silences: &[Silence],
    firing: &[(String, Labels)],
) -> Option<String> {
    if let Some(s) = silences
        .iter()
        .find(|s| s.active(now_ms) && all_match(&s.matchers, labels))
    {
        return Some(format!("silence:{}", s.id));
    }
    if let Some(w) = p
        .windows
        .iter()
        .find(|w| all_match(&w.matchers, labels) && w.active(now_ms))
    {
        return Some(format!("maintenance:{}", w.name));
    }
    let inhibited = p.inhibit_rules.iter().any(|r| {
        all_match(&r.target, labels)
            && firing.iter().any(|(sfp, sl)| {
                sfp != fp
                    && all_match(&r.source, sl)
                    && !all_match(&r.target, sl)
                    && r.equal.iter().all(|k| sl.get(k) == labels.get(k))
            })
    });
    inhibited.then(|| "inhibited".to_string())
}
