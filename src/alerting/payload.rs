//! What each receiver kind is sent for a notification (pure): Alertmanager's webhook payload
//! (version 4), Alertmanager's `POST /api/v2/alerts` body, and markdown messages for DingTalk,
//! WeCom and Slack, in English or Chinese. DingTalk's signature is computed at send time.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::engine::{AlertEvent, Notification, Reason};
use super::matcher::Labels;
use super::settings::ReceiverKind;
use crate::llm::settings::Language;

/// What the texts need besides the notification.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub external_url: &'a str,
    pub locale: Language,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The alert's identity for receivers (a stable hash of the fault fingerprint).
fn alert_fingerprint(fp: &str) -> String {
    crate::rules::engine::short_hash(fp)
}

fn fault_url(ctx: &Context<'_>, id: i64) -> String {
    format!("{}/api/faults/{id}", ctx.external_url.trim_end_matches('/'))
}

fn annotations(a: &AlertEvent) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("summary".into(), json!(a.fault.title));
    m.insert("description".into(), json!(a.fault.root_cause));
    if !a.fault.remediation.is_empty() {
        m.insert("remediation".into(), json!(a.fault.remediation.join("\n")));
    }
    if !a.fault.evidence.is_empty() {
        m.insert("evidence".into(), json!(a.fault.evidence.join("\n")));
    }
    m.insert("fault_id".into(), json!(a.fault.id.to_string()));
    m.insert("occurrences".into(), json!(a.fault.occurrences.to_string()));
    if a.flaps > 0 {
        m.insert("flaps".into(), json!(a.flaps.to_string()));
    }
    Value::Object(m)
}

fn common(labels: &[&Labels]) -> Labels {
    let Some(first) = labels.first() else {
        return Labels::new();
    };
    first
        .iter()
        .filter(|(k, v)| labels.iter().all(|l| l.get(*k) == Some(v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Alertmanager's webhook payload, version 4.
pub fn webhook(n: &Notification, ctx: &Context<'_>) -> Value {
    let firing = n.alerts.iter().any(|a| !a.resolved());
    let labels: Vec<&Labels> = n.alerts.iter().map(|a| &a.labels).collect();
    json!({
        "version": "4",
        "groupKey": format!("{}:{}", n.receiver, n.group_key),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common(&labels),
        "commonAnnotations": {},
        "externalURL": ctx.external_url,
        "alerts": n.alerts.iter().map(|a| json!({
            "status": if a.resolved() { "resolved" } else { "firing" },
            "labels": a.labels,
            "annotations": annotations(a),
            "startsAt": rfc3339(a.starts_ms),
            "endsAt": a.ends_ms.map_or("0001-01-01T00:00:00Z".to_string(), rfc3339),
            "generatorURL": fault_url(ctx, a.fault.id),
            "fingerprint": alert_fingerprint(&a.fingerprint),
        })).collect::<Vec<_>>(),
    })
}

/// Alertmanager's `POST /api/v2/alerts` body. A firing alert's `endsAt` is `until_ms` (the
/// engine pushes firing alerts again before then, as Prometheus does).
pub fn alertmanager(alerts: &[&AlertEvent], ctx: &Context<'_>, until_ms: i64) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": a.labels,
                    "annotations": annotations(a),
                    "startsAt": rfc3339(a.starts_ms),
                    "endsAt": rfc3339(a.ends_ms.unwrap_or(until_ms)),
                    "generatorURL": fault_url(ctx, a.fault.id),
                })
            })
            .collect(),
    )
}

/// An Alertmanager body stored earlier, with every firing alert (its `endsAt` in the future)
/// held until `now_ms + hold_ms`: a delivery retried after a while does not arrive expired.
pub fn alertmanager_hold(stored: &str, now_ms: i64, hold_ms: i64) -> String {
    let Ok(Value::Array(mut alerts)) = serde_json::from_str::<Value>(stored) else {
        return stored.to_string();
    };
    let now = rfc3339(now_ms);
    for a in &mut alerts {
        let ends = a.get("endsAt").and_then(|e| e.as_str()).unwrap_or("");
        // RFC 3339 in UTC with millis sorts as text.
        if ends > now.as_str() {
            a["endsAt"] = json!(rfc3339(now_ms + hold_ms));
        }
    }
    Value::Array(alerts).to_string()
}

/// `endsAt` of a firing alert in a stored Alertmanager body (9999-12-31T23:59:59.999Z).
const OPEN_ENDED_MS: i64 = 253_402_300_799_999;

/// WeCom robots refuse markdown over 4096 bytes.
const WECOM_MAX: usize = 4000;

struct Words {
    firing: &'static str,
    resolved: &'static str,
    reminder: &'static str,
    escalated: &'static str,
    cluster: &'static str,
    severity: &'static str,
    cause: &'static str,
    evidence: &'static str,
    fix: &'static str,
    details: &'static str,
    flapping: &'static str,
}

