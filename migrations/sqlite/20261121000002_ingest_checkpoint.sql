-- One row: every WAL line with seq < next_seq is stored in system_logs.
CREATE TABLE IF NOT EXISTS ingest_checkpoint (
    id       INTEGER PRIMARY KEY,
    next_seq BIGINT NOT NULL
);
