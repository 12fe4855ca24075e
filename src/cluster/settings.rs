//! The cluster model and the scheduler's settings (`[[clusters]]`, `[scheduler]`,
//! `[snapshot_faults]` in `faultline.toml`), with their checks.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One Hadoop cluster to watch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// The cluster's name (the `cluster` of its logs and faults).
    pub name: String,
    /// NameNode web addresses (`http://master:9870`); under HA list every NameNode: the
    /// active one is read.
    pub namenodes: Vec<String>,
    /// ResourceManager web addresses (`http://master:8088`); the active one is read.
    pub resourcemanagers: Vec<String>,
    /// Worker host names or IPs (DataNode + NodeManager hosts).
    pub workers: Vec<String>,
    /// Flume agents' JSON monitoring (`-Dflume.monitoring.type=http`).
    pub flume_agents: Vec<FlumeAgentSettings>,
    /// 2 or 3: picks the default ports probed.
    pub hadoop_version: u8,
    /// The NameNode RPC port of `fs.defaultFS` (8020 by default; tutorials use 9000).
    pub namenode_rpc_port: u16,
    /// Ports to probe; empty = the defaults for `hadoop_version` on the hosts above.
    pub ports: Vec<PortSettings>,
    /// SSH check: `ssh -o BatchMode=yes [-i ssh_key] -p ssh_port ssh_user@<worker> true`.
    /// Empty `ssh_user` = no SSH check.
    pub ssh_user: String,
    pub ssh_key: String,
    /// The engine's own known_hosts file (`-o UserKnownHostsFile=`); empty = ssh's default.
    /// Host keys are always checked strictly.
    pub ssh_known_hosts: String,
    pub ssh_port: u16,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            name: "default".into(),
            namenodes: Vec::new(),
            resourcemanagers: Vec::new(),
            workers: Vec::new(),
            flume_agents: Vec::new(),
            hadoop_version: 3,
            namenode_rpc_port: 8020,
            ports: Vec::new(),
            ssh_user: String::new(),
            ssh_key: String::new(),
            ssh_known_hosts: String::new(),
            ssh_port: 22,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlumeAgentSettings {
    pub name: String,
    /// `http://worker1:41414/metrics`.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortSettings {
    pub host: String,
    pub port: u16,
    /// What listens there (shown in faults), e.g. `datanode-data`.
    #[serde(default)]
    pub service: String,
}

/// A port to probe: host, port, what listens there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProbeTarget {
    pub host: String,
    pub port: u16,
    pub service: String,
}