const EN: Words = Words {
    firing: "FIRING",
    resolved: "RESOLVED",
    reminder: "STILL FIRING",
    escalated: "ESCALATED",
    cluster: "Cluster",
    severity: "Severity",
    cause: "Root cause",
    evidence: "Evidence",
    fix: "Remediation",
    details: "Details",
    flapping: "flapping",
};

const ZH: Words = Words {
    firing: "告警",
    resolved: "已恢复",
    reminder: "持续告警",
    escalated: "级别升高",
    cluster: "集群",
    severity: "级别",
    cause: "根因",
    evidence: "证据",
    fix: "处理建议",
    details: "详情",
    flapping: "抖动",
};

/// The message title and markdown body.
pub fn markdown(n: &Notification, ctx: &Context<'_>) -> (String, String) {
    let w = match ctx.locale {
        Language::En => &EN,
        Language::Zh => &ZH,
    };
    let first = n.alerts.first();
    let status = match first.map(|a| a.reason) {
        _ if n.alerts.iter().all(AlertEvent::resolved) => w.resolved,
        Some(Reason::Escalated) => w.escalated,
        Some(Reason::Reminder) if n.alerts.iter().all(|a| a.reason == Reason::Reminder) => {
            w.reminder
        }
        _ => w.firing,
    };
    let title_text = first.map_or("", |a| a.fault.title.as_str());
    let title = if n.alerts.len() > 1 {
        format!("[{status}] {title_text} ({})", n.alerts.len())
    } else {
        format!("[{status}] {title_text}")
    };
    let mut body = format!("### {title}\n\n");
    if let Some(a) = first {
        body.push_str(&format!(
            "**{}**: {}  **{}**: {}\n\n",
            w.cluster,
            a.fault.cluster,
            w.severity,
            a.fault.severity.as_str()
        ));
    }
    for a in n.alerts.iter().take(20) {
        let state = if a.resolved() { w.resolved } else { w.firing };
        let flap = if a.flaps > 0 {
            format!(" ({} ×{})", w.flapping, a.flaps)
        } else {
            String::new()
        };
        body.push_str(&format!(
            "- **{}** {} [{state}]{flap}\n  {}: {}\n",
            a.fault.host, a.fault.service, w.cause, a.fault.root_cause
        ));
        for line in a.fault.evidence.iter().take(3) {
            body.push_str(&format!("  {}: `{}`\n", w.evidence, line.replace('`', "'")));
        }
        for step in a.fault.remediation.iter().take(3) {
            body.push_str(&format!("  {}: `{}`\n", w.fix, step.replace('`', "'")));
        }
        body.push_str(&format!(
            "  [{}]({})\n",
            w.details,
            fault_url(ctx, a.fault.id)
        ));
    }
    if n.alerts.len() > 20 {
        body.push_str(&format!("- … +{}\n", n.alerts.len() - 20));
    }
    (title, body)
}

/// The body sent to a receiver of `kind` (Alertmanager receivers are pushed separately).
pub fn body(kind: ReceiverKind, n: &Notification, ctx: &Context<'_>) -> Value {
    match kind {
        ReceiverKind::Webhook => webhook(n, ctx),
        ReceiverKind::Alertmanager => {
            // Firing alerts are stored open-ended; `alertmanager_hold` gives them their real
            // `endsAt` when each attempt is sent.
            let alerts: Vec<&AlertEvent> = n.alerts.iter().collect();
            alertmanager(&alerts, ctx, OPEN_ENDED_MS)
        }
        ReceiverKind::Dingtalk => {
            let (title, text) = markdown(n, ctx);
            json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } })
        }
        ReceiverKind::Wecom => {
            let (_, text) = markdown(n, ctx);
            let cut = crate::storage::truncate_str(&text, WECOM_MAX);
            let text = if cut.len() < text.len() {
                format!("{cut}\n…")
            } else {
                text
            };
            json!({ "msgtype": "markdown", "markdown": { "content": text } })
        }
        ReceiverKind::Slack => {
            let (_, text) = markdown(n, ctx);
            // Slack's mrkdwn: *bold*, <url|text> links, no headings.
            let text = text
                .replace("### ", "*")
                .replacen("\n\n", "*\n\n", 1)
                .replace("**", "*");
            let text = MD_LINK.replace_all(&text, "<$2|$1>").into_owned();
            json!({ "text": text })
        }
    }
}

static MD_LINK: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"\[([^\]]*)\]\(([^)\s]+)\)").expect("valid link regex")
});

