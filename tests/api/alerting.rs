//! Alert delivery end to end: faults posted through ingest become notifications at fake
//! webhook / DingTalk / WeCom / Slack receivers and at a real Alertmanager, with dedup,
//! grouping, resolution, silences, a receiver that is down, and an outbox that survives a
//! restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::fake_webhook::FakeWebhook;
use crate::helpers::{Backend, Service, TestApp, service_binary, spawn_app_with, start_service};
use faultline::alerting::settings::{ReceiverKind, ReceiverSettings};

fn full(host: &str, i: u32) -> String {
    format!(
        "2026-11-21 10:{:02}:{:02},000 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in BlockReceiver.receivePacket() on {host}: java.io.IOException: No space left on device",
        (i / 60) % 60,
        i % 60
    )
}

fn receiver(name: &str, kind: ReceiverKind, url: &str) -> ReceiverSettings {
    ReceiverSettings {
        name: name.into(),
        kind,
        url: url.into(),
        secret: String::new(),
        matchers: vec![],
        send_resolved: true,
    }
}

fn fast(s: &mut faultline::config::Settings, receivers: Vec<ReceiverSettings>) {
    s.alerting.evaluation_interval_secs = 1;
    s.alerting.group_wait_secs = 3;
    s.alerting.flap_window_secs = 0;
    s.alerting.max_backoff_secs = 1;
    s.alerting.external_url = "http://faultline.test".into();
    s.alerting.receivers = receivers;
    s.scheduler.enabled = false;
}

