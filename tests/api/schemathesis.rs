//! Schemathesis (`.ci/schemathesis.sh`, all checks) against the real binary, authenticated with
//! an admin token and with auth enforced (so `ignored_auth` runs: every guarded operation must
//! refuse a request without a valid token). Runs when `FAULTLINE_TEST_SCHEMATHESIS` names the
//! `schemathesis` executable (required under CI; `.ci/run` installs the pinned version).

use std::path::Path;

use crate::helpers::service_binary;

#[actix_web::test]
async fn schemathesis_finds_no_failure() {
    let Some(st) = service_binary("FAULTLINE_TEST_SCHEMATHESIS", "the Schemathesis run") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st_dir = Path::new(&st)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = format!(
        "{}:{}",
        st_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let token = "schemathesis-admin-token-0123456789";
    let out = tokio::process::Command::new("bash")
        .arg(root.join(".ci/schemathesis.sh"))
        .env("PATH", path)
        .env("FAULTLINE_BIN", env!("CARGO_BIN_EXE_faultline"))
        .env("FAULTLINE_ST_TOKEN", token)
        // The engine under test (started by the script) inherits these.
        .env("FAULTLINE_ADMIN_TOKEN", token)
        .env("FAULTLINE_AUTH__METRICS_OPEN", "false")
        .env("FAULTLINE_RATE_LIMIT__PER_TOKEN_PER_MINUTE", "10000000")
        .env("FAULTLINE_RATE_LIMIT__PER_IP_PER_MINUTE", "10000000")
        .env(
            "FAULTLINE_RATE_LIMIT__DIAGNOSE_PER_TOKEN_PER_MINUTE",
            "10000000",
        )
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("bash runs .ci/schemathesis.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stdout.contains(token) && !stderr.contains(token),
        "the token is never printed"
    );
    // The run really tested something.
    assert!(stdout.contains("passed"), "{stdout}");
}
