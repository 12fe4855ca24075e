-- Operator silences: alerts matching every matcher between starts_at and ends_at are recorded
-- but not sent. deleted_at set = expired early by DELETE /api/silences/{id}.
CREATE TABLE IF NOT EXISTS silences (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    matchers   TEXT         NOT NULL,
    starts_at  BIGINT       NOT NULL,
    ends_at    BIGINT       NOT NULL,
    created_by VARCHAR(128) NOT NULL,
    comment    TEXT         NOT NULL,
    created_at BIGINT       NOT NULL,
    deleted_at BIGINT       NULL,
    KEY idx_silences_ends (ends_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
