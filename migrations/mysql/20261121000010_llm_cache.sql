-- LLM answers by (template, fault context, model, prompt version, language), kept across
-- restarts so a template already explained costs no further call. The answer is stored masked
-- (placeholders such as HOST_1) and unmasked per fault with that fault's own values.
CREATE TABLE IF NOT EXISTS llm_cache (
    cache_key      VARCHAR(64)  NOT NULL PRIMARY KEY,
    template_key   VARCHAR(64)  NOT NULL,
    model          VARCHAR(128) NOT NULL,
    prompt_version VARCHAR(64)  NOT NULL,
    language       VARCHAR(8)   NOT NULL,
    verified       SMALLINT     NOT NULL,
    answer         LONGTEXT     NOT NULL,
    tokens_in      BIGINT       NOT NULL,
    tokens_out     BIGINT       NOT NULL,
    created_at     BIGINT       NOT NULL,
    hits           BIGINT       NOT NULL DEFAULT 0,
    last_hit_at    BIGINT       NULL,
    KEY idx_llm_cache_template (template_key),
    CONSTRAINT chk_llm_cache_answer CHECK (json_valid(answer))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
