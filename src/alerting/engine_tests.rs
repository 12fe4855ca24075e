//! The alert engine's noise control, driven by an explicit clock.

use super::engine::*;
use super::matcher::Matcher;
use super::settings::{
    AlertingSettings, InhibitRuleSettings, MaintenanceWindowSettings, ReceiverKind,
    ReceiverSettings,
};
use crate::rules::Severity;

const S: i64 = 1000;

fn receiver(name: &str, matchers: &[&str]) -> ReceiverSettings {
    ReceiverSettings {
        name: name.into(),
        kind: ReceiverKind::Webhook,
        url: "http://hook.example/x".into(),
        secret: String::new(),
        matchers: matchers.iter().map(|s| s.to_string()).collect(),
        send_resolved: true,
    }
}

fn settings() -> AlertingSettings {
    AlertingSettings {
        group_wait_secs: 30,
        repeat_interval_secs: 3600,
        flap_window_secs: 300,
        receivers: vec![receiver("ops", &[])],
        ..AlertingSettings::default()
    }
}

fn engine(s: &AlertingSettings) -> AlertEngine {
    AlertEngine::new(s.compile().unwrap())
}

fn fault(id: i64, fault_type: &str, host: &str) -> FaultView {
    FaultView {
        id,
        fingerprint: format!("{fault_type}:prod:{host}"),
        fault_type: fault_type.into(),
        severity: Severity::Critical,
        acknowledged: false,
        source: "rule".into(),
        cluster: "prod".into(),
        host: host.into(),
        service: "datanode".into(),
        entity: String::new(),
        title: "t".into(),
        root_cause: "r".into(),
        remediation: vec!["fix".into()],
        evidence: vec!["line".into()],
        first_seen: 0,
        last_seen: 0,
        occurrences: 1,
    }
}

/// Run evaluations every 5 s from `from` to `to` (inclusive) with `open`; all notifications.
fn run(
    e: &mut AlertEngine,
    from: i64,
    to: i64,
    open: &[FaultView],
    silences: &[Silence],
) -> Vec<Notification> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        out.extend(e.evaluate(t, open, silences).notifications);
        t += 5 * S;
    }
    out
}

fn reasons(n: &[Notification]) -> Vec<Vec<Reason>> {
    n.iter()
        .map(|n| n.alerts.iter().map(|a| a.reason).collect())
        .collect()
}

#[test]
fn a_fault_repeating_for_hours_notifies_once_plus_reminders_and_one_resolved() {
    let mut e = engine(&settings());
    let mut f = fault(1, "disk_full", "dn1");
    let mut sent = Vec::new();
    // 1000 repeats over ~83 minutes: occurrences and last_seen change, the identity does not.
    for i in 0..1000 {
        f.occurrences = i + 1;
        f.last_seen = i * 5 * S;
        sent.extend(
            e.evaluate(i * 5 * S, std::slice::from_ref(&f), &[])
                .notifications,
        );
    }
    assert_eq!(
        reasons(&sent),
        vec![vec![Reason::New], vec![Reason::Reminder]]
    );
    assert_eq!(
        sent[0].alerts[0].fault.occurrences, 7,
        "sent after group_wait (30 s)"
    );
    // Resolved: sent once the flap window (300 s) passes, after group_wait.
    let t0 = 1000 * 5 * S;
    let after = run(&mut e, t0, t0 + 400 * S, &[], &[]);
    assert_eq!(reasons(&after), vec![vec![Reason::Resolved]]);
    assert_eq!(after[0].alerts[0].ends_ms, Some(t0));
    assert!(e.states().is_empty());
}

#[test]
fn ten_hosts_within_group_wait_make_one_message() {
    let mut e = engine(&settings());
    let mut open = Vec::new();
    let mut sent = Vec::new();
    for i in 0..10 {
        open.push(fault(i, "datanode_lost", &format!("dn{i}")));
        sent.extend(e.evaluate(i * 2 * S, &open, &[]).notifications);
    }
    sent.extend(run(&mut e, 20 * S, 60 * S, &open, &[]));
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].alerts.len(), 10);
    assert_eq!(
        sent[0].group_key,
        r#"{cluster="prod",fault_type="datanode_lost"}"#
    );
    // Another type is another group.
    open.push(fault(99, "disk_full", "dn1"));
    let more = run(&mut e, 65 * S, 120 * S, &open, &[]);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].alerts[0].fault.fault_type, "disk_full");
}

