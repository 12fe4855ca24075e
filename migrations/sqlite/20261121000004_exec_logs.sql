-- Every health check, script and remediation run, with its outcome (the audit trail).
CREATE TABLE IF NOT EXISTS exec_logs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    command        TEXT    NOT NULL,
    args           TEXT    NOT NULL CHECK (json_valid(args)),
    cluster        TEXT    NOT NULL,
    host           TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    trigger_source TEXT    NOT NULL,
    fault_id       BIGINT  NULL,
    requested_by   TEXT    NULL,
    approved_by    TEXT    NULL,
    started_at     BIGINT  NOT NULL,
    finished_at    BIGINT  NULL,
    duration_ms    BIGINT  NULL,
    status         TEXT    NOT NULL,
    exit_code      INTEGER NULL,
    http_status    INTEGER NULL,
    stdout         TEXT    NOT NULL,
    stderr         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_exec_logs_kind_started ON exec_logs (kind, started_at);
CREATE INDEX IF NOT EXISTS idx_exec_logs_name_started ON exec_logs (name, started_at);
CREATE INDEX IF NOT EXISTS idx_exec_logs_fault ON exec_logs (fault_id);
