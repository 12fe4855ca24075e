-- Remediations: proposed for a fault, approved (or run unattended), run (the run itself is an
-- exec_logs row), then judged by a re-check. Refused proposals (a parameter that failed
-- validation) are kept too: the audit trail. open_fault = fault_id while proposed or running
-- (NULL after), so a fault has at most one open remediation.
CREATE TABLE IF NOT EXISTS remediations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    fault_id     BIGINT  NOT NULL,
    script       TEXT    NOT NULL,
    args         TEXT    NOT NULL,
    cluster      TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    proposed_by  TEXT    NOT NULL,
    proposed_at  BIGINT  NOT NULL,
    approved_by  TEXT    NULL,
    approved_at  BIGINT  NULL,
    exec_log_id  BIGINT  NULL,
    finished_at  BIGINT  NULL,
    message      TEXT    NOT NULL,
    open_fault   BIGINT  NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS idx_remediations_fault ON remediations (fault_id);
CREATE INDEX IF NOT EXISTS idx_remediations_status ON remediations (status);
