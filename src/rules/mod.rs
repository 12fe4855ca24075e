//! The rule engine: rules are data (`rules/<area>/<id>.toml`), compiled into a [`RuleSet`]
//! and run by a [`Correlator`] over parsed records. Pure logic: no actix, no SQL.
//!
//! - [`spec`]: the file format as deserialized; [`compile`]: validation and the matcher;
//! - [`engine`]: matching, correlation windows, unknown detection, [`Finding`]s;
//! - [`diagnose`]: the offline runner over files / excerpts (shared by the CLI, eval and tests);
//! - [`cases`]: each rule's case file; [`eval`]: scoring against a labelled corpus.

mod ascii;
pub mod cases;
pub mod compile;
pub mod diagnose;
pub mod draft;
pub mod engine;
pub mod eval;
pub mod fxhash;
pub mod lazy_regex;
pub mod snapshot_pred;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use compile::{FAULT_CLASSES, RuleError, RuleSet, RuleSetError, Severity};
pub use engine::{Correlator, Evidence, Finding, FindingSource, Verdict};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));
}

/// Where rule files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The pack compiled into the binary (the repository's `rules/` at build time).
    Embedded,
    /// A directory of `<area>/<id>.toml` files, read at load and on every reload.
    Dir(PathBuf),
    /// A source plus the draft rules written from confirmed LLM diagnoses (a directory of
    /// `<id>.toml`, loaded as `drafts/<id>.toml`; absent = none yet). Drafts inside a `Dir`
    /// source are part of it already.
    WithDrafts(Box<RuleSource>, PathBuf),
}

impl RuleSource {
    /// `source` with the drafts of `drafts_dir` (none when empty).
    pub fn with_drafts(source: RuleSource, drafts_dir: &str) -> RuleSource {
        if drafts_dir.trim().is_empty() {
            source
        } else {
            RuleSource::WithDrafts(Box::new(source), PathBuf::from(drafts_dir.trim()))
        }
    }

    /// The built-in pack cannot change while running.
    fn is_static(&self) -> bool {
        matches!(self, RuleSource::Embedded)
    }
}

impl std::fmt::Display for RuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleSource::Embedded => f.write_str("built-in rule pack"),
            RuleSource::Dir(d) => write!(f, "{}", d.display()),
            RuleSource::WithDrafts(inner, d) => write!(f, "{inner} + drafts in {}", d.display()),
        }
    }
}

/// The `(relative path, text)` of every rule file of `source`, sorted by path.
pub fn rule_files(source: &RuleSource) -> Result<Vec<(String, String)>, RuleSetError> {
    match source {
        RuleSource::Embedded => Ok(embedded::FILES
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()),
        RuleSource::Dir(dir) => {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            collect_toml(dir, dir, &mut out, &mut errors);
            if !errors.is_empty() {
                return Err(RuleSetError { errors });
            }
            if out.is_empty() {
                return Err(RuleSetError {
                    errors: vec![RuleError {
                        file: dir.display().to_string(),
                        field: String::new(),
                        reason: "no rule files (*.toml) found".into(),
                    }],
                });
            }
            out.sort();
            Ok(out)
        }
        RuleSource::WithDrafts(inner, drafts) => {
            let mut out = rule_files(inner)?;
            let inside = match inner.as_ref() {
                RuleSource::Dir(d) => match (d.canonicalize(), drafts.canonicalize()) {
                    (Ok(a), Ok(b)) => b.starts_with(a),
                    _ => false,
                },
                _ => false,
            };
            if drafts.is_dir() && !inside {
                let mut extra = Vec::new();
                let mut errors = Vec::new();
                collect_toml(drafts, drafts, &mut extra, &mut errors);
                if !errors.is_empty() {
                    return Err(RuleSetError { errors });
                }
                out.extend(
                    extra
                        .into_iter()
                        .map(|(rel, text)| (format!("drafts/{rel}"), text)),
                );
                out.sort();
            }
            Ok(out)
        }
    }
}

fn collect_toml(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, String)>,
    errors: &mut Vec<RuleError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(RuleError {
                file: dir.display().to_string(),
                field: String::new(),
                reason: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_toml(root, &path, out, errors);
        } else if path.extension().is_some_and(|e| e == "toml") {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            match std::fs::read_to_string(&path) {
                Ok(text) => out.push((rel, text)),
                Err(e) => errors.push(RuleError {
                    file: rel,
                    field: String::new(),
                    reason: format!("cannot read: {e}"),
                }),
            }
        }
    }
}

/// Load and compile every rule of `source`.
/// Load for a one-off run (`diagnose`, `eval`): regexes compile when first used.
pub fn load(source: &RuleSource) -> Result<RuleSet, RuleSetError> {
    RuleSet::compile(&rule_files(source)?)
}

/// Load for the engine and `faultline rules check|test`: every regex compiled now, so a set
/// that loads has nothing left to fail.
pub fn load_checked(source: &RuleSource) -> Result<RuleSet, RuleSetError> {
    RuleSet::compile_checked(&rule_files(source)?)
}

/// The live rule set of a running engine, swapped whole on reload.
#[derive(Debug)]
pub struct RulesHandle {
    source: RuleSource,
    current: RwLock<Arc<RuleSet>>,
}

/// What a successful reload loaded.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReloadSummary {
    pub source: String,
    pub rules: usize,
    pub fault_rules: usize,
}

impl RulesHandle {
    pub fn load(source: RuleSource) -> Result<RulesHandle, RuleSetError> {
        let set = load_checked(&source)?;
        Ok(RulesHandle {
            source,
            current: RwLock::new(Arc::new(set)),
        })
    }

    pub fn from_set(source: RuleSource, set: RuleSet) -> RulesHandle {
        RulesHandle {
            source,
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub fn current(&self) -> Arc<RuleSet> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub fn source(&self) -> &RuleSource {
        &self.source
    }

    /// Re-read and compile the source; swap only if all of it compiles (else keep the old set).
    /// The built-in pack cannot change while running: reloading it keeps the live set (and
    /// the correlation state that goes with it).
    pub fn reload(&self) -> Result<ReloadSummary, RuleSetError> {
        if self.source.is_static() {
            return Ok(self.summary());
        }
        let set = load_checked(&self.source)?;
        let summary = summary(&self.source, &set);
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(set),
            Err(p) => *p.into_inner() = Arc::new(set),
        }
        Ok(summary)
    }

    pub fn summary(&self) -> ReloadSummary {
        summary(&self.source, &self.current())
    }
}

fn summary(source: &RuleSource, set: &RuleSet) -> ReloadSummary {
    ReloadSummary {
        source: source.to_string(),
        rules: set.rules.len(),
        fault_rules: set
            .rules
            .iter()
            .filter(|r| r.kind == spec::RuleKind::Fault)
            .count(),
    }
}
