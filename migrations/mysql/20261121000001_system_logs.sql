-- Parsed log records. id = WAL sequence number of the record's first line (assigned at
-- ingest), so replaying the write-ahead log after a crash is idempotent.
-- Times are UTC epoch milliseconds (BIGINT) in both dialects.
CREATE TABLE IF NOT EXISTS system_logs (
    id          BIGINT       NOT NULL PRIMARY KEY,
    received_at BIGINT       NOT NULL,
    event_time  BIGINT       NOT NULL,
    cluster     VARCHAR(64)  NOT NULL,
    host        VARCHAR(255) NOT NULL,
    service     VARCHAR(64)  NOT NULL,
    source_file VARCHAR(512) NOT NULL,
    level       SMALLINT     NOT NULL,
    logger      VARCHAR(255) NOT NULL,
    thread      VARCHAR(255) NOT NULL,
    layout      VARCHAR(32)  NOT NULL,
    line_count  INT          NOT NULL,
    message     LONGTEXT     NOT NULL,
    fault_id    BIGINT       NULL,
    KEY idx_system_logs_time (event_time),
    KEY idx_system_logs_host_time (host, event_time),
    KEY idx_system_logs_level_time (level, event_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
