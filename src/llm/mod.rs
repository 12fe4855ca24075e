//! LLM escalation of unknown faults (issue 5). So far: the central, reversible masking of the
//! final prompt text (`mask.rs`); the client, prompts, cache and escalation actor follow.

pub mod mask;
