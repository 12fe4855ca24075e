//! Settings: built-in defaults, then `faultline.toml`, then `FAULTLINE_*` environment overrides.
//!
//! Where the file comes from: `--config PATH`, else `./faultline.toml` when it exists, else
//! none (the defaults run with zero setup: SQLite `./faultline.db`, listen `0.0.0.0:8000`).
//!
//! Environment overrides: `FAULTLINE_<SECTION>__<KEY>=value` sets `[section] key` (values are
//! read as TOML scalars when they parse as one, else as strings), plus the short aliases
//! `FAULTLINE_DATABASE_URL` (= `database.url`) and `FAULTLINE_LISTEN` (= `server.listen`).
//! Unknown keys — in the file or through an override — and bad values stop the start with the
//! source, the key and the reason.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wal::SyncPolicy;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub ingest: IngestSettings,
    pub pipeline: PipelineSettings,
    pub rules: RulesSettings,
    pub log: LogSettings,
    /// The Hadoop clusters watched by the scheduler (`[[clusters]]`); none by default.
    pub clusters: Vec<crate::cluster::settings::ClusterSettings>,
    pub scheduler: crate::cluster::settings::SchedulerSettings,
    pub snapshot_faults: crate::cluster::snapshot::Thresholds,
    /// The OpenAI-compatible LLM unknown faults are escalated to (none by default).
    pub llm: crate::llm::settings::LlmSettings,
    /// Notifications: receivers, noise control, inhibition, maintenance windows.
    pub alerting: crate::alerting::settings::AlertingSettings,
    /// Approved remediation scripts.
    pub remediation: crate::remediation::settings::RemediationSettings,
    /// API tokens, roles and JWT validation.
    pub auth: crate::auth::AuthSettings,
    /// Request limits on the query and diagnosis endpoints.
    pub rate_limit: crate::auth::RateLimitSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSettings {
    /// Directory of rule files (`<area>/<id>.toml`); empty = the rule pack built into the
    /// binary. `POST /api/rules/reload` re-reads it.
    pub dir: String,
    /// Report records that no rule explains and that look like failures as `unknown`.
    pub unknown_findings: bool,
    /// Where confirming an LLM diagnosis writes its draft rule (loaded with the rules, as
    /// `drafts/<id>.toml`) and the draft's case file; empty = drafts are not loaded.
    pub drafts_dir: String,
    pub draft_cases_dir: String,
}

impl Default for RulesSettings {
    fn default() -> Self {
        RulesSettings {
            dir: String::new(),
            unknown_findings: true,
            drafts_dir: "rules/drafts".into(),
            draft_cases_dir: "tests/rules/drafts".into(),
        }
    }
}

