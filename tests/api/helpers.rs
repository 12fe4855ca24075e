//! `spawn_app`: the real application on port 0 with a fresh database and WAL directory.
//!
//! Backends: SQLite always; MariaDB / MySQL when `FAULTLINE_TEST_MYSQL_URL` is set (a server
//! URL without a database, e.g. `mysql://root@127.0.0.1:3306`). Each app gets its own uniquely
//! named database, dropped when the app is dropped. Under `CI=true` a missing URL is a failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faultline::config::Settings;
use faultline::startup::Application;
use faultline::storage::Store;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// The MySQL server URL for tests, `None` to skip (never under `CI=true`).
pub fn mysql_server_url() -> Option<String> {
    match std::env::var("FAULTLINE_TEST_MYSQL_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_string()),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but FAULTLINE_TEST_MYSQL_URL is not set: the MariaDB suite must run in CI"
            )
        }
        _ => {
            eprintln!("FAULTLINE_TEST_MYSQL_URL not set: skipping the MySQL/MariaDB variant");
            None
        }
    }
}

/// A database created for one test and dropped afterwards.
pub struct TestDb {
    pub url: String,
    server_url: Option<String>,
    name: String,
}

impl TestDb {
    pub fn new(backend: Backend, dir: &std::path::Path) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: format!("sqlite://{}", dir.join("test.db").display()),
                server_url: None,
                name: String::new(),
            }),
            Backend::MySql => {
                let server = mysql_server_url()?;
                let name = format!("faultline_test_{}", uuid::Uuid::new_v4().simple());
                run_admin(
                    &server,
                    &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
                );
                Some(TestDb {
                    url: format!("{server}/{name}"),
                    server_url: Some(server),
                    name,
                })
            }
        }
    }
}

/// Run one admin statement on its own runtime (usable from Drop).
fn run_admin(server: &str, sql: &str) {
    let (server, sql) = (server.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::MySqlConnection::connect(&server)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {server}: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("admin statement");
        });
    })
    .join()
    .expect("admin thread");
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(server) = &self.server_url {
            run_admin(server, &format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    pub settings: Settings,
}

/// The bootstrap admin token every test app accepts; `TestApp::client` sends it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A client that sends `token` as its bearer token.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Settings for a test app: port 0, its own database and WAL dir, a short join idle time,
/// the test admin token, and request limits high enough for polling loops.
pub fn test_settings(db_url: &str, wal_dir: PathBuf) -> Settings {
    let mut s = Settings::default();
    s.auth.admin_token = Some(faultline::auth::Secret(ADMIN_TOKEN.into()));
    s.rate_limit.per_token_per_minute = 100_000;
    s.rate_limit.per_ip_per_minute = 100_000;
    s.rate_limit.diagnose_per_token_per_minute = 10_000;
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = 2;
    s.database.url = db_url.to_string();
    s.database.max_connections = 4;
    s.ingest.wal_dir = wal_dir;
    s.pipeline.join_idle_ms = 300;
    s.pipeline.max_restart_backoff_ms = 500;
    s
}

/// Start an app; `None` when the backend is not available outside CI.
pub async fn spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    faultline::telemetry::init(&faultline::config::LogSettings {
        level: std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        format: faultline::config::LogFormat::Text,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDb::new(backend, dir.path())?;
    let mut settings = test_settings(&db.url, dir.path().join("wal"));
    tweak(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.store();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    Some(TestApp {
        address,
        store,
        client: client_with_token(ADMIN_TOKEN),
        handle,
        dir,
        db,
        settings,
    })
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// POST a body to the ingest endpoint with a query string and content type.
    pub async fn upload(
        &self,
        query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/log/auto-upload{query}")))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// GET /api/logs with a query string; panics unless 200.
    pub async fn logs(&self, query: &str) -> Vec<Value> {
        let resp = self
            .client
            .get(self.url(&format!("/api/logs{query}")))
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), 200, "GET /api/logs{query}");
        let body: Value = resp.json().await.expect("json");
        body["logs"].as_array().cloned().unwrap_or_default()
    }

    /// Poll `GET /api/faults{query}` until `pred` holds (15 s at most).
    pub async fn wait_faults(&self, query: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let resp = self
                .client
                .get(self.url(&format!("/api/faults{query}")))
                .send()
                .await
                .expect("request sent");
            assert_eq!(resp.status(), 200, "GET /api/faults{query}");
            let body: Value = resp.json().await.expect("json");
            let faults = body["faults"].as_array().cloned().unwrap_or_default();
            if pred(&faults) {
                return faults;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(15),
                "timed out waiting for faults{query}: {faults:#?}"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }

    /// Poll `/api/logs{query}` until `pred` holds for the result (or fail after 15 s).
    pub async fn wait_for_logs(
        &self,
        query: &str,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let logs = self.logs(query).await;
            if pred(&logs) {
                return logs;
            }
            if start.elapsed() > Duration::from_secs(15) {
                panic!("timed out waiting for {what}; last result: {logs:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("text")
    }

    /// Poll `/metrics` until `series` (as [`metric_value`] reads it) satisfies `pred` (15 s
    /// at most); returns the metrics text.
    pub async fn wait_metric(&self, series: &str, pred: impl Fn(f64) -> bool) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if pred(metric_value(&m, series)) {
                return m;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "timed out waiting for {series} (now {}):\n{m}",
                metric_value(&m, series)
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Stop this app and start a new one on the same database, WAL and settings.
    pub async fn restart(self) -> TestApp {
        self.stop().await;
        let app = Application::build(self.settings.clone())
            .await
            .expect("application rebuilds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (store, handle) = (app.store(), app.handle());
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address,
            store,
            handle,
            ..self
        }
    }

    /// POST a JSON body; the status and the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body, headers)
    }

    /// Send a bodyless request; its status.
    pub async fn status_of(&self, method: reqwest::Method, path: &str) -> u16 {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("json")
    }
}

/// Every record matching `query` (a `&`-joined filter string, may be empty), following
/// `next_cursor` across pages.
pub async fn all_logs(client: &reqwest::Client, base: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = client
            .get(format!("{base}/api/logs?limit=1000&{query}{cursor}"))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("json");
        out.extend(page["logs"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// Value of a sample line `name{labels} value` in a metrics text (0 when absent).
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Sum of every sample whose series starts with `prefix` (e.g. `name{` for all label sets).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Generate a `#[actix_web::test]` per backend from an `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod mysql {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::MySql).await
                }
            )*
        }
    };
}

/// A free TCP port on 127.0.0.1 (bound and released; a test's own services use it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// A real service a test starts (Alertmanager, Prometheus): killed when dropped.
pub struct Service {
    pub url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary named by `env_var`, or `None` to skip outside CI (a failure under `CI=true`).
pub fn service_binary(env_var: &str, what: &str) -> Option<String> {
    match std::env::var(env_var) {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {env_var} is not set")
        }
        _ => {
            eprintln!("{env_var} not set: skipping {what}");
            None
        }
    }
}

/// Start `bin` with `args(dir, port)` (a temp dir and a free port) and wait until
/// `http://127.0.0.1:{port}/-/ready` answers 200.
pub async fn start_service(
    bin: &str,
    args: impl FnOnce(&std::path::Path, u16) -> Vec<String>,
) -> Service {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = std::process::Command::new(bin)
        .args(args(dir.path(), port))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let svc = Service {
        url: format!("http://127.0.0.1:{port}"),
        child,
        _dir: dir,
    };
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/-/ready", svc.url)).await
            && r.status() == 200
        {
            return svc;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{bin} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
