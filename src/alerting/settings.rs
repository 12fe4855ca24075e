//! `[alerting]`: receivers with their routes, noise control, inhibition and maintenance
//! windows. [`AlertingSettings::compile`] turns it into the [`AlertPolicy`] the engine runs.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::matcher::{Matcher, parse_all};
use crate::llm::settings::Language;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    /// A generic webhook receiving Alertmanager's webhook payload (version 4).
    Webhook,
    /// A real Alertmanager: `POST {url}/api/v2/alerts`.
    Alertmanager,
    /// DingTalk robot (markdown; optional signing secret).
    Dingtalk,
    /// WeCom (企业微信) group robot (markdown).
    Wecom,
    /// Slack incoming webhook.
    Slack,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSettings {
    pub name: String,
    pub kind: ReceiverKind,
    pub url: String,
    /// DingTalk signing secret (`SEC...`); empty = unsigned.
    #[serde(default)]
    pub secret: String,
    /// The route: alerts whose labels match all of these go here (empty = every alert).
    /// Labels: alertname, fault_type, severity, cluster, host, service, source.
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn yes() -> bool {
    true
}

/// While an alert matching `source_matchers` fires, alerts matching `target_matchers` with
/// the same values of `equal` are muted (recorded, not sent).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleSettings {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A recurring maintenance window: from each `schedule` time for `duration_secs`, alerts
/// matching `matchers` (empty = all) are recorded but not sent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowSettings {
    pub name: String,
    /// Cron with seconds: `sec min hour day-of-month month day-of-week [year]` (weekdays
    /// 1 = Sunday), UTC. Every Sunday 02:00: `"0 0 2 * * 1"`.
    pub schedule: String,
    pub duration_secs: u64,
    #[serde(default)]
    pub matchers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSettings {
    /// How often fault records are evaluated for notifications.
    pub evaluation_interval_secs: u64,
    /// Alerts with the same values of these labels are sent as one message.
    pub group_by: Vec<String>,
    /// A new group waits this long for more alerts before its first message.
    pub group_wait_secs: u64,
    /// A firing alert is reminded this often (0 = never).
    pub repeat_interval_secs: u64,
    /// Remind acknowledged faults too.
    pub remind_acknowledged: bool,
    /// Flap damping: an alert notifies only once its fault has been open for this many
    /// evaluations and this many seconds.
    pub for_evaluations: u32,
    pub for_secs: u64,
    /// A resolved fault that comes back within this window is one flapping alert: its
    /// "resolved" is sent only once the window passes without it.
    pub flap_window_secs: u64,
    /// Language of the messages: "en" or "zh".
    pub locale: Language,
    /// Base URL of this engine for links in messages (`{external_url}/api/faults/{id}`).
    pub external_url: String,
    pub receivers: Vec<ReceiverSettings>,
    pub inhibit_rules: Vec<InhibitRuleSettings>,
    pub maintenance_windows: Vec<MaintenanceWindowSettings>,
    /// Delivery: attempts before a notification is given up (then `failed`), and the
    /// longest pause between attempts.
    pub max_attempts: u32,
    pub max_backoff_secs: u64,
    pub timeout_secs: u64,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            evaluation_interval_secs: 5,
            group_by: vec!["fault_type".into(), "cluster".into()],
            group_wait_secs: 30,
            repeat_interval_secs: 4 * 3600,
            remind_acknowledged: false,
            for_evaluations: 1,
            for_secs: 0,
            flap_window_secs: 300,
            locale: Language::En,
            external_url: String::new(),
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            maintenance_windows: Vec::new(),
            max_attempts: 20,
            max_backoff_secs: 600,
            timeout_secs: 10,
        }
    }
}

/// A compiled receiver route.
#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub send_resolved: bool,
}

#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    pub name: String,
    pub schedule: cron::Schedule,
    pub duration_ms: i64,
    pub matchers: Vec<Matcher>,
}

/// What the alert engine runs with.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    pub group_by: Vec<String>,
    pub group_wait_ms: i64,
    pub repeat_interval_ms: i64,
    pub remind_acknowledged: bool,
    pub for_evaluations: u32,
    pub for_ms: i64,
    pub flap_window_ms: i64,
    pub routes: Vec<Route>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub windows: Vec<MaintenanceWindow>,
}

fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl AlertingSettings {
    /// Compile (and so validate): `(key, reason)` on error.
    pub fn compile(&self) -> Result<AlertPolicy, (String, String)> {
        fn e<T>(k: String, r: String) -> Result<T, (String, String)> {
            Err((format!("alerting.{k}"), r))
        }
        if self.evaluation_interval_secs == 0 {
            return e(
                "evaluation_interval_secs".into(),
                "must be at least 1".into(),
            );
        }
        if self.max_attempts == 0 || self.timeout_secs == 0 || self.max_backoff_secs == 0 {
            return e(
                "max_attempts".into(),
                "max_attempts, max_backoff_secs and timeout_secs must be at least 1".into(),
            );
        }
        let mut routes = Vec::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let at = format!("receivers[{i}]");
            if r.name.trim().is_empty() || r.name.len() > 64 || r.name == "-" {
                return e(
                    format!("{at}.name"),
                    "must be 1-64 characters (and not \"-\")".into(),
                );
            }
            if self.receivers[..i].iter().any(|o| o.name == r.name) {
                return e(
                    format!("{at}.name"),
                    format!("duplicate receiver {:?}", r.name),
                );
            }
            match reqwest::Url::parse(&r.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return e(
                        format!("{at}.url"),
                        format!("{:?} is not an http:// or https:// URL", r.url),
                    );
                }
            }
            if !r.secret.is_empty() && r.kind != ReceiverKind::Dingtalk {
                return e(
                    format!("{at}.secret"),
                    "only DingTalk robots are signed".into(),
                );
            }
            let matchers = parse_all(&r.matchers).or_else(|m| e(format!("{at}.matchers"), m))?;
            routes.push(Route {
                receiver: r.name.clone(),
                matchers,
                send_resolved: r.send_resolved,
            });
        }
        let mut inhibit_rules = Vec::new();
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            let at = format!("inhibit_rules[{i}]");
            let source =
                parse_all(&r.source_matchers).or_else(|m| e(format!("{at}.source_matchers"), m))?;
            let target =
                parse_all(&r.target_matchers).or_else(|m| e(format!("{at}.target_matchers"), m))?;
            if source.is_empty() || target.is_empty() {
                return e(
                    at,
                    "source_matchers and target_matchers must not be empty".into(),
                );
            }
            inhibit_rules.push(InhibitRule {
                source,
                target,
                equal: r.equal.clone(),
            });
        }
        let mut windows = Vec::new();
        for (i, w) in self.maintenance_windows.iter().enumerate() {
            let at = format!("maintenance_windows[{i}]");
            let fields = w.schedule.split_whitespace().count();
            if fields == 5 {
                return e(
                    format!("{at}.schedule"),
                    format!(
                        "{:?} has 5 fields; cron here needs seconds first (e.g. \"0 {}\")",
                        w.schedule, w.schedule
                    ),
                );
            }
            let schedule = cron::Schedule::from_str(&w.schedule)
                .or_else(|err| e(format!("{at}.schedule"), format!("{:?}: {err}", w.schedule)))?;
            if w.duration_secs == 0 {
                return e(format!("{at}.duration_secs"), "must be at least 1".into());
            }
            let matchers = parse_all(&w.matchers).or_else(|m| e(format!("{at}.matchers"), m))?;
            windows.push(MaintenanceWindow {
                name: w.name.clone(),
                schedule,
                duration_ms: secs_ms(w.duration_secs),
                matchers,
            });
        }
        Ok(AlertPolicy {
            group_by: self.group_by.clone(),
            group_wait_ms: secs_ms(self.group_wait_secs),
            repeat_interval_ms: secs_ms(self.repeat_interval_secs),
            remind_acknowledged: self.remind_acknowledged,
            for_evaluations: self.for_evaluations.max(1),
            for_ms: secs_ms(self.for_secs),
            flap_window_ms: secs_ms(self.flap_window_secs),
            routes,
            inhibit_rules,
            windows,
        })
    }
}

impl MaintenanceWindow {
    /// Is `now_ms` inside an occurrence of the window (one that started at most `duration`
    /// ago)?
    pub fn active(&self, now_ms: i64) -> bool {
        let Some(from) = chrono::DateTime::from_timestamp_millis(now_ms - self.duration_ms) else {
            return false;
        };
        self.schedule
            .after(&from)
            .next()
            .is_some_and(|start| start.timestamp_millis() <= now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_names_the_bad_key() {
        let mut s = AlertingSettings::default();
        s.receivers.push(ReceiverSettings {
            name: "ops".into(),
            kind: ReceiverKind::Webhook,
            url: "ftp://x".into(),
            secret: String::new(),
            matchers: vec![],
            send_resolved: true,
        });
        assert_eq!(s.compile().unwrap_err().0, "alerting.receivers[0].url");
        s.receivers[0].url = "http://hook".into();
        s.receivers[0].matchers = vec!["severity=~(".into()];
        assert_eq!(s.compile().unwrap_err().0, "alerting.receivers[0].matchers");
        s.receivers[0].matchers = vec![];
        s.maintenance_windows.push(MaintenanceWindowSettings {
            name: "sunday".into(),
            schedule: "0 2 * * 0".into(),
            duration_secs: 7200,
            matchers: vec![],
        });
        let err = s.compile().unwrap_err();
        assert_eq!(err.0, "alerting.maintenance_windows[0].schedule");
        assert!(err.1.contains("seconds first"), "{}", err.1);
        s.maintenance_windows[0].schedule = "0 0 2 * * 1".into();
        assert!(s.compile().is_ok());
    }

    #[test]
    fn a_weekly_window_is_active_for_its_duration() {
        let mut s = AlertingSettings::default();
        s.maintenance_windows.push(MaintenanceWindowSettings {
            name: "sunday".into(),
            schedule: "0 0 2 * * 1".into(), // Sundays 02:00 UTC (1 = Sunday)
            duration_secs: 7200,
            matchers: vec![],
        });
        let p = s.compile().unwrap();
        let w = &p.windows[0];
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        // 2026-11-22 is a Sunday.
        assert!(!w.active(t("2026-11-22T01:59:59Z")));
        assert!(w.active(t("2026-11-22T02:00:00Z")));
        assert!(w.active(t("2026-11-22T03:59:59Z")));
        assert!(!w.active(t("2026-11-22T04:00:01Z")));
        assert!(!w.active(t("2026-11-23T02:30:00Z")), "Monday");
    }
}