impl RulesSettings {
    pub fn source(&self) -> crate::rules::RuleSource {
        let base = if self.dir.trim().is_empty() {
            crate::rules::RuleSource::Embedded
        } else {
            crate::rules::RuleSource::Dir(PathBuf::from(self.dir.trim()))
        };
        crate::rules::RuleSource::with_drafts(base, &self.drafts_dir)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// HTTP worker threads; 0 = one per CPU core.
    pub workers: usize,
    /// Largest accepted request body; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path.db` (created if missing) or `mysql://user:pass@host:3306/db` (MySQL 8 / MariaDB).
    pub url: String,
    pub max_connections: u32,
    /// Delete `system_logs` rows received more than this many days ago; 0 keeps them forever.
    pub retention_days: u32,
    /// How often the retention sweep runs.
    pub retention_interval_secs: u64,
    /// Run migrations at start (`faultline migrate` runs them on demand).
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Directory of the ingest write-ahead log.
    pub wal_dir: PathBuf,
    /// When the WAL calls fdatasync: `never`, `interval` or `always` (see README).
    pub wal_sync: SyncPolicy,
    pub wal_sync_interval_ms: u64,
    pub wal_segment_bytes: u64,
    /// Accepted-but-not-yet-stored lines above which ingest answers 503 + Retry-After.
    pub max_pending_lines: u64,
    /// Seconds put in `Retry-After` on 503.
    pub retry_after_secs: u64,
    /// Cluster name for lines whose request names none.
    pub default_cluster: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Messages each stage's mailbox holds before `send().await` waits.
    pub mailbox_capacity: usize,
    /// Lines the Parse stage reads from the WAL per step.
    pub read_batch_lines: usize,
    /// How long new lines are gathered before the Parse stage takes them (fewer, larger
    /// database transactions under many small requests; adds at most this much latency).
    pub batch_delay_ms: u64,
    /// An open multi-line record is closed after this much silence on its stream.
    pub join_idle_ms: u64,
    /// A record whose first line hits a rule literal is closed after this much silence
    /// instead (so a fault is recorded within milliseconds; its stack trace lines arrive
    /// together in practice).
    pub join_idle_hit_ms: u64,
    /// A record stops absorbing continuation lines past this many lines / bytes; a single
    /// line longer than `max_record_bytes` is stored cut, with a marker.
    pub max_record_lines: u32,
    pub max_record_bytes: usize,
    /// A record is closed this long after its first line even if lines keep trickling in
    /// (an open record holds the ingest checkpoint back).
    pub max_record_age_ms: u64,
    /// Offset of the cluster's wall clock from UTC (`+08:00`, `-05:00`, `Z`): log4j
    /// timestamps carry no zone.
    pub log_utc_offset: String,
    /// Longest pause between restarts of a failing stage.
    pub max_restart_backoff_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// tracing filter, e.g. `info` or `faultline=debug,actix_web=info` (RUST_LOG wins if set).
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "0.0.0.0:8000".into(),
            workers: 0,
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_timeout_secs: 10,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://faultline.db".into(),
            max_connections: 8,
            retention_days: 30,
            retention_interval_secs: 3600,
            migrate_on_start: true,
        }
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            wal_dir: PathBuf::from("faultline-wal"),
            wal_sync: SyncPolicy::Interval,
            wal_sync_interval_ms: 1000,
            wal_segment_bytes: 64 * 1024 * 1024,
            max_pending_lines: 2_000_000,
            retry_after_secs: 2,
            default_cluster: "default".into(),
        }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            mailbox_capacity: 16,
            read_batch_lines: 16384,
            batch_delay_ms: 5,
            join_idle_ms: 2000,
            join_idle_hit_ms: 50,
            max_record_lines: 1000,
            max_record_bytes: 1024 * 1024,
            max_record_age_ms: 60_000,
            log_utc_offset: "Z".into(),
            max_restart_backoff_ms: 30_000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// A configuration problem, naming where it came from, which key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.reason)
        } else {
            write!(f, "{}: key `{}`: {}", self.source, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(
    source: impl Into<String>,
    key: impl Into<String>,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError {
        source: source.into(),
        key: key.into(),
        reason: reason.into(),
    }
}

/// Where the settings were read from (for `check-config` and the startup log).
#[derive(Debug, Clone)]
pub struct LoadedSettings {
    pub settings: Settings,
    pub file: Option<PathBuf>,
    pub env_overrides: Vec<String>,
}

/// The backend chosen by the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    MySql,
}

impl DatabaseSettings {
    pub fn kind(&self) -> Option<DbKind> {
        if self.url.starts_with("sqlite:") {
            Some(DbKind::Sqlite)
        } else if self.url.starts_with("mysql://") || self.url.starts_with("mariadb://") {
            Some(DbKind::MySql)
        } else {
            None
        }
    }
}

impl PipelineSettings {
    /// `log_utc_offset` in seconds east of UTC.
    pub fn utc_offset_secs(&self) -> Result<i32, String> {
        parse_utc_offset(&self.log_utc_offset)
    }
}

fn parse_utc_offset(s: &str) -> Result<i32, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let bad = || format!("`{s}` is not a UTC offset like `+08:00`, `-05:30` or `Z`");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// The bootstrap admin token (see `[auth]`); read from the environment only.
pub const ADMIN_TOKEN_ENV: &str = "FAULTLINE_ADMIN_TOKEN";
const ENV_PREFIX: &str = "FAULTLINE_";
const ENV_ALIASES: [(&str, &str, &str); 2] = [
    ("FAULTLINE_DATABASE_URL", "database", "url"),
    ("FAULTLINE_LISTEN", "server", "listen"),
];

impl Settings {
    /// Load with the documented precedence. `explicit` is the `--config` argument.
    pub fn load(explicit: Option<&Path>) -> Result<LoadedSettings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from("faultline.toml");
                default.exists().then_some(default)
            }
        };
        let text =
            match &file {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    err(path.display().to_string(), "", format!("cannot read: {e}"))
                })?),
                None => None,
            };
        let source = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into());
        let (settings, env_overrides) = Self::from_parts(&source, text.as_deref(), &env)?;
        Ok(LoadedSettings {
            settings,
            file,
            env_overrides,
        })
    }

    /// Pure core of [`Settings::load`]: file text (if any) plus environment pairs.
    pub fn from_parts(
        source: &str,
        text: Option<&str>,
        env: &[(String, String)],
    ) -> Result<(Settings, Vec<String>), ConfigError> {
        let mut table: toml::Table = match text {
            Some(t) => t.parse().map_err(|e: toml::de::Error| {
                err(source, "", format!("invalid TOML: {}", e.message()))
            })?,
            None => toml::Table::new(),
        };
        // Validate the file alone first so its errors name the file, not the environment.
        Self::from_table(source, table.clone())?;

        let mut applied = Vec::new();
        let mut sorted: Vec<&(String, String)> = env.iter().collect();
        sorted.sort();
        for (name, value) in sorted {
            let target = ENV_ALIASES
                .iter()
                .find(|(alias, _, _)| alias == name)
                .map(|(_, s, k)| vec![s.to_string(), k.to_string()])
                .or_else(|| {
                    let rest = name.strip_prefix(ENV_PREFIX)?;
                    rest.contains("__")
                        .then(|| rest.split("__").map(|p| p.to_ascii_lowercase()).collect())
                });
            let Some(path) = target else { continue };
            let src = format!("environment variable {name}");
            set_path(&mut table, &path, env_value(value))
                .map_err(|reason| err(&src, path.join("."), reason))?;
            // Check each override's type as it is applied so an error names the variable.
            Self::deserialize(&src, table.clone())?;
            applied.push((name.clone(), path.join(".")));
        }
        // Checks across keys run once every override is in (`llm.base_url` and `llm.model`
        // may come from two variables). An error names the variable that set its key, else
        // one that set a key of the same section, else the file.
        let mut settings = Self::deserialize(source, table)?;
        // The bootstrap admin token is taken from the environment only (never a file key).
        if let Some((name, token)) = env.iter().find(|(n, _)| n == ADMIN_TOKEN_ENV) {
            settings.auth.admin_token = Some(crate::auth::Secret(token.clone()));
            applied.push((name.clone(), "auth.admin_token".into()));
        }
        if let Err(mut e) = settings.validate(source) {
            let section = e.key.split('.').next().unwrap_or("").to_string();
            let by = applied.iter().find(|(_, k)| *k == e.key).or_else(|| {
                applied
                    .iter()
                    .find(|(_, k)| k.split('.').next() == Some(section.as_str()))
            });
            if let Some((name, _)) = by {
                e.source = format!("environment variable {name}");
            }
            return Err(e);
        }
        Ok((settings, applied.into_iter().map(|(n, _)| n).collect()))
    }

    fn from_table(source: &str, table: toml::Table) -> Result<Settings, ConfigError> {
        let settings = Self::deserialize(source, table)?;
        settings.validate(source)?;
        Ok(settings)
    }

    fn deserialize(source: &str, table: toml::Table) -> Result<Settings, ConfigError> {
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            err(source, key, e.inner().to_string().trim().to_string())
        })
    }

    /// Checks serde cannot express.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let e = |key: &str, reason: String| Err(err(source, key, reason));
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return e(
                "server.listen",
                format!(
                    "`{}` is not an address like 0.0.0.0:8000",
                    self.server.listen
                ),
            );
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return e(
                "server.max_body_bytes",
                "must be between 1024 and 268435456 (256 MiB)".into(),
            );
        }
        if self.database.kind().is_none() {
            return e(
                "database.url",
                format!(
                    "`{}` is neither sqlite:// nor mysql:// (MySQL 8 / MariaDB)",
                    redact_url(&self.database.url)
                ),
            );
        }
        if self.database.max_connections == 0 {
            return e("database.max_connections", "must be at least 1".into());
        }
        if self.database.retention_interval_secs == 0 {
            return e(
                "database.retention_interval_secs",
                "must be at least 1".into(),
            );
        }
        if self.ingest.wal_dir.as_os_str().is_empty() {
            return e("ingest.wal_dir", "must not be empty".into());
        }
        if self.ingest.wal_segment_bytes < 4096 {
            return e("ingest.wal_segment_bytes", "must be at least 4096".into());
        }
        if self.ingest.wal_sync_interval_ms == 0 {
            return e("ingest.wal_sync_interval_ms", "must be at least 1".into());
        }
        if self.ingest.max_pending_lines == 0 {
            return e("ingest.max_pending_lines", "must be at least 1".into());
        }
        if self.ingest.default_cluster.trim().is_empty() {
            return e("ingest.default_cluster", "must not be empty".into());
        }
        if self.pipeline.mailbox_capacity == 0 {
            return e("pipeline.mailbox_capacity", "must be at least 1".into());
        }
        if self.pipeline.read_batch_lines == 0 {
            return e("pipeline.read_batch_lines", "must be at least 1".into());
        }
        if self.pipeline.max_record_lines == 0 {
            return e("pipeline.max_record_lines", "must be at least 1".into());
        }
        if self.pipeline.max_record_age_ms == 0 {
            return e("pipeline.max_record_age_ms", "must be at least 1".into());
        }
        if self.pipeline.join_idle_ms == 0 {
            return e("pipeline.join_idle_ms", "must be at least 1".into());
        }
        if self.pipeline.join_idle_hit_ms == 0 {
            return e("pipeline.join_idle_hit_ms", "must be at least 1".into());
        }
        if let Err(reason) = self.pipeline.utc_offset_secs() {
            return e("pipeline.log_utc_offset", reason);
        }
        if let Err(reason) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return e("log.level", format!("not a valid filter: {reason}"));
        }
        if let Err((key, reason)) = crate::cluster::settings::validate(
            &self.clusters,
            &self.scheduler,
            &self.snapshot_faults,
        ) {
            return e(&key, reason);
        }
        if let Err((key, reason)) = self.llm.validate() {
            return e(&key, reason);
        }
        if let Err((key, reason)) = self.alerting.compile() {
            return e(&key, reason);
        }
        if let Err((key, reason)) = self.remediation.validate() {
            return e(&key, reason);
        }
        let auth = self.auth.problems().into_iter();
        if let Some((key, reason)) = auth.chain(self.rate_limit.problems()).next() {
            return e(&key, reason);
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // validate() guarantees it parses; fall back to the default rather than panic.
        self.server
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8000)))
    }

    pub fn join_idle(&self) -> Duration {
        Duration::from_millis(self.pipeline.join_idle_ms)
    }

    /// The settings as TOML with secrets redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// A copy safe to show: database password, receiver URLs (which often carry a token)
    /// and signing secrets hidden. Token hashes stay (they are not secrets).
    pub fn redacted(&self) -> Settings {
        let mut copy = self.clone();
        copy.database.url = redact_url(&copy.database.url);
        for r in &mut copy.alerting.receivers {
            r.url = redact_receiver_url(&r.url);
            if !r.secret.is_empty() {
                r.secret = "***".into();
            }
        }
        copy
    }
}

