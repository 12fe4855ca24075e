//! `Application::build(settings)`: the one way to assemble Faultline, used by `main` and by
//! the tests (which pass port 0 and a fresh database).
//!
//! Order: connect and migrate the store → read the ingest checkpoint → open (and recover) the
//! write-ahead log → start the pipeline → bind the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix::{Actor as _, Supervisor};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::actors::Pipeline;
use crate::actors::escalation::EscalationActor;
use crate::actors::parse::ParseConfig;
use crate::actors::pipeline::PipelineConfig;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::llm::client::LlmClient;
use crate::llm::escalator::{Escalator, EscalatorParts};
use crate::llm::prompt::Prompts;
use crate::metrics::Metrics;
use crate::parse::JoinerConfig;
use crate::rules::RulesHandle;
use crate::storage::Store;
use crate::wal::{WalOptions, WalWriter};

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Build everything and bind the listener; call `run_until_stopped` to serve.
    /// Must be called inside an actix System (`#[actix_web::main]` / `#[actix_web::test]`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = Arc::new(Metrics::new());
        let store = Store::connect(&settings.database)
            .await
            .context("connecting to the database")?
            .with_metrics(metrics.clone());
        if settings.database.migrate_on_start {
            store
                .migrate()
                .await
                .context("running database migrations")?;
        }
        let checkpoint = store
            .checkpoint()
            .await
            .context("reading the ingest checkpoint")?;
        let next_id = store
            .next_log_id()
            .await
            .context("reading the highest log id")?;
        let wal_opts = WalOptions {
            dir: settings.ingest.wal_dir.clone(),
            segment_bytes: settings.ingest.wal_segment_bytes,
            sync: settings.ingest.wal_sync,
            max_pending_lines: settings.ingest.max_pending_lines,
        };
        let (writer, recovery) =
            WalWriter::open(wal_opts, checkpoint, next_id).with_context(|| {
                format!(
                    "opening the write-ahead log in {}",
                    settings.ingest.wal_dir.display()
                )
            })?;
        let marks = store
            .stream_marks(checkpoint)
            .await
            .context("reading the replay watermarks")?;
        writer.shared().load_marks(marks);
        if recovery.lines_after_checkpoint > 0 || recovery.truncated_bytes > 0 {
            tracing::info!(
                lines = recovery.lines_after_checkpoint,
                segments = recovery.segments,
                truncated_bytes = recovery.truncated_bytes,
                "replaying write-ahead log lines not yet stored"
            );
        }

        let rules = Arc::new(RulesHandle::load(settings.rules.source()).map_err(|e| {
            anyhow::anyhow!("{e}")
                .context(format!("loading rules from {}", settings.rules.source()))
        })?);
        tracing::info!(source = %rules.source(), rules = rules.current().rules.len(), "rules loaded");
        metrics.wal_corrupt_bytes.inc_by(recovery.corrupt_bytes);
        let utc_offset_secs = settings
            .pipeline
            .utc_offset_secs()
            .map_err(|e| anyhow::anyhow!("pipeline.log_utc_offset: {e}"))?;
        let retention = (settings.database.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(settings.database.retention_days) * 86_400));
        let scheduler_shared = crate::actors::scheduler::SchedulerShared::new(
            settings.clusters.clone(),
            settings.scheduler.clone(),
            settings.snapshot_faults.clone(),
            store.clone(),
            metrics.clone(),
        );
        // The newest stored snapshot of each cluster is its view until the next run.
        for c in &settings.clusters {
            let latest = store
                .snapshot_history(&c.name, None, 1)
                .await
                .context("reading the latest cluster snapshots")?;
            if let Some(row) = latest.into_iter().next() {
                let mut views = scheduler_shared
                    .views
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                views.entry(c.name.clone()).or_default().latest = row.snapshot;
            }
        }
        let snapshots: Arc<dyn crate::rules::engine::SnapshotLookup> = Arc::new(
            crate::cluster::runner::ViewsLookup(scheduler_shared.views.clone()),
        );
        let escalator = Arc::new(build_escalator(
            &settings,
            &store,
            &metrics,
            &rules,
            snapshots.clone(),
        )?);
        if escalator.configured() {
            escalator
                .seed_budget()
                .await
                .context("reading the LLM spending of the last hour")?;
        }
        let escalation = escalator.configured().then(|| {
            let (e, m) = (escalator.clone(), metrics.clone());
            let interval = Duration::from_secs(settings.llm.sweep_interval_secs);
            Supervisor::start(move |ctx: &mut actix::Context<EscalationActor>| {
                ctx.set_mailbox_capacity(4);
                EscalationActor::new(e.clone(), m.clone(), interval)
            })
            .recipient()
        });
        let pipeline = Pipeline::start(
            PipelineConfig {
                parse: ParseConfig {
                    joiner: JoinerConfig {
                        max_record_lines: settings.pipeline.max_record_lines,
                        max_record_bytes: settings.pipeline.max_record_bytes,
                        utc_offset_secs,
                    },
                    read_batch_lines: settings.pipeline.read_batch_lines,
                    join_idle: settings.join_idle(),
                    join_idle_hit: Duration::from_millis(settings.pipeline.join_idle_hit_ms),
                    max_record_age: Duration::from_millis(settings.pipeline.max_record_age_ms),
                    batch_delay: Duration::from_millis(settings.pipeline.batch_delay_ms),
                    max_restart_backoff: Duration::from_millis(
                        settings.pipeline.max_restart_backoff_ms,
                    ),
                },
                mailbox_capacity: settings.pipeline.mailbox_capacity,
                wal_sync: settings.ingest.wal_sync,
                wal_sync_interval: Duration::from_millis(settings.ingest.wal_sync_interval_ms),
                retention,
                retention_interval: Duration::from_secs(settings.database.retention_interval_secs),
                rules: rules.clone(),
                unknown_findings: settings.rules.unknown_findings,
                snapshots: Some(snapshots),
                escalation,
            },
            writer,
            store.clone(),
            metrics.clone(),
        );

        let alerting = Arc::new(
            crate::alerting::runner::Alerting::new(
                store.clone(),
                metrics.clone(),
                settings.alerting.clone(),
            )
            .await
            .context("starting alerting")?,
        );
        let remediator = Arc::new(crate::remediation::Remediator::new(
            store.clone(),
            settings.remediation.clone(),
            settings.clusters.clone(),
            rules.clone(),
        ));
        remediator
            .recover()
            .await
            .context("recovering remediations interrupted by the last stop")?;
        {
            let (a, m, r) = (alerting.clone(), metrics.clone(), remediator.clone());
            let interval = Duration::from_secs(settings.alerting.evaluation_interval_secs);
            Supervisor::start(
                move |_: &mut actix::Context<crate::actors::alert::AlertActor>| {
                    crate::actors::alert::AlertActor::new(
                        a.clone(),
                        m.clone(),
                        r.clone(),
                        interval,
                        retention,
                    )
                },
            );
        }
        let scheduler = crate::actors::scheduler::SchedulerActor::new(
            scheduler_shared.clone(),
            Arc::new(crate::actors::scheduler::SystemClock),
            Duration::from_secs(1),
        )
        .start();
        let auth =
            Arc::new(crate::auth::Authenticator::new(&settings.auth).context("setting up [auth]")?);
        crate::cluster::checks::withhold_env([
            settings.llm.api_key_env.clone(),
            settings.auth.jwt.secret_env.clone(),
        ]);
        bootstrap_admin_token(&store, &auth, &settings).await?;
        let state = AppState {
            settings: Arc::new(settings.clone()),
            store,
            pipeline,
            metrics,
            rules,
            scheduler,
            scheduler_shared,
            escalator,
            alerting,
            remediator,
            auth: auth.clone(),
        };
        let listener = TcpListener::bind(settings.listen_addr())
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let gate = Arc::new(api::guard::Gate {
            auth,
            table: api::openapi::access_table()
                .context("reading the roles from the OpenAPI document")?,
            ingest_open: settings.auth.ingest_open,
            metrics_open: settings.auth.metrics_open,
            limiter: crate::auth::access::Limiter::new(&settings.rate_limit),
            client_ip_header: client_ip_header(&settings.rate_limit.client_ip_header)?,
            metrics: state.metrics.clone(),
        });
        actix_web::rt::spawn(housekeep_auth(state.store.clone(), Arc::downgrade(&gate)));
        let gate = web::Data::from(gate);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(gate.clone())
                .wrap(actix_web::middleware::Compress::default())
                .wrap(actix_web::middleware::from_fn(api::guard::gate))
                .configure(api::routes)
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(port, database = ?state.store.kind(), "faultline listening");
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// A handle to stop the server (tests, signal handling).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serve until the server is stopped (SIGINT/SIGTERM or a handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn client_ip_header(name: &str) -> anyhow::Result<Option<actix_web::http::header::HeaderName>> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    actix_web::http::header::HeaderName::from_bytes(name.as_bytes())
        .map(Some)
        .with_context(|| format!("rate_limit.client_ip_header `{name}` is not a header name"))
}

