//! Auth and request limits through the real application: 401 without a token, 403 with the
//! wrong role for every operation of the API document, tokens created and revoked through
//! the API, ingest tokens (header and `?access_token=` for Flume), the open-ingest switch,
//! static hashed tokens, RS256 JWTs, 429 + Retry-After, and the first-start admin token of
//! the real binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline::auth::{Role, StaticToken, hash_token, to_hex};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, client_with_token, free_port, spawn_app, spawn_app_with};

/// Create a run-time token with the admin client; the token.
async fn create_token(app: &TestApp, name: &str, role: &str) -> String {
    let (status, body, _) = app
        .post_json("/api/tokens", &json!({ "name": name, "role": role }))
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_string()
}

async fn status(
    client: &reqwest::Client,
    method: Method,
    url: &str,
) -> (u16, reqwest::header::HeaderMap) {
    let resp = client.request(method, url).send().await.expect("sent");
    (resp.status().as_u16(), resp.headers().clone())
}

/// Every operation of `/api/openapi.json` as (method, path with `{x}` replaced by 1).
async fn operations(app: &TestApp) -> Vec<(Method, String, Value)> {
    let doc = app.get_json("/api/openapi.json").await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(m) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            let concrete = regex_lite_replace(path);
            out.push((m, concrete, op["security"].clone()));
        }
    }
    assert!(
        out.len() >= 25,
        "the document lists every operation: {}",
        out.len()
    );
    out
}

fn regex_lite_replace(path: &str) -> String {
    let mut s = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                s.push('1');
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => s.push(c),
        }
    }
    s
}

/// `/api/faults/1/ack` → `/api/faults/1/%61ck`: the last segment's first letter encoded.
fn percent_encode_a_letter(path: &str) -> String {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    let (head, tail) = path.split_at(cut);
    match tail.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => format!("{head}%{:02x}{}", c as u32, &tail[1..]),
        _ => path.to_string(),
    }
}

fn required_role(security: &Value) -> Option<Role> {
    let reqs = security.as_array()?;
    if reqs.is_empty()
        || reqs
            .iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    {
        return None;
    }
    reqs.iter()
        .filter_map(|r| r["bearer"].as_array())
        .flatten()
        .filter_map(|v| v.as_str().and_then(Role::parse))
        .min()
}

