//! The rule file format (TOML, one rule per file), as deserialized. See `rules/README.md`.
//!
//! These types mirror the file; [`super::compile`] validates them and builds the matcher.

use serde::Deserialize;

/// What a rule's firing means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A known fault class: the finding's `fault_type` is the rule id.
    #[default]
    Fault,
    /// A documented benign look-alike: matching records are explained and produce nothing.
    Benign,
    /// A real fault no class covers (taxonomy §4): reported as `unknown`, for the LLM.
    Escalate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    #[serde(default)]
    pub kind: RuleKind,
    /// The fault class its findings report (`fault_type`) when it differs from `id`: a draft
    /// rule for an existing class (`rules/drafts/`), or a second rule of one class.
    #[serde(default)]
    pub class: Option<String>,
    pub title: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub component: Option<String>,
    /// Root-cause rank: when one excerpt shows several faults, the highest is primary.
    #[serde(default)]
    pub priority: i32,
    /// What one fault instance is about (fingerprint part), e.g. `"{target}"`. Default `"{host}"`.
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub applies: AppliesSpec,
    #[serde(default)]
    pub diagnosis: Option<String>,
    #[serde(default)]
    pub remediation: Vec<String>,
    #[serde(default)]
    pub references: Vec<String>,
    /// A remediation script (a file name in `remediation.scripts_dir`, allow-listed) an
    /// operator can run for this fault after approval.
    #[serde(default)]
    pub script: Option<String>,
    /// Run the script without approval (only when `remediation.auto` is on too).
    #[serde(default)]
    pub auto: bool,
    #[serde(default, rename = "signal")]
    pub signals: Vec<SignalSpec>,
    /// Root causes the cluster's latest snapshot decides (the first whose `when` holds).
    #[serde(default, rename = "snapshot_cause")]
    pub snapshot_causes: Vec<SnapshotCauseSpec>,
}

/// `[[snapshot_cause]]`: when every predicate of `when` holds on the cluster's latest
/// snapshot, the finding's diagnosis is `cause`, and with `fault` it becomes a finding of
/// that rule (the root cause) with `entity`. See `rules/README.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCauseSpec {
    pub when: Vec<String>,
    #[serde(default)]
    pub fault: Option<String>,
    #[serde(default)]
    pub entity: Option<String>,
    pub cause: String,
}

/// Which records a rule looks at. Empty lists mean "any".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesSpec {
    /// Record service (`namenode`, `datanode`, `flume`, ...); records with no known service pass.
    #[serde(default)]
    pub services: Vec<String>,
    /// Logger prefixes (`org.apache.hadoop.hdfs.`).
    #[serde(default)]
    pub loggers: Vec<String>,
    /// Lowest record level (`info`, `warn`, ...). Records of unknown level always pass.
    #[serde(default)]
    pub min_level: Option<String>,
}

/// One way the fault shows in a record, plus how it correlates with other records.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    #[serde(default)]
    pub name: Option<String>,
    /// Literals that must all occur in the record (case-sensitive).
    #[serde(default)]
    pub all: Vec<String>,
    /// Literals of which at least one must occur.
    #[serde(default)]
    pub any: Vec<String>,
    /// Literals none of which may occur.
    #[serde(default)]
    pub none: Vec<String>,
    /// A regex that must match; its named groups become captures.
    #[serde(default)]
    pub regex: Option<String>,
    /// A regex that must not match.
    #[serde(default)]
    pub not_regex: Option<String>,
    /// Numeric checks over captures: `"tries + 1 >= max_retries"`.
    #[serde(default)]
    pub checks: Vec<String>,
    #[serde(default)]
    pub min_level: Option<String>,
    /// Only a fact for other signals' `requires` / `unless`; never fires on its own.
    #[serde(default)]
    pub context: bool,
    /// Fire only when this many matches fall within `within` (grouped by `group_by`).
    #[serde(default)]
    pub count: Option<u32>,
    /// Window of `count`, `requires` and `unless`: `"90s"`, `"10m"`, `"2h"`, `"1d"`.
    #[serde(default)]
    pub within: Option<String>,
    /// Capture name (or `host`) that `count` groups by.
    #[serde(default)]
    pub group_by: Option<String>,
    /// Names of signals of this rule that must have matched within the window (before, or in
    /// the same record).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Names of signals of this rule whose match within the window (before) suppresses this one.
    #[serde(default)]
    pub unless: Vec<String>,
    /// Captures that must be equal between this match and the `requires` / `unless` match.
    #[serde(default)]
    pub same: Vec<String>,
}

/// A rule's case file (`tests/rules/<area>/<id>.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub rule: String,
    #[serde(rename = "case")]
    pub cases: Vec<CaseSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    pub name: String,
    /// The expected primary finding: a class id, `unknown` or `none`.
    pub expect: String,
    pub lines: Vec<String>,
}
