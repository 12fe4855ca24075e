-- The alert engine's memory per fault identity (phase, what was notified, flaps), so a
-- restart neither repeats nor forgets a notification.
CREATE TABLE IF NOT EXISTS alert_state (
    fingerprint VARCHAR(128) NOT NULL PRIMARY KEY,
    state       LONGTEXT     NOT NULL,
    updated_at  BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
