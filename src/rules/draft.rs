//! Draft rules from confirmed LLM diagnoses: the unknown fault's message template becomes the
//! match (its fixed words as `all` literals), the diagnosis the class, title, root cause and
//! remediation; the evidence becomes the case file. A draft is checked before it is written:
//! it compiles with the live rule set and its own cases pass.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::cases::{RuleCaseReport, run_all};
use super::compile::RuleSet;
use super::engine::short_hash;

/// What a draft is made from.
#[derive(Debug, Clone)]
pub struct DraftInput<'a> {
    pub fault_id: i64,
    pub class: &'a str,
    pub title: &'a str,
    pub severity: &'a str,
    pub service: &'a str,
    pub host: &'a str,
    pub root_cause: &'a str,
    pub remediation: &'a [String],
    /// The normalised message template (variable tokens as `<*>`).
    pub template: &'a str,
    pub template_key: &'a str,
    /// The evidence record's lines (the positive case).
    pub lines: &'a [String],
    pub model: &'a str,
    pub confidence: f64,
    pub confirmed_by: &'a str,
    pub confirmed_at: &'a str,
}

/// A draft rule file and its case file.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub id: String,
    pub rule: String,
    pub case: String,
}

#[derive(Serialize)]
struct RuleOut<'a> {
    id: &'a str,
    class: &'a str,
    kind: &'a str,
    title: &'a str,
    severity: &'a str,
    component: &'a str,
    diagnosis: String,
    remediation: Vec<String>,
    references: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    applies: Option<AppliesOut>,
    signal: Vec<SignalOut>,
}

#[derive(Serialize)]
struct AppliesOut {
    services: Vec<String>,
}

#[derive(Serialize)]
struct SignalOut {
    name: &'static str,
    all: Vec<String>,
}

#[derive(Serialize)]
struct CaseFileOut<'a> {
    rule: &'a str,
    case: Vec<CaseOut>,
}

#[derive(Serialize)]
struct CaseOut {
    name: String,
    expect: String,
    lines: Vec<String>,
}

/// The fixed words of a template, longest first (at most three).
pub fn template_literals(template: &str) -> Vec<String> {
    let mut parts = template_literals_all(template);
    parts.truncate(3);
    parts
}

/// Every fixed segment of a template (at least four letters), longest first.
fn template_literals_all(template: &str) -> Vec<String> {
    let mut parts: Vec<String> = template
        .split(" | ")
        .flat_map(|p| p.split("<*>"))
        .map(str::trim)
        .filter(|p| p.chars().filter(char::is_ascii_alphabetic).count() >= 4)
        .map(str::to_string)
        .collect();
    parts.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    parts.dedup();
    parts
}

/// Text for a rule template: the fault's host becomes `{host}`; any other brace is neutral
/// text (a rule template reads `{name}` as a placeholder).
fn template_text(s: &str, host: &str) -> String {
    let neutral = s.replace('{', "(").replace('}', ")");
    if host.len() >= 2 {
        neutral.replace(host, "{host}")
    } else {
        neutral
    }
}

/// The literals of the draft's signal: the template's fixed words as they occur in the
/// evidence (a segment the evidence spells with other spacing is split into its words).
fn evidence_literals(template: &str, lines: &[String]) -> Vec<String> {
    let found = |l: &str| lines.iter().any(|line| line.contains(l));
    let mut out: Vec<String> = Vec::new();
    for seg in template_literals_all(template) {
        if found(&seg) {
            out.push(seg);
        } else {
            out.extend(
                seg.split_whitespace()
                    .filter(|w| w.chars().filter(char::is_ascii_alphabetic).count() >= 4)
                    .filter(|w| found(w))
                    .map(str::to_string),
            );
        }
    }
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    out.dedup();
    out.truncate(3);
    out
}