/// The acceptance criterion: without a token every non-ingest endpoint answers 401, with
/// the wrong role 403, with the right one neither.
#[actix_web::test]
async fn every_operation_is_protected_by_its_role() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |s| s.auth.metrics_open = false).await else {
        return;
    };
    let tokens = [
        (Role::Ingest, create_token(&app, "t-ingest", "ingest").await),
        (Role::Read, create_token(&app, "t-read", "read").await),
        (
            Role::Operator,
            create_token(&app, "t-operator", "operator").await,
        ),
    ];
    let anonymous = reqwest::Client::new();
    let mut checked = 0;
    for (method, path, security) in operations(&app).await {
        let url = app.url(&path);
        let (st, headers) = status(&anonymous, method.clone(), &url).await;
        let Some(required) = required_role(&security) else {
            assert!(st != 401 && st != 403, "{method} {path} is public: {st}");
            continue;
        };
        assert_eq!(st, 401, "{method} {path} without a token");
        let challenge = headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            challenge,
            Some(r#"Bearer realm="faultline""#),
            "{method} {path}"
        );
        let (st, headers) = status(
            &client_with_token("not-a-token-at-all"),
            method.clone(),
            &url,
        )
        .await;
        assert_eq!(st, 401, "{method} {path} with an unknown token");
        let challenge = headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(challenge.contains("invalid_token"), "{challenge}");
        // The same path with a letter percent-encoded reaches the same handler: it must be
        // judged the same (found in review: the gate once matched the raw path).
        let sneaky = app.url(&percent_encode_a_letter(&path));
        assert_eq!(
            status(&anonymous, method.clone(), &sneaky).await.0,
            401,
            "{sneaky}"
        );
        for (role, token) in &tokens {
            let client = client_with_token(token);
            let (st, _) = status(&client, method.clone(), &url).await;
            let (sneaky_st, _) = status(&client, method.clone(), &sneaky).await;
            if role.grants(required) {
                assert!(st != 401 && st != 403, "{method} {path} as {role}: {st}");
            } else {
                assert_eq!(st, 403, "{method} {path} as {role} (needs {required})");
                assert_eq!(
                    sneaky_st, 403,
                    "{method} {sneaky} as {role} (needs {required})"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 25, "{checked}");
    // Unknown paths reveal nothing without a token.
    let (st, _) = status(&anonymous, Method::GET, &app.url("/api/nothing-here")).await;
    assert_eq!(st, 401);
    let (st, _) = status(&app.client, Method::GET, &app.url("/api/nothing-here")).await;
    assert_eq!(st, 404);
    let m = app.metrics().await;
    assert!(
        crate::helpers::metric_value(&m, r#"faultline_api_refusals_total{reason="forbidden"}"#)
            > 0.0
    );
}

async fn tokens_created_used_and_revoked(b: Backend) {
    let Some(app) = spawn_app(b).await else {
        return;
    };
    let ingest = create_token(&app, "flume-prod", "ingest").await;
    let read = create_token(&app, "grafana", "read").await;
    assert!(ingest.starts_with("flt_") && ingest != read);

    // The ingest token uploads, by header and (Flume) by query parameter; it reads nothing.
    let ic = client_with_token(&ingest);
    let r = ic
        .post(app.url("/api/log/auto-upload?host=w1&service=datanode"))
        .body("2024-05-12 10:00:00,000 INFO a.B: by header")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .post(app.url(&format!(
            "/api/log/auto-upload?host=w1&service=datanode&access_token={ingest}"
        )))
        .body("2024-05-12 10:00:01,000 INFO a.B: by query")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    assert_eq!(
        status(&ic, Method::GET, &app.url("/api/faults")).await.0,
        403
    );
    // The query parameter is for uploads only.
    let q = format!("/api/faults?access_token={read}");
    assert_eq!(
        status(&reqwest::Client::new(), Method::GET, &app.url(&q))
            .await
            .0,
        401
    );
    app.wait_for_logs("?host=w1", "both uploads", |l| l.len() == 2)
        .await;

    // The list shows names and roles, never tokens or hashes.
    let list = app.get_json("/api/tokens").await;
    let text = list.to_string();
    assert!(
        !text.contains(&ingest) && !text.contains(&to_hex(&hash_token(&ingest))),
        "{text}"
    );
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["flume-prod", "grafana"]);
    assert_eq!(list["bootstrap_admin"], true);
    assert_eq!(list["tokens"][0]["created_by"], "bootstrap-admin");

    // Bad requests.
    let (st, _, _) = app
        .post_json("/api/tokens", &json!({"name": "x", "role": "root"}))
        .await;
    assert_eq!(st, 400);
    let (st, _, _) = app
        .post_json("/api/tokens", &json!({"name": "", "role": "read"}))
        .await;
    assert_eq!(st, 400);
    for bad in ["with space", "colon:name", &"x".repeat(65)] {
        let (st, _, _) = app
            .post_json("/api/tokens", &json!({"name": bad, "role": "read"}))
            .await;
        assert_eq!(st, 400, "{bad}");
    }
    for taken in ["grafana", "bootstrap-admin"] {
        let (st, _, _) = app
            .post_json("/api/tokens", &json!({"name": taken, "role": "read"}))
            .await;
        assert_eq!(st, 409, "{taken}");
    }

    // The database enforces it too (concurrent creations, engines sharing a database).
    let dup = app
        .store
        .insert_token(
            "grafana",
            "read",
            &to_hex(&hash_token("another")),
            "test",
            0,
        )
        .await
        .expect_err("an active name is unique");
    assert!(dup.is_unique_violation(), "{dup}");

    // A claimed name cannot pose as a token or push the real one out of the audit field.
    let shared = client_with_token(&create_token(&app, "ops-shared", "operator").await);
    let forged = format!("alice (token admin-team){}.", " ".repeat(110));
    let r = shared
        .post(app.url("/api/silences"))
        .json(&json!({"matchers": ["host=\"w9\""], "duration": "1h", "created_by": forged}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 201);
    let silences = app.get_json("/api/silences").await;
    assert_eq!(
        silences["silences"][0]["created_by"],
        "alice _token admin-team_ (token ops-shared)"
    );

    // Revocation is immediate.
    let rc = client_with_token(&read);
    assert_eq!(
        status(&rc, Method::GET, &app.url("/api/faults")).await.0,
        200
    );
    let id = list["tokens"][1]["id"].as_i64().expect("id");
    assert_eq!(
        app.status_of(Method::DELETE, &format!("/api/tokens/{id}"))
            .await,
        200
    );
    assert_eq!(
        status(&rc, Method::GET, &app.url("/api/faults")).await.0,
        401
    );
    assert_eq!(
        app.status_of(Method::DELETE, &format!("/api/tokens/{id}"))
            .await,
        404
    );
    // A revoked token's name is free again.
    app.store
        .insert_token("grafana", "read", &to_hex(&hash_token("again")), "test", 0)
        .await
        .expect("a revoked token's name can be reused");

    // Tokens survive a restart (hashes in the database).
    let app = app.restart().await;
    assert_eq!(
        status(
            &client_with_token(&ingest),
            Method::POST,
            &app.url("/api/log/auto-upload?host=w2")
        )
        .await
        .0,
        400,
        "authenticated; an empty body is a 400"
    );
    assert_eq!(
        status(&rc, Method::GET, &app.url("/api/faults")).await.0,
        401
    );

    // The configuration is admin-only and shows no secrets.
    let cfg = app.get_json("/api/config").await;
    assert!(cfg["settings"]["database"]["url"].is_string(), "{cfg}");
    assert!(!cfg.to_string().contains(crate::helpers::ADMIN_TOKEN));
}

#[actix_web::test]
async fn open_ingest_static_tokens_and_rs256_jwt() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let public = fixtures.join("rs256-public.pem").display().to_string();
    let Some(app) = spawn_app_with(Backend::Sqlite, |s| {
        s.auth.ingest_open = true;
        s.auth.tokens.push(StaticToken {
            name: "ops-team".into(),
            role: Role::Operator,
            sha256: to_hex(&hash_token("static-operator-token-42")),
        });
        s.auth.jwt.algorithm = "RS256".into();
        s.auth.jwt.public_key_file = public;
        s.auth.jwt.audience = "faultline".into();
        s.alerting.receivers = vec![faultline::alerting::settings::ReceiverSettings {
            name: "slack".into(),
            kind: faultline::alerting::settings::ReceiverKind::Slack,
            url: "https://hooks.slack.com/services/T0/B0/SLACKSECRET".into(),
            secret: String::new(),
            matchers: vec![],
            send_resolved: true,
        }];
    })
    .await
    else {
        return;
    };
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .post(app.url("/api/log/auto-upload?host=w1&service=datanode"))
        .body("2024-05-12 10:00:00,000 INFO a.B: open ingest")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200, "ingest is open by configuration");
    assert_eq!(
        status(&anonymous, Method::GET, &app.url("/api/faults"))
            .await
            .0,
        401,
        "the rest is not"
    );

    // The configuration is shown without the receiver's secret path.
    let admin_cfg = app.get_json("/api/config").await;
    assert_eq!(
        admin_cfg["settings"]["alerting"]["receivers"][0]["url"],
        "https://hooks.slack.com/***"
    );
    assert!(!admin_cfg.to_string().contains("SLACKSECRET"));
    let ops = client_with_token("static-operator-token-42");
    assert_eq!(
        status(&ops, Method::GET, &app.url("/api/faults")).await.0,
        200
    );
    assert_eq!(
        status(&ops, Method::POST, &app.url("/api/rules/reload"))
            .await
            .0,
        403
    );

    let now = faultline::now_ms() / 1000;
    let sign = |claims: Value| {
        let pem = std::fs::read(fixtures.join("rs256-private.pem")).expect("pem");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("key"),
        )
        .expect("encode")
    };
    let jwt = sign(json!({"sub": "carol", "role": ["read"], "aud": "faultline", "exp": now + 300}));
    let jc = client_with_token(&jwt);
    assert_eq!(
        status(&jc, Method::GET, &app.url("/api/faults")).await.0,
        200
    );
    assert_eq!(
        status(&jc, Method::POST, &app.url("/api/faults/1/ack"))
            .await
            .0,
        403
    );
    let expired =
        sign(json!({"sub": "carol", "role": "read", "aud": "faultline", "exp": now - 600}));
    assert_eq!(
        status(
            &client_with_token(&expired),
            Method::GET,
            &app.url("/api/faults")
        )
        .await
        .0,
        401
    );
    let no_role =
        sign(json!({"sub": "dave", "role": ["viewer"], "aud": "faultline", "exp": now + 300}));
    assert_eq!(
        status(
            &client_with_token(&no_role),
            Method::GET,
            &app.url("/api/faults")
        )
        .await
        .0,
        403,
        "authenticated, but no Faultline role"
    );
    let wrong_aud = sign(json!({"sub": "carol", "role": "read", "aud": "other", "exp": now + 300}));
    assert_eq!(
        status(
            &client_with_token(&wrong_aud),
            Method::GET,
            &app.url("/api/faults")
        )
        .await
        .0,
        401
    );
}

