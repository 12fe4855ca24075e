//! `preprocess_log`: the first step of the pipeline, turning raw log lines into `LogRecord`s.
//!
//! Flume posts one physical line per request, and lines of many streams (host × service × file)
//! interleave. This module does two things with them:
//!
//! * [`layouts`] classifies ONE physical line without state or allocation ([`parse_line`], also
//!   exported as [`preprocess_log`]): is it a header (a new record) or a continuation (stack
//!   frame, `Caused by:`, banner line), which layout (log4j daemon, YARN container, Hadoop 2 CLI,
//!   Flume, ZooKeeper, old HDFS, syslog, start-*.sh / pdsh console, FsShell error, JVM uncaught
//!   exception, raw), and where the level, time, logger, thread, message and host are.
//! * [`joiner`] re-joins multi-line records per stream ([`Joiner`]): continuation lines are
//!   glued to the open record of the same stream, records are closed by the next header, by an
//!   idle timeout or by size caps, and each closed record is handed on as a `LogRecord` with its
//!   event time converted to UTC.
//!
//! [`infer_service`] fills in the service of a stream that did not say which daemon it is.
//! Only `crate::domain`, std and memchr are used, so the module can move between crates as is.

pub mod joiner;
pub mod layouts;

pub use joiner::{Joiner, JoinerConfig, StreamId, absorbs_raw};
pub use layouts::{LineKind, LocalTime, ParsedLine, parse_line};

/// The `preprocess_log` step of the product for one physical line: an alias of [`parse_line`].
/// Stateless; multi-line records are assembled afterwards by [`Joiner`].
///
/// ```
/// use faultline::domain::{Layout, Level};
/// use faultline::parse::{LineKind, preprocess_log};
///
/// let p = preprocess_log(
///     "2024-05-12 10:14:12,005 INFO org.apache.hadoop.hdfs.StateChange: BLOCK* removeDeadDatanode: lost heartbeat from 192.168.10.13:9866",
/// );
/// assert_eq!(p.layout, Layout::Log4j);
/// assert_eq!(p.level, Level::Info);
/// assert_eq!(p.logger, "org.apache.hadoop.hdfs.StateChange");
/// assert!(p.message.starts_with("BLOCK* removeDeadDatanode"));
/// assert_eq!(preprocess_log("\tat org.apache.hadoop.ipc.Client.call(Client.java:1554)").kind, LineKind::Continuation);
/// ```
#[inline]
pub fn preprocess_log(line: &str) -> ParsedLine<'_> {
    parse_line(line)
}

/// Service names a token of a Hadoop / Flume / ZooKeeper log file name can carry.
const FILE_SERVICES: &[&str] = &[
    "secondarynamenode",
    "namenode",
    "datanode",
    "journalnode",
    "resourcemanager",
    "nodemanager",
    "historyserver",
    "flume",
    "zookeeper",
];

/// ZooKeeper server classes as printed by its `%C{1}` layout (loghub Zookeeper_2k).
const ZOOKEEPER_CLASSES: &[&str] = &[
    "FastLeaderElection",
    "QuorumCnxManager",
    "QuorumPeer",
    "QuorumPeerMain",
    "QuorumPeerConfig",
    "NIOServerCnxn",
    "NIOServerCnxnFactory",
    "NettyServerCnxn",
    "NettyServerCnxnFactory",
    "ZooKeeperServer",
    "ZooKeeperServerMain",
    "Learner",
    "LearnerHandler",
    "Leader",
    "Follower",
    "FollowerZooKeeperServer",
    "LeaderZooKeeperServer",
    "ZKDatabase",
    "FileTxnLog",
    "FileTxnSnapLog",
    "FileSnap",
    "PrepRequestProcessor",
    "FinalRequestProcessor",
    "SyncRequestProcessor",
    "CommitProcessor",
    "SessionTrackerImpl",
    "DatadirCleanupManager",
    "ServerCnxn",
    "ServerCnxnFactory",
];

/// Which daemon a stream belongs to, from its file name (`hadoop-hadoop-namenode-master.log`,
/// `yarn-hadoop-resourcemanager-nn1.log`, `flume.log`, `/var/log/secure`, `auth.log`, container
/// `syslog` under `/userlogs/`) or else from the record's logger. Returns one of: namenode,
/// secondarynamenode, datanode, journalnode, resourcemanager, nodemanager, historyserver,
/// mapreduce, flume, sshd, zookeeper.
pub fn infer_service(file: &str, logger: &str) -> Option<&'static str> {
    service_from_file(file).or_else(|| service_from_logger(logger))
}

