-- Per-stream replay watermark: every line of the stream with seq <= last_seq is inside a
-- stored system_logs record. Written in the same transaction as the records; rows whose
-- last_seq is below the checkpoint are pruned (a replay starts at the checkpoint).
-- stream_id = FNV-1a 64 of the stream key (StreamKey::stable_id).
CREATE TABLE IF NOT EXISTS ingest_streams (
    stream_id BIGINT NOT NULL PRIMARY KEY,
    cluster   TEXT   NOT NULL,
    host      TEXT   NOT NULL,
    service   TEXT   NOT NULL,
    file      TEXT   NOT NULL,
    last_seq  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