async fn post_lines(app: &TestApp, host: &str, lines: &[String]) {
    let r = app
        .upload(
            &format!("?host={host}&service=datanode"),
            "text/plain",
            lines.join("\n"),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An app whose one receiver (`ops`) is a fake webhook.
async fn with_webhook(b: Backend) -> Option<(FakeWebhook, TestApp)> {
    let hook = FakeWebhook::start().await;
    let url = format!("{}/hook", hook.base);
    let app = spawn_app_with(b, |s| {
        fast(s, vec![receiver("ops", ReceiverKind::Webhook, &url)])
    })
    .await?;
    Some((hook, app))
}

async fn one_notification_per_fault_and_one_per_group(b: Backend) {
    let Some((hook, app)) = with_webhook(b).await else {
        return;
    };
    // 1000 repeats of one fault on one host.
    let lines: Vec<String> = (0..1000).map(|i| full("dn1", i)).collect();
    post_lines(&app, "dn1", &lines).await;
    let faults = app
        .wait_faults("?fault_type=disk_full", |f| {
            f.first().is_some_and(|x| x["occurrences"] == 1000)
        })
        .await;
    let got = wait_for("the notification", 15, || {
        let r = hook.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "one notification for 1000 repeats"
    );
    let v = &got[0].body;
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["alerts"][0]["labels"]["alertname"], "disk_full");
    assert_eq!(v["alerts"][0]["labels"]["host"], "dn1");
    assert_eq!(v["alerts"][0]["labels"]["severity"], "critical");
    let id = faults[0]["id"].as_i64().unwrap();
    assert_eq!(
        v["alerts"][0]["generatorURL"],
        format!("http://faultline.test/api/faults/{id}")
    );
    assert!(
        v["alerts"][0]["annotations"]["description"]
            .as_str()
            .unwrap()
            .len()
            > 10
    );

    // Ten hosts inside group_wait: one message with ten alerts.
    for i in 0..10 {
        post_lines(&app, &format!("dn-g{i}"), &[full(&format!("dn-g{i}"), i)]).await;
    }
    let grouped = wait_for("the grouped message", 15, || {
        let r = hook.received();
        (r.len() >= 2).then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = hook.received();
    assert_eq!(
        all.len(),
        2,
        "{:#?}",
        all.iter().map(|r| &r.body["alerts"]).collect::<Vec<_>>()
    );
    assert_eq!(grouped[1].body["alerts"].as_array().unwrap().len(), 10);
    assert_eq!(grouped[1].body["groupLabels"]["fault_type"], "disk_full");

    // Resolving the first fault sends one resolved notification.
    assert_eq!(
        app.status_of(reqwest::Method::POST, &format!("/api/faults/{id}/resolve"))
            .await,
        200
    );
    let resolved = wait_for("the resolved notification", 15, || {
        hook.received()
            .into_iter()
            .find(|r| r.body["status"] == "resolved")
    })
    .await;
    assert_eq!(resolved.body["alerts"][0]["labels"]["host"], "dn1");
    assert_ne!(resolved.body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    // The fault's delivery log.
    let log = app.get_json(&format!("/api/faults/{id}/deliveries")).await;
    let statuses: Vec<(&str, &str)> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["reasons"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, vec![("resolved", "sent"), ("new", "sent")]);
    let m = app.metrics().await;
    assert!(
        m.contains("faultline_alert_notifications_total{outcome=\"sent\",receiver=\"ops\"} 3"),
        "{m}"
    );
    app.stop().await;
    hook.stop().await;
}

async fn a_receiver_that_is_down_loses_nothing_across_a_restart(b: Backend) {
    let hook = FakeWebhook::start().await;
    hook.fail_next(1000, 503, "{\"error\":\"down\"}");
    let url = format!("{}/hook", hook.base);
    let Some(app) = spawn_app_with(b, |s| {
        fast(s, vec![receiver("ops", ReceiverKind::Webhook, &url)]);
        s.alerting.max_backoff_secs = 600;
    })
    .await
    else {
        return;
    };
    post_lines(&app, "dn1", &[full("dn1", 1)]).await;
    let f = app
        .wait_faults("?fault_type=disk_full", |f| !f.is_empty())
        .await;
    let id = f[0]["id"].as_i64().unwrap();
    let start = Instant::now();
    loop {
        let log = app.get_json(&format!("/api/faults/{id}/deliveries")).await;
        let d = &log["deliveries"][0];
        if d["status"] == "pending" && d["attempts"].as_i64().unwrap_or(0) >= 1 {
            assert!(d["last_error"].as_str().unwrap().contains("503"), "{d}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no failed attempt: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hook.received().is_empty());
    // The receiver comes back while the engine restarts: the pending notification is sent.
    let mut app = app;
    app.settings.alerting.max_backoff_secs = 1;
    let app = app.restart().await;
    hook.clear_script();
    let got = wait_for("delivery after the restart", 30, || {
        let r = hook.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(got[0].body["alerts"][0]["labels"]["host"], "dn1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.received().len(), 1, "not sent twice");
    app.stop().await;
    hook.stop().await;
}

async fn robots_get_their_payloads_and_dingtalk_is_signed(b: Backend) {
    let hook = FakeWebhook::start().await;
    let mut ding = receiver(
        "ding",
        ReceiverKind::Dingtalk,
        &format!("{}/robot/send?access_token=abc", hook.base),
    );
    ding.secret = "SECtestsecret".into();
    let wecom = receiver(
        "wecom",
        ReceiverKind::Wecom,
        &format!("{}/cgi-bin/webhook/send?key=k", hook.base),
    );
    let slack = receiver(
        "slack",
        ReceiverKind::Slack,
        &format!("{}/services/T/B/X", hook.base),
    );
    let Some(app) = spawn_app_with(b, |s| {
        fast(s, vec![ding, wecom, slack]);
        s.alerting.locale = faultline::llm::settings::Language::Zh;
    })
    .await
    else {
        return;
    };
    post_lines(&app, "dn7", &[full("dn7", 1)]).await;
    let got = wait_for("three robot messages", 15, || {
        let r = hook.received();
        (r.len() >= 3).then_some(r)
    })
    .await;
    let by = |p: &str| got.iter().find(|r| r.path.starts_with(p)).unwrap().clone();
    let d = by("/robot/send");
    assert_eq!(d.body["msgtype"], "markdown");
    assert!(
        d.body["markdown"]["title"]
            .as_str()
            .unwrap()
            .starts_with("[告警]")
    );
    assert!(
        d.body["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains("根因")
    );
    // The signature: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")).
    let q: std::collections::HashMap<String, String> = d
        .query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ts = &q["timestamp"];
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"SECtestsecret").unwrap();
    mac.update(format!("{ts}\nSECtestsecret").as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let got_sign = q["sign"]
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert_eq!(got_sign, want);
    let age = faultline::now_ms() - ts.parse::<i64>().unwrap();
    assert!((0..3_600_000).contains(&age), "a fresh timestamp");
    let w = by("/cgi-bin/webhook/send");
    assert_eq!(w.body["msgtype"], "markdown");
    assert!(
        w.body["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("dn7")
    );
    let s = by("/services/T/B/X");
    assert!(s.body["text"].as_str().unwrap().contains("dn7"));
    app.stop().await;
    hook.stop().await;
}

async fn silences_mute_and_expire(b: Backend) {
    let Some((hook, app)) = with_webhook(b).await else {
        return;
    };
    let (code, body, _) = app
        .post_json(
            "/api/silences",
            &json!({"matchers": ["host=\"dn3\""], "duration": "2h", "created_by": "alice", "comment": "disk swap"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let sid = body["id"].as_i64().unwrap();
    for bad in [
        json!({"matchers": [], "duration": "1h", "created_by": "a"}),
        json!({"matchers": ["host=~\"(\""], "duration": "1h", "created_by": "a"}),
        json!({"matchers": ["host=\"x\""], "created_by": "a"}),
        json!({"matchers": ["host=\"x\""], "duration": "1h", "created_by": ""}),
    ] {
        let (code, _, _) = app.post_json("/api/silences", &bad).await;
        assert_eq!(code, 400, "{bad}");
    }
    // A forgotten-looking one: a month long.
    let (code, _, _) = app
        .post_json(
            "/api/silences",
            &json!({"matchers": ["cluster=\"lab\""], "duration": "30d", "created_by": "bob"}),
        )
        .await;
    assert_eq!(code, 201);
    let list = app.get_json("/api/silences").await;
    assert_eq!(list["silences"][0]["state"], "active");
    assert_eq!(list["silences"][0]["expiring"], false);
    assert_eq!(list["silences"][0]["long_lived"], false);
    assert_eq!(list["silences"][1]["long_lived"], true);
    let m = app.metrics().await;
    assert!(m.contains("faultline_silences{state=\"active\"} 2"), "{m}");
    assert!(
        m.contains("faultline_silences{state=\"long_lived\"} 1"),
        "{m}"
    );
    post_lines(&app, "dn3", &[full("dn3", 1)]).await;
    let f = app.wait_faults("?host=dn3", |f| !f.is_empty()).await;
    let id = f[0]["id"].as_i64().unwrap();
    let log = wait_for_log(&app, id, |d| d.iter().any(|x| x["status"] == "muted")).await;
    assert_eq!(log[0]["reasons"], format!("muted:silence:{sid}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(hook.received().is_empty(), "silenced: recorded, not sent");
    // Expire it: the alert goes out.
    assert_eq!(
        app.status_of(reqwest::Method::DELETE, &format!("/api/silences/{sid}"))
            .await,
        200
    );
    assert_eq!(
        app.status_of(reqwest::Method::DELETE, &format!("/api/silences/{sid}"))
            .await,
        404
    );
    wait_for("the notification after the silence", 15, || {
        (!hook.received().is_empty()).then_some(())
    })
    .await;
    app.stop().await;
    hook.stop().await;
}

async fn wait_for_log(app: &TestApp, id: i64, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let log = app.get_json(&format!("/api/faults/{id}/deliveries")).await;
        let d = log["deliveries"].as_array().cloned().unwrap_or_default();
        if pred(&d) {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "delivery log: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_alertmanager() -> Option<Service> {
    let bin = service_binary("FAULTLINE_TEST_ALERTMANAGER", "the real Alertmanager test")?;
    Some(
        start_service(&bin, |dir, port| {
            let cfg = dir.join("am.yml");
            std::fs::write(
                &cfg,
                "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
            )
            .unwrap();
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--cluster.listen-address=".into(),
            ]
        })
        .await,
    )
}

async fn am_alerts(am: &Service) -> Vec<Value> {
    reqwest::get(format!("{}/api/v2/alerts", am.url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn a_real_alertmanager_shows_the_alert_firing_then_resolved(b: Backend) {
    let Some(am) = start_alertmanager().await else {
        return;
    };
    let url = am.url.clone();
    let Some(app) = spawn_app_with(b, |s| {
        fast(s, vec![receiver("am", ReceiverKind::Alertmanager, &url)])
    })
    .await
    else {
        return;
    };
    post_lines(&app, "dn4", &[full("dn4", 1)]).await;
    let f = app.wait_faults("?host=dn4", |f| !f.is_empty()).await;
    let id = f[0]["id"].as_i64().unwrap();
    let start = Instant::now();
    let alert = loop {
        let alerts = am_alerts(&am).await;
        if let Some(a) = alerts.iter().find(|a| a["labels"]["host"] == "dn4") {
            break a.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not in Alertmanager: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert["labels"]["alertname"], "disk_full");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["cluster"], "default");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["generatorURL"],
        format!("http://faultline.test/api/faults/{id}")
    );
    assert!(alert["annotations"]["summary"].as_str().unwrap().len() > 3);
    assert_eq!(
        app.status_of(reqwest::Method::POST, &format!("/api/faults/{id}/resolve"))
            .await,
        200
    );
    let start = Instant::now();
    loop {
        let alerts = am_alerts(&am).await;
        if !alerts.iter().any(|a| a["labels"]["host"] == "dn4") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still firing: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

both_backends!(
    a_real_alertmanager_shows_the_alert_firing_then_resolved,
    one_notification_per_fault_and_one_per_group,
    a_receiver_that_is_down_loses_nothing_across_a_restart,
    robots_get_their_payloads_and_dingtalk_is_signed,
    silences_mute_and_expire,
);
