-- One row: every WAL line with seq < next_seq is stored in system_logs.
CREATE TABLE IF NOT EXISTS ingest_checkpoint (
    id       INT    NOT NULL PRIMARY KEY,
    next_seq BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