impl ClusterSettings {
    /// Every host name or address the cluster's configuration names (masked before an LLM
    /// prompt leaves the engine).
    pub fn host_names(&self) -> Vec<String> {
        let url_host = |u: &str| {
            reqwest::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
        };
        let mut out: Vec<String> = self
            .namenodes
            .iter()
            .chain(&self.resourcemanagers)
            .filter_map(|u| url_host(u))
            .chain(self.flume_agents.iter().filter_map(|a| url_host(&a.url)))
            .chain(self.workers.iter().cloned())
            .chain(self.ports.iter().map(|p| p.host.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The ports probed: the configured list, else the defaults of the Hadoop version on the
    /// NameNode, ResourceManager and worker hosts (SSH on every host).
    pub fn probe_targets(&self) -> Vec<ProbeTarget> {
        let mut out: Vec<ProbeTarget> = Vec::new();
        let mut add = |host: &str, port: u16, service: &str| {
            if !out.iter().any(|t| t.host == host && t.port == port) {
                out.push(ProbeTarget {
                    host: host.to_string(),
                    port,
                    service: service.to_string(),
                });
            }
        };
        if !self.ports.is_empty() {
            for p in &self.ports {
                add(&p.host, p.port, &p.service);
            }
            return out;
        }
        let h3 = self.hadoop_version >= 3;
        for nn in self.namenodes.iter().filter_map(|u| url_host(u)) {
            add(nn, self.namenode_rpc_port, "namenode-rpc");
            add(nn, if h3 { 9870 } else { 50070 }, "namenode-http");
        }
        for rm in self.resourcemanagers.iter().filter_map(|u| url_host(u)) {
            for (port, service) in [
                (8030, "rm-scheduler"),
                (8031, "rm-resource-tracker"),
                (8032, "rm-client"),
                (8033, "rm-admin"),
                (8088, "rm-http"),
            ] {
                add(rm, port, service);
            }
        }
        for w in &self.workers {
            add(w, if h3 { 9866 } else { 50010 }, "datanode-data");
            add(w, if h3 { 9864 } else { 50075 }, "datanode-http");
            add(w, 8042, "nodemanager-http");
        }
        if !self.ssh_user.is_empty() {
            for h in self.ssh_hosts() {
                add(&h, self.ssh_port, "ssh");
            }
        }
        out
    }

    /// Hosts the SSH check logs in to: every worker (the start scripts' targets).
    pub fn ssh_hosts(&self) -> Vec<String> {
        self.workers.clone()
    }

    fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let e = |k: &str, r: String| Err((format!("{at}.{k}"), r));
        if self.name.trim().is_empty() {
            return e("name", "must not be empty".into());
        }
        for (key, urls) in [
            ("namenodes", &self.namenodes),
            ("resourcemanagers", &self.resourcemanagers),
        ] {
            for u in urls {
                if url_host(u).is_none() {
                    return e(key, format!("`{u}` is not an http:// or https:// address"));
                }
            }
        }
        for (i, a) in self.flume_agents.iter().enumerate() {
            if a.name.trim().is_empty() || !is_host_token(&a.name) {
                return e(
                    &format!("flume_agents[{i}].name"),
                    "must be a plain name".into(),
                );
            }
            if url_host(&a.url).is_none() {
                return e(
                    &format!("flume_agents[{i}].url"),
                    format!("`{}` is not an http:// or https:// address", a.url),
                );
            }
        }
        let mut names: Vec<&str> = self.flume_agents.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return e("flume_agents", "agent names must be unique".into());
        }
        for w in &self.workers {
            if !is_host_token(w) {
                return e("workers", format!("`{w}` is not a host name or IP address"));
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            if !is_host_token(&p.host) || p.port == 0 {
                return e(
                    &format!("ports[{i}]"),
                    "needs a host and a port 1..65535".into(),
                );
            }
        }
        if !matches!(self.hadoop_version, 2 | 3) {
            return e("hadoop_version", "must be 2 or 3".into());
        }
        if self.namenode_rpc_port == 0 || self.ssh_port == 0 {
            return e("namenode_rpc_port", "ports must be 1..65535".into());
        }
        // The SSH command is built from these values only (never from log text); they still
        // must not be able to pass options to ssh.
        if !self.ssh_user.is_empty()
            && !self
                .ssh_user
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            || self.ssh_user.starts_with('-')
        {
            return e(
                "ssh_user",
                format!("`{}` is not a user name", self.ssh_user),
            );
        }
        if self.ssh_key.starts_with('-') {
            return e("ssh_key", "must be a path".into());
        }
        if self.ssh_known_hosts.starts_with('-') {
            return e("ssh_known_hosts", "must be a path".into());
        }
        Ok(())
    }
}

/// A host name, IPv4 or IPv6 address: no spaces, shell or option characters.
pub fn is_host_token(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':'))
}

/// The host of an `http(s)://host[:port][/path]` address.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = super::namenode::host_part(authority);
    is_host_token(host).then_some(host)
}

