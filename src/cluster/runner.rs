//! One run of a cluster's checks (the scheduler's job), the in-memory view of each cluster
//! (the newest reading of every part, what the API and the rules look up), and persisting a
//! run: exec logs, the snapshot row, the faults it opens, confirms or clears.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::checks::{self, CheckContext};
use super::settings::{ClusterSettings, SchedulerSettings};
use super::snapshot::{Change, ClusterSnapshot, FaultSource, Health, SourceError, Thresholds};
use crate::storage::{ExecLog, SnapshotFaultOutcome, Store, StoreError};

/// Run `names` (of [`super::settings::CHECKS`]) for `cluster` now. Checks with nothing
/// configured (no NameNode listed, no SSH user, ...) are not applicable and do not run.
pub async fn run_checks(
    ctx: &CheckContext,
    cluster: &ClusterSettings,
    sched: &SchedulerSettings,
    names: &[&str],
    ssh_program: &Path,
) -> (ClusterSnapshot, Vec<ExecLog>) {
    let mut snap = ClusterSnapshot {
        cluster: cluster.name.clone(),
        taken_ms: crate::now_ms(),
        ..Default::default()
    };
    let mut logs = Vec::new();
    let error = |snap: &mut ClusterSnapshot, source: &str, message: String| {
        snap.errors.push(SourceError {
            source: source.into(),
            message,
        })
    };
    for name in names {
        match *name {
            "namenode" if !cluster.namenodes.is_empty() => {
                match checks::poll_namenode(ctx, cluster, &mut logs).await {
                    Ok((addr, nn)) => {
                        snap.namenode_address = Some(addr);
                        snap.namenode = Some(nn);
                    }
                    Err(e) => error(&mut snap, "namenode", e),
                }
            }
            "resourcemanager" if !cluster.resourcemanagers.is_empty() => {
                match checks::poll_resourcemanager(ctx, cluster, &mut logs).await {
                    Ok(rm) => snap.resourcemanager = Some(rm),
                    Err(e) => error(&mut snap, "resourcemanager", e),
                }
            }
            "flume" => {
                for a in &cluster.flume_agents {
                    match checks::poll_flume(ctx, &cluster.name, &a.name, &a.url, &mut logs).await {
                        Ok(f) => snap.flume.push(f),
                        Err(e) => error(&mut snap, &format!("flume:{}", a.name), e),
                    }
                }
            }
            "ports" => snap.ports = checks::probe_ports(ctx, cluster, &mut logs).await,
            "ssh" => snap.ssh = checks::ssh_checks(ctx, cluster, ssh_program, &mut logs).await,
            "scripts" if !sched.scripts_allow.is_empty() => {
                let dir = Path::new(&sched.scripts_dir);
                logs.extend(
                    checks::run_scripts(ctx, &cluster.name, dir, &sched.scripts_allow).await,
                );
            }
            _ => {}
        }
    }
    (snap, logs)
}

/// The newest reading of every part of one cluster, and the recent runs.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Every part as last read (a part that failed to read shows its error instead).
    pub latest: ClusterSnapshot,
    /// `latest` before the last run.
    pub previous: Option<ClusterSnapshot>,
    /// Recent runs, newest first (faults that need several polls look here).
    pub runs: VecDeque<ClusterSnapshot>,
}

/// Runs kept in memory per cluster.
const RUNS_KEPT: usize = 32;