/// Build the draft of a confirmed diagnosis.
pub fn draft(d: &DraftInput<'_>) -> Result<Draft, String> {
    if d.remediation.iter().all(|r| r.trim().is_empty()) {
        return Err(
            "the diagnosis has no remediation step (a fault rule needs one); write the rule by hand"
                .into(),
        );
    }
    let literals = evidence_literals(d.template, d.lines);
    let fixed: usize = literals.iter().map(String::len).sum();
    if fixed < 12 {
        return Err(format!(
            "the message template {:?} has too few fixed words found in the evidence for a literal rule; write the rule by hand",
            d.template
        ));
    }
    let mut id = format!("draft_{}", d.class);
    id.truncate(48);
    id.push('_');
    id.push_str(&short_hash(d.template_key)[..8]);
    let component = if d.service.is_empty() {
        "unknown"
    } else {
        d.service
    };
    let rule = RuleOut {
        id: &id,
        class: d.class,
        kind: "fault",
        title: d.title,
        severity: d.severity,
        component,
        diagnosis: template_text(d.root_cause, d.host),
        remediation: d
            .remediation
            .iter()
            .map(|r| template_text(r, d.host))
            .collect(),
        references: vec![format!(
            "LLM diagnosis of fault {} ({})",
            d.fault_id, d.model
        )],
        applies: (!d.service.is_empty()).then(|| AppliesOut {
            services: vec![d.service.to_string()],
        }),
        signal: vec![SignalOut {
            name: "template",
            all: literals,
        }],
    };
    let header = format!(
        "# DRAFT written by Faultline from a confirmed LLM diagnosis: fault {}, model {}, \
         confidence {:.2},\n# confirmed by {} at {}. Review it (the match, the severity, the \
         text), then move it into\n# rules/<area>/ with its case file, or delete it.\n",
        d.fault_id,
        d.model.replace('\n', " "),
        d.confidence,
        d.confirmed_by.replace('\n', " "),
        d.confirmed_at
    );
    let rule_text = toml::to_string(&rule).map_err(|e| format!("cannot write the draft: {e}"))?;
    let case = CaseFileOut {
        rule: &id,
        case: vec![
            CaseOut {
                name: format!("the evidence of fault {}", d.fault_id),
                expect: d.class.to_string(),
                lines: d.lines.to_vec(),
            },
            CaseOut {
                name: "a routine line of the same service".into(),
                expect: "none".into(),
                lines: vec![format!(
                    "2026-01-01 00:00:00,000 INFO org.apache.hadoop.util.Routine: {} heartbeat ok",
                    component
                )],
            },
        ],
    };
    let case_text = toml::to_string(&case).map_err(|e| format!("cannot write the case: {e}"))?;
    Ok(Draft {
        rule: format!("{header}{rule_text}"),
        case: format!(
            "# Cases of the draft rule {id} (from the evidence of fault {}).\n{case_text}",
            d.fault_id
        ),
        id,
    })
}

