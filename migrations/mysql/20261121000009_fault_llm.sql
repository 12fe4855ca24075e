-- LLM escalation state of a fault: template_key groups unknown faults by message template (one
-- LLM call per template), llm_status is NULL until escalated (diagnosed / unverified / skipped /
-- confirmed), llm_answer holds the structured answer (JSON) shown to the operator.
ALTER TABLE fault_records
    ADD COLUMN template_key VARCHAR(64) NULL,
    ADD COLUMN llm_status   VARCHAR(16) NULL,
    ADD COLUMN llm_answer   LONGTEXT    NULL,
    ADD KEY idx_fault_records_llm_pending (llm_status, template_key)
