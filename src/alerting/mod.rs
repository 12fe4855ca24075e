//! Alerting (issue 6, in progress). Pure: `matcher` (Alertmanager-style label matchers),
//! `settings` (`[alerting]`, compiled into an `AlertPolicy`), `engine` (per-fault alert
//! states with flap damping, reminders, grouping, silences, maintenance windows and
//! inhibition; time passed in), `payload` (what each receiver kind is sent). I/O without
//! actix: `runner` (evaluation → alert_state + outbox; delivery with retries; Alertmanager
//! refresh).

pub mod engine;
pub mod matcher;
pub mod payload;
pub mod runner;
pub mod settings;

#[cfg(test)]
mod engine_tests;