#[actix_web::test]
async fn rate_limits_answer_429_but_never_on_ingest() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit.per_token_per_minute = 5;
        s.rate_limit.diagnose_per_token_per_minute = 1;
        s.rate_limit.per_ip_per_minute = 1000;
    })
    .await
    else {
        return;
    };
    // Two of the admin token's five requests.
    let other = client_with_token(&create_token(&app, "other", "read").await);
    let dc = client_with_token(&create_token(&app, "diag", "read").await);
    for i in 0..3 {
        assert_eq!(
            app.status_of(Method::GET, "/api/faults").await,
            200,
            "request {i}"
        );
    }
    let resp = app
        .client
        .get(app.url("/api/faults"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&secs), "{secs}");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["retry_after_secs"], secs);
    // Another token has its own budget; uploads are never limited.
    assert_eq!(
        status(&other, Method::GET, &app.url("/api/faults")).await.0,
        200
    );
    for i in 0..30 {
        let r = app
            .upload(
                "?host=w1&service=datanode",
                "text/plain",
                format!("2024-05-12 10:00:00,000 INFO a.B: line {i}"),
            )
            .await;
        assert_eq!(r.status(), 200, "upload {i}");
    }
    // Diagnosis has its own, smaller budget.
    let diag = |c: &reqwest::Client| {
        c.post(app.url("/api/llm/diagnose"))
            .json(&json!({"logs": "2024-05-12 10:00:00,000 INFO a.B: fine"}))
            .send()
    };
    let first = diag(&dc).await.expect("sent").status().as_u16();
    assert_ne!(first, 429);
    assert_eq!(diag(&dc).await.expect("sent").status(), 429);
    assert_eq!(
        status(&dc, Method::GET, &app.url("/api/faults")).await.0,
        200,
        "queries still go"
    );
    let m = app.metrics().await;
    assert!(
        crate::helpers::metric_value(&m, r#"faultline_api_refusals_total{reason="rate_limited"}"#)
            >= 2.0
    );
}

