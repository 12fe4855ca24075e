//! Domain types shared by every stage: log levels, stream identity and the parsed record.
//!
//! These types know nothing about actix, HTTP or SQL; they are what the parser produces,
//! what the pipeline carries and what storage writes.

use serde::Serialize;

/// Log severity. Ordered so that `level >= Level::Warn` means "WARN or worse".
/// `Unknown` (a line with no recognised header) ranks lowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(description = "A log level; `UNKNOWN` is a line with no recognised header.")]
pub enum Level {
    Unknown = 0,
    Trace = 1,
    Debug = 2,
    Info = 3,
    Warn = 4,
    Error = 5,
    Fatal = 6,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::Unknown,
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unknown => "UNKNOWN",
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// The integer stored in the `level` column.
    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(code: i16) -> Level {
        Level::ALL
            .get(usize::try_from(code).unwrap_or(0))
            .copied()
            .unwrap_or(Level::Unknown)
    }

    /// Exact log4j level token (`INFO`, `WARN`, ...), as printed by `%p`.
    pub fn from_log4j(token: &str) -> Option<Level> {
        Some(match token {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" => Level::Warn,
            "ERROR" => Level::Error,
            "FATAL" => Level::Fatal,
            _ => return None,
        })
    }

    /// Lenient parse for user input and shippers' fields (`warn`, `WARNING`, `err`, ...).
    pub fn parse_lenient(s: &str) -> Option<Level> {
        let up = s.trim().to_ascii_uppercase();
        Some(match up.as_str() {
            "UNKNOWN" => Level::Unknown,
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" | "NOTICE" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" | "ERR" | "SEVERE" => Level::Error,
            "FATAL" | "CRITICAL" | "CRIT" | "ALERT" | "EMERG" => Level::Fatal,
            _ => return None,
        })
    }
}

/// Which layout a record's first line was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Hadoop daemon / Hadoop 3 CLI: `%d{ISO8601} %p %c: %m`.
    Log4j,
    /// YARN container syslog: `%d{ISO8601} %p [%t] %c: %m`.
    Container,
    /// Hadoop 2 CLI console (and Spark): `%d{yy/MM/dd HH:mm:ss} %p %c{2}: %m`.
    CliH2,
    /// Flume `flume.log`: `%d{dd MMM yyyy HH:mm:ss,SSS} %-5p [%t] (%C.%M:%L) %x - %m`.
    Flume,
    /// Flume console: `%d (%t) [%p - %l] %m`.
    FlumeConsole,
    /// ZooKeeper: `%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m`.
    Zookeeper,
    /// Old HDFS (loghub): `yyMMdd HHmmss <pid> %p %c: %m`.
    HdfsLegacy,
    /// BSD syslog (sshd and friends): `Mmm dd HH:MM:SS host prog[pid]: msg`.
    Syslog,
    /// start-*.sh / pdsh output prefixed `<host>: `.
    HostPrefixed,
    /// FsShell error output: `<cmd>: <message>` (`ls: Call From ...`).
    CliCommand,
    /// JVM uncaught exception: `Exception in thread "main" java.lang...`.
    JvmException,
    /// A continuation line (stack frame, `Caused by:`) with no open record to join.
    OrphanContinuation,
    /// Nothing recognised: kept verbatim with level UNKNOWN.
    Raw,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Log4j => "log4j",
            Layout::Container => "container",
            Layout::CliH2 => "cli_h2",
            Layout::Flume => "flume",
            Layout::FlumeConsole => "flume_console",
            Layout::Zookeeper => "zookeeper",
            Layout::HdfsLegacy => "hdfs_legacy",
            Layout::Syslog => "syslog",
            Layout::HostPrefixed => "host_prefixed",
            Layout::CliCommand => "cli_command",
            Layout::JvmException => "jvm_exception",
            Layout::OrphanContinuation => "orphan_continuation",
            Layout::Raw => "raw",
        }
    }

    pub const ALL: [Layout; 13] = [
        Layout::Log4j,
        Layout::Container,
        Layout::CliH2,
        Layout::Flume,
        Layout::FlumeConsole,
        Layout::Zookeeper,
        Layout::HdfsLegacy,
        Layout::Syslog,
        Layout::HostPrefixed,
        Layout::CliCommand,
        Layout::JvmException,
        Layout::OrphanContinuation,
        Layout::Raw,
    ];

    pub fn from_str_opt(s: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// True when the layout was not recognised (counted as a parse failure).
    pub fn is_unrecognised(self) -> bool {
        matches!(self, Layout::Raw | Layout::OrphanContinuation)
    }
}

/// Identity of one log stream: the unit within which continuation lines are joined.
/// Flume sends it in the endpoint's query string (`?host=worker1&service=datanode&file=...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StreamKey {
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub file: String,
}

impl StreamKey {
    /// A stable 64-bit id of the stream (FNV-1a over the four fields), the same in every
    /// process and release: the primary key of `ingest_streams`.
    pub fn stable_id(&self) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (i, part) in [&self.cluster, &self.host, &self.service, &self.file]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                h ^= 0xff;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            for b in part.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h as i64
    }
}

/// One parsed log record: a header line plus any continuation lines joined to it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// WAL sequence number of the first physical line; also the row id in `system_logs`.
    pub id: u64,
    /// WAL sequence number of the last physical line joined into this record.
    pub last_seq: u64,
    /// When Faultline accepted the first line (UTC epoch milliseconds).
    pub received_ms: i64,
    /// Event time from the line header (UTC epoch ms), or `received_ms` when the line has none.
    pub event_ms: i64,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub source_file: String,
    pub level: Level,
    pub logger: String,
    pub thread: String,
    /// The first line's message, then each continuation line verbatim, joined with `\n`.
    pub message: String,
    pub layout: Layout,
    /// Number of physical lines in the record (1 + continuation lines).
    pub line_count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_are_fixed_and_field_boundaries_matter() {
        let k = |c: &str, h: &str, s: &str, f: &str| StreamKey {
            cluster: c.into(),
            host: h.into(),
            service: s.into(),
            file: f.into(),
        };
        // Pinned values (computed independently): they are stored in databases, so they must
        // never change.
        assert_eq!(
            k("default", "worker1", "datanode", "").stable_id(),
            -1_820_733_440_713_652_362
        );
        assert_eq!(k("", "", "", "").stable_id(), -461_561_667_403_403_756);
        assert_ne!(
            k("a", "bc", "", "").stable_id(),
            k("ab", "c", "", "").stable_id()
        );
    }
}
