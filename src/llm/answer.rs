//! The model's answer: parsed, validated against the schema the prompt asks for, and bound to
//! the evidence (at least one valid excerpt line index). Nothing outside the schema is kept,
//! so text injected into a log line cannot add fields or change their types.

use serde::{Deserialize, Serialize};

/// A validated diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diagnosis {
    pub fault_class: String,
    pub title: String,
    pub root_cause: String,
    pub confidence: f64,
    pub remediation: Vec<String>,
    /// Indexes of the excerpt lines the diagnosis rests on (valid ones only, sorted).
    pub evidence: Vec<usize>,
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerProblem {
    #[error("the answer is not a JSON object: {0}")]
    NotJson(String),
    #[error("the answer does not follow the schema: {0}")]
    Schema(String),
    #[error("the answer cites no excerpt line (indexes 0 to {max_index}) as evidence")]
    NoEvidence { max_index: usize },
}

/// What the model sent, loosely typed so every problem can be named.
#[derive(Debug, Deserialize)]
struct Raw {
    fault_class: Option<serde_json::Value>,
    title: Option<serde_json::Value>,
    root_cause: Option<serde_json::Value>,
    confidence: Option<serde_json::Value>,
    remediation: Option<serde_json::Value>,
    evidence: Option<serde_json::Value>,
}

const MAX_TITLE: usize = 200;
const MAX_ROOT_CAUSE: usize = 4000;
const MAX_STEPS: usize = 12;
const MAX_STEP: usize = 600;

/// The JSON object inside `text`: the whole text, or the body of a ```json fence, or the
/// span from the first `{` to the last `}` (models wrap answers despite instructions).
fn json_span(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let body = rest.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        if let Some(end) = body.rfind("```") {
            return body[..end].trim();
        }
    }
    match (t.find('{'), t.rfind('}')) {
        (Some(a), Some(b)) if a < b => &t[a..=b],
        _ => t,
    }
}

fn string_field(
    v: Option<serde_json::Value>,
    name: &str,
    max: usize,
) -> Result<String, AnswerProblem> {
    match v {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
            Ok(crate::storage::truncate_str(s.trim(), max).to_string())
        }
        Some(serde_json::Value::String(_)) => {
            Err(AnswerProblem::Schema(format!("`{name}` is empty")))
        }
        Some(_) => Err(AnswerProblem::Schema(format!("`{name}` must be a string"))),
        None => Err(AnswerProblem::Schema(format!("`{name}` is missing"))),
    }
}

/// A class id: a known one or a new short snake_case id (never `unknown`).
pub fn valid_class(id: &str) -> bool {
    let b = id.as_bytes();
    (2..=48).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && id != "unknown"
}

/// Parse and validate an answer about an excerpt of `excerpt_len` lines.
pub fn parse(text: &str, excerpt_len: usize) -> Result<Diagnosis, AnswerProblem> {
    let max_index = excerpt_len.saturating_sub(1);
    let raw: Raw = match serde_json::from_str(json_span(text)) {
        Ok(r) => r,
        Err(e) => return Err(AnswerProblem::NotJson(e.to_string())),
    };
    let fault_class = string_field(raw.fault_class, "fault_class", 64)?;
    if !valid_class(&fault_class) {
        return Err(AnswerProblem::Schema(format!(
            "`fault_class` {fault_class:?} is not a snake_case id of 2-48 characters (and not `unknown`)"
        )));
    }
    let title = string_field(raw.title, "title", MAX_TITLE)?;
    let root_cause = string_field(raw.root_cause, "root_cause", MAX_ROOT_CAUSE)?;
    let confidence = match raw.confidence {
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    };
    if !(0.0..=1.0).contains(&confidence) {
        return Err(AnswerProblem::Schema(
            "`confidence` must be a number from 0 to 1".into(),
        ));
    }
    let remediation = match raw.remediation {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            let mut steps = Vec::new();
            for item in items.into_iter().take(MAX_STEPS) {
                match item {
                    serde_json::Value::String(s) if !s.trim().is_empty() => {
                        steps.push(crate::storage::truncate_str(s.trim(), MAX_STEP).to_string())
                    }
                    serde_json::Value::String(_) => {}
                    _ => {
                        return Err(AnswerProblem::Schema(
                            "`remediation` must be a list of strings".into(),
                        ));
                    }
                }
            }
            steps
        }
        Some(_) => {
            return Err(AnswerProblem::Schema(
                "`remediation` must be a list of strings".into(),
            ));
        }
    };
    let cited: Vec<serde_json::Value> = match raw.evidence {
        Some(serde_json::Value::Array(items)) => items,
        Some(v @ serde_json::Value::Number(_)) => vec![v],
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(_) => {
            return Err(AnswerProblem::Schema(
                "`evidence` must be a list of line indexes".into(),
            ));
        }
    };
    let mut evidence: Vec<usize> = cited
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .filter_map(|i| usize::try_from(i).ok())
        .filter(|i| *i < excerpt_len)
        .collect();
    evidence.sort_unstable();
    evidence.dedup();
    if evidence.is_empty() {
        return Err(AnswerProblem::NoEvidence { max_index });
    }
    Ok(Diagnosis {
        fault_class,
        title,
        root_cause,
        confidence,
        remediation,
        evidence,
    })
}