/// Check a draft against the live rule files: the set with the draft compiles, the draft's
/// cases pass, and (when `cases_root` holds the other rules' case files) no case that passed
/// without the draft fails with it (the draft must not claim another rule's lines). Returns
/// the draft's case report.
pub fn check(
    live_files: &[(String, String)],
    draft: &Draft,
    cases_root: Option<&Path>,
) -> Result<RuleCaseReport, String> {
    let rel = format!("drafts/{}.toml", draft.id);
    let live: Vec<(String, String)> = live_files
        .iter()
        .filter(|(p, _)| *p != rel)
        .cloned()
        .collect();
    let mut files = live.clone();
    files.push((rel.clone(), draft.rule.clone()));
    let with_draft = Arc::new(
        RuleSet::compile_checked(&files).map_err(|e| format!("the draft does not compile: {e}"))?,
    );
    let dir = tempfile_dir().map_err(|e| format!("cannot check the draft's cases: {e}"))?;
    let case_path = dir.join(&rel);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(case_path.parent().unwrap_or(&dir))?;
        std::fs::write(&case_path, &draft.case)
    };
    write().map_err(|e| format!("cannot check the draft's cases: {e}"))?;
    let report = run_all(&with_draft, &dir)
        .into_iter()
        .find(|r| r.rule == draft.id);
    let _ = std::fs::remove_dir_all(&dir);
    let report = report.ok_or("the draft is not in the compiled set")?;
    if !report.passed() {
        return Err(format!(
            "the draft's cases fail: {}",
            report.problems.join("; ")
        ));
    }
    if let Some(root) = cases_root.filter(|r| r.is_dir()) {
        let before = RuleSet::compile_checked(&live)
            .map_err(|e| format!("the live rules do not compile: {e}"))?;
        let passed: Vec<String> = run_all(&Arc::new(before), root)
            .into_iter()
            .filter(RuleCaseReport::passed)
            .map(|r| r.rule)
            .collect();
        let broken: Vec<String> = run_all(&with_draft, root)
            .into_iter()
            .filter(|r| r.rule != draft.id && !r.passed() && passed.contains(&r.rule))
            .map(|r| format!("{}: {}", r.rule, r.problems.join("; ")))
            .collect();
        if !broken.is_empty() {
            return Err(format!(
                "the draft breaks the cases of other rules (it claims their lines): {}",
                broken.join(" | ")
            ));
        }
    }
    Ok(report)
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "faultline-draft-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RuleSource, rule_files};

    fn input<'a>(template: &'a str, lines: &'a [String], steps: &'a [String]) -> DraftInput<'a> {
        DraftInput {
            fault_id: 7,
            class: "zk_session_storm",
            title: "ZooKeeper sessions expire {repeatedly}",
            severity: "error",
            service: "namenode",
            host: "nn1.example.com",
            root_cause: "nn1.example.com loses its ZooKeeper session; see ${ZK_HOME}.",
            remediation: steps,
            template,
            template_key: "abc",
            lines,
            model: "m",
            confidence: 0.9,
            confirmed_by: "alice",
            confirmed_at: "2026-11-21T00:00:00Z",
        }
    }

    #[test]
    fn literals_are_the_fixed_words() {
        assert_eq!(
            template_literals(
                "Session <*> for server <*> expired, closing socket | java.io.IOException: <*>"
            ),
            vec![
                "expired, closing socket",
                "java.io.IOException:",
                "for server"
            ]
        );
    }

    #[test]
    fn a_draft_compiles_with_the_pack_and_passes_its_cases() {
        let lines = vec![
            "Session 0x15a for server zk1/10.0.0.1:2181 expired, closing socket connection"
                .to_string(),
        ];
        let steps = vec!["zkCli.sh -server {zk} stat on nn1.example.com".to_string()];
        let d = draft(&input(
            "Session <*> for server <*> expired, closing socket connection",
            &lines,
            &steps,
        ))
        .unwrap();
        assert!(d.rule.contains("(zk) stat on {host}"), "{}", d.rule);
        assert!(d.id.starts_with("draft_zk_session_storm_"));
        assert!(
            d.rule.contains("{host} loses its ZooKeeper session"),
            "{}",
            d.rule
        );
        assert!(d.rule.contains("$(ZK_HOME)"), "{}", d.rule);
        let live = rule_files(&RuleSource::Embedded).unwrap();
        let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
        let report = check(&live, &d, Some(&cases)).unwrap();
        assert_eq!((report.positives, report.negatives), (1, 1));
    }

    #[test]
    fn a_draft_that_claims_another_rules_lines_is_refused() {
        // A load-balancer probe the benign rule ssh_connection_probe documents as nothing.
        let lines = vec![
            "Feb  3 06:40:10 gw1 sshd[90211]: error: kex_exchange_identification: Connection closed by remote host".to_string(),
        ];
        let steps = vec!["restart".to_string()];
        let mut i = input(
            "error: kex_exchange_identification: Connection closed by remote host",
            &lines,
            &steps,
        );
        i.service = "";
        let d = draft(&i).unwrap();
        let live = rule_files(&RuleSource::Embedded).unwrap();
        // Its own cases pass; the benign rule's cases break.
        if let Err(e) = check(&live, &d, None) {
            panic!("{e}");
        }
        let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
        let e = check(&live, &d, Some(&cases)).unwrap_err();
        assert!(e.contains("breaks the cases of other rules"), "{e}");
        assert!(e.contains("ssh_connection_probe"), "{e}");
    }

    #[test]
    fn a_generic_template_is_refused() {
        let lines = vec!["ERROR x".to_string()];
        let steps = vec!["restart".to_string()];
        assert!(draft(&input("ERROR <*>", &lines, &steps)).is_err());
        let lines = vec!["Session 1 for server z expired,  closing socket connection".to_string()];
        // Spacing differs from the template's: the words are used instead.
        assert_eq!(
            evidence_literals(
                "Session <*> for server <*> expired, closing socket connection",
                &lines
            ),
            vec!["connection", "for server", "expired,"]
        );
        let e = draft(&input(
            "Session <*> for server <*> expired, closing socket connection",
            &lines,
            &[],
        ))
        .unwrap_err();
        assert!(e.contains("remediation"), "{e}");
    }
}
