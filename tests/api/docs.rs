//! Swagger UI at `/docs` in Debian's headless Chromium (`FAULTLINE_TEST_CHROMIUM`, required
//! under CI), driven by Playwright (`tests/browser`, `npm ci` there first): every operation
//! of the document is listed, nothing is fetched from outside, and a newcomer can try
//! `GET /api/faults`: 401 before authorizing, 200 after.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::{Backend, service_binary, spawn_app};

#[actix_web::test]
async fn swagger_ui_lists_every_operation_and_tries_one_with_a_token() {
    let Some(chromium) = service_binary("FAULTLINE_TEST_CHROMIUM", "the Swagger UI browser test")
    else {
        return;
    };
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "run `npm ci` in {} first (.ci/run does)",
        browser_dir.display()
    );
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite app");
    let (status, body, _) = app
        .post_json("/api/tokens", &json!({"name": "newcomer", "role": "read"}))
        .await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().expect("token").to_string();

    let out = tokio::process::Command::new("node")
        .arg("swagger.mjs")
        .arg(&app.address)
        .arg(&token)
        .current_dir(&browser_dir)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["status_without_token"], 401, "{report:#}");
    assert_eq!(report["status_with_token"], 200, "{report:#}");
    assert_eq!(
        report["external_requests"],
        json!([]),
        "served from the binary"
    );

    // Every operation of the document is listed in the page.
    let doc = app.get_json("/api/openapi.json").await;
    let mut expected: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                expected.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let mut listed: Vec<String> = report["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    expected.sort();
    listed.sort();
    listed.dedup();
    assert_eq!(listed, expected);
}
