-- Notifications to deliver (the outbox: pending rows survive a restart) and the delivery log:
-- status pending / sent / failed, or muted (recorded, never sent: silence, maintenance window,
-- inhibition).
CREATE TABLE IF NOT EXISTS alert_outbox (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    receiver        VARCHAR(64)  NOT NULL,
    kind            VARCHAR(16)  NOT NULL,
    group_key       VARCHAR(512) NOT NULL,
    reasons         VARCHAR(128) NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    payload         LONGTEXT     NOT NULL,
    attempts        INT          NOT NULL,
    next_attempt_at BIGINT       NOT NULL,
    created_at      BIGINT       NOT NULL,
    finished_at     BIGINT       NULL,
    last_error      TEXT         NULL,
    KEY idx_alert_outbox_due (status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
