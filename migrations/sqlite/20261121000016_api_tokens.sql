-- API tokens created at run time (the first-start admin token, POST /api/tokens). Only the
-- SHA-256 of a token is stored; the token itself is shown once, when it is created.
-- revoked_at set = refused from then on (DELETE /api/tokens/{id}).
CREATE TABLE IF NOT EXISTS api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_by TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT  NULL
);