/// `[scheduler]`: when each check runs (cron expressions with seconds: `sec min hour
/// day-of-month month day-of-week [year]`, weekdays 1 = Sunday; empty = never), and limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    pub enabled: bool,
    /// A check run taking longer is stopped and recorded as `timeout`.
    pub timeout_secs: u64,
    pub namenode: String,
    pub resourcemanager: String,
    pub flume: String,
    pub ports: String,
    pub ssh: String,
    pub scripts: String,
    /// Directory of operator scripts run by the `scripts` check; only the file names in
    /// `scripts_allow` run.
    pub scripts_dir: String,
    pub scripts_allow: Vec<String>,
    /// Output kept per run in `exec_logs` (stdout and stderr each).
    pub output_max_bytes: usize,
    /// Snapshots kept per cluster (older ones are deleted).
    pub keep_snapshots: u32,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            enabled: true,
            timeout_secs: 10,
            namenode: "0 * * * * *".into(),
            resourcemanager: "0 * * * * *".into(),
            flume: "30 * * * * *".into(),
            ports: "0 */5 * * * *".into(),
            ssh: "0 */15 * * * *".into(),
            scripts: "0 0 * * * *".into(),
            scripts_dir: String::new(),
            scripts_allow: Vec::new(),
            output_max_bytes: 16 * 1024,
            keep_snapshots: 10_000,
        }
    }
}

/// The checks the scheduler runs, by name.
pub const CHECKS: [&str; 6] = [
    "namenode",
    "resourcemanager",
    "flume",
    "ports",
    "ssh",
    "scripts",
];

impl SchedulerSettings {
    /// The cron expression of check `name` (one of [`CHECKS`]); empty = never.
    pub fn schedule_of(&self, name: &str) -> &str {
        match name {
            "namenode" => &self.namenode,
            "resourcemanager" => &self.resourcemanager,
            "flume" => &self.flume,
            "ports" => &self.ports,
            "ssh" => &self.ssh,
            "scripts" => &self.scripts,
            _ => "",
        }
    }

    /// The parsed schedule of check `name`; `None` when it never runs on its own.
    pub fn schedule(&self, name: &str) -> Option<cron::Schedule> {
        let expr = self.schedule_of(name).trim();
        (!expr.is_empty())
            .then(|| cron::Schedule::from_str(expr).ok())
            .flatten()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        for name in CHECKS {
            let expr = self.schedule_of(name).trim();
            if expr.is_empty() {
                continue;
            }
            if let Err(e) = cron::Schedule::from_str(expr) {
                let fields = expr.split_whitespace().count();
                let hint = if fields == 5 {
                    " (5 fields: a crontab line; add the seconds first, e.g. `0 */5 * * * *`)"
                } else {
                    " (sec min hour day-of-month month day-of-week [year]; weekdays 1 = Sunday)"
                };
                return Err((
                    format!("scheduler.{name}"),
                    format!("`{expr}` is not a cron expression: {e}{hint}"),
                ));
            }
        }
        if self.timeout_secs == 0 {
            return Err(("scheduler.timeout_secs".into(), "must be at least 1".into()));
        }
        if self.output_max_bytes < 256 {
            return Err((
                "scheduler.output_max_bytes".into(),
                "must be at least 256".into(),
            ));
        }
        for s in &self.scripts_allow {
            if s.contains('/') || s.contains('\\') || s.starts_with('.') || s.is_empty() {
                return Err((
                    "scheduler.scripts_allow".into(),
                    format!("`{s}` must be a file name inside scripts_dir"),
                ));
            }
        }
        if !self.scripts_allow.is_empty() && self.scripts_dir.trim().is_empty() {
            return Err((
                "scheduler.scripts_dir".into(),
                "must be set when scripts_allow lists scripts".into(),
            ));
        }
        Ok(())
    }
}