/// Per-address limit: also slows down token guessing (refused before the token is checked).
#[actix_web::test]
async fn per_address_limit_slows_guessing() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |s| s.rate_limit.per_ip_per_minute = 10).await
    else {
        return;
    };
    let guesser = client_with_token("guess-0000");
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            status(&guesser, Method::GET, &app.url("/api/faults"))
                .await
                .0,
        );
    }
    assert_eq!(&codes[..10], &[401; 10]);
    assert_eq!(&codes[10..], &[429, 429]);
    // Guessing on the upload path (no request limit there) counts as well.
    let r = guesser
        .post(app.url("/api/log/auto-upload?host=w1"))
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.status(),
        429,
        "refused credentials on uploads are throttled too"
    );
    // A valid upload is never rate limited, even from this address.
    let r = app
        .upload(
            "?host=w1&service=datanode",
            "text/plain",
            "2024-05-12 10:00:00,000 INFO a.B: ok",
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.status_of(Method::GET, "/healthz").await,
        200,
        "probes are not limited"
    );
}

both_backends!(tokens_created_used_and_revoked);

/// The README's first command on a fresh directory: the engine creates an admin token,
/// prints it once, stores only its hash; the token works; a restart prints no new one.
#[actix_web::test]
async fn first_start_prints_one_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .current_dir(dir.path())
            .env_remove("FAULTLINE_ADMIN_TOKEN")
            .env("FAULTLINE_LISTEN", format!("127.0.0.1:{port}"))
            .env("FAULTLINE_SERVER__WORKERS", "1")
            .env("FAULTLINE_LOG__LEVEL", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("faultline starts")
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start();
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut printed = Vec::new();
    let token = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("stderr line");
        printed.push(line.clone());
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("flt_")) {
            break t.to_string();
        }
        assert!(Instant::now() < deadline, "{printed:?}");
    };
    wait_ready(&base).await;
    let anonymous = reqwest::Client::new();
    assert_eq!(
        status(&anonymous, Method::GET, &format!("{base}/api/faults"))
            .await
            .0,
        401
    );
    assert_eq!(
        status(
            &client_with_token(&token),
            Method::GET,
            &format!("{base}/api/faults")
        )
        .await
        .0,
        200
    );
    // Only the hash is stored.
    let db = std::fs::read(dir.path().join("faultline.db")).expect("db");
    assert!(
        !String::from_utf8_lossy(&db).contains(&token),
        "the token is not in the database"
    );
    stop(&mut child);
    drop(rx);

    let mut child = start();
    let stderr = child.stderr.take().expect("stderr");
    wait_ready(&base).await;
    assert_eq!(
        status(
            &client_with_token(&token),
            Method::GET,
            &format!("{base}/api/faults")
        )
        .await
        .0,
        200
    );
    // Tokens are never logged, even at debug level: refused ones, ones in the upload URL.
    let wrong = "flt_wrong-token-never-logged-0123456789";
    let refused = status(
        &client_with_token(wrong),
        Method::GET,
        &format!("{base}/api/faults"),
    )
    .await;
    assert_eq!(refused.0, 401);
    let url = format!("{base}/api/log/auto-upload?host=w1&service=datanode&access_token={token}");
    let r = reqwest::Client::new()
        .post(&url)
        .body("2024-05-12 10:00:00,000 ERROR a.B: something failed")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/api/log/auto-upload?host=w1&access_token={wrong}&bad=%zz"
        ))
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    stop(&mut child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut rest).expect("read");
    assert!(!rest.contains("flt_"), "no token printed or logged: {rest}");
    assert!(rest.contains("DEBUG"), "debug logging was on: {rest}");
}

async fn wait_ready(base: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} did not become ready");
}

fn stop(child: &mut std::process::Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = child.wait();
}

/// Behind a proxy, the per-address limit counts the address the proxy added: the last line
/// and entry of `X-Forwarded-For`, never what the client wrote before it.
#[actix_web::test]
async fn forwarded_address_is_the_proxys_entry() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limit.per_ip_per_minute = 2;
        s.rate_limit.client_ip_header = "X-Forwarded-For".into();
    })
    .await
    else {
        return;
    };
    let mut codes = Vec::new();
    for i in 0..4 {
        let r = reqwest::Client::new()
            .get(app.url("/api/faults"))
            .header("X-Forwarded-For", format!("6.6.6.{i}"))
            .header("X-Forwarded-For", "203.0.113.7")
            .send()
            .await
            .expect("sent");
        codes.push(r.status().as_u16());
    }
    assert_eq!(
        codes,
        [401, 401, 429, 429],
        "the client's own lines do not count"
    );
    let r = reqwest::Client::new()
        .get(app.url("/api/faults"))
        .header("X-Forwarded-For", "6.6.6.6, 203.0.113.8")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.status(),
        401,
        "another proxy-seen address has its own budget"
    );
}
