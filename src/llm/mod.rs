//! LLM escalation of unknown faults (issue 5). Pure parts: `mask` (reversible masking of the
//! final prompt text), `prompt` (templates as files), `answer` (schema and evidence checks),
//! `budget` (hourly requests / tokens). I/O without actix: `client` (async-openai with the
//! retry policy) and `escalator` (cache, budget, calls, fault updates).

pub mod answer;
pub mod budget;
pub mod client;
pub mod escalator;
pub mod mask;
pub mod prompt;
pub mod settings;
