-- An active token's name is unique (audit fields and rate-limit keys name tokens); revoked
-- tokens keep theirs: the generated column is NULL for them, and NULLs do not collide.
ALTER TABLE api_tokens
    ADD COLUMN active_name VARCHAR(128) AS (IF(revoked_at IS NULL, name, NULL)) STORED,
    ADD UNIQUE KEY uq_api_tokens_active_name (active_name)
