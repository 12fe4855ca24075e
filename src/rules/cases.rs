//! Case files: `tests/rules/<area>/<id>.toml` next to `rules/<area>/<id>.toml`, each with
//! positive and negative excerpts. `faultline rules test` and the test suite run them.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::compile::RuleSet;
use super::diagnose::{diagnose_lines, primary_label};
use super::spec::{CaseFile, RuleKind};

/// What one rule's case file showed.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCaseReport {
    pub rule: String,
    pub case_file: String,
    pub cases: usize,
    pub positives: usize,
    pub negatives: usize,
    /// Problems: a missing or invalid file, missing positives / negatives, failed cases.
    pub problems: Vec<String>,
}

impl RuleCaseReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The label a rule's own positives expect.
pub fn positive_label(kind: RuleKind, id: &str) -> &str {
    match kind {
        RuleKind::Fault => id,
        RuleKind::Escalate => "unknown",
        RuleKind::Benign => "none",
    }
}

/// Run every rule's case file, looked up under `cases_dir` at the rule's relative path.
pub fn run_all(set: &Arc<RuleSet>, cases_dir: &Path) -> Vec<RuleCaseReport> {
    set.rules
        .iter()
        .map(|rule| {
            let path = cases_dir.join(&rule.file);
            let mut report = RuleCaseReport {
                rule: rule.id.clone(),
                case_file: path.display().to_string(),
                cases: 0,
                positives: 0,
                negatives: 0,
                problems: Vec::new(),
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    report.problems.push(format!("no case file: {e}"));
                    return report;
                }
            };
            let file: CaseFile = match toml::from_str(&text) {
                Ok(f) => f,
                Err(e) => {
                    report
                        .problems
                        .push(format!("invalid case file: {}", e.message()));
                    return report;
                }
            };
            if file.rule != rule.id {
                report.problems.push(format!(
                    "case file names rule {:?}, expected {:?}",
                    file.rule, rule.id
                ));
            }
            let positive = positive_label(rule.kind, &rule.class);
            for case in &file.cases {
                report.cases += 1;
                if case.expect == positive {
                    report.positives += 1;
                } else {
                    report.negatives += 1;
                }
                let findings = diagnose_lines(set, case.lines.iter().map(String::as_str));
                let got = primary_label(&findings);
                if got != case.expect {
                    report.problems.push(format!(
                        "case {:?}: expected {}, got {}",
                        case.name, case.expect, got
                    ));
                }
            }
            if report.positives == 0 {
                report
                    .problems
                    .push(format!("no positive case (expect = {positive:?})"));
            }
            if report.negatives == 0 {
                report
                    .problems
                    .push("no negative case (a look-alike the rule must not claim)".into());
            }
            report
        })
        .collect()
}
