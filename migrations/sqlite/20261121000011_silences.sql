-- Operator silences: alerts matching every matcher between starts_at and ends_at are recorded
-- but not sent. deleted_at set = expired early by DELETE /api/silences/{id}.
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers   TEXT    NOT NULL,
    starts_at  BIGINT  NOT NULL,
    ends_at    BIGINT  NOT NULL,
    created_by TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    deleted_at BIGINT  NULL
);
CREATE INDEX IF NOT EXISTS idx_silences_ends ON silences (ends_at);
