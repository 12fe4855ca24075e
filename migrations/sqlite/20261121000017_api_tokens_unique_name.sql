-- An active token's name is unique (audit fields and rate-limit keys name tokens); revoked
-- tokens keep theirs.
CREATE UNIQUE INDEX IF NOT EXISTS uq_api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
