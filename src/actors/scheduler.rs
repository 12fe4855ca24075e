//! The scheduler: runs each cluster's checks on their cron schedules (and on demand), one
//! job per cluster per tick for the checks due together, never two runs of the same check at
//! once (an overlap is skipped and counted). Time comes from a [`Clock`] and ticks are
//! messages, so tests drive it without waiting for wall time. The work itself is in
//! `cluster::runner`; all state is shared (`Arc`), so this actor is only the clock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::TimeZone as _;
use serde::Serialize;

use crate::cluster::checks::CheckContext;
use crate::cluster::runner::{self, RunReport, Views};
use crate::cluster::settings::{CHECKS, ClusterSettings, SchedulerSettings};
use crate::cluster::snapshot::Thresholds;
use crate::metrics::Metrics;
use crate::storage::Store;

/// Where the scheduler's time comes from.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}

/// The last run of a check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastRun {
    pub started_at: i64,
    pub finished_at: i64,
    /// `success` when every request / probe / command of the check succeeded, else the
    /// worst status seen (`timeout`, `failed`), or `error` when it could not be recorded.
    pub status: String,
    pub message: String,
}

/// One check of one cluster, as `GET /api/health-checks` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckState {
    pub cluster: String,
    pub check: String,
    /// Cron expression; empty = on demand only.
    pub schedule: String,
    pub next_due_ms: Option<i64>,
    pub running: bool,
    pub runs: u64,
    /// Scheduled runs skipped because the previous one was still going.
    pub skipped: u64,
    pub last: Option<LastRun>,
}

/// Everything a job needs, shared with the API.
#[derive(Clone)]
pub struct SchedulerShared {
    pub clusters: Arc<Vec<ClusterSettings>>,
    pub settings: Arc<SchedulerSettings>,
    pub thresholds: Arc<Thresholds>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub views: Views,
    pub checks: Arc<Mutex<Vec<CheckState>>>,
    pub ssh_program: PathBuf,
}

