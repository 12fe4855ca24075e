//! Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`, `name=~"regex"`,
//! `name!~"regex"` (regexes are anchored). Routes, silences, inhibition rules and maintenance
//! windows all select alerts with them.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// An alert's labels: `alertname` (= fault_type), `fault_type`, `severity`, `cluster`, `host`,
/// `service`, `source`.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    NotEq,
    #[serde(rename = "=~")]
    Re,
    #[serde(rename = "!~")]
    NotRe,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::NotEq => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        let name_ok = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(format!("{name:?} is not a label name"));
        }
        let re = match op {
            Op::Re | Op::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("{name}: bad regex {value:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Parse `name="value"` (quotes optional) with `=`, `!=`, `=~` or `!~`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let at = s
            .find(['=', '!'])
            .ok_or_else(|| format!("{s:?}: expected name=\"value\", name!=, name=~ or name!~"))?;
        let name = s[..at].trim();
        let rest = &s[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Re, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotRe, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::NotEq, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Eq, v)
        } else {
            return Err(format!("{s:?}: expected =, !=, =~ or !~ after {name:?}"));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Matcher::new(name, op, value).map_err(|e| format!("{s:?}: {e}"))
    }

    /// A missing label is the empty string (as in Alertmanager).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.re) {
            (Op::Eq, _) => v == self.value,
            (Op::NotEq, _) => v != self.value,
            (Op::Re, Some(re)) => re.is_match(v),
            (Op::NotRe, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

/// All of `matchers` hold (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Parse a list of matcher strings, naming the first bad one.
pub fn parse_all(list: &[String]) -> Result<Vec<Matcher>, String> {
    list.iter().map(|s| Matcher::parse(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators_and_anchoring() {
        let l = labels(&[("severity", "critical"), ("cluster", "prod")]);
        assert!(
            Matcher::parse(r#"severity="critical""#)
                .unwrap()
                .matches(&l)
        );
        assert!(Matcher::parse("cluster!=dev").unwrap().matches(&l));
        assert!(
            Matcher::parse(r#"severity=~"error|critical""#)
                .unwrap()
                .matches(&l)
        );
        assert!(
            !Matcher::parse(r#"severity=~"crit""#).unwrap().matches(&l),
            "anchored"
        );
        assert!(
            Matcher::parse(r#"host!~".+""#).unwrap().matches(&l),
            "missing = empty"
        );
        for bad in ["severity", "=x", "a b=c", r#"x=~"(""#] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Matcher::parse(r#"severity=~"error|critical""#)
                .unwrap()
                .to_string(),
            r#"severity=~"error|critical""#
        );
    }
}
