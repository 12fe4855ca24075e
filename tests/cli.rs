//! The `faultline` binary's commands: --version, --help, check-config and migrate.

use std::process::Command;

fn faultline(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.current_dir(dir)
        .env_remove("FAULTLINE_DATABASE_URL")
        .env_remove("FAULTLINE_LISTEN");
    c
}

#[test]
fn version_and_help_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = faultline(dir.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("faultline {}", env!("CARGO_PKG_VERSION"))
    );
    let out = faultline(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "serve",
        "migrate",
        "check-config",
        "Examples:",
        "auto-upload",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
}

#[test]
fn check_config_reports_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nlisen = \"0.0.0.0:1\"\n",
    )
    .unwrap();
    let out = faultline(dir.path())
        .args(["--config", "bad.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: key `server.lisen`: unknown field `lisen`"),
        "{err}"
    );

    let out = faultline(dir.path())
        .arg("check-config")
        .env("FAULTLINE_DATABASE__MAX_CONNECTIONS", "zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable FAULTLINE_DATABASE__MAX_CONNECTIONS: key `database.max_connections`"),
        "{err}"
    );

    // ./faultline.toml is picked up when present; secrets are redacted in the output.
    std::fs::write(
        dir.path().join("faultline.toml"),
        "[database]\nurl = \"mysql://u:s3cret@db:3306/f\"\n",
    )
    .unwrap();
    let out = faultline(dir.path()).arg("check-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("file: faultline.toml") && text.contains("mysql://u:***@db:3306/f"),
        "{text}"
    );
    assert!(!text.contains("s3cret"));
}

#[test]
fn migrate_creates_the_sqlite_database_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = faultline(dir.path())
            .arg("migrate")
            .env("FAULTLINE_DATABASE_URL", "sqlite://fresh.db")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    assert!(dir.path().join("fresh.db").exists());
}