impl Diagnosis {
    /// Every text field with `f` applied (unmasking).
    pub fn map_text(&self, f: impl Fn(&str) -> String) -> Diagnosis {
        Diagnosis {
            fault_class: self.fault_class.clone(),
            title: f(&self.title),
            root_cause: f(&self.root_cause),
            confidence: self.confidence,
            remediation: self.remediation.iter().map(|s| f(s)).collect(),
            evidence: self.evidence.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"fault_class":"zk_quorum_lost","title":"ZooKeeper quorum lost",
        "root_cause":"HOST_1 lost its ZooKeeper session.","confidence":0.8,
        "remediation":["check zk on HOST_1"],"evidence":[0, 2, 9]}"#;

    #[test]
    fn a_good_answer_keeps_only_valid_evidence() {
        let d = parse(GOOD, 3).unwrap();
        assert_eq!(d.fault_class, "zk_quorum_lost");
        assert_eq!(d.evidence, vec![0, 2]);
        assert_eq!(d.remediation, vec!["check zk on HOST_1"]);
    }

    #[test]
    fn fenced_and_chatty_answers_are_accepted() {
        assert!(parse(&format!("```json\n{GOOD}\n```"), 3).is_ok());
        assert!(parse(&format!("Here you go:\n{GOOD}\nHope it helps"), 3).is_ok());
    }

    #[test]
    fn problems_are_named() {
        assert!(matches!(
            parse("not json", 3),
            Err(AnswerProblem::NotJson(_))
        ));
        let no_ev = GOOD.replace("[0, 2, 9]", "[7]");
        assert_eq!(
            parse(&no_ev, 3),
            Err(AnswerProblem::NoEvidence { max_index: 2 })
        );
        let bad_conf = GOOD.replace("0.8", "1.5");
        assert!(matches!(parse(&bad_conf, 3), Err(AnswerProblem::Schema(_))));
        let bad_class = GOOD.replace("zk_quorum_lost", "Zk Quorum!");
        assert!(matches!(
            parse(&bad_class, 3),
            Err(AnswerProblem::Schema(_))
        ));
        let unknown = GOOD.replace("zk_quorum_lost", "unknown");
        assert!(matches!(parse(&unknown, 3), Err(AnswerProblem::Schema(_))));
        let no_title = GOOD.replace("\"title\":\"ZooKeeper quorum lost\",", "");
        assert!(matches!(parse(&no_title, 3), Err(AnswerProblem::Schema(_))));
    }

    #[test]
    fn extra_fields_are_dropped() {
        let extra = GOOD.replace('}', r#","run":"rm -rf /","confidence_override":1}"#);
        let d = parse(&extra, 3).unwrap();
        let v = serde_json::to_value(&d).unwrap();
        assert!(v.get("run").is_none());
    }
}
