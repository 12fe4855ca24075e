//! Scoring the rule layer against a labelled corpus (`dev-cases.jsonl` shape): per-class
//! precision / recall / F1, macro-F1 over the fault classes, false positives on `none`,
//! the escalation rate on `unknown`, the confusion matrix and the misclassified ids.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::compile::{FAULT_CLASSES, RuleSet};
use super::diagnose::{diagnose_lines, primary_label};

#[derive(Debug, Deserialize)]
pub struct CorpusCase {
    pub id: String,
    pub expected: String,
    #[serde(default)]
    pub source_file: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub id: String,
    pub expected: String,
    pub predicted: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub cases: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub classes: Vec<ClassScore>,
    pub none_cases: usize,
    /// `none` cases predicted as a fault class.
    pub none_false_positives: usize,
    /// `none` cases predicted `unknown` (needless escalations).
    pub none_escalated: usize,
    pub unknown_cases: usize,
    pub unknown_escalated: usize,
    pub unknown_escalation_rate: f64,
    /// Share of fault positives predicted `unknown`.
    pub known_escalation_rate: f64,
    /// expected → predicted → count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub misclassified: Vec<Miss>,
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("line {line}: {reason}")]
    Bad { line: usize, reason: String },
}

/// Parse a JSONL corpus; every line must be a case, ids unique, labels known.
pub fn parse_corpus(text: &str) -> Result<Vec<CorpusCase>, CorpusError> {
    let mut cases = Vec::new();
    let mut ids = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| CorpusError::Bad {
            line: i + 1,
            reason,
        };
        let c: CorpusCase = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if !ids.insert(c.id.clone()) {
            return Err(bad(format!("duplicate id {:?}", c.id)));
        }
        let known = FAULT_CLASSES.contains(&c.expected.as_str())
            || c.expected == "none"
            || c.expected == "unknown";
        if !known {
            return Err(bad(format!("unknown label {:?}", c.expected)));
        }
        cases.push(c);
    }
    Ok(cases)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Diagnose every case as one excerpt and score the primary findings.
pub fn evaluate(set: &Arc<RuleSet>, cases: &[CorpusCase]) -> EvalReport {
    let predictions: Vec<(String, String, String)> = cases
        .iter()
        .map(|c| {
            let findings = diagnose_lines(set, c.lines.iter().map(String::as_str));
            (
                c.id.clone(),
                c.expected.clone(),
                primary_label(&findings).to_string(),
            )
        })
        .collect();
    score(&predictions)
}

/// Score `(id, expected, predicted)` triples.
pub fn score(preds: &[(String, String, String)]) -> EvalReport {
    let mut classes = Vec::new();
    for class in FAULT_CLASSES {
        let tp = preds
            .iter()
            .filter(|(_, e, p)| e == class && p == class)
            .count();
        let fp = preds
            .iter()
            .filter(|(_, e, p)| e != class && p == class)
            .count();
        let fn_ = preds
            .iter()
            .filter(|(_, e, p)| e == class && p != class)
            .count();
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        classes.push(ClassScore {
            class: class.to_string(),
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        });
    }
    let macro_f1 = classes.iter().map(|c| c.f1).sum::<f64>() / classes.len() as f64;
    let is_class = |p: &str| FAULT_CLASSES.contains(&p);
    let none_cases = preds.iter().filter(|(_, e, _)| e == "none").count();
    let none_false_positives = preds
        .iter()
        .filter(|(_, e, p)| e == "none" && is_class(p))
        .count();
    let none_escalated = preds
        .iter()
        .filter(|(_, e, p)| e == "none" && p == "unknown")
        .count();
    let unknown_cases = preds.iter().filter(|(_, e, _)| e == "unknown").count();
    let unknown_escalated = preds
        .iter()
        .filter(|(_, e, p)| e == "unknown" && p == "unknown")
        .count();
    let known = preds.iter().filter(|(_, e, _)| is_class(e)).count();
    let known_escalated = preds
        .iter()
        .filter(|(_, e, p)| is_class(e) && p == "unknown")
        .count();
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (_, e, p) in preds {
        *confusion
            .entry(e.clone())
            .or_default()
            .entry(p.clone())
            .or_default() += 1;
    }
    let correct = preds.iter().filter(|(_, e, p)| e == p).count();
    EvalReport {
        cases: preds.len(),
        accuracy: ratio(correct, preds.len()),
        macro_f1,
        classes,
        none_cases,
        none_false_positives,
        none_escalated,
        unknown_cases,
        unknown_escalated,
        unknown_escalation_rate: ratio(unknown_escalated, unknown_cases),
        known_escalation_rate: ratio(known_escalated, known),
        confusion,
        misclassified: preds
            .iter()
            .filter(|(_, e, p)| e != p)
            .map(|(id, e, p)| Miss {
                id: id.clone(),
                expected: e.clone(),
                predicted: p.clone(),
            })
            .collect(),
    }
}

impl EvalReport {
    /// Human-readable report.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<24} {:>4} {:>4} {:>4} {:>9} {:>7} {:>6}",
            "class", "tp", "fp", "fn", "precision", "recall", "f1"
        );
        for c in &self.classes {
            let _ = writeln!(
                s,
                "{:<24} {:>4} {:>4} {:>4} {:>9.3} {:>7.3} {:>6.3}",
                c.class, c.tp, c.fp, c.fn_, c.precision, c.recall, c.f1
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "cases                      {}", self.cases);
        let _ = writeln!(s, "accuracy                   {:.3}", self.accuracy);
        let _ = writeln!(s, "macro-F1 (14 classes)      {:.3}", self.macro_f1);
        let _ = writeln!(
            s,
            "false positives on none    {} of {} ({} more escalated as unknown)",
            self.none_false_positives, self.none_cases, self.none_escalated
        );
        let _ = writeln!(
            s,
            "unknown escalated          {} of {} ({:.1} %)",
            self.unknown_escalated,
            self.unknown_cases,
            self.unknown_escalation_rate * 100.0
        );
        let _ = writeln!(
            s,
            "known faults escalated     {:.1} %",
            self.known_escalation_rate * 100.0
        );
        if !self.misclassified.is_empty() {
            let _ = writeln!(s, "\nmisclassified:");
            for m in &self.misclassified {
                let _ = writeln!(
                    s,
                    "  {:<10} expected {:<24} got {}",
                    m.id, m.expected, m.predicted
                );
            }
        }
        let labels: Vec<&String> = {
            let mut l: Vec<&String> = self.confusion.keys().collect();
            for row in self.confusion.values() {
                for k in row.keys() {
                    if !l.contains(&k) {
                        l.push(k);
                    }
                }
            }
            l.sort();
            l
        };
        let _ = writeln!(s, "\nconfusion (rows expected, columns predicted):");
        let _ = write!(s, "{:<24}", "");
        for (i, _) in labels.iter().enumerate() {
            let _ = write!(s, "{:>4}", i + 1);
        }
        let _ = writeln!(s);
        for (i, e) in labels.iter().enumerate() {
            let _ = write!(s, "{:>2} {:<21}", i + 1, e);
            for p in &labels {
                let n = self
                    .confusion
                    .get(*e)
                    .and_then(|r| r.get(*p))
                    .copied()
                    .unwrap_or(0);
                let _ = write!(
                    s,
                    "{:>4}",
                    if n == 0 {
                        ".".to_string()
                    } else {
                        n.to_string()
                    }
                );
            }
            let _ = writeln!(s);
        }
        s
    }
}