/// A receiver URL as `scheme://host[:port]/***`: robot and webhook tokens live in the path
/// (Slack, many webhooks) or the query string (DingTalk, WeCom).
fn redact_receiver_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if authority.len() == rest.len() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/***")
    }
}

/// Hide the password in `scheme://user:password@host/...`.
///
/// ```
/// assert_eq!(
///     faultline::config::redact_url("mysql://faultline:s3cret@db:3306/faultline"),
///     "mysql://faultline:***@db:3306/faultline"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn env_value(raw: &str) -> toml::Value {
    // Accept TOML scalars (numbers, booleans, quoted strings); anything else is a string.
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: Option<&str>, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_parts("faultline.toml", text, &env).map(|(s, _)| s)
    }

    #[test]
    fn defaults_run_with_zero_setup() {
        let s = load(None, &[]).unwrap();
        assert_eq!(s.database.url, "sqlite://faultline.db");
        assert_eq!(s.server.listen, "0.0.0.0:8000");
        assert_eq!(s.database.kind(), Some(DbKind::Sqlite));
    }

    #[test]
    fn keys_checked_together_may_come_from_two_variables() {
        let s = load(
            None,
            &[
                ("FAULTLINE_LLM__BASE_URL", "http://localhost:11434/v1"),
                ("FAULTLINE_LLM__MODEL", "qwen2.5:7b"),
            ],
        )
        .unwrap();
        assert_eq!(s.llm.model, "qwen2.5:7b");
        let e = load(
            None,
            &[("FAULTLINE_LLM__BASE_URL", "http://localhost:11434/v1")],
        )
        .unwrap_err();
        assert_eq!(
            (e.source.as_str(), e.key.as_str()),
            ("environment variable FAULTLINE_LLM__BASE_URL", "llm.model")
        );
    }

    #[test]
    fn file_values_and_env_overrides() {
        let s = load(
            Some("[server]\nlisten = \"127.0.0.1:9000\"\n[database]\nretention_days = 7\n"),
            &[
                ("FAULTLINE_DATABASE_URL", "mysql://u:p@127.0.0.1:3306/f"),
                ("FAULTLINE_PIPELINE__JOIN_IDLE_MS", "500"),
                ("FAULTLINE_TEST_MYSQL_URL", "ignored: not a config key"),
            ],
        )
        .unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:9000");
        assert_eq!(s.database.retention_days, 7);
        assert_eq!(s.database.kind(), Some(DbKind::MySql));
        assert_eq!(s.pipeline.join_idle_ms, 500);
        let s = load(None, &[("FAULTLINE_LISTEN", "127.0.0.1:1234")]).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:1234");
    }

    #[test]
    fn unknown_keys_are_rejected_with_source_and_key() {
        let e = load(Some("[server]\nlisten = \"0.0.0.0:1\"\nlisen = 3\n"), &[]).unwrap_err();
        assert_eq!(e.source, "faultline.toml");
        assert_eq!(e.key, "server.lisen");
        assert!(e.reason.contains("unknown field"), "{e}");

        let e = load(None, &[("FAULTLINE_SERVER__NOPE", "1")]).unwrap_err();
        assert_eq!(e.source, "environment variable FAULTLINE_SERVER__NOPE");
        assert_eq!(e.key, "server.nope");

        let e = load(Some("[nosuch]\nx = 1\n"), &[]).unwrap_err();
        assert_eq!(e.key, "nosuch");
    }

    #[test]
    fn bad_values_are_rejected_with_reason() {
        let e = load(Some("[server]\nlisten = \"nonsense\"\n"), &[]).unwrap_err();
        assert_eq!(e.key, "server.listen");
        assert!(
            e.to_string()
                .contains("faultline.toml: key `server.listen`"),
            "{e}"
        );

        let e = load(Some("[database]\nurl = \"postgres://x\"\n"), &[]).unwrap_err();
        assert_eq!(e.key, "database.url");

        let e = load(Some("[database]\nmax_connections = \"many\"\n"), &[]).unwrap_err();
        assert!(e.reason.contains("invalid type"), "{e}");

        let e = load(Some("[pipeline]\nlog_utc_offset = \"+25:00\"\n"), &[]).unwrap_err();
        assert_eq!(e.key, "pipeline.log_utc_offset");

        let e = load(Some("[ingest]\nwal_sync = \"sometimes\"\n"), &[]).unwrap_err();
        assert!(e.reason.contains("sometimes"), "{e}");

        let e = load(Some("server = [\n"), &[]).unwrap_err();
        assert!(e.reason.starts_with("invalid TOML"), "{e}");

        let e = load(None, &[("FAULTLINE_LISTEN", "x")]).unwrap_err();
        assert_eq!(e.source, "environment variable FAULTLINE_LISTEN");
    }

    #[test]
    fn the_shipped_example_is_valid_and_equals_the_defaults() {
        let text = include_str!("../faultline.example.toml");
        let s = load(Some(text), &[]).unwrap();
        let d = Settings::default();
        assert_eq!(s.to_redacted_toml(), d.to_redacted_toml());
    }

    #[test]
    fn clusters_and_scheduler() {
        let text = r#"
[[clusters]]
name = "prod"
namenodes = ["http://nn1:9870", "http://nn2:9870"]
resourcemanagers = ["http://rm1:8088"]
workers = ["w1", "w2"]
flume_agents = [{ name = "a1", url = "http://w1:41414/metrics" }]
ssh_user = "hadoop"

[scheduler]
ports = "0 */5 * * * *"