impl SchedulerShared {
    pub fn new(
        clusters: Vec<ClusterSettings>,
        settings: SchedulerSettings,
        thresholds: Thresholds,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> SchedulerShared {
        let mut checks = Vec::new();
        for c in &clusters {
            for name in CHECKS {
                checks.push(CheckState {
                    cluster: c.name.clone(),
                    check: name.into(),
                    schedule: settings.schedule_of(name).trim().to_string(),
                    next_due_ms: None,
                    running: false,
                    runs: 0,
                    skipped: 0,
                    last: None,
                });
            }
        }
        SchedulerShared {
            clusters: Arc::new(clusters),
            settings: Arc::new(settings),
            thresholds: Arc::new(thresholds),
            store,
            metrics,
            views: Views::default(),
            checks: Arc::new(Mutex::new(checks)),
            ssh_program: PathBuf::from("ssh"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CheckState>> {
        self.checks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mark `names` of `cluster` running; the ones already running are left out (and
    /// counted as skipped when `scheduled`).
    fn claim(&self, cluster: &str, names: &[String], scheduled: bool) -> Vec<String> {
        let mut all = self.lock();
        let mut claimed = Vec::new();
        for s in all
            .iter_mut()
            .filter(|s| s.cluster == cluster && names.contains(&s.check))
        {
            if s.running {
                if scheduled {
                    s.skipped += 1;
                    self.metrics
                        .check_overlaps
                        .with_label_values(&[&s.check])
                        .inc();
                }
                continue;
            }
            s.running = true;
            claimed.push(s.check.clone());
        }
        claimed
    }

    /// Run `names` of `cluster` now, record everything, release the checks.
    pub async fn run_job(
        &self,
        cluster: &str,
        names: Vec<String>,
        trigger: &str,
    ) -> Option<RunReport> {
        let settings = self.clusters.iter().find(|c| c.name == cluster)?.clone();
        let names = self.claim(cluster, &names, trigger == "schedule");
        if names.is_empty() {
            return None;
        }
        let started = crate::now_ms();
        let ctx = CheckContext::new(
            Duration::from_secs(self.settings.timeout_secs),
            self.settings.output_max_bytes,
            trigger,
        );
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (run, logs) =
            runner::run_checks(&ctx, &settings, &self.settings, &refs, &self.ssh_program).await;
        // Per check: the worst status of its runs, and the first error message.
        let mut outcome: HashMap<String, (String, String)> = HashMap::new();
        for l in &logs {
            let check = if l.kind == "script" {
                "scripts"
            } else {
                l.name.as_str()
            };
            self.metrics
                .check_runs
                .with_label_values(&[check, &l.status])
                .inc();
            if let Some(ms) = l.duration_ms {
                self.metrics
                    .check_seconds
                    .with_label_values(&[check])
                    .observe(ms.max(0) as f64 / 1000.0);
            }
            let e = outcome
                .entry(check.to_string())
                .or_insert_with(|| ("success".into(), String::new()));
            let rank = |s: &str| match s {
                "success" => 0,
                "timeout" => 1,
                _ => 2,
            };
            if rank(&l.status) > rank(&e.0) {
                e.0 = l.status.clone();
            }
            if e.1.is_empty() && !l.stderr.is_empty() && l.status != "success" {
                e.1 = l.stderr.clone();
            }
        }
        for err in &run.errors {
            let check = err.source.split(':').next().unwrap_or("").to_string();
            let e = outcome
                .entry(check)
                .or_insert_with(|| ("failed".into(), String::new()));
            if e.0 == "success" {
                e.0 = "failed".into();
            }
            if e.1.is_empty() {
                e.1 = err.message.clone();
            }
        }
        let report = runner::record_run(
            &self.store,
            &self.views,
            &self.thresholds,
            self.settings.keep_snapshots,
            names.clone(),
            run,
            logs,
        )
        .await;
        if let Ok(r) = &report {
            let views = self.views.read().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = views.get(&r.cluster) {
                runner::publish(&self.metrics, &v.latest, r.health);
            }
        }
        let finished = crate::now_ms();
        let mut all = self.lock();
        for s in all
            .iter_mut()
            .filter(|s| s.cluster == cluster && names.contains(&s.check))
        {
            s.running = false;
            s.runs += 1;
            let (status, message) = match &report {
                Err(e) => (
                    "error".to_string(),
                    format!("recording the run failed: {e}"),
                ),
                Ok(_) => outcome
                    .get(&s.check)
                    .cloned()
                    .unwrap_or_else(|| ("skipped".into(), "nothing configured to check".into())),
            };
            s.last = Some(LastRun {
                started_at: started,
                finished_at: finished,
                status,
                message,
            });
        }
        drop(all);
        match report {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(cluster, error = %e, "recording a health-check run failed");
                None
            }
        }
    }

    /// The checks of each cluster due in `(after, now]`, and every check's next due time.
    fn due(&self, after_ms: i64, now_ms: i64) -> Vec<(String, Vec<String>)> {
        let to_dt = |ms: i64| chrono::Utc.timestamp_millis_opt(ms).single();
        let mut due: Vec<(String, Vec<String>)> = Vec::new();
        let mut all = self.lock();
        for s in all.iter_mut() {
            let Some(schedule) = self.settings.schedule(&s.check) else {
                s.next_due_ms = None;
                continue;
            };
            let (Some(after), Some(now)) = (to_dt(after_ms), to_dt(now_ms)) else {
                continue;
            };
            if schedule.after(&after).next().is_some_and(|t| t <= now) {
                match due.iter_mut().find(|(c, _)| *c == s.cluster) {
                    Some((_, names)) => names.push(s.check.clone()),
                    None => due.push((s.cluster.clone(), vec![s.check.clone()])),
                }
            }
            s.next_due_ms = schedule.after(&now).next().map(|t| t.timestamp_millis());
        }
        due
    }
}

pub struct SchedulerActor {
    shared: SchedulerShared,
    clock: Arc<dyn Clock>,
    /// How often the actor looks at the clock (cron has second resolution).
    interval: Duration,
    last_tick_ms: Option<i64>,
}

impl SchedulerActor {
    pub fn new(shared: SchedulerShared, clock: Arc<dyn Clock>, interval: Duration) -> Self {
        SchedulerActor {
            shared,
            clock,
            interval,
            last_tick_ms: None,
        }
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.interval > Duration::ZERO {
            ctx.run_interval(self.interval, |this, ctx| {
                let now_ms = this.clock.now_ms();
                ctx.notify(Tick { now_ms });
            });
        }
    }
}

/// Look at the clock: start the jobs due since the previous tick.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Tick {
    pub now_ms: i64,
}

impl Handler<Tick> for SchedulerActor {
    type Result = usize;

    fn handle(&mut self, msg: Tick, _ctx: &mut Self::Context) -> usize {
        // The first tick only sets the clock: nothing is "due since" before the start.
        let after = self.last_tick_ms.replace(msg.now_ms).unwrap_or(msg.now_ms);
        if !self.shared.settings.enabled {
            return 0;
        }
        // A clock stepped back makes the window empty.
        let due = self.shared.due(after.min(msg.now_ms), msg.now_ms);
        let n = due.len();
        for (cluster, names) in due {
            let shared = self.shared.clone();
            actix::spawn(async move {
                shared.run_job(&cluster, names, "schedule").await;
            });
        }
        n
    }
}

/// Run checks now (`POST /api/health-checks/run`): every check of every cluster unless
/// narrowed; answers when the runs are recorded.
#[derive(Message)]
#[rtype(result = "Vec<RunReport>")]
pub struct RunNow {
    pub cluster: Option<String>,
    pub check: Option<String>,
}

impl Handler<RunNow> for SchedulerActor {
    type Result = ResponseFuture<Vec<RunReport>>;

    fn handle(&mut self, msg: RunNow, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            let names: Vec<String> = match &msg.check {
                Some(c) => vec![c.clone()],
                None => CHECKS.iter().map(|c| c.to_string()).collect(),
            };
            let clusters: Vec<String> = shared
                .clusters
                .iter()
                .filter(|c| msg.cluster.as_ref().is_none_or(|n| *n == c.name))
                .map(|c| c.name.clone())
                .collect();
            let jobs = clusters
                .iter()
                .map(|c| shared.run_job(c, names.clone(), "api"));
            futures_util::future::join_all(jobs)
                .await
                .into_iter()
                .flatten()
                .collect()
        })
    }
}
