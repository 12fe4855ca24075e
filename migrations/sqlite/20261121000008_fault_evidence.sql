-- Links from a fault to the stored log lines (system_logs.id) that evidence it.
CREATE TABLE IF NOT EXISTS fault_evidence (
    fault_id BIGINT NOT NULL,
    log_id   BIGINT NOT NULL,
    PRIMARY KEY (fault_id, log_id)
);
CREATE INDEX IF NOT EXISTS idx_fault_evidence_log ON fault_evidence (log_id);
