-- LLM escalation state of a fault: template_key groups unknown faults by message template (one
-- LLM call per template), llm_status is NULL until escalated (diagnosed / unverified / skipped /
-- confirmed), llm_answer holds the structured answer (JSON) shown to the operator.
ALTER TABLE fault_records ADD COLUMN template_key TEXT NULL;
ALTER TABLE fault_records ADD COLUMN llm_status TEXT NULL;
ALTER TABLE fault_records ADD COLUMN llm_answer TEXT NULL;
CREATE INDEX IF NOT EXISTS idx_fault_records_llm_pending ON fault_records (llm_status, template_key);
