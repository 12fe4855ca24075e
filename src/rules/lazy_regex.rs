//! Signal regexes are checked when rules load (syntax, capture names) but compiled when first
//! used: a run of `faultline diagnose` needs the few regexes its log's lines reach, and
//! compiling all of them first would be most of its start-up time. The engine (`serve`) and
//! `faultline rules check|test` compile every one at load ([`LazyRegex::compile`]), so a
//! pattern that parses but cannot be compiled (over the size limit) is still refused there.

use std::sync::OnceLock;

use regex::Regex;
use regex_syntax::hir::{Hir, HirKind};

#[derive(Debug)]
pub struct LazyRegex {
    pattern: String,
    names: Vec<String>,
    compiled: OnceLock<Result<Regex, String>>,
}

impl LazyRegex {
    /// Check `pattern` (its syntax and classes, as the regex engine will parse it) and keep
    /// it for later; the error says what is wrong with it.
    pub fn new(pattern: String) -> Result<LazyRegex, String> {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(&pattern)
            .map_err(|e| e.to_string())?;
        let mut names = Vec::new();
        capture_names(&hir, &mut names);
        Ok(LazyRegex {
            pattern,
            names,
            compiled: OnceLock::new(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Named capture groups, in pattern order.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The compiled regex (compiled on the first call, by whichever thread gets there first).
    pub fn compile(&self) -> Result<&Regex, &str> {
        self.compiled
            .get_or_init(|| Regex::new(&self.pattern).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    /// The compiled regex, or `None` (logged once) if it cannot be compiled: the signal then
    /// matches nothing. Only reachable for a rule set that was loaded without a full check.
    pub fn get(&self) -> Option<&Regex> {
        let first = self.compiled.get().is_none();
        match self.compile() {
            Ok(r) => Some(r),
            Err(e) => {
                if first {
                    tracing::error!(pattern = %self.pattern, error = %e, "a rule regex cannot be compiled; its signal matches nothing");
                }
                None
            }
        }
    }
}

fn capture_names(hir: &Hir, out: &mut Vec<String>) {
    match hir.kind() {
        HirKind::Capture(c) => {
            if let Some(n) = &c.name {
                out.push(n.to_string());
            }
            capture_names(&c.sub, out);
        }
        HirKind::Repetition(r) => capture_names(&r.sub, out),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            for h in v {
                capture_names(h, out);
            }
        }
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_now_compiles_later() {
        let r =
            LazyRegex::new(r"to (?P<thost>[^\s:]+):(?P<tport>\d+)(?:x(?P<n>\d))?".into()).unwrap();
        assert_eq!(
            r.capture_names().collect::<Vec<_>>(),
            ["thost", "tport", "n"]
        );
        assert!(r.compiled.get().is_none(), "not compiled before use");
        let caps = r.get().unwrap().captures("to nn1:9000").unwrap();
        assert_eq!(&caps["tport"], "9000");
        assert!(
            LazyRegex::new("(unclosed".into())
                .unwrap_err()
                .contains("unclosed")
        );
        // Parses, but is far over the compiled size limit: refused by `compile`, and `get`
        // gives no regex (the signal matches nothing) instead of failing a record.
        let huge = LazyRegex::new(r"(?:\w{100}){100}{100}".into()).unwrap();
        assert!(huge.compile().is_err());
        assert!(huge.get().is_none());
    }
}
