-- Remediations: proposed for a fault, approved (or run unattended), run (the run itself is an
-- exec_logs row), then judged by a re-check. Refused proposals (a parameter that failed
-- validation) are kept too: the audit trail. open_fault = fault_id while proposed or running
-- (NULL after), so a fault has at most one open remediation.
CREATE TABLE IF NOT EXISTS remediations (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    fault_id     BIGINT       NOT NULL,
    script       VARCHAR(128) NOT NULL,
    args         TEXT         NOT NULL,
    cluster      VARCHAR(64)  NOT NULL,
    host         VARCHAR(255) NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    mode         VARCHAR(16)  NOT NULL,
    proposed_by  VARCHAR(128) NOT NULL,
    proposed_at  BIGINT       NOT NULL,
    approved_by  VARCHAR(128) NULL,
    approved_at  BIGINT       NULL,
    exec_log_id  BIGINT       NULL,
    finished_at  BIGINT       NULL,
    message      TEXT         NOT NULL,
    open_fault   BIGINT       NULL,
    UNIQUE KEY uq_remediations_open (open_fault),
    KEY idx_remediations_fault (fault_id),
    KEY idx_remediations_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