#[test]
fn flap_damping_needs_persistence_before_notifying() {
    let s = AlertingSettings {
        for_evaluations: 3,
        for_secs: 10,
        group_wait_secs: 0,
        ..settings()
    };
    let mut e = engine(&s);
    let f = fault(1, "nodemanager_lost", "nm1");
    // Seen twice, then gone: never notified, nothing to resolve.
    assert!(run(&mut e, 0, 5 * S, std::slice::from_ref(&f), &[]).is_empty());
    assert!(run(&mut e, 10 * S, 400 * S, &[], &[]).is_empty());
    assert!(e.states().is_empty());
    // Persisting 3 evaluations and 10 s: notified on the third.
    let sent = run(&mut e, 500 * S, 520 * S, std::slice::from_ref(&f), &[]);
    assert_eq!(reasons(&sent), vec![vec![Reason::New]]);
}

#[test]
fn a_fault_back_within_the_flap_window_is_one_flapping_alert() {
    let s = AlertingSettings {
        group_wait_secs: 0,
        ..settings()
    };
    let mut e = engine(&s);
    let f = fault(1, "port_unreachable", "dn1");
    let reopened = FaultView { id: 2, ..f.clone() }; // a new row, the same identity
    let mut sent = run(&mut e, 0, 10 * S, std::slice::from_ref(&f), &[]);
    sent.extend(run(&mut e, 15 * S, 100 * S, &[], &[])); // resolved for 85 s
    sent.extend(run(
        &mut e,
        105 * S,
        200 * S,
        std::slice::from_ref(&reopened),
        &[],
    ));
    assert_eq!(
        reasons(&sent),
        vec![vec![Reason::New]],
        "no resolved, no second new"
    );
    sent.extend(run(&mut e, 205 * S, 600 * S, &[], &[]));
    assert_eq!(
        reasons(&sent),
        vec![vec![Reason::New], vec![Reason::Resolved]]
    );
    assert_eq!(sent[1].alerts[0].flaps, 1);
    assert_eq!(sent[1].alerts[0].fault.id, 2);
}

#[test]
fn severity_escalation_notifies_and_acknowledged_faults_get_no_reminders() {
    let s = AlertingSettings {
        group_wait_secs: 0,
        repeat_interval_secs: 60,
        ..settings()
    };
    let mut e = engine(&s);
    let mut f = fault(1, "flume_backlog", "agent1");
    f.severity = Severity::Warning;
    let mut sent = run(&mut e, 0, 5 * S, std::slice::from_ref(&f), &[]);
    f.severity = Severity::Critical;
    sent.extend(run(&mut e, 10 * S, 15 * S, std::slice::from_ref(&f), &[]));
    assert_eq!(
        reasons(&sent),
        vec![vec![Reason::New], vec![Reason::Escalated]]
    );
    f.acknowledged = true;
    assert!(run(&mut e, 20 * S, 600 * S, std::slice::from_ref(&f), &[]).is_empty());
}

