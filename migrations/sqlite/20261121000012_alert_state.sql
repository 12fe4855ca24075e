-- The alert engine's memory per fault identity (phase, what was notified, flaps), so a
-- restart neither repeats nor forgets a notification.
CREATE TABLE IF NOT EXISTS alert_state (
    fingerprint TEXT   NOT NULL PRIMARY KEY,
    state       TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);