/// Every 10 s: re-read `api_tokens`, so engines that share a database agree on created and
/// revoked tokens within that time (the engine that revokes refuses at once); every minute:
/// forget recovered rate-limit keys.
/// Ends once the server (the gate's other holder) is gone.
async fn housekeep_auth(store: Store, gate: std::sync::Weak<api::guard::Gate>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    for n in 1u64.. {
        tick.tick().await;
        let Some(gate) = gate.upgrade() else { return };
        if n % 6 == 0
            && let Some(l) = &gate.limiter
        {
            l.prune();
        }
        match store.tokens().await {
            Ok(rows) => gate.auth.set_stored(&rows),
            Err(e) => {
                tracing::warn!(error = %e, "re-reading API tokens failed; the previous set stays")
            }
        }
    }
}

/// Load the run-time tokens. When no way to authenticate exists at all (no `[auth] tokens`,
/// no JWT, no `FAULTLINE_ADMIN_TOKEN`, no active stored token), create an admin token, store
/// its hash and print it once — so a first start gives a working, protected API.
async fn bootstrap_admin_token(
    store: &Store,
    auth: &crate::auth::Authenticator,
    settings: &Settings,
) -> anyhow::Result<()> {
    let mut rows = store.tokens().await.context("reading API tokens")?;
    let active = rows.iter().any(|r| r.revoked_at.is_none());
    if !auth.has_configured_credentials() && !active {
        let token = crate::auth::generate_token().context("generating the first admin token")?;
        let hash = crate::auth::to_hex(&crate::auth::hash_token(&token));
        let port = settings.listen_addr().port();
        // Printed (standard error), not logged. Printed before it is stored: a token nobody
        // saw must not become the only admin credential.
        use std::io::Write as _;
        writeln!(
            std::io::stderr(),
            "\n================================================================================\n\
             No API token was configured, so Faultline created an admin token.\n\
             It is shown ONCE (only its SHA-256 is stored):\n\n    {token}\n\n\
             Use it as a bearer token, e.g.\n\
             \x20   curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/faults\n\
             or in Swagger UI at http://127.0.0.1:{port}/docs (Authorize).\n\
             Create narrower tokens with POST /api/tokens (e.g. role `ingest` for Flume).\n\
             In production, prefer [[auth.tokens]] or FAULTLINE_ADMIN_TOKEN.\n\
             ================================================================================\n"
        )
        .context("printing the first admin token")?;
        let stored = store
            .insert_token(
                "initial-admin",
                "admin",
                &hash,
                "first start",
                crate::now_ms(),
            )
            .await;
        match stored {
            Ok(_) => {
                tracing::warn!("created the first admin token (printed on standard error once)")
            }
            // Another engine on the same database created its own at the same moment.
            Err(e) if e.is_unique_violation() => tracing::warn!(
                "another engine created the first admin token at the same time: the token \
                 printed above was not stored; use the one that engine printed"
            ),
            Err(e) => return Err(e).context("storing the first admin token"),
        }
        rows = store.tokens().await.context("reading API tokens")?;
    }
    auth.set_stored(&rows);
    let stored_admin = rows
        .iter()
        .any(|r| r.revoked_at.is_none() && r.role == "admin");
    let configured_admin = settings.auth.admin_token.is_some()
        || settings
            .auth
            .tokens
            .iter()
            .any(|t| t.role == crate::auth::Role::Admin)
        || !settings.auth.jwt.algorithm.is_empty();
    if !stored_admin && !configured_admin {
        tracing::warn!(
            "no admin credential exists: rules reloads and tokens cannot be managed until \
             FAULTLINE_ADMIN_TOKEN or an admin entry in [[auth.tokens]] is set"
        );
    }
    Ok(())
}

