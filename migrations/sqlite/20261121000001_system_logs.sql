-- Parsed log records. id = WAL sequence number of the record's first line (assigned at
-- ingest), so replaying the write-ahead log after a crash is idempotent.
-- Times are UTC epoch milliseconds (BIGINT) in both dialects.
CREATE TABLE IF NOT EXISTS system_logs (
    id          INTEGER PRIMARY KEY,
    received_at BIGINT  NOT NULL,
    event_time  BIGINT  NOT NULL,
    cluster     TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    service     TEXT    NOT NULL,
    source_file TEXT    NOT NULL,
    level       SMALLINT NOT NULL,
    logger      TEXT    NOT NULL,
    thread      TEXT    NOT NULL,
    layout      TEXT    NOT NULL,
    line_count  INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    fault_id    BIGINT  NULL
);
CREATE INDEX IF NOT EXISTS idx_system_logs_time ON system_logs (event_time);
CREATE INDEX IF NOT EXISTS idx_system_logs_host_time ON system_logs (host, event_time);
CREATE INDEX IF NOT EXISTS idx_system_logs_level_time ON system_logs (level, event_time);