/// Check the cluster list and the scheduler settings: `(key, reason)` of the first problem.
pub fn validate(
    clusters: &[ClusterSettings],
    scheduler: &SchedulerSettings,
    thresholds: &super::snapshot::Thresholds,
) -> Result<(), (String, String)> {
    for (i, c) in clusters.iter().enumerate() {
        c.validate(&format!("clusters[{i}]"))?;
    }
    let mut names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err((
            "clusters".into(),
            format!("cluster `{}` is listed twice", w[0]),
        ));
    }
    scheduler.validate()?;
    thresholds
        .validate()
        .map_err(|(k, r)| (format!("snapshot_faults.{k}"), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterSettings {
        ClusterSettings {
            name: "prod".into(),
            namenodes: vec!["http://nn1:9870".into(), "http://nn2:9870".into()],
            resourcemanagers: vec!["http://rm1:8088/".into()],
            workers: vec!["w1".into(), "10.0.0.12".into()],
            ssh_user: "hadoop".into(),
            ..Default::default()
        }
    }

    #[test]
    fn default_probes_per_hadoop_version() {
        let c = cluster();
        let t = c.probe_targets();
        let has = |h: &str, p: u16| t.iter().any(|x| x.host == h && x.port == p);
        assert!(has("nn1", 8020) && has("nn2", 9870) && has("rm1", 8032) && has("rm1", 8088));
        assert!(has("w1", 9866) && has("10.0.0.12", 9864) && has("w1", 8042) && has("w1", 22));
        let h2 = ClusterSettings {
            hadoop_version: 2,
            namenode_rpc_port: 9000,
            ..c.clone()
        };
        let t = h2.probe_targets();
        let has = |h: &str, p: u16| t.iter().any(|x| x.host == h && x.port == p);
        assert!(has("nn1", 9000) && has("nn1", 50070) && has("w1", 50010) && has("w1", 50075));
        let explicit = ClusterSettings {
            ports: vec![PortSettings {
                host: "w9".into(),
                port: 9866,
                service: "dn".into(),
            }],
            ..c
        };
        assert_eq!(explicit.probe_targets().len(), 1);
    }

    #[test]
    fn invalid_settings_are_named() {
        let th = super::super::snapshot::Thresholds::default();
        let sched = SchedulerSettings::default();
        assert_eq!(validate(&[cluster()], &sched, &th), Ok(()));
        let bad = |c: ClusterSettings| validate(&[c], &sched, &th).unwrap_err();
        assert_eq!(
            bad(ClusterSettings {
                ssh_user: "-oProxyCommand=x".into(),
                ..cluster()
            })
            .0,
            "clusters[0].ssh_user"
        );
        assert_eq!(
            bad(ClusterSettings {
                workers: vec!["w1; rm -rf /".into()],
                ..cluster()
            })
            .0,
            "clusters[0].workers"
        );
        assert_eq!(
            bad(ClusterSettings {
                namenodes: vec!["nn1:9870".into()],
                ..cluster()
            })
            .0,
            "clusters[0].namenodes"
        );
        assert_eq!(
            validate(&[cluster(), cluster()], &sched, &th)
                .unwrap_err()
                .0,
            "clusters"
        );
        let crontab = SchedulerSettings {
            ports: "*/5 * * * *".into(),
            ..Default::default()
        };
        let (key, reason) = validate(&[], &crontab, &th).unwrap_err();
        assert_eq!(key, "scheduler.ports");
        assert!(reason.contains("add the seconds first"), "{reason}");
        let escape = SchedulerSettings {
            scripts_dir: "/etc/faultline/scripts".into(),
            scripts_allow: vec!["../bin/sh".into()],
            ..Default::default()
        };
        assert_eq!(
            validate(&[], &escape, &th).unwrap_err().0,
            "scheduler.scripts_allow"
        );
    }

    #[test]
    fn default_schedules_parse() {
        let s = SchedulerSettings::default();
        for c in CHECKS {
            assert!(s.schedule(c).is_some(), "{c}");
        }
        let never = SchedulerSettings {
            ssh: String::new(),
            ..Default::default()
        };
        assert!(never.schedule("ssh").is_none());
        assert_eq!(
            url_host("https://nn1.example.com:9871/jmx"),
            Some("nn1.example.com")
        );
        assert_eq!(url_host("ftp://x"), None);
    }
}