[snapshot_faults]
flume_consecutive_polls = 2
"#;
        let s = load(Some(text), &[]).unwrap();
        assert_eq!(s.clusters.len(), 1);
        assert_eq!(s.clusters[0].workers, ["w1", "w2"]);
        assert_eq!(s.clusters[0].hadoop_version, 3, "defaults fill the rest");
        assert_eq!(s.snapshot_faults.flume_consecutive_polls, 2);

        let e = load(Some("[[clusters]]\nname = \"x\"\nnamenode = []\n"), &[]).unwrap_err();
        assert!(e.reason.contains("unknown field `namenode`"), "{e}");
        let e = load(Some("[scheduler]\nssh = \"*/15 * * * *\"\n"), &[]).unwrap_err();
        assert_eq!(e.key, "scheduler.ssh");
        let e = load(None, &[("FAULTLINE_SCHEDULER__TIMEOUT_SECS", "0")]).unwrap_err();
        assert_eq!(e.key, "scheduler.timeout_secs");
    }

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Ok(28800));
        assert_eq!(parse_utc_offset("-05:30"), Ok(-19800));
        assert_eq!(parse_utc_offset("Z"), Ok(0));
        assert!(parse_utc_offset("8").is_err());
    }

    #[test]
    fn redacts_receiver_urls_to_their_host() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/XYZSECRET",
                "https://hooks.slack.com/***",
            ),
            (
                "https://oapi.dingtalk.com/robot/send?access_token=SECRET",
                "https://oapi.dingtalk.com/***",
            ),
            ("http://user:SECRET@am:9093", "http://am:9093"),
            ("not a url SECRET", "***"),
            (
                "https://hooks.example\\services\\SECRET",
                "https://hooks.example/***",
            ),
        ] {
            assert_eq!(super::redact_receiver_url(url), shown);
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("mysql://root:secret@127.0.0.1:3306/x"),
            "mysql://root:***@127.0.0.1:3306/x"
        );
        assert_eq!(redact_url("sqlite://f.db"), "sqlite://f.db");
    }
}
