-- API tokens created at run time (the first-start admin token, POST /api/tokens). Only the
-- SHA-256 of a token is stored; the token itself is shown once, when it is created.
-- revoked_at set = refused from then on (DELETE /api/tokens/{id}).
CREATE TABLE IF NOT EXISTS api_tokens (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(128) NOT NULL,
    role       VARCHAR(16)  NOT NULL,
    token_hash CHAR(64)     NOT NULL,
    created_by VARCHAR(128) NOT NULL,
    created_at BIGINT       NOT NULL,
    revoked_at BIGINT       NULL,
    UNIQUE KEY uq_api_tokens_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
