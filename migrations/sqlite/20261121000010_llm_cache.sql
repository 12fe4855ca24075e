-- LLM answers by (template, fault context, model, prompt version, language), kept across
-- restarts so a template already explained costs no further call. The answer is stored masked
-- (placeholders such as HOST_1) and unmasked per fault with that fault's own values.
CREATE TABLE IF NOT EXISTS llm_cache (
    cache_key      TEXT    NOT NULL PRIMARY KEY,
    template_key   TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    prompt_version TEXT    NOT NULL,
    language       TEXT    NOT NULL,
    verified       INTEGER NOT NULL,
    answer         TEXT    NOT NULL CHECK (json_valid(answer)),
    tokens_in      BIGINT  NOT NULL,
    tokens_out     BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    hits           BIGINT  NOT NULL DEFAULT 0,
    last_hit_at    BIGINT  NULL
);
CREATE INDEX IF NOT EXISTS idx_llm_cache_template ON llm_cache (template_key);