impl ClusterView {
    /// Take a run in: the parts it read (or failed to read) replace those of the view.
    pub fn absorb(&mut self, run: &ClusterSnapshot) {
        let mut next = self.latest.clone();
        next.cluster = run.cluster.clone();
        next.taken_ms = run.taken_ms;
        let touched = |source: &str| {
            run.errors.iter().any(|e| e.source == source)
                || match source {
                    "namenode" => run.namenode.is_some(),
                    "resourcemanager" => run.resourcemanager.is_some(),
                    _ => false,
                }
        };
        if touched("namenode") {
            next.namenode = run.namenode.clone();
            next.namenode_address = run.namenode_address.clone();
        }
        if touched("resourcemanager") {
            next.resourcemanager = run.resourcemanager.clone();
        }
        for a in &run.flume {
            next.flume.retain(|x| x.agent != a.agent);
            next.flume.push(a.clone());
        }
        for e in run.errors.iter().filter(|e| e.source.starts_with("flume:")) {
            let agent = &e.source["flume:".len()..];
            next.flume.retain(|x| x.agent != agent);
        }
        next.flume.sort_by(|a, b| a.agent.cmp(&b.agent));
        if !run.ports.is_empty() {
            next.ports = run.ports.clone();
        }
        if !run.ssh.is_empty() {
            next.ssh = run.ssh.clone();
        }
        // Errors of the parts this run touched are replaced; others stay.
        next.errors.retain(|e| {
            !(run.errors.iter().any(|r| r.source == e.source)
                || (e.source == "namenode" && run.namenode.is_some())
                || (e.source == "resourcemanager" && run.resourcemanager.is_some())
                || run
                    .flume
                    .iter()
                    .any(|a| e.source == format!("flume:{}", a.agent)))
        });
        next.errors.extend(run.errors.iter().cloned());
        self.previous = Some(std::mem::replace(&mut self.latest, next));
        self.runs.push_front(run.clone());
        self.runs.truncate(RUNS_KEPT);
    }

    /// What changed with the last run.
    pub fn changes(&self) -> Vec<Change> {
        self.previous
            .as_ref()
            .map(|p| self.latest.changes_since(p))
            .unwrap_or_default()
    }
}

/// The views of every cluster, shared by the scheduler (writer), the API and the rules.
pub type Views = Arc<RwLock<HashMap<String, ClusterView>>>;

/// The rules' view of the latest snapshots (`[[snapshot_cause]]`).
pub struct ViewsLookup(pub Views);

impl crate::rules::engine::SnapshotLookup for ViewsLookup {
    fn with_snapshot(&self, cluster: &str, f: &mut dyn FnMut(&ClusterSnapshot)) {
        let views = self.0.read().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = views.get(cluster) {
            f(&v.latest);
        }
    }
}

/// What one run did (the answer of `POST /api/health-checks/run`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub cluster: String,
    pub checks: Vec<String>,
    pub started_at: i64,
    pub health: Health,
    pub snapshot_id: Option<i64>,
    pub exec_log_ids: Vec<i64>,
    /// Runs by status (`success`, `failed`, `timeout`).
    pub statuses: HashMap<String, usize>,
    pub errors: Vec<SourceError>,
    pub faults: SnapshotFaultOutcome,
}

/// The cluster gauges from a cluster's view (a value unknown in the view is left as it was).
pub fn publish(m: &crate::metrics::Metrics, view: &ClusterSnapshot, health: Health) {
    let c = view.cluster.as_str();
    // Each known value of `pairs` into `gauge{cluster, <second label>}`.
    let set = |gauge: &prometheus::IntGaugeVec, pairs: &[(&str, Option<u64>)]| {
        for (label, v) in pairs {
            if let Some(v) = v {
                gauge
                    .with_label_values(&[c, label])
                    .set(i64::try_from(*v).unwrap_or(i64::MAX));
            }
        }
    };
    m.cluster_health.with_label_values(&[c]).set(match health {
        Health::Ok => 0,
        Health::Degraded => 1,
        Health::Critical => 2,
    });
    if let Some(nn) = &view.namenode {
        set(
            &m.cluster_datanodes,
            &[
                ("live", nn.live_datanodes),
                ("dead", nn.dead_datanodes),
                ("stale", nn.stale_datanodes),
            ],
        );
        set(
            &m.cluster_capacity_bytes,
            &[
                ("total", nn.capacity_total_bytes),
                ("used", nn.capacity_used_bytes),
                ("remaining", nn.capacity_remaining_bytes),
            ],
        );
        set(
            &m.cluster_blocks,
            &[
                ("missing", nn.missing_blocks),
                ("corrupt", nn.corrupt_blocks),
                ("under_replicated", nn.under_replicated_blocks),
            ],
        );
        if let Some(sm) = nn.safe_mode {
            m.cluster_safe_mode
                .with_label_values(&[c])
                .set(i64::from(sm));
        }
    }
    if let Some(rm) = &view.resourcemanager {
        set(
            &m.cluster_nodemanagers,
            &[
                ("active", rm.active_nodes),
                ("lost", rm.lost_nodes),
                ("unhealthy", rm.unhealthy_nodes),
            ],
        );
    }
    for a in &view.flume {
        for ch in &a.channels {
            if let Some(f) = ch.fill_percent {
                m.flume_channel_fill
                    .with_label_values(&[c, a.agent.as_str(), ch.name.as_str()])
                    .set(f);
            }
        }
    }
}