#[test]
fn silences_mute_until_they_end_and_are_reported_once() {
    let s = AlertingSettings {
        group_wait_secs: 0,
        ..settings()
    };
    let mut e = engine(&s);
    let f = fault(1, "disk_full", "dn1");
    let silence = Silence {
        id: 7,
        matchers: vec![Matcher::parse(r#"host="dn1""#).unwrap()],
        starts_ms: 0,
        ends_ms: 60 * S,
    };
    let first = e.evaluate(0, std::slice::from_ref(&f), std::slice::from_ref(&silence));
    assert!(first.notifications.is_empty());
    assert_eq!(first.muted.len(), 1);
    assert_eq!(first.muted[0].by, "silence:7");
    let later = e.evaluate(
        5 * S,
        std::slice::from_ref(&f),
        std::slice::from_ref(&silence),
    );
    assert!(later.muted.is_empty(), "reported once");
    let sent = run(
        &mut e,
        10 * S,
        120 * S,
        std::slice::from_ref(&f),
        std::slice::from_ref(&silence),
    );
    assert_eq!(
        reasons(&sent),
        vec![vec![Reason::New]],
        "after the silence ends"
    );
    // A fault silenced all its life resolves silently.
    let g = fault(2, "disk_full", "dn1b");
    let all = Silence {
        id: 8,
        matchers: vec![Matcher::parse(r#"host="dn1b""#).unwrap()],
        starts_ms: 0,
        ends_ms: i64::MAX,
    };
    let both = [f.clone(), g.clone()];
    assert!(run(&mut e, 125 * S, 200 * S, &both, std::slice::from_ref(&all)).is_empty());
    let rest = run(
        &mut e,
        205 * S,
        900 * S,
        std::slice::from_ref(&f),
        std::slice::from_ref(&all),
    );
    assert!(rest.is_empty(), "{rest:#?}");
}

#[test]
fn a_weekly_maintenance_window_mutes_its_alerts() {
    let mut s = settings();
    s.group_wait_secs = 0;
    s.maintenance_windows.push(MaintenanceWindowSettings {
        name: "sunday-patching".into(),
        schedule: "0 0 2 * * 1".into(),
        duration_secs: 7200,
        matchers: vec![r#"cluster="prod""#.into()],
    });
    let mut e = engine(&s);
    let sunday_3am = chrono::DateTime::parse_from_rfc3339("2026-11-22T03:00:00Z")
        .unwrap()
        .timestamp_millis();
    let f = fault(1, "datanode_lost", "dn1");
    let ev = e.evaluate(sunday_3am, std::slice::from_ref(&f), &[]);
    assert!(ev.notifications.is_empty());
    assert_eq!(ev.muted[0].by, "maintenance:sunday-patching");
    // After 04:00 it notifies.
    let sent = run(
        &mut e,
        sunday_3am + 3600 * S,
        sunday_3am + 3610 * S,
        std::slice::from_ref(&f),
        &[],
    );
    assert_eq!(reasons(&sent), vec![vec![Reason::New]]);
}

#[test]
fn an_unreachable_namenode_inhibits_datanode_faults_of_its_cluster() {
    let mut s = settings();
    s.group_wait_secs = 0;
    s.inhibit_rules.push(InhibitRuleSettings {
        source_matchers: vec![
            r#"fault_type="port_unreachable""#.into(),
            r#"entity=~".+:(8020|9000)""#.into(),
        ],
        target_matchers: vec![r#"fault_type=~"datanode_lost|nodemanager_lost""#.into()],
        equal: vec!["cluster".into()],
    });
    let mut e = engine(&s);
    // DataNodes log that they cannot reach the NameNode's RPC port.
    let mut nn = fault(1, "port_unreachable", "dn5");
    nn.entity = "nn1:8020".into();
    let dn = fault(2, "datanode_lost", "dn1");
    let mut other_cluster = fault(3, "datanode_lost", "dn9");
    other_cluster.cluster = "dev".into();
    other_cluster.fingerprint = "datanode_lost:dev:dn9".into();
    let open = [nn.clone(), dn.clone(), other_cluster.clone()];
    let mut sent = run(&mut e, 0, 5 * S, &open[..1], &[]);
    let ev = e.evaluate(10 * S, &open, &[]);
    sent.extend(ev.notifications);
    assert_eq!(ev.muted.len(), 1);
    assert_eq!(ev.muted[0].fault_id, 2);
    assert_eq!(ev.muted[0].by, "inhibited");
    let hosts: Vec<&str> = sent
        .iter()
        .flat_map(|n| n.alerts.iter().map(|a| a.fault.host.as_str()))
        .collect();
    assert_eq!(hosts, vec!["dn5", "dn9"]);
}

#[test]
fn routes_pick_receivers_and_send_resolved_is_honoured() {
    let mut s = settings();
    s.group_wait_secs = 0;
    s.flap_window_secs = 0;
    let mut pager = receiver("pager", &[r#"severity="critical""#]);
    pager.send_resolved = false;
    s.receivers = vec![receiver("all", &[]), pager];
    let mut e = engine(&s);
    let mut warn = fault(1, "flume_backlog", "a1");
    warn.severity = Severity::Warning;
    let crit = fault(2, "disk_full", "dn1");
    let sent = run(&mut e, 0, 5 * S, &[warn, crit], &[]);
    let to: Vec<(&str, &str)> = sent
        .iter()
        .map(|n| (n.receiver.as_str(), n.alerts[0].fault.fault_type.as_str()))
        .collect();
    assert_eq!(
        to,
        vec![
            ("all", "disk_full"),
            ("all", "flume_backlog"),
            ("pager", "disk_full")
        ]
    );
    let resolved = run(&mut e, 10 * S, 15 * S, &[], &[]);
    assert!(resolved.iter().all(|n| n.receiver == "all"));
    assert_eq!(resolved.len(), 2);
}

#[test]
fn persisted_states_survive_a_restart_without_repeats_or_losses() {
    let s = settings();
    let mut e = engine(&s);
    let f = fault(1, "disk_full", "dn1");
    let g = fault(2, "disk_full", "dn2");
    let sent = run(&mut e, 0, 40 * S, std::slice::from_ref(&f), &[]);
    assert_eq!(sent.len(), 1);
    // g is queued (group_wait not over) when the engine stops.
    assert!(
        e.evaluate(45 * S, &[f.clone(), g.clone()], &[])
            .notifications
            .is_empty()
    );
    let saved: Vec<(String, String)> = e
        .states()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap()))
        .collect();
    let mut again = engine(&s);
    again.restore(
        saved
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str::<AlertState>(&v).unwrap())),
    );
    let after = run(&mut again, 50 * S, 100 * S, &[f, g], &[]);
    let hosts: Vec<&str> = after
        .iter()
        .flat_map(|n| n.alerts.iter().map(|a| a.fault.host.as_str()))
        .collect();
    assert_eq!(hosts, vec!["dn2"], "dn1 not repeated, dn2 not lost");
}

#[test]
fn a_fault_back_before_its_queued_resolved_is_sent_withdraws_it() {
    let s = AlertingSettings {
        flap_window_secs: 0,
        ..settings()
    };
    let mut e = engine(&s);
    let f = fault(1, "disk_full", "dn1");
    let mut sent = run(&mut e, 0, 35 * S, std::slice::from_ref(&f), &[]);
    assert_eq!(reasons(&sent), vec![vec![Reason::New]]);
    // Resolved at 40 s (queued for group_wait), back at 50 s.
    sent.extend(run(&mut e, 40 * S, 45 * S, &[], &[]));
    sent.extend(run(&mut e, 50 * S, 200 * S, std::slice::from_ref(&f), &[]));
    assert_eq!(reasons(&sent), vec![vec![Reason::New]], "no false resolved");
}

#[test]
fn a_resolved_waiting_in_a_group_at_a_restart_is_sent_after_it() {
    let s = AlertingSettings {
        flap_window_secs: 0,
        ..settings()
    };
    let mut e = engine(&s);
    let f = fault(1, "disk_full", "dn1");
    run(&mut e, 0, 35 * S, std::slice::from_ref(&f), &[]);
    assert!(run(&mut e, 40 * S, 45 * S, &[], &[]).is_empty(), "queued");
    let saved: Vec<(String, AlertState)> = e
        .states()
        .iter()
        .map(|(k, v)| {
            let json = serde_json::to_string(v).unwrap();
            (k.clone(), serde_json::from_str(&json).unwrap())
        })
        .collect();
    let mut again = engine(&s);
    again.restore(saved);
    let sent = run(&mut again, 50 * S, 100 * S, &[], &[]);
    assert_eq!(reasons(&sent), vec![vec![Reason::Resolved]]);
    assert!(again.states().is_empty());
}

#[test]
fn a_severity_rise_is_routed_by_the_new_severity() {
    let mut s = settings();
    s.group_wait_secs = 0;
    s.receivers = vec![receiver("pager", &[r#"severity="critical""#])];
    let mut e = engine(&s);
    let mut f = fault(1, "flume_backlog", "a1");
    f.severity = Severity::Warning;
    assert!(run(&mut e, 0, 5 * S, std::slice::from_ref(&f), &[]).is_empty());
    f.severity = Severity::Critical;
    let sent = run(&mut e, 10 * S, 15 * S, std::slice::from_ref(&f), &[]);
    assert_eq!(reasons(&sent), vec![vec![Reason::Escalated]]);
    assert_eq!(sent[0].alerts[0].labels["severity"], "critical");
}

#[test]
fn a_host_that_is_down_mutes_its_other_port_faults() {
    let mut s = settings();
    s.group_wait_secs = 0;
    s.inhibit_rules.push(InhibitRuleSettings {
        source_matchers: vec![
            r#"fault_type="port_unreachable""#.into(),
            r#"entity=~".+:22""#.into(),
        ],
        target_matchers: vec![
            r#"fault_type="port_unreachable""#.into(),
            r#"entity!~".+:22""#.into(),
        ],
        equal: vec!["cluster".into(), "host".into()],
    });
    let mut e = engine(&s);
    let port = |host: &str, p: u16| {
        let mut f = fault(p as i64, "port_unreachable", host);
        f.entity = format!("{host}:{p}");
        f.fingerprint = format!("port_unreachable:prod:{host}:{p}");
        f
    };
    let open = [
        port("w3", 22),
        port("w3", 9866),
        port("w3", 8042),
        port("w4", 9866),
    ];
    let mut sent = run(&mut e, 0, 0, &open[..1], &[]);
    let ev = e.evaluate(5 * S, &open, &[]);
    sent.extend(ev.notifications);
    let muted: Vec<i64> = ev.muted.iter().map(|m| m.fault_id).collect();
    assert_eq!(muted, vec![8042, 9866], "w3's other ports");
    let entities: Vec<&str> = sent
        .iter()
        .flat_map(|n| n.alerts.iter().map(|a| a.fault.entity.as_str()))
        .collect();
    assert_eq!(entities, vec!["w3:22", "w4:9866"]);
}