/// DingTalk's signed URL: `&timestamp=..&sign=..`, the sign being
/// base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")), URL-encoded.
pub fn dingtalk_signed_url(url: &str, secret: &str, now_ms: i64) -> String {
    if secret.is_empty() {
        return url.to_string();
    }
    let to_sign = format!("{now_ms}\n{secret}");
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return url.to_string();
    };
    mac.update(to_sign.as_bytes());
    let sign = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let encoded: String = sign
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}timestamp={now_ms}&sign={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::engine::FaultView;
    use crate::rules::Severity;

    fn note(reason: Reason, hosts: &[&str]) -> Notification {
        let alerts = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let fault = FaultView {
                    id: i as i64 + 1,
                    fingerprint: format!("datanode_lost:prod:{h}"),
                    fault_type: "datanode_lost".into(),
                    severity: Severity::Critical,
                    acknowledged: false,
                    source: "rule".into(),
                    cluster: "prod".into(),
                    host: h.to_string(),
                    service: "datanode".into(),
                    entity: format!("{h}:9866"),
                    title: "DataNode lost by the NameNode".into(),
                    root_cause: format!("The NameNode stopped hearing from {h}."),
                    remediation: vec!["hdfs dfsadmin -report".into()],
                    evidence: vec!["BLOCK* removeDeadDatanode: lost heartbeat".into()],
                    first_seen: 0,
                    last_seen: 0,
                    occurrences: 3,
                };
                AlertEvent {
                    fingerprint: fault.fingerprint.clone(),
                    reason,
                    labels: fault.labels(),
                    fault,
                    starts_ms: 1_763_700_000_000,
                    ends_ms: (reason == Reason::Resolved).then_some(1_763_700_600_000),
                    flaps: 0,
                }
            })
            .collect();
        Notification {
            receiver: "ops".into(),
            group_key: r#"{cluster="prod",fault_type="datanode_lost"}"#.into(),
            group_labels: [("cluster", "prod"), ("fault_type", "datanode_lost")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            alerts,
        }
    }

    const CTX: Context<'static> = Context {
        external_url: "http://faultline:8000",
        locale: Language::En,
    };

    #[test]
    fn webhook_payload_has_alertmanagers_v4_shape() {
        let v = webhook(&note(Reason::New, &["dn1", "dn2"]), &CTX);
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["commonLabels"]["fault_type"], "datanode_lost");
        assert!(v["commonLabels"].get("host").is_none());
        let a = &v["alerts"][0];
        assert_eq!(a["labels"]["alertname"], "datanode_lost");
        assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(a["generatorURL"], "http://faultline:8000/api/faults/1");
        assert_eq!(a["annotations"]["remediation"], "hdfs dfsadmin -report");
        let r = webhook(&note(Reason::Resolved, &["dn1"]), &CTX);
        assert_eq!(r["status"], "resolved");
        assert_eq!(r["alerts"][0]["endsAt"], "2025-11-21T04:50:00.000Z");
    }

    #[test]
    fn markdown_in_both_languages() {
        let (title, body) = markdown(&note(Reason::New, &["dn1", "dn2"]), &CTX);
        assert_eq!(title, "[FIRING] DataNode lost by the NameNode (2)");
        assert!(body.contains("Root cause: The NameNode stopped hearing from dn2."));
        assert!(body.contains("Remediation: `hdfs dfsadmin -report`"));
        assert!(body.contains("(http://faultline:8000/api/faults/2)"));
        let zh = Context {
            locale: Language::Zh,
            ..CTX
        };
        let (title, body) = markdown(&note(Reason::Resolved, &["dn1"]), &zh);
        assert_eq!(title, "[已恢复] DataNode lost by the NameNode");
        assert!(body.contains("根因"));
    }

    #[test]
    fn wecom_messages_fit_and_slack_links_use_its_syntax() {
        let hosts: Vec<String> = (0..60)
            .map(|i| format!("datanode-{i:02}.example.com"))
            .collect();
        let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let n = note(Reason::New, &refs);
        let w = body(ReceiverKind::Wecom, &n, &CTX);
        assert!(w["markdown"]["content"].as_str().unwrap().len() <= WECOM_MAX + 4);
        let s = body(ReceiverKind::Slack, &note(Reason::New, &["dn1"]), &CTX);
        let text = s["text"].as_str().unwrap();
        assert!(
            text.contains("<http://faultline:8000/api/faults/1|Details>"),
            "{text}"
        );
    }

    #[test]
    fn an_alertmanager_retry_keeps_firing_alerts_alive() {
        let stored = json!([
            {"labels": {"a": "1"}, "endsAt": "2099-01-01T00:00:00.000Z"},
            {"labels": {"a": "2"}, "endsAt": "2020-01-01T00:00:00.000Z"}
        ])
        .to_string();
        let now = 1_763_700_000_000;
        let v: Value = serde_json::from_str(&alertmanager_hold(&stored, now, 300_000)).unwrap();
        assert_eq!(v[0]["endsAt"], rfc3339(now + 300_000));
        assert_eq!(
            v[1]["endsAt"], "2020-01-01T00:00:00.000Z",
            "resolved stays resolved"
        );
    }

    #[test]
    fn dingtalk_signature_matches_the_documented_algorithm() {
        // Computed independently: printf '1700000000000\nSECtest' | openssl dgst -sha256
        // -hmac SECtest -binary | base64
        let url = dingtalk_signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            "SECtest",
            1_700_000_000_000,
        );
        assert!(url.starts_with(
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign="
        ));
        let sign = url.rsplit("sign=").next().unwrap();
        assert_eq!(sign, "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D");
        assert_eq!(dingtalk_signed_url("http://x", "", 1), "http://x");
    }
}