/// Persist a run and fold it into the cluster's view: exec logs, then (when the run read any
/// status) the snapshot row with its health, then the faults (cleared only for parts read).
pub async fn record_run(
    store: &Store,
    views: &Views,
    thresholds: &Thresholds,
    keep_snapshots: u32,
    checks: Vec<String>,
    run: ClusterSnapshot,
    logs: Vec<ExecLog>,
) -> Result<RunReport, StoreError> {
    let mut exec_log_ids = Vec::with_capacity(logs.len());
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for l in &logs {
        exec_log_ids.push(store.insert_exec_log(l).await?);
        *statuses.entry(l.status.clone()).or_default() += 1;
    }
    let (view, history) = {
        let mut all = views.write().unwrap_or_else(|p| p.into_inner());
        let v = all.entry(run.cluster.clone()).or_default();
        v.absorb(&run);
        let history: Vec<ClusterSnapshot> = v.runs.iter().skip(1).cloned().collect();
        (v.latest.clone(), history)
    };
    let health = view.health(thresholds);
    let read_any = run.namenode.is_some()
        || run.resourcemanager.is_some()
        || !run.flume.is_empty()
        || !run.ports.is_empty()
        || !run.ssh.is_empty()
        || !run.errors.is_empty();
    let mut snapshot_id = None;
    let mut faults = SnapshotFaultOutcome::default();
    if read_any {
        snapshot_id = Some(store.insert_snapshot(&view, health).await?);
        store.prune_snapshots(&run.cluster, keep_snapshots).await?;
        // Only the parts this run read confirm or clear faults: a part carried over from an
        // earlier run says nothing new.
        let shown: Vec<_> = view
            .faults(&history, thresholds)
            .into_iter()
            .filter(|f| run.covers(&f.source))
            .collect();
        faults = store
            .apply_snapshot_faults(&run.cluster, run.taken_ms, &shown, |key| {
                FaultSource::from_key(key).is_some_and(|s| run.covers(&s))
            })
            .await?;
    }
    Ok(RunReport {
        cluster: run.cluster.clone(),
        checks,
        started_at: run.taken_ms,
        health,
        snapshot_id,
        exec_log_ids,
        statuses,
        errors: run.errors.clone(),
        faults,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::namenode::NameNodeStatus;
    use crate::cluster::snapshot::{PortOutcome, PortProbe};

    #[test]
    fn a_view_keeps_the_newest_reading_of_each_part() {
        let mut v = ClusterView::default();
        let nn = |dead: u64| NameNodeStatus {
            dead_datanodes: Some(dead),
            ..Default::default()
        };
        v.absorb(&ClusterSnapshot {
            cluster: "c".into(),
            taken_ms: 1,
            namenode: Some(nn(0)),
            ports: vec![PortProbe {
                host: "w1".into(),
                port: 9866,
                service: "dn".into(),
                outcome: PortOutcome::Refused,
                elapsed_ms: 1,
            }],
            ..Default::default()
        });
        // A NameNode-only run: the ports read before stay in the view.
        v.absorb(&ClusterSnapshot {
            cluster: "c".into(),
            taken_ms: 2,
            namenode: Some(nn(1)),
            ..Default::default()
        });
        assert_eq!(v.latest.ports.len(), 1);
        assert_eq!(v.latest.namenode.as_ref().unwrap().dead_datanodes, Some(1));
        assert_eq!(v.changes()[0].name, "hdfs.dead_datanodes");
        // The NameNode cannot be read: its part becomes the error, not the old reading.
        v.absorb(&ClusterSnapshot {
            cluster: "c".into(),
            taken_ms: 3,
            errors: vec![SourceError {
                source: "namenode".into(),
                message: "refused".into(),
            }],
            ..Default::default()
        });
        assert!(v.latest.namenode.is_none());
        assert_eq!(v.latest.errors.len(), 1);
        // It answers again: the error goes.
        v.absorb(&ClusterSnapshot {
            cluster: "c".into(),
            taken_ms: 4,
            namenode: Some(nn(0)),
            ..Default::default()
        });
        assert!(v.latest.errors.is_empty());
        assert_eq!(v.runs.len(), 4);
    }
}