/// The host in a Hadoop daemon log name: `<hadoop|yarn|mapred|hbase>-<user>-<daemon>-<host>.log`
/// (or `.out`, with a rotation suffix), as written by the `*-daemon.sh` scripts.
///
/// ```
/// use faultline::parse::infer_host;
/// assert_eq!(infer_host("/var/log/hadoop/hadoop-hdfs-namenode-nn-1.example.com.log.3"), Some("nn-1.example.com"));
/// assert_eq!(infer_host("yarn-yarn-nodemanager-dn05.out"), Some("dn05"));
/// assert_eq!(infer_host("flume.log"), None);
/// ```
pub fn infer_host(file: &str) -> Option<&str> {
    const DAEMONS: &[&str] = &[
        "namenode",
        "secondarynamenode",
        "datanode",
        "journalnode",
        "zkfc",
        "resourcemanager",
        "nodemanager",
        "historyserver",
        "timelineserver",
        "proxyserver",
        "master",
        "regionserver",
    ];
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let mut parts = base.splitn(4, '-');
    let prefix = parts.next()?;
    let _user = parts.next()?;
    let daemon = parts.next()?;
    let rest = parts.next()?;
    if !["hadoop", "yarn", "mapred", "hbase"].contains(&prefix) || !DAEMONS.contains(&daemon) {
        return None;
    }
    let end = [".log", ".out"]
        .iter()
        .filter_map(|ext| rest.rfind(ext))
        .max()?;
    let host = &rest[..end];
    (!host.is_empty()).then_some(host)
}

fn service_from_file(file: &str) -> Option<&'static str> {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    for tok in base.split(['-', '.', '_']) {
        if let Some(s) = FILE_SERVICES.iter().find(|s| s.eq_ignore_ascii_case(tok)) {
            return Some(s);
        }
    }
    let lower_starts = |p: &str| {
        base.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    if lower_starts("secure") || lower_starts("auth.log") {
        return Some("sshd");
    }
    if lower_starts("syslog") && (file.contains("/userlogs/") || file.starts_with("userlogs/")) {
        return Some("mapreduce");
    }
    None
}

fn service_from_logger(logger: &str) -> Option<&'static str> {
    if logger.is_empty() {
        return None;
    }
    if logger == "sshd" || logger.starts_with("sshd(") {
        return Some("sshd");
    }
    if logger.starts_with("org.apache.zookeeper.") {
        return Some("zookeeper");
    }
    if logger.starts_with("org.apache.flume.") {
        return Some("flume");
    }
    let class = logger.rsplit('.').next().unwrap_or(logger);
    let class_base = class.split('$').next().unwrap_or(class);
    let has_seg = |name: &str| logger.split('.').any(|s| s == name);
    if class_base == "SecondaryNameNode" {
        return Some("secondarynamenode");
    }
    if (has_seg("qjournal") && has_seg("server")) || class_base.starts_with("JournalNode") {
        return Some("journalnode");
    }
    if has_seg("datanode") || class_base.starts_with("DataNode") {
        return Some("datanode");
    }
    if has_seg("namenode")
        || has_seg("blockmanagement")
        || class_base == "StateChange"
        || class_base == "BlockStateChange"
        || class_base.starts_with("NameNode")
        || class_base.starts_with("FSNamesystem")
        || class_base.starts_with("FSEditLog")
        || class_base.starts_with("FSImage")
    {
        return Some("namenode");
    }
    if has_seg("resourcemanager") || class_base == "ResourceManager" {
        return Some("resourcemanager");
    }
    if has_seg("nodemanager") || class_base == "NodeManager" {
        return Some("nodemanager");
    }
    if (has_seg("hs") && has_seg("v2")) || class_base == "JobHistoryServer" {
        return Some("historyserver");
    }
    if has_seg("mapreduce") || has_seg("mapred") || class_base == "MRAppMaster" {
        return Some("mapreduce");
    }
    if ZOOKEEPER_CLASSES.contains(&class_base) {
        return Some("zookeeper");
    }
    None
}

/// Locating the read-only sample data shared by the project (loghub, reference logs, dev cases).
/// Test support (hidden): where the shared sample data is.
#[doc(hidden)]
pub mod testdata {
    use std::path::PathBuf;

    /// `$FAULTLINE_SHARED`, else `<crate>/../shared` (CI clones the repo beside `shared/`).
    /// Missing data skips the data-driven tests locally and fails them under `CI=true`.
    pub fn shared_dir() -> Option<PathBuf> {
        let mut candidates = Vec::new();
        if let Ok(p) = std::env::var("FAULTLINE_SHARED") {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let found = candidates
            .into_iter()
            .find(|p| p.join("data/loghub").is_dir());
        if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the shared sample data (../shared/data/loghub) is missing");
        }
        found
    }

    /// Lines of a file below the shared dir (split on `\n`; a `\r` before it is kept, for the
    /// parser to strip; no empty last line for a file ending in `\n`).
    pub fn lines(rel: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(shared_dir()?.join(rel)).ok()?;
        let body = text.strip_suffix('\n').unwrap_or(&text);
        Some(body.split('\n').map(str::to_owned).collect())
    }

