//! A cluster-status snapshot: what one scheduled poll read (NameNode, ResourceManager, Flume
//! agents, port and SSH probes), its overall health, what changed since the previous one,
//! and the faults only a snapshot shows.
//!
//! A snapshot fault's fingerprint is the one a log rule of the same class builds
//! (`<class>:<cluster>:<entity>`), so a DataNode that the logs and the NameNode both report
//! dead is one fault record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::flume::FlumeAgentStatus;
use super::namenode::NameNodeStatus;
use super::resourcemanager::RmStatus;
use crate::rules::compile::Severity;

/// How a TCP connect from the engine ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PortOutcome {
    Open,
    /// RST: nothing listens, or a firewall rejects.
    Refused,
    /// No answer within the timeout: a firewall drops, or the host is down.
    Timeout,
    /// EHOSTUNREACH / ENETUNREACH (often an ICMP reject from a firewall).
    NoRoute,
    /// The name does not resolve, or another error (its text).
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PortProbe {
    pub host: String,
    pub port: u16,
    /// What listens there (`namenode-rpc`, `datanode-data`, ...).
    #[serde(default)]
    pub service: String,
    pub outcome: PortOutcome,
    #[serde(default)]
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshProbe {
    pub host: String,
    pub user: String,
    pub ok: bool,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// ssh's own output (stderr), cut.
    #[serde(default)]
    pub output: String,
}

/// A status source that could not be read in this poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceError {
    /// `namenode`, `resourcemanager`, `flume:<agent>`.
    pub source: String,
    pub message: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Degraded,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ClusterSnapshot {
    pub cluster: String,
    pub taken_ms: i64,
    /// The NameNode address that answered (the active one under HA).
    pub namenode_address: Option<String>,
    pub namenode: Option<NameNodeStatus>,
    pub resourcemanager: Option<RmStatus>,
    pub flume: Vec<FlumeAgentStatus>,
    pub ports: Vec<PortProbe>,
    pub ssh: Vec<SshProbe>,
    pub errors: Vec<SourceError>,
}

/// Thresholds for snapshot faults (config `[snapshot_faults]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A Flume channel at least this full ...
    pub flume_fill_percent: f64,
    /// ... for this many consecutive polls is a backlog.
    pub flume_consecutive_polls: u32,
    /// DFS used at least this percent of its capacity is `disk_full`.
    pub dfs_used_percent: f64,
    /// Stale DataNodes (no heartbeat for 30 s; dead after 10.5 min) count as lost.
    pub stale_datanode_is_lost: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            flume_fill_percent: 90.0,
            flume_consecutive_polls: 3,
            dfs_used_percent: 90.0,
            stale_datanode_is_lost: false,
        }
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let pct = |v: f64| (0.0..=100.0).contains(&v);
        if !pct(self.flume_fill_percent) {
            return Err(("flume_fill_percent".into(), "must be 0..=100".into()));
        }
        if !pct(self.dfs_used_percent) {
            return Err(("dfs_used_percent".into(), "must be 0..=100".into()));
        }
        if self.flume_consecutive_polls == 0 {
            return Err((
                "flume_consecutive_polls".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Which part of a snapshot a fault comes from: a fault is cleared only by a later snapshot
/// in which that part was read (an unreachable NameNode clears nothing).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultSource {
    Namenode,
    Resourcemanager,
    Flume(String),
    Port,
    Ssh,
}

/// A fault a snapshot shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotFault {
    /// A taxonomy class id, or `unknown` (an escalation candidate).
    pub fault_type: &'static str,
    /// For `unknown` faults, what was seen (part of the fingerprint).
    pub check: &'static str,
    pub source: FaultSource,
    pub entity: String,
    pub host: String,
    pub severity: Severity,
    pub title: String,
    pub diagnosis: String,
    /// The snapshot values the fault rests on.
    pub evidence: Vec<String>,
}

impl FaultSource {
    /// The key stored with a fault (`namenode`, `resourcemanager`, `flume:<agent>`, `port`,
    /// `ssh`): which part of a later snapshot can clear it.
    pub fn key(&self) -> String {
        match self {
            FaultSource::Namenode => "namenode".into(),
            FaultSource::Resourcemanager => "resourcemanager".into(),
            FaultSource::Flume(a) => format!("flume:{a}"),
            FaultSource::Port => "port".into(),
            FaultSource::Ssh => "ssh".into(),
        }
    }

    pub fn from_key(key: &str) -> Option<FaultSource> {
        Some(match key {
            "namenode" => FaultSource::Namenode,
            "resourcemanager" => FaultSource::Resourcemanager,
            "port" => FaultSource::Port,
            "ssh" => FaultSource::Ssh,
            _ => FaultSource::Flume(key.strip_prefix("flume:")?.to_string()),
        })
    }
}

impl SnapshotFault {
    /// The same identity a log rule of this class gives (see the module doc).
    pub fn fingerprint(&self, cluster: &str) -> String {
        if self.fault_type == "unknown" {
            format!("unknown:{}:{cluster}:{}", self.check, self.entity)
        } else {
            format!("{}:{cluster}:{}", self.fault_type, self.entity)
        }
    }
}

impl ClusterSnapshot {
    /// Whether `source` was read in this snapshot (so its faults' absence means healed).
    pub fn covers(&self, source: &FaultSource) -> bool {
        match source {
            FaultSource::Namenode => self.namenode.is_some(),
            FaultSource::Resourcemanager => self.resourcemanager.is_some(),
            FaultSource::Flume(agent) => self.flume.iter().any(|a| &a.agent == agent),
            FaultSource::Port => !self.ports.is_empty(),
            FaultSource::Ssh => !self.ssh.is_empty(),
        }
    }

    fn namenode_host(&self) -> String {
        self.namenode
            .as_ref()
            .and_then(|n| n.rpc_address.as_deref())
            .or(self.namenode_address.as_deref())
            .map(|a| {
                let a = a.split("://").last().unwrap_or(a);
                super::namenode::host_part(a.split('/').next().unwrap_or(a)).to_string()
            })
            .unwrap_or_else(|| "namenode".into())
    }

    /// The faults this snapshot shows; `previous` are the cluster's earlier snapshots,
    /// newest first (for faults that need several polls).
    pub fn faults(&self, previous: &[ClusterSnapshot], t: &Thresholds) -> Vec<SnapshotFault> {
        let mut out = Vec::new();
        if let Some(nn) = &self.namenode {
            self.namenode_faults(nn, t, &mut out);
        }
        if let Some(rm) = &self.resourcemanager {
            for (state, severity) in [("LOST", Severity::Error), ("UNHEALTHY", Severity::Error)] {
                for n in rm.hosts_in(state) {
                    let report = if n.health_report.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", n.health_report)
                    };
                    out.push(SnapshotFault {
                        fault_type: "nodemanager_lost",
                        check: "",
                        source: FaultSource::Resourcemanager,
                        entity: n.host.clone(),
                        host: n.host.clone(),
                        severity,
                        title: format!("NodeManager {state} on {}", n.host),
                        diagnosis: format!(
                            "The ResourceManager lists the NodeManager on {} ({}) as {state}{report}; its containers are gone and it takes no new ones.",
                            n.host, n.id
                        ),
                        evidence: vec![format!("node {} state={state}{report}", n.id)],
                    });
                }
            }
        }
        for agent in &self.flume {
            for c in &agent.channels {
                let Some(fill) = c.fill_percent else { continue };
                if fill < t.flume_fill_percent {
                    continue;
                }
                // Earlier polls of this agent (runs that did not read it are skipped).
                let polls = 1 + previous
                    .iter()
                    .filter_map(|p| p.flume.iter().find(|a| a.agent == agent.agent))
                    .take_while(|a| {
                        a.channels
                            .iter()
                            .find(|x| x.name == c.name)
                            .and_then(|x| x.fill_percent)
                            .is_some_and(|f| f >= t.flume_fill_percent)
                    })
                    .count();
                if polls < t.flume_consecutive_polls as usize {
                    continue;
                }
                out.push(SnapshotFault {
                    fault_type: "flume_backlog",
                    check: "",
                    source: FaultSource::Flume(agent.agent.clone()),
                    entity: format!("{}/{}", agent.agent, c.name),
                    host: agent.agent.clone(),
                    severity: Severity::Error,
                    title: format!("Flume channel {} of {} full", c.name, agent.agent),
                    diagnosis: format!(
                        "Channel {} of Flume agent {} has been at least {:.0}% full for {polls} polls: its sink is not keeping up (the endpoint is down or slow), and sources will be refused.",
                        c.name, agent.agent, t.flume_fill_percent
                    ),
                    evidence: vec![format!(
                        "{}/{}: fill {fill:.2}% size {} capacity {} ({polls} polls >= {:.0}%)",
                        agent.agent,
                        c.name,
                        opt(c.size),
                        opt(c.capacity),
                        t.flume_fill_percent
                    )],
                });
            }
        }
        for p in &self.ports {
            let (what, cause) = match &p.outcome {
                PortOutcome::Open => continue,
                PortOutcome::Refused => ("refused", "nothing listens there, or a firewall rejects"),
                PortOutcome::Timeout => (
                    "timed out",
                    "a firewall drops the packets, or the host is down",
                ),
                PortOutcome::NoRoute => (
                    "no route",
                    "a firewall rejects with ICMP, or the network is down",
                ),
                PortOutcome::Error(_) => {
                    ("failed", "the name does not resolve, or the connect failed")
                }
            };
            let detail = match &p.outcome {
                PortOutcome::Error(e) => format!(" ({e})"),
                _ => String::new(),
            };
            out.push(SnapshotFault {
                fault_type: "port_unreachable",
                check: "",
                source: FaultSource::Port,
                entity: format!("{}:{}", p.host, p.port),
                host: p.host.clone(),
                severity: Severity::Critical,
                title: format!(
                    "Port {}:{} ({}) unreachable from the engine",
                    p.host, p.port, p.service
                ),
                diagnosis: format!(
                    "A TCP connect from the engine to {}:{} ({}) {what}{detail}: {cause}.",
                    p.host, p.port, p.service
                ),
                evidence: vec![format!(
                    "connect {}:{} {what}{detail} after {} ms",
                    p.host, p.port, p.elapsed_ms
                )],
            });
        }
        for s in &self.ssh {
            if s.ok {
                continue;
            }
            out.push(SnapshotFault {
                fault_type: "ssh_auth",
                check: "",
                source: FaultSource::Ssh,
                entity: s.host.clone(),
                host: s.host.clone(),
                severity: Severity::Critical,
                title: format!("SSH in batch mode to {}@{} fails", s.user, s.host),
                diagnosis: format!(
                    "`ssh -o BatchMode=yes {}@{} true` failed (exit {}): password-less SSH, which the start scripts need, does not work.",
                    s.user,
                    s.host,
                    s.exit_code.map_or("none".into(), |c| c.to_string())
                ),
                evidence: vec![format!("ssh {}@{}: {}", s.user, s.host, s.output.trim())],
            });
        }
        out
    }

    fn namenode_faults(&self, nn: &NameNodeStatus, t: &Thresholds, out: &mut Vec<SnapshotFault>) {
        let nn_host = self.namenode_host();
        for d in nn.dead.iter().filter(|d| !d.decommissioned) {
            out.push(SnapshotFault {
                fault_type: "datanode_lost",
                check: "",
                source: FaultSource::Namenode,
                entity: d.name.clone(),
                host: d.host.clone(),
                severity: Severity::Critical,
                title: format!("DataNode {} dead", d.name),
                diagnosis: format!(
                    "The NameNode lists DataNode {} as dead (last heartbeat {} s ago): its blocks are under-replicated and writes that need it fail.",
                    d.name,
                    opt(d.last_contact_s)
                ),
                evidence: vec![format!(
                    "DeadNodes {}: lastContact={} adminState={}",
                    d.name,
                    opt(d.last_contact_s),
                    d.admin_state.as_deref().unwrap_or("?")
                )],
            });
        }
        if nn.dead.is_empty() && nn.dead_datanodes.is_some_and(|n| n > 0) {
            // Counted but not listed (FSNamesystemState polled without NameNodeInfo).
            let n = nn.dead_datanodes.unwrap_or(0);
            out.push(SnapshotFault {
                fault_type: "datanode_lost",
                check: "",
                source: FaultSource::Namenode,
                entity: nn_host.clone(),
                host: nn_host.clone(),
                severity: Severity::Critical,
                title: format!("{n} DataNode(s) dead"),
                diagnosis: format!("The NameNode counts {n} dead DataNode(s)."),
                evidence: vec![format!("NumDeadDataNodes={n}")],
            });
        }
        if let Some(n) = nn
            .stale_datanodes
            .filter(|n| t.stale_datanode_is_lost && *n > 0)
        {
            out.push(SnapshotFault {
                fault_type: "datanode_lost",
                check: "",
                source: FaultSource::Namenode,
                entity: format!("{nn_host}:stale"),
                host: nn_host.clone(),
                severity: Severity::Error,
                title: format!("{n} DataNode(s) stale"),
                diagnosis: format!(
                    "{n} DataNode(s) have sent no heartbeat for over 30 s; they are declared dead after 10.5 min."
                ),
                evidence: vec![format!("NumStaleDataNodes={n}")],
            });
        }
        if nn.safe_mode == Some(true) {
            let text = nn.safe_mode_text.clone().unwrap_or_default();
            out.push(SnapshotFault {
                fault_type: "namenode_safemode",
                check: "",
                source: FaultSource::Namenode,
                entity: nn_host.clone(),
                host: nn_host.clone(),
                severity: Severity::Critical,
                title: "NameNode in safe mode".into(),
                diagnosis: if text.is_empty() {
                    "The NameNode is in safe mode: HDFS is read-only.".into()
                } else {
                    format!("The NameNode is in safe mode: HDFS is read-only. It says: {text}")
                },
                evidence: vec![format!(
                    "FSState=safeMode live={} dead={}",
                    opt(nn.live_datanodes),
                    opt(nn.dead_datanodes)
                )],
            });
        }
        let missing = nn.missing_blocks.unwrap_or(0);
        let corrupt = nn.corrupt_blocks.unwrap_or(0);
        if missing > 0 || corrupt > 0 {
            out.push(SnapshotFault {
                fault_type: "unknown",
                check: "hdfs_blocks",
                source: FaultSource::Namenode,
                entity: nn_host.clone(),
                host: nn_host.clone(),
                severity: Severity::Critical,
                title: "HDFS blocks missing or corrupt".into(),
                diagnosis: format!(
                    "The NameNode reports {missing} missing and {corrupt} corrupt block(s): files that use them cannot be read in full (`hdfs fsck / -list-corruptfileblocks`)."
                ),
                evidence: vec![format!("MissingBlocks={missing} CorruptBlocks={corrupt}")],
            });
        }
        if let Some(pct) = nn.used_percent().filter(|p| *p >= t.dfs_used_percent) {
            out.push(SnapshotFault {
                fault_type: "disk_full",
                check: "",
                source: FaultSource::Namenode,
                entity: format!("{nn_host}:dfs"),
                host: nn_host.clone(),
                severity: Severity::Critical,
                title: format!("HDFS {pct:.1}% full"),
                diagnosis: format!(
                    "HDFS uses {pct:.1}% of its configured capacity (threshold {:.0}%): DataNodes will refuse blocks when their volumes reach the reserved space.",
                    t.dfs_used_percent
                ),
                evidence: vec![format!(
                    "CapacityUsed={} CapacityTotal={} CapacityRemaining={}",
                    opt(nn.capacity_used_bytes),
                    opt(nn.capacity_total_bytes),
                    opt(nn.capacity_remaining_bytes)
                )],
            });
        }
    }

    /// Overall health: `critical` when HDFS or YARN cannot serve (NameNode unreadable or in
    /// safe mode, no live DataNode, missing blocks, no active NodeManager), `degraded` for
    /// any other fault or unreadable source, else `ok`.
    pub fn health(&self, t: &Thresholds) -> Health {
        let nn_critical = match &self.namenode {
            None => self.errors.iter().any(|e| e.source == "namenode"),
            Some(nn) => {
                nn.safe_mode == Some(true)
                    || nn.live_datanodes == Some(0)
                    || nn.missing_blocks.is_some_and(|n| n > 0)
            }
        };
        let rm_critical = match &self.resourcemanager {
            None => self.errors.iter().any(|e| e.source == "resourcemanager"),
            Some(rm) => rm.active_nodes == Some(0),
        };
        if nn_critical || rm_critical {
            return Health::Critical;
        }
        let degraded = !self.errors.is_empty()
            || !self.faults(&[], t).is_empty()
            || self.namenode.as_ref().is_some_and(|nn| {
                nn.stale_datanodes.is_some_and(|n| n > 0)
                    || nn.under_replicated_blocks.is_some_and(|n| n > 0)
            });
        if degraded {
            Health::Degraded
        } else {
            Health::Ok
        }
    }

    /// A short text of the snapshot for an LLM prompt: health, the faults it shows, its
    /// values and the parts that could not be read (at most `max_lines` lines).
    pub fn summary(&self, t: &Thresholds, max_lines: usize) -> String {
        let mut lines = vec![format!(
            "health: {} (taken {})",
            self.health(t).as_str(),
            chrono::DateTime::from_timestamp_millis(self.taken_ms)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        )];
        for f in self.faults(&[], t) {
            lines.push(format!(
                "fault: {} ({}) {}",
                f.fault_type, f.entity, f.title
            ));
        }
        for (k, v) in self.metrics() {
            if !v.is_empty() {
                lines.push(format!("{k} = {v}"));
            }
        }
        for e in &self.errors {
            lines.push(format!("unreadable: {} ({})", e.source, e.message));
        }
        lines.truncate(max_lines);
        lines.join("\n")
    }

    /// The values compared between snapshots, by name.
    pub fn metrics(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        if let Some(nn) = &self.namenode {
            put("namenode.ha_state", nn.ha_state.clone());
            put("namenode.safe_mode", nn.safe_mode.map(|b| b.to_string()));
            let counts = [
                ("hdfs.live_datanodes", nn.live_datanodes),
                ("hdfs.dead_datanodes", nn.dead_datanodes),
                ("hdfs.stale_datanodes", nn.stale_datanodes),
                ("hdfs.missing_blocks", nn.missing_blocks),
                ("hdfs.corrupt_blocks", nn.corrupt_blocks),
                ("hdfs.under_replicated_blocks", nn.under_replicated_blocks),
            ];
            for (k, v) in counts {
                put(k, v.map(|n| n.to_string()));
            }
            let dead: Vec<&str> = nn.dead.iter().map(|d| d.name.as_str()).collect();
            put("hdfs.dead", Some(dead.join(",")));
        }
        if let Some(rm) = &self.resourcemanager {
            let counts = [
                ("yarn.active_nodes", rm.active_nodes),
                ("yarn.lost_nodes", rm.lost_nodes),
                ("yarn.unhealthy_nodes", rm.unhealthy_nodes),
            ];
            for (k, v) in counts {
                put(k, v.map(|n| n.to_string()));
            }
        }
        for a in &self.flume {
            for c in &a.channels {
                put(
                    &format!("flume.{}.{}.fill_percent", a.agent, c.name),
                    c.fill_percent.map(|f| format!("{f:.1}")),
                );
            }
        }
        for p in &self.ports {
            put(
                &format!("port.{}:{}", p.host, p.port),
                Some(match &p.outcome {
                    PortOutcome::Error(_) => "error".to_string(),
                    o => serde_json::to_value(o)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                }),
            );
        }
        for s in &self.ssh {
            put(
                &format!("ssh.{}", s.host),
                Some(if s.ok { "ok" } else { "failed" }.into()),
            );
        }
        for e in &self.errors {
            put(&format!("error.{}", e.source), Some(e.message.clone()));
        }
        m
    }

    /// What changed since `prev`: (name, before, after); a value one side lacks is `None`.
    pub fn changes_since(&self, prev: &ClusterSnapshot) -> Vec<Change> {
        let (a, b) = (prev.metrics(), self.metrics());
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| Change {
                name: k.clone(),
                before: a.get(k).cloned(),
                after: b.get(k).cloned(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testdata::sample;

    fn degraded() -> Option<ClusterSnapshot> {
        let mut nn = NameNodeStatus::default();
        nn.absorb(&sample("namenode-jmx-degraded.composed.json")?)
            .unwrap();
        let mut rm = RmStatus::default();
        rm.absorb(&sample("rm-cluster-metrics-degraded.composed.json")?)
            .unwrap();
        rm.absorb(&sample("rm-nodes-degraded.composed.json")?)
            .unwrap();
        let flume =
            FlumeAgentStatus::parse("agent1", &sample("flume-metrics-backlog.composed.json")?)
                .unwrap();
        Some(ClusterSnapshot {
            cluster: "c1".into(),
            taken_ms: 1_000,
            namenode_address: Some("http://master:9870".into()),
            namenode: Some(nn),
            resourcemanager: Some(rm),
            flume: vec![flume],
            ..Default::default()
        })
    }

    fn types(f: &[SnapshotFault]) -> Vec<(&str, &str)> {
        f.iter()
            .map(|f| (f.fault_type, f.entity.as_str()))
            .collect()
    }

    #[test]
    fn summary_names_health_faults_values_and_unreadable_parts() {
        let Some(mut snap) = degraded() else { return };
        snap.errors.push(SourceError {
            source: "flume:agent2".into(),
            message: "connection refused".into(),
        });
        let t = Thresholds::default();
        let text = snap.summary(&t, 100);
        assert!(
            text.starts_with("health: degraded (taken 1970-01-01T00:00:01Z)"),
            "{text}"
        );
        assert!(
            text.contains("fault: datanode_lost (worker3:9866)"),
            "{text}"
        );
        assert!(text.contains("hdfs.dead_datanodes = "), "{text}");
        assert!(
            text.contains("unreadable: flume:agent2 (connection refused)"),
            "{text}"
        );
        assert_eq!(snap.summary(&t, 3).lines().count(), 3);
    }

    #[test]
    fn degraded_samples_give_their_faults() {
        let Some(snap) = degraded() else { return };
        let t = Thresholds::default();
        let faults = snap.faults(&[], &t);
        let got = types(&faults);
        assert!(got.contains(&("datanode_lost", "worker3:9866")), "{got:?}");
        let lost: Vec<_> = got
            .iter()
            .filter(|(t, _)| *t == "nodemanager_lost")
            .collect();
        assert_eq!(lost.len(), 2, "one LOST, one UNHEALTHY: {got:?}");
        // One poll at 99.87 % is not yet a backlog (3 consecutive polls are).
        assert!(!got.iter().any(|(t, _)| *t == "flume_backlog"));
        let two = [snap.clone(), snap.clone()];
        let got = snap.faults(&two, &t);
        let backlog = got
            .iter()
            .find(|f| f.fault_type == "flume_backlog")
            .unwrap();
        assert_eq!(backlog.entity, "agent1/c1");
        assert!(backlog.evidence[0].contains("99.87%"));
        assert_eq!(
            faults[0].fingerprint("c1"),
            "datanode_lost:c1:worker3:9866",
            "the fingerprint a log rule of the class builds"
        );
        assert_eq!(snap.health(&t), Health::Degraded);
    }

    #[test]
    fn a_low_poll_breaks_the_backlog_run() {
        let Some(snap) = degraded() else { return };
        let mut low = snap.clone();
        low.flume[0].channels[0].fill_percent = Some(10.0);
        let t = Thresholds::default();
        let history = [snap.clone(), low, snap.clone()];
        assert!(
            !snap
                .faults(&history, &t)
                .iter()
                .any(|f| f.fault_type == "flume_backlog")
        );
    }

    #[test]
    fn safe_mode_missing_blocks_capacity_ports_ssh() {
        let nn = NameNodeStatus {
            rpc_address: Some("master:9000".into()),
            safe_mode: Some(true),
            safe_mode_text: Some(
                "Safe mode is ON. The reported blocks 0 needs additional 15 blocks".into(),
            ),
            live_datanodes: Some(0),
            dead_datanodes: Some(0),
            missing_blocks: Some(15),
            corrupt_blocks: Some(0),
            capacity_total_bytes: Some(100),
            capacity_used_bytes: Some(96),
            ..Default::default()
        };
        let snap = ClusterSnapshot {
            cluster: "c".into(),
            namenode: Some(nn),
            ports: vec![
                PortProbe {
                    host: "worker2".into(),
                    port: 9866,
                    service: "datanode-data".into(),
                    outcome: PortOutcome::Refused,
                    elapsed_ms: 1,
                },
                PortProbe {
                    host: "worker3".into(),
                    port: 9866,
                    service: "datanode-data".into(),
                    outcome: PortOutcome::Open,
                    elapsed_ms: 1,
                },
                PortProbe {
                    host: "worker4".into(),
                    port: 22,
                    service: "ssh".into(),
                    outcome: PortOutcome::Timeout,
                    elapsed_ms: 3000,
                },
            ],
            ssh: vec![SshProbe {
                host: "worker2".into(),
                user: "hadoop".into(),
                ok: false,
                exit_code: Some(255),
                output: "hadoop@worker2: Permission denied (publickey,password).".into(),
            }],
            ..Default::default()
        };
        let t = Thresholds::default();
        let faults = snap.faults(&[], &t);
        let got = types(&faults);
        assert_eq!(
            got,
            [
                ("namenode_safemode", "master"),
                ("unknown", "master"),
                ("disk_full", "master:dfs"),
                ("port_unreachable", "worker2:9866"),
                ("port_unreachable", "worker4:22"),
                ("ssh_auth", "worker2"),
            ]
        );
        assert_eq!(faults[1].fingerprint("c"), "unknown:hdfs_blocks:c:master");
        assert!(faults[4].diagnosis.contains("timed out"));
        assert!(faults[5].evidence[0].contains("Permission denied"));
        assert_eq!(snap.health(&t), Health::Critical);
    }

    #[test]
    fn decommissioned_dead_nodes_are_not_faults_and_unread_sources_clear_nothing() {
        let mut nn = NameNodeStatus::default();
        nn.absorb(r#"{"beans":[{"name":"Hadoop:service=NameNode,name=NameNodeInfo","Safemode":"",
            "LiveNodes":"{\"w1:9866\":{}}","DeadNodes":"{\"w2:9866\":{\"lastContact\":900,\"decommissioned\":true}}"}]}"#).unwrap();
        let snap = ClusterSnapshot {
            namenode: Some(nn),
            ..Default::default()
        };
        assert!(snap.faults(&[], &Thresholds::default()).is_empty());
        assert_eq!(snap.health(&Thresholds::default()), Health::Ok);
        assert!(snap.covers(&FaultSource::Namenode));
        assert!(!snap.covers(&FaultSource::Resourcemanager));
        let down = ClusterSnapshot {
            errors: vec![SourceError {
                source: "namenode".into(),
                message: "connect refused".into(),
            }],
            ..Default::default()
        };
        assert!(!down.covers(&FaultSource::Namenode));
        assert_eq!(down.health(&Thresholds::default()), Health::Critical);
    }

    #[test]
    fn stale_datanodes_are_lost_only_when_configured() {
        let nn = NameNodeStatus {
            rpc_address: Some("nn1:8020".into()),
            stale_datanodes: Some(2),
            ..Default::default()
        };
        let snap = ClusterSnapshot {
            namenode: Some(nn),
            ..Default::default()
        };
        let mut t = Thresholds::default();
        assert!(snap.faults(&[], &t).is_empty());
        assert_eq!(
            snap.health(&t),
            Health::Degraded,
            "stale is an early warning"
        );
        t.stale_datanode_is_lost = true;
        assert_eq!(
            types(&snap.faults(&[], &t)),
            [("datanode_lost", "nn1:stale")]
        );
    }

    #[test]
    fn changes_between_snapshots() {
        let Some(bad) = degraded() else { return };
        let mut good = bad.clone();
        if let Some(nn) = good.namenode.as_mut() {
            nn.dead.clear();
            nn.dead_datanodes = Some(0);
            nn.live_datanodes = Some(4);
        }
        let changes = good.changes_since(&bad);
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["hdfs.dead", "hdfs.dead_datanodes", "hdfs.live_datanodes"]
        );
        assert_eq!(changes[0].before.as_deref(), Some("worker3:9866"));
        assert_eq!(changes[0].after.as_deref(), Some(""));
        assert!(bad.changes_since(&bad).is_empty());
    }
}
