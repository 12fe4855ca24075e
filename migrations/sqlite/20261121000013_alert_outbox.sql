-- Notifications to deliver (the outbox: pending rows survive a restart) and the delivery log:
-- status pending / sent / failed, or muted (recorded, never sent: silence, maintenance window,
-- inhibition).
CREATE TABLE IF NOT EXISTS alert_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    group_key       TEXT    NOT NULL,
    reasons         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    finished_at     BIGINT  NULL,
    last_error      TEXT    NULL
);
CREATE INDEX IF NOT EXISTS idx_alert_outbox_due ON alert_outbox (status, next_attempt_at);
