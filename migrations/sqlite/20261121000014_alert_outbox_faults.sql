-- Which faults a notification (or a muted record) is about: the fault's delivery log.
CREATE TABLE IF NOT EXISTS alert_outbox_faults (
    outbox_id BIGINT NOT NULL,
    fault_id  BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, fault_id)
);
CREATE INDEX IF NOT EXISTS idx_alert_outbox_faults_fault ON alert_outbox_faults (fault_id);
