//! `GET /api/openapi.json` (the OpenAPI 3.1 document), Swagger UI at `/docs` from files in the
//! binary, and the `Allow` header of a 405 (read from the document).

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

/// Every operation `routes()` registers (the unit test in `src/api/openapi.rs` ties the
/// document to `routes()`; this one checks what is served).
const OPERATIONS: [(&str, &str); 30] = [
    ("post", "/api/log/auto-upload"),
    ("get", "/api/logs"),
    ("get", "/api/faults"),
    ("get", "/api/faults/{id}"),
    ("post", "/api/faults/{id}/ack"),
    ("post", "/api/faults/{id}/resolve"),
    ("post", "/api/faults/{id}/confirm"),
    ("get", "/api/faults/{id}/deliveries"),
    ("get", "/api/silences"),
    ("post", "/api/silences"),
    ("delete", "/api/silences/{id}"),
    ("post", "/api/faults/{id}/remediate"),
    ("get", "/api/faults/{id}/remediations"),
    ("get", "/api/remediations/{id}"),
    ("post", "/api/remediations/{id}/approve"),
    ("get", "/api/llm"),
    ("post", "/api/llm/diagnose"),
    ("get", "/api/rules"),
    ("post", "/api/rules/reload"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("get", "/api/config"),
    ("get", "/api/health-checks"),
    ("post", "/api/health-checks/run"),
    ("get", "/api/cluster/status"),
    ("get", "/api/cluster/status/history"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_document_is_served_and_complete() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Faultline");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer <token>")
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut served = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                OPERATIONS.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not expected"
            );
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            assert!(op["security"].as_array().is_some_and(|s| !s.is_empty()));
            served += 1;
        }
    }
    assert_eq!(served, OPERATIONS.len(), "every operation is documented");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        assert!(
            doc.pointer(r.trim_start_matches('#')).is_some(),
            "{r} does not resolve"
        );
    }
    // What is served is the document the library builds.
    assert_eq!(
        doc,
        serde_json::to_value(faultline::api::openapi::openapi()).unwrap()
    );
}

/// `src="..."` and `href="..."` values of an HTML page.
fn assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            if let Some(end) = piece.find('"') {
                out.push(piece[..end].to_string());
            }
        }
    }
    out
}

#[actix_web::test]
async fn swagger_ui_is_served_from_the_binary() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    // `/docs` redirects to `/docs/`.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.get(app.url("/docs")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/docs/");
    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/docs/");

    let r = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let assets = assets(&html);
    assert!(
        assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    for a in &assets {
        assert!(
            !a.starts_with("http://") && !a.starts_with("https://") && !a.starts_with("//"),
            "{a} is not a local asset"
        );
        let url = app.url(&format!("/docs/{}", a.trim_start_matches("./")));
        let r = app.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let bytes = r.bytes().await.unwrap();
        assert!(!bytes.is_empty(), "{url} is empty");
    }
    // The UI loads this server's document.
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/openapi.json"), "{init}");
    assert!(
        !init.contains("https://") && !init.contains("http://"),
        "{init}"
    );
}

#[actix_web::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/api/silences", "GET, POST"),
        (reqwest::Method::GET, "/api/log/auto-upload", "POST"),
        (reqwest::Method::DELETE, "/api/faults/7", "GET"),
        (reqwest::Method::OPTIONS, "/api/silences/7", "DELETE"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 405);
    }
}

#[actix_web::test]
async fn bodies_are_read_under_max_body_bytes_with_json_errors() {
    // A 300 KiB excerpt (over actix's 256 KiB default) is read: the limit is max_body_bytes.
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let lines: Vec<String> = (0..3000).map(|i| format!("{i:0100}")).collect();
    let r = app
        .client
        .post(app.url("/api/llm/diagnose"))
        .json(&serde_json::json!({ "lines": lines }))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body.is_object());

    // Over max_body_bytes: a JSON 413, as documented.
    let Some(app) = crate::helpers::spawn_app_with(Backend::Sqlite, |s| {
        s.server.max_body_bytes = 4096;
    })
    .await
    else {
        return;
    };
    let big = serde_json::json!({
        "matchers": ["host=\"w1\""], "duration": "1h", "created_by": "a", "comment": "x".repeat(5000)
    });
    for path in ["/api/silences", "/api/llm/diagnose", "/api/faults/1/ack"] {
        let r = app
            .client
            .post(app.url(path))
            .json(&big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 413, "{path}");
    }
    // An unsupported encoding: a JSON 415.
    let r = app
        .client
        .post(app.url("/api/silences"))
        .header("Content-Encoding", "br")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 415);
}