    /// `(id, lines)` of every case in `corpus/dev-cases.jsonl`.
    pub fn dev_cases() -> Option<Vec<(String, Vec<String>)>> {
        let path = shared_dir()?.join("corpus/dev-cases.jsonl");
        let text = std::fs::read_to_string(path).ok()?;
        let mut out = Vec::new();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let id = v.get("id")?.as_str()?.to_owned();
            let lines = v
                .get("lines")?
                .as_array()?
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            out.push((id, lines));
        }
        Some(out)
    }

    /// Every `*.log` / `*.txt` file of `reference/hadoop`, as (name, lines).
    pub fn reference_files() -> Vec<(String, Vec<String>)> {
        let Some(dir) = shared_dir().map(|d| d.join("reference/hadoop")) else {
            return Vec::new();
        };
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<String>)> = rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".log") || n.ends_with(".txt"))
            .filter_map(|n| {
                let l = lines(&format!("reference/hadoop/{n}"))?;
                Some((n, l))
            })
            .collect();
        out.sort();
        out
    }

    pub const LOGHUB: &[&str] = &["Hadoop", "HDFS", "Spark", "Zookeeper", "OpenSSH", "Linux"];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_from_file_names() {
        let cases = [
            ("hadoop-hadoop-namenode-master.log", Some("namenode")),
            (
                "/opt/hadoop/logs/hadoop-hadoop-secondarynamenode-master.log",
                Some("secondarynamenode"),
            ),
            (
                "yarn-hadoop-resourcemanager-nn1.log",
                Some("resourcemanager"),
            ),
            ("hadoop-hdfs-datanode-dn03.log", Some("datanode")),
            ("hadoop-hdfs-datanode-namenode1.log", Some("datanode")),
            (
                "hadoop-hadoop-nodemanager-worker1.log.3",
                Some("nodemanager"),
            ),
            ("hadoop-hadoop-journalnode-jn1.log", Some("journalnode")),
            (
                "mapred-hadoop-historyserver-master.log",
                Some("historyserver"),
            ),
            ("hadoop-cmf-hdfs-NAMENODE-nn1.log.out", Some("namenode")),
            ("/var/log/flume/flume.log", Some("flume")),
            ("zookeeper.out", Some("zookeeper")),
            ("/var/log/secure", Some("sshd")),
            ("/var/log/auth.log", Some("sshd")),
            (
                "/opt/hadoop/logs/userlogs/application_1_0001/container_1_0001_01_000001/syslog",
                Some("mapreduce"),
            ),
            ("/var/log/syslog", None),
            ("hadoop.log", None),
            ("", None),
        ];
        for (file, want) in cases {
            assert_eq!(infer_service(file, ""), want, "{file}");
        }
    }

    #[test]
    fn service_from_loggers() {
        let cases = [
            (
                "org.apache.hadoop.hdfs.server.namenode.FSNamesystem",
                Some("namenode"),
            ),
            ("org.apache.hadoop.hdfs.StateChange", Some("namenode")),
            ("BlockStateChange", Some("namenode")),
            (
                "org.apache.hadoop.hdfs.server.namenode.SecondaryNameNode",
                Some("secondarynamenode"),
            ),
            (
                "org.apache.hadoop.hdfs.server.datanode.DataNode",
                Some("datanode"),
            ),
            ("dfs.DataNode$PacketResponder", Some("datanode")),
            ("dfs.FSNamesystem", Some("namenode")),
            (
                "org.apache.hadoop.hdfs.qjournal.server.Journal",
                Some("journalnode"),
            ),
            (
                "org.apache.hadoop.yarn.server.resourcemanager.rmnode.RMNodeImpl",
                Some("resourcemanager"),
            ),
            (
                "org.apache.hadoop.yarn.server.nodemanager.containermanager.monitor.ContainersMonitorImpl",
                Some("nodemanager"),
            ),
            (
                "org.apache.hadoop.mapreduce.v2.hs.JobHistory",
                Some("historyserver"),
            ),
            (
                "org.apache.hadoop.mapreduce.v2.app.MRAppMaster",
                Some("mapreduce"),
            ),
            ("org.apache.hadoop.mapred.YarnChild", Some("mapreduce")),
            ("mapreduce.Job", Some("mapreduce")),
            ("org.apache.flume.sink.http.HttpSink", Some("flume")),
            ("sshd", Some("sshd")),
            ("sshd(pam_unix)", Some("sshd")),
            ("FastLeaderElection", Some("zookeeper")),
            ("QuorumCnxManager$Listener", Some("zookeeper")),
            ("org.apache.zookeeper.ClientCnxn", Some("zookeeper")),
            ("org.apache.hadoop.ipc.Client", None),
            ("", None),
        ];
        for (logger, want) in cases {
            assert_eq!(infer_service("", logger), want, "{logger}");
        }
        // The file name wins over the logger.
        assert_eq!(
            infer_service(
                "hadoop-hadoop-datanode-w1.log",
                "org.apache.hadoop.ipc.Client"
            ),
            Some("datanode")
        );
    }

    #[test]
    fn preprocess_log_is_parse_line() {
        let l = "2024-05-12 10:14:12,005 INFO org.apache.hadoop.hdfs.StateChange: x";
        assert_eq!(preprocess_log(l), parse_line(l));
    }
}
