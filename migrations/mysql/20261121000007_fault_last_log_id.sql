-- Highest log id (WAL seq) counted into a fault (replays are detected through fault_evidence).
ALTER TABLE fault_records ADD COLUMN last_log_id BIGINT NOT NULL DEFAULT 0
