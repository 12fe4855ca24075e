-- Faults found by rules, health checks or the LLM. open_fingerprint = fingerprint while the
-- fault is open and NULL once resolved, so a fingerprint is unique among open faults only.
CREATE TABLE IF NOT EXISTS fault_records (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint      TEXT    NOT NULL,
    open_fingerprint TEXT    NULL UNIQUE,
    fault_type       TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    cluster          TEXT    NOT NULL,
    host             TEXT    NOT NULL,
    service          TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    root_cause       TEXT    NOT NULL,
    remediation      TEXT    NOT NULL,
    evidence         TEXT    NOT NULL CHECK (json_valid(evidence)),
    occurrences      BIGINT  NOT NULL,
    first_seen       BIGINT  NOT NULL,
    last_seen        BIGINT  NOT NULL,
    acknowledged_at  BIGINT  NULL,
    acknowledged_by  TEXT    NULL,
    resolved_at      BIGINT  NULL,
    llm_model        TEXT    NULL,
    llm_confidence   DOUBLE  NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_fault_records_status_seen ON fault_records (status, last_seen);
CREATE INDEX IF NOT EXISTS idx_fault_records_type_seen ON fault_records (fault_type, last_seen);
CREATE INDEX IF NOT EXISTS idx_fault_records_host_seen ON fault_records (host, last_seen);
CREATE INDEX IF NOT EXISTS idx_fault_records_fingerprint ON fault_records (fingerprint);
