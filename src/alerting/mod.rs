//! Alerting (issue 6, in progress). Pure: `matcher` (Alertmanager-style label matchers),
//! `settings` (`[alerting]`, compiled into an `AlertPolicy`), `engine` (per-fault alert
//! states with flap damping, reminders, grouping, silences, maintenance windows and
//! inhibition; time passed in).

pub mod engine;
pub mod matcher;
pub mod payload;
pub mod runner;
pub mod settings;

#[cfg(test)]
mod engine_tests;