/// The LLM escalation service: prompts checked at start (a bad template stops the start with
/// its file and reason); without `[llm] base_url` it only answers "not configured".
fn build_escalator(
    settings: &Settings,
    store: &Store,
    metrics: &Arc<Metrics>,
    rules: &Arc<RulesHandle>,
    snapshots: Arc<dyn crate::rules::engine::SnapshotLookup>,
) -> anyhow::Result<Escalator> {
    let llm = &settings.llm;
    let prompts = Prompts::load(llm.prompts_dir().as_deref(), llm.language)
        .context("loading the LLM prompts")?;
    let client = if llm.enabled() {
        let key = llm
            .api_key(|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("llm.api_key_file: {e}"))?;
        let client = LlmClient::new(llm, key, Some(metrics.llm_retries.clone()))
            .map_err(|e| anyhow::anyhow!("llm: {e}"))?;
        tracing::info!(base_url = %crate::llm::settings::display_url(&llm.base_url), model = %llm.model, prompts = prompts.version(), "LLM escalation enabled");
        Some(client)
    } else {
        tracing::info!("no LLM configured ([llm] base_url): unknown faults stay pending");
        None
    };
    let known_hosts = settings
        .clusters
        .iter()
        .flat_map(|c| c.host_names())
        .collect();
    Ok(Escalator::new(EscalatorParts {
        store: store.clone(),
        metrics: metrics.clone(),
        settings: llm.clone(),
        client,
        prompts,
        rules: rules.clone(),
        snapshots: Some(snapshots),
        thresholds: settings.snapshot_faults.clone(),
        known_hosts,
    }))
}
