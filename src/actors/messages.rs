//! Messages between pipeline stages.
//!
//! ```text
//! HTTP ──Append──► Ingest ──(WAL)──► Parse ──Records──► Rules ──Records+findings──► Record ──► system_logs, fault_records
//!                    │ try_send(Wake)  ▲
//!                    └─────────────────┘
//! ```

use actix::Message;

use crate::domain::{LogRecord, StreamKey};
use crate::rules::Finding;
use crate::wal::{WalBatch, WalError};

/// Append accepted lines to the write-ahead log. Answered once the lines are durable.
#[derive(Message)]
#[rtype(result = "Result<AppendAck, WalError>")]
pub struct Append {
    pub batches: Vec<WalBatch>,
    pub received_ms: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct AppendAck {
    pub first_seq: u64,
    pub end_seq: u64,
}

/// New lines may be waiting in the write-ahead log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Parsed records travelling downstream. Once these records are stored: every WAL line with
/// a seq below `checkpoint` is stored, and for each `(stream, seq)` in `marks` every line of
/// that stream up to `seq` is stored (the replay watermarks).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), StageError>")]
pub struct Records {
    pub records: Vec<LogRecord>,
    /// Filled by the Rules stage: what the rules found in `records`.
    pub findings: Vec<Finding>,
    pub checkpoint: u64,
    pub marks: Vec<(StreamKey, u64)>,
}

/// A downstream stage could not handle a batch; the sender rewinds to the checkpoint.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StageError {
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("stage {0} is not running")]
    Unavailable(&'static str),
}

impl From<actix::MailboxError> for StageError {
    fn from(_: actix::MailboxError) -> Self {
        StageError::Unavailable("downstream")
    }
}
