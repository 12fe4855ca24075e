//! Validation and compilation of rule files into a [`RuleSet`]: the literal prefilter
//! (one Aho-Corasick automaton over every signal's key literals), per-signal confirmation
//! (literals, regexes, numeric checks) and a `RegexSet` for signals without a literal.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::RegexSet;

use super::lazy_regex::LazyRegex;
use serde::Serialize;

use super::spec::{RuleKind, RuleSpec, SignalSpec};
use crate::domain::Level;

/// Fault class ids of the taxonomy (`../shared/docs/fault-taxonomy.md` §1).
pub const FAULT_CLASSES: [&str; 14] = [
    "ssh_auth",
    "port_unreachable",
    "flume_backlog",
    "datanode_lost",
    "hdfs_permission",
    "disk_full",
    "namenode_safemode",
    "container_oom",
    "java_heap_oom",
    "namenode_not_formatted",
    "clusterid_mismatch",
    "port_in_use",
    "unknown_host",
    "nodemanager_lost",
];

/// Extra literals the prefilter also looks for: evidence of an exception for the `unknown`
/// detector. Kept in the same automaton so a record is scanned once.
pub(crate) const AUX_LITERALS: [&str; 3] = ["Exception", "Error", "\tat "];

/// Severity of a fault rule.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// A rule file that cannot be used: which file, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleError {
    pub file: String,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.field, self.reason)
        }
    }
}

/// Every problem found in a rule set (all files are checked, not just the first bad one).
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{} invalid rule file(s):\n  {}", .errors.len(), .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct RuleSetError {
    pub errors: Vec<RuleError>,
}

/// A `{name}` template over captures and the built-ins `host`, `service`, `cluster`, `count`;
/// `{a|b}` takes the first of `a`, `b` that has a value.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<TplPart>,
}

#[derive(Debug, Clone)]
enum TplPart {
    Text(String),
    Var(Vec<String>),
}

pub(crate) const BUILTIN_VARS: [&str; 4] = ["host", "service", "cluster", "count"];

impl Template {
    /// Remediation commands: `{name}` / `{a|b}` with lowercase names are placeholders; any
    /// other braces (`${HADOOP_HOME}`, `{8020,9000}`) are shell text.
    fn parse_lenient(s: &str) -> Template {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name = after.find('}').map(|c| &after[..c]);
            let is_var = name.is_some_and(|n| {
                !n.is_empty()
                    && n.split('|').all(|a| {
                        !a.is_empty()
                            && a.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                            && a.starts_with(|c: char| c.is_ascii_lowercase())
                    })
                    && !rest[..open].ends_with('$')
            });
            match name {
                Some(n) if is_var => {
                    if !text.is_empty() {
                        parts.push(TplPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(TplPart::Var(n.split('|').map(str::to_string).collect()));
                    rest = &after[n.len() + 1..];
                }
                _ => {
                    text.push('{');
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(TplPart::Text(text));
        }
        Template { parts }
    }

    fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TplPart::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' at byte {}", s.len() - rest.len() + open))?;
            let name = &after[..close];
            let alts: Vec<String> = name.split('|').map(str::to_string).collect();
            if alts
                .iter()
                .any(|a| a.is_empty() || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(format!("bad placeholder {{{name}}}"));
            }
            parts.push(TplPart::Var(alts));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TplPart::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                TplPart::Var(v) => Some(v.iter().map(String::as_str)),
                TplPart::Text(_) => None,
            })
            .flatten()
    }

    /// Render with `lookup`; a value that is missing renders as `unknown`.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        self.render_into(&mut out, lookup);
        out
    }

    /// [`Template::render`] appending to `out`.
    pub fn render_into<'a>(&self, out: &mut String, lookup: impl Fn(&str) -> Option<&'a str>) {
        for p in &self.parts {
            match p {
                TplPart::Text(t) => out.push_str(t),
                TplPart::Var(alts) => out.push_str(
                    alts.iter()
                        .find_map(|v| lookup(v).filter(|x| !x.is_empty()))
                        .unwrap_or("unknown"),
                ),
            }
        }
    }
}

/// `left [+|- n] op right` over captures and integers.
#[derive(Debug, Clone)]
pub struct Check {
    left: Operand,
    offset: i64,
    op: CmpOp,
    right: Operand,
}

#[derive(Debug, Clone)]
enum Operand {
    Capture(String),
    Int(i64),
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Check {
    fn parse(s: &str) -> Result<Check, String> {
        let toks: Vec<&str> = s.split_whitespace().collect();
        let operand = |t: &str| -> Result<Operand, String> {
            if let Ok(n) = t.parse::<i64>() {
                Ok(Operand::Int(n))
            } else if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(Operand::Capture(t.to_string()))
            } else {
                Err(format!("bad operand {t:?}"))
            }
        };
        let op = |t: &str| -> Result<CmpOp, String> {
            Ok(match t {
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                ">=" => CmpOp::Ge,
                "==" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                _ => return Err(format!("bad comparison {t:?}")),
            })
        };
        match toks.as_slice() {
            [l, o, r] => Ok(Check {
                left: operand(l)?,
                offset: 0,
                op: op(o)?,
                right: operand(r)?,
            }),
            [l, sign @ ("+" | "-"), n, o, r] => {
                let n: i64 = n.parse().map_err(|_| format!("bad offset {n:?}"))?;
                Ok(Check {
                    left: operand(l)?,
                    offset: if *sign == "-" { -n } else { n },
                    op: op(o)?,
                    right: operand(r)?,
                })
            }
            _ => Err("expected `a op b` or `a + n op b` (op: < <= > >= == !=)".into()),
        }
    }

    fn captures(&self) -> impl Iterator<Item = &str> {
        [&self.left, &self.right]
            .into_iter()
            .filter_map(|o| match o {
                Operand::Capture(c) => Some(c.as_str()),
                Operand::Int(_) => None,
            })
    }

    /// False when a capture is missing or not a number.
    pub fn holds<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        let val = |o: &Operand| -> Option<i64> {
            match o {
                Operand::Int(n) => Some(*n),
                Operand::Capture(c) => lookup(c)?.parse().ok(),
            }
        };
        let (Some(l), Some(r)) = (val(&self.left), val(&self.right)) else {
            return false;
        };
        let l = l.saturating_add(self.offset);
        match self.op {
            CmpOp::Lt => l < r,
            CmpOp::Le => l <= r,
            CmpOp::Gt => l > r,
            CmpOp::Ge => l >= r,
            CmpOp::Eq => l == r,
            CmpOp::Ne => l != r,
        }
    }
}

/// A compiled signal.
#[derive(Debug)]
pub struct Signal {
    pub name: String,
    pub all: Vec<String>,
    pub any: Vec<String>,
    pub none: Vec<String>,
    pub regex: Option<LazyRegex>,
    pub not_regex: Option<LazyRegex>,
    pub checks: Vec<Check>,
    pub min_level: Level,
    pub context: bool,
    pub count: u32,
    pub within_ms: i64,
    pub group_by: Option<String>,
    pub requires: Vec<usize>,
    pub unless: Vec<usize>,
    pub same: Vec<String>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    /// The fault class of its findings: `class` of the file, else the id.
    pub class: String,
    pub file: String,
    /// The remediation script's file name, and whether it may run without approval.
    pub script: Option<String>,
    pub auto: bool,
    pub kind: RuleKind,
    pub title: String,
    pub severity: Severity,
    pub component: String,
    pub priority: i32,
    pub entity: Template,
    pub diagnosis: Template,
    pub remediation: Vec<Template>,
    pub references: Vec<String>,
    pub services: Vec<String>,
    pub loggers: Vec<String>,
    pub min_level: Level,
    pub signals: Vec<Signal>,
    pub snapshot_causes: Vec<SnapshotCause>,
}

/// A compiled `[[snapshot_cause]]`.
#[derive(Debug)]
pub struct SnapshotCause {
    pub when: Vec<super::snapshot_pred::Predicate>,
    /// The rule id of `fault`, and its index in the set (resolved when the set is built).
    pub fault: Option<String>,
    pub fault_rule: Option<usize>,
    pub entity: Option<Template>,
    pub cause: Template,
}

/// The compiled rule set: rules plus the prefilter. Immutable; swapped whole on reload.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Automaton over the key literals (rule keys after dropping superstrings, plus aux).
    pub(crate) prefilter: Option<AhoCorasick>,
    /// The same patterns, leftmost-first (SIMD prefilters apply): finds whether a span of a
    /// large buffer contains any of them at all (the offline fast path).
    pub(crate) scanner: Option<Scanner>,
    /// Per automaton pattern: the (rule, signal) pairs it makes candidates.
    pub(crate) pattern_signals: Vec<Vec<(u16, u16)>>,
    /// Per aux literal: the automaton pattern it is keyed on, and whether that pattern is the
    /// aux literal itself (else the hit must be confirmed).
    pub(crate) aux: Vec<(usize, bool)>,
    /// Signals without any literal, confirmed by a `RegexSet` on every record.
    pub(crate) fallback: Option<(RegexSet, Vec<(u16, u16)>)>,
    /// Longest `within` of any signal (how long correlation facts are kept).
    pub(crate) max_window_ms: i64,
    /// Every literal of every signal, for `faultline rules literals` (benchmarks).
    pub literals: Vec<String>,
}

/// Finds the leftmost literal in a span of a large buffer: Teddy (SIMD) when the patterns
/// allow, else a leftmost-first automaton.
#[derive(Debug)]
pub(crate) enum Scanner {
    /// Teddy searchers over groups of at most `SCAN_GROUP` patterns each.
    Packed(Vec<aho_corasick::packed::Searcher>),
    Automaton(AhoCorasick),
}

/// Patterns per Teddy searcher (Teddy takes at most 128; smaller groups verify less).
const SCAN_GROUP: usize = 64;

/// Shortest substring that may stand in for several key patterns in the scanner.
const MIN_SCAN_ANCHOR: usize = 12;

/// The scanner's patterns: the key patterns, except that patterns sharing a long substring
/// (at least [`MIN_SCAN_ANCHOR`] bytes) are replaced by it, while that saves a whole Teddy
/// group: every group is one more pass over the buffer, costing about the same however few
/// patterns it has. A shared substring only makes a wider filter (every record it lets
/// through is matched exactly afterwards), and a long one is about as rare as the patterns
/// it replaces. Longer and more widely shared substrings are taken first; deterministic.
fn scan_patterns(keys: &[String]) -> Vec<Vec<u8>> {
    let groups = |n: usize| n.div_ceil(SCAN_GROUP);
    let mut pool: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    // The windows of `len` bytes shared by at least two of the patterns `among`, each with
    // the patterns it occurs in.
    let shared_windows = |pool: &[Vec<u8>], among: &[usize], len: usize| {
        let mut all: Vec<(&[u8], usize)> = among
            .iter()
            .flat_map(|&i| pool[i].windows(len).map(move |w| (w, i)))
            .collect();
        all.sort_unstable();
        all.dedup();
        let mut shared: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for run in all.chunk_by(|a, b| a.0 == b.0) {
            if run.len() >= 2 {
                shared.push((run[0].0.to_vec(), run.iter().map(|&(_, i)| i).collect()));
            }
        }
        shared
    };
    while groups(pool.len()) > 1 {
        let goal = groups(pool.len()) - 1;
        // Only patterns sharing a window of the minimum length can be merged at all.
        let all: Vec<usize> = (0..pool.len()).collect();
        let mut among: Vec<usize> = shared_windows(&pool, &all, MIN_SCAN_ANCHOR)
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        among.sort_unstable();
        among.dedup();
        // At best every such pattern folds into one anchor.
        if among.is_empty() || pool.len() - among.len() + 1 > goal * SCAN_GROUP {
            break;
        }
        let mut trial = pool.clone();
        let mut gone = vec![false; trial.len()];
        let mut anchors: Vec<Vec<u8>> = Vec::new();
        let longest = among.iter().map(|&i| pool[i].len()).max().unwrap_or(0);
        let mut count = trial.len();
        for len in (MIN_SCAN_ANCHOR..=longest).rev() {
            if groups(count) <= goal {
                break;
            }
            let live: Vec<usize> = among.iter().copied().filter(|&i| !gone[i]).collect();
            let mut merges = shared_windows(&trial, &live, len);
            merges.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
            for (w, v) in merges {
                if groups(count) <= goal {
                    break;
                }
                if v.iter().any(|&i| gone[i]) {
                    continue;
                }
                for &i in &v {
                    gone[i] = true;
                }
                count = count + 1 - v.len();
                anchors.push(w);
            }
        }
        if groups(count) > goal {
            break;
        }
        trial = trial
            .into_iter()
            .zip(gone)
            .filter_map(|(p, g)| (!g).then_some(p))
            .collect();
        trial.extend(anchors);
        pool = trial;
    }
    pool.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    pool
}

impl Scanner {
    /// How many independent searchers there are (each is searched lazily on its own).
    pub(crate) fn groups(&self) -> usize {
        match self {
            Scanner::Packed(v) => v.len(),
            Scanner::Automaton(_) => 1,
        }
    }

    /// Start of the leftmost match of group `g`'s patterns in `haystack[from..]`.
    pub(crate) fn find_from(&self, g: usize, haystack: &[u8], from: usize) -> Option<usize> {
        match self {
            Scanner::Packed(v) => v
                .get(g)?
                .find_in(haystack, aho_corasick::Span::from(from..haystack.len())),
            Scanner::Automaton(a) => {
                a.find(aho_corasick::Input::new(haystack).span(from..haystack.len()))
            }
        }
        .map(|m| m.start())
    }
}

/// The offline fast path's scanner over the key patterns (see [`scan_patterns`]).
fn build_scanner(patterns: &[String]) -> Option<Scanner> {
    let teddies: Option<Vec<aho_corasick::packed::Searcher>> = scan_patterns(patterns)
        .chunks(SCAN_GROUP)
        .map(|group| {
            aho_corasick::packed::Config::new()
                .heuristic_pattern_limits(false)
                .builder()
                .extend(group)
                .build()
        })
        .collect();
    if patterns.is_empty() {
        None
    } else if let Some(teddies) = teddies {
        Some(Scanner::Packed(teddies))
    } else {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(patterns)
            .or_else(|_| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(patterns)
            })
            .ok()
            .map(Scanner::Automaton)
    }
}

/// Parse a duration like `90s`, `10m`, `2h`, `1d`, `500ms`.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (ms, s, m, h, d)"))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn parse_level(s: &str) -> Option<Level> {
    Level::parse_lenient(s)
}

/// Deserialize one rule file's text (`file` names it in errors).
pub fn parse_rule_file(file: &str, text: &str) -> Result<RuleSpec, RuleError> {
    let err = |field: String, reason: String| RuleError {
        file: file.to_string(),
        field,
        reason,
    };
    let value: toml::Value = text
        .parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| err(String::new(), format!("not valid TOML: {}", e.message())))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        err(field, e.into_inner().to_string())
    })
}

impl RuleSet {
    /// Compile `(file name, text)` pairs. All files are validated; every error is reported.
    pub fn compile(files: &[(String, String)]) -> Result<RuleSet, RuleSetError> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut seen_ids: HashMap<String, String> = HashMap::new();
        for (file, text) in files {
            let spec = match parse_rule_file(file, text) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match compile_rule(file, spec) {
                Ok(rule) => {
                    if let Some(other) = seen_ids.insert(rule.id.clone(), file.clone()) {
                        errors.push(RuleError {
                            file: file.clone(),
                            field: "id".into(),
                            reason: format!("duplicate rule id {:?} (also in {other})", rule.id),
                        });
                    } else {
                        rules.push(rule);
                    }
                }
                Err(mut es) => errors.append(&mut es),
            }
        }
        if !errors.is_empty() {
            return Err(RuleSetError { errors });
        }
        Self::build(rules)
    }

    fn build(mut rules: Vec<Rule>) -> Result<RuleSet, RuleSetError> {
        // `[[snapshot_cause]] fault = "<id>"` names a fault rule of the same set.
        let ids: HashMap<String, (usize, RuleKind)> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), (i, r.kind)))
            .collect();
        let mut errors = Vec::new();
        for r in rules.iter_mut() {
            for (i, c) in r.snapshot_causes.iter_mut().enumerate() {
                let Some(f) = &c.fault else { continue };
                match ids.get(f) {
                    Some(&(ix, RuleKind::Fault)) => c.fault_rule = Some(ix),
                    _ => errors.push(RuleError {
                        file: r.file.clone(),
                        field: format!("snapshot_cause[{i}].fault"),
                        reason: format!("`{f}` is not a fault rule of this set"),
                    }),
                }
            }
        }
        if !errors.is_empty() {
            return Err(RuleSetError { errors });
        }
        // Key literals: every `any` literal, or the longest `all` literal.
        let mut literal_ids: HashMap<String, usize> = HashMap::new();
        let mut literal_list: Vec<String> = Vec::new();
        let mut literal_signals: Vec<Vec<(u16, u16)>> = Vec::new();
        let mut fallback_regex = Vec::new();
        let mut fallback_sig = Vec::new();
        let mut all_literals = BTreeSet::new();
        let mut intern = |lit: &str, list: &mut Vec<String>, sigs: &mut Vec<Vec<(u16, u16)>>| {
            *literal_ids.entry(lit.to_string()).or_insert_with(|| {
                list.push(lit.to_string());
                sigs.push(Vec::new());
                list.len() - 1
            })
        };
        for (ri, rule) in rules.iter().enumerate() {
            for (si, sig) in rule.signals.iter().enumerate() {
                let key = (ri as u16, si as u16);
                all_literals.extend(sig.all.iter().cloned());
                all_literals.extend(sig.any.iter().cloned());
                if !sig.any.is_empty() {
                    for lit in &sig.any {
                        let id = intern(lit, &mut literal_list, &mut literal_signals);
                        literal_signals[id].push(key);
                    }
                } else if let Some(lit) = sig.all.iter().max_by_key(|l| l.len()) {
                    let id = intern(lit, &mut literal_list, &mut literal_signals);
                    literal_signals[id].push(key);
                } else if let Some(re) = &sig.regex {
                    // Already ASCII-rewritten when the signal was compiled.
                    fallback_regex.push(re.as_str().to_string());
                    fallback_sig.push(key);
                }
            }
        }
        let aux_ids: Vec<usize> = AUX_LITERALS
            .iter()
            .map(|a| intern(a, &mut literal_list, &mut literal_signals))
            .collect();
        // Drop literals that contain another literal: the shorter one is the key, and the
        // candidate is confirmed with the full literal. The automaton then never needs
        // overlapping matches at one position.
        let mut order: Vec<usize> = (0..literal_list.len()).collect();
        order.sort_by_key(|&i| (literal_list[i].len(), i));
        let mut pattern_of = vec![usize::MAX; literal_list.len()];
        let mut patterns: Vec<String> = Vec::new();
        let mut pattern_signals: Vec<Vec<(u16, u16)>> = Vec::new();
        let mut pattern_literal: Vec<usize> = Vec::new();
        for &i in &order {
            let lit = &literal_list[i];
            let inner = pattern_literal
                .iter()
                .position(|&pl| lit.contains(literal_list[pl].as_str()));
            let p = match inner {
                Some(p) => p,
                None => {
                    patterns.push(lit.clone());
                    pattern_signals.push(Vec::new());
                    pattern_literal.push(i);
                    patterns.len() - 1
                }
            };
            pattern_of[i] = p;
            let sigs = std::mem::take(&mut literal_signals[i]);
            for s in sigs {
                if !pattern_signals[p].contains(&s) {
                    pattern_signals[p].push(s);
                }
            }
        }
        let aux = aux_ids
            .iter()
            .map(|&i| (pattern_of[i], pattern_literal[pattern_of[i]] == i))
            .collect();
        // The prefilter automaton builds on another thread while the scanner is built here.
        let build_prefilter = || -> Result<Option<AhoCorasick>, RuleSetError> {
            if patterns.is_empty() {
                return Ok(None);
            }
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&patterns)
                .or_else(|_| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::Standard)
                        .build(&patterns)
                })
                .map_err(|e| set_error(format!("the literal prefilter cannot be built: {e}")))
                .map(Some)
        };
        let (prefilter, scanner) = std::thread::scope(|scope| {
            let prefilter = scope.spawn(build_prefilter);
            let scanner = build_scanner(&patterns);
            (prefilter.join(), scanner)
        });
        let prefilter = match prefilter {
            Ok(p) => p?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let fallback = if fallback_regex.is_empty() {
            None
        } else {
            let set = RegexSet::new(&fallback_regex).map_err(|e| {
                set_error(format!(
                    "the regexes of signals without literals cannot be combined: {e}"
                ))
            })?;
            Some((set, fallback_sig))
        };
        let max_window_ms = rules
            .iter()
            .flat_map(|r| r.signals.iter().map(|s| s.within_ms))
            .max()
            .unwrap_or(0);
        Ok(RuleSet {
            rules,
            prefilter,
            scanner,
            pattern_signals,
            aux,
            fallback,
            max_window_ms,
            literals: all_literals.into_iter().collect(),
        })
    }

    /// Compile every signal regex now (they are otherwise compiled on first use, see
    /// [`LazyRegex`]); the ones that cannot be compiled are load errors.
    pub fn compile_regexes(&self) -> Result<(), RuleSetError> {
        let mut errors = Vec::new();
        for rule in &self.rules {
            for (i, sig) in rule.signals.iter().enumerate() {
                for (field, re) in [("regex", &sig.regex), ("not_regex", &sig.not_regex)] {
                    if let Some(Err(e)) = re.as_ref().map(LazyRegex::compile) {
                        errors.push(RuleError {
                            file: rule.file.clone(),
                            field: format!("signal[{i}].{field}"),
                            reason: format!("invalid regex: {e}"),
                        });
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RuleSetError { errors })
        }
    }

    /// [`RuleSet::compile`], then [`RuleSet::compile_regexes`]: a set that loads this way
    /// has nothing left to fail.
    pub fn compile_checked(files: &[(String, String)]) -> Result<RuleSet, RuleSetError> {
        let set = Self::compile(files)?;
        set.compile_regexes()?;
        Ok(set)
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

const DEFAULT_WINDOW_MS: i64 = 10 * 60_000;

/// An error of the rule set as a whole (no single file to blame).
fn set_error(reason: String) -> RuleSetError {
    RuleSetError {
        errors: vec![RuleError {
            file: "(rule set)".into(),
            field: String::new(),
            reason,
        }],
    }
}

fn compile_rule(file: &str, spec: RuleSpec) -> Result<Rule, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, reason: String| {
        errors.push(RuleError {
            file: file.to_string(),
            field: field.to_string(),
            reason,
        })
    };
    let id_ok = !spec.id.is_empty()
        && spec
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !id_ok {
        err(
            "id",
            format!("{:?} must be lowercase letters, digits and '_'", spec.id),
        );
    }
    let stem = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    if id_ok && stem != spec.id {
        err(
            "id",
            format!("{:?} must equal the file name ({stem}.toml)", spec.id),
        );
    }
    if let Some(c) = &spec.class {
        let class_ok = !c.is_empty()
            && c.len() <= 64
            && c.starts_with(|ch: char| ch.is_ascii_lowercase())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            && c != "unknown"
            && c != "none";
        if !class_ok {
            err(
                "class",
                format!("{c:?} must be a class id: lowercase letters, digits and '_'"),
            );
        }
        if spec.kind != RuleKind::Fault {
            err("class", "only fault rules report a class".into());
        }
    }
    if let Some(sc) = &spec.script {
        let ok = !sc.is_empty()
            && !sc.starts_with('.')
            && sc
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            err(
                "script",
                format!("{sc:?} must be a plain file name (letters, digits, '.', '_', '-')"),
            );
        }
    }
    if spec.auto && spec.script.is_none() {
        err("auto", "needs a `script` to run".into());
    }
    if spec.title.trim().is_empty() {
        err("title", "must not be empty".into());
    }
    let severity = match (&spec.severity, spec.kind) {
        (Some(s), _) => Severity::parse(s).unwrap_or_else(|| {
            err(
                "severity",
                format!("{s:?} is not one of info, warning, error, critical"),
            );
            Severity::Info
        }),
        (None, RuleKind::Fault) => {
            err("severity", "is required for fault rules".into());
            Severity::Info
        }
        (None, _) => Severity::Warning,
    };
    if spec.kind == RuleKind::Fault && spec.remediation.is_empty() {
        err(
            "remediation",
            "fault rules need at least one remediation step".into(),
        );
    }
    let min_level = match &spec.applies.min_level {
        Some(l) => parse_level(l).unwrap_or_else(|| {
            err(
                "applies.min_level",
                format!("{l:?} is not a level (trace, debug, info, warn, error, fatal)"),
            );
            Level::Unknown
        }),
        None => Level::Unknown,
    };
    if spec.signals.is_empty() {
        err("signal", "a rule needs at least one [[signal]]".into());
    }
    let names: Vec<String> = spec
        .signals
        .iter()
        .enumerate()
        .map(|(i, s)| s.name.clone().unwrap_or_else(|| format!("signal{}", i + 1)))
        .collect();
    let mut uniq = HashSet::new();
    for (i, n) in names.iter().enumerate() {
        if !uniq.insert(n) {
            err(
                &format!("signal[{i}].name"),
                format!("duplicate signal name {n:?}"),
            );
        }
    }
    let mut captures: HashSet<String> = BUILTIN_VARS.iter().map(|s| s.to_string()).collect();
    let mut signals = Vec::new();
    for (i, s) in spec.signals.iter().enumerate() {
        let (sig, caps, mut errs) = compile_signal(file, i, s, &names);
        errors.append(&mut errs);
        captures.extend(caps);
        signals.push(sig);
    }
    if !signals.is_empty() && signals.iter().all(|s| s.context) {
        errors.push(RuleError {
            file: file.to_string(),
            field: "signal".into(),
            reason: "every signal is `context = true`: the rule could never fire".into(),
        });
    }
    let mut tpl = |field: &str, text: &str| -> Template {
        match Template::parse(text) {
            Ok(t) => {
                for v in t.vars() {
                    if !captures.contains(v) {
                        errors.push(RuleError {
                            file: file.to_string(),
                            field: field.to_string(),
                            reason: format!(
                                "placeholder {{{v}}} is neither a named capture of a signal regex nor one of {}",
                                BUILTIN_VARS.join(", ")
                            ),
                        });
                    }
                }
                t
            }
            Err(e) => {
                errors.push(RuleError {
                    file: file.to_string(),
                    field: field.to_string(),
                    reason: e,
                });
                Template { parts: vec![] }
            }
        }
    };
    let entity = tpl("entity", spec.entity.as_deref().unwrap_or("{host}"));
    let diagnosis = tpl(
        "diagnosis",
        spec.diagnosis.as_deref().unwrap_or(spec.title.as_str()),
    );
    if entity.vars().any(|v| v == "count") {
        errors.push(RuleError {
            file: file.to_string(),
            field: "entity".into(),
            reason: "{count} changes with every firing; the entity names what the fault is about (a host, a host:port, a path)".into(),
        });
    }
    let mut remediation = Vec::new();
    for (i, r) in spec.remediation.iter().enumerate() {
        let t = Template::parse_lenient(r);
        for v in t.vars() {
            if !captures.contains(v) {
                errors.push(RuleError {
                    file: file.to_string(),
                    field: format!("remediation[{i}]"),
                    reason: format!(
                        "placeholder {{{v}}} is neither a named capture of a signal regex nor one of {}",
                        BUILTIN_VARS.join(", ")
                    ),
                });
            }
        }
        remediation.push(t);
    }
    for (i, s) in spec.signals.iter().enumerate() {
        for c in s.same.iter().chain(s.group_by.iter()) {
            if !captures.contains(c) {
                errors.push(RuleError {
                    file: file.to_string(),
                    field: format!("signal[{i}].same"),
                    reason: format!("{c:?} is not a capture of any signal"),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let captures_list: Vec<String> = captures.iter().cloned().collect();
    let mut snapshot_causes = Vec::new();
    for (i, c) in spec.snapshot_causes.iter().enumerate() {
        let field = format!("snapshot_cause[{i}]");
        let mut when = Vec::new();
        for (j, w) in c.when.iter().enumerate() {
            match super::snapshot_pred::Predicate::parse(w, &captures_list) {
                Ok(p) => when.push(p),
                Err(reason) => errors.push(RuleError {
                    file: file.to_string(),
                    field: format!("{field}.when[{j}]"),
                    reason,
                }),
            }
        }
        if c.when.is_empty() {
            errors.push(RuleError {
                file: file.to_string(),
                field: format!("{field}.when"),
                reason: "needs at least one predicate".into(),
            });
        }
        let mut tpl_of = |name: &str, text: &str| match Template::parse(text) {
            Ok(t) => {
                for v in t.vars() {
                    if !captures.contains(v) {
                        errors.push(RuleError {
                            file: file.to_string(),
                            field: format!("{field}.{name}"),
                            reason: format!(
                                "placeholder {{{v}}} is neither a named capture of a signal regex nor one of {}",
                                BUILTIN_VARS.join(", ")
                            ),
                        });
                    }
                }
                t
            }
            Err(reason) => {
                errors.push(RuleError {
                    file: file.to_string(),
                    field: format!("{field}.{name}"),
                    reason,
                });
                Template { parts: vec![] }
            }
        };
        let cause = tpl_of("cause", &c.cause);
        let entity = c.entity.as_deref().map(|e| tpl_of("entity", e));
        snapshot_causes.push(SnapshotCause {
            when,
            fault: c.fault.clone(),
            fault_rule: None,
            entity,
            cause,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rule {
        class: spec.class.unwrap_or_else(|| spec.id.clone()),
        script: spec.script,
        auto: spec.auto,
        id: spec.id,
        file: file.to_string(),
        kind: spec.kind,
        title: spec.title,
        severity,
        component: spec.component.unwrap_or_default(),
        priority: spec.priority,
        entity,
        diagnosis,
        remediation,
        references: spec.references,
        services: spec.applies.services,
        loggers: spec.applies.loggers,
        min_level,
        signals,
        snapshot_causes,
    })
}

fn compile_signal(
    file: &str,
    i: usize,
    s: &SignalSpec,
    names: &[String],
) -> (Signal, Vec<String>, Vec<RuleError>) {
    let mut errors = Vec::new();
    let mut err = |field: &str, reason: String| {
        errors.push(RuleError {
            file: file.to_string(),
            field: if field.is_empty() {
                format!("signal[{i}]")
            } else {
                format!("signal[{i}].{field}")
            },
            reason,
        })
    };
    for (field, lits) in [("all", &s.all), ("any", &s.any), ("none", &s.none)] {
        if lits.iter().any(|l| l.len() < 3) {
            err(
                field,
                "literals must be at least 3 bytes long (a shorter one matches almost every line)"
                    .into(),
            );
        }
    }
    let mut caps = Vec::new();
    let mut re = |field: &str, pat: &Option<String>| -> Option<LazyRegex> {
        let p = pat.as_ref()?;
        match LazyRegex::new(super::ascii::ascii_perl_classes(p)) {
            Ok(r) => {
                caps.extend(r.capture_names().map(str::to_string));
                Some(r)
            }
            Err(e) => {
                err(field, format!("invalid regex: {e}"));
                None
            }
        }
    };
    let regex = re("regex", &s.regex);
    let not_regex = re("not_regex", &s.not_regex);
    if s.all.is_empty() && s.any.is_empty() && s.regex.is_none() {
        err(
            "",
            "a signal needs at least one of `all`, `any` or `regex`".into(),
        );
    }
    let checks = s
        .checks
        .iter()
        .enumerate()
        .filter_map(|(k, c)| match Check::parse(c) {
            Ok(chk) => {
                for cap in chk.captures() {
                    if !caps.iter().any(|x| x == cap) {
                        err(
                            &format!("checks[{k}]"),
                            format!("{cap:?} is not a named capture of this signal's regex"),
                        );
                    }
                }
                Some(chk)
            }
            Err(e) => {
                err(&format!("checks[{k}]"), e);
                None
            }
        })
        .collect();
    let min_level = match &s.min_level {
        Some(l) => parse_level(l).unwrap_or_else(|| {
            err("min_level", format!("{l:?} is not a level"));
            Level::Unknown
        }),
        None => Level::Unknown,
    };
    let within_ms = match &s.within {
        Some(w) => parse_duration_ms(w).unwrap_or_else(|e| {
            err("within", e);
            DEFAULT_WINDOW_MS
        }),
        None => DEFAULT_WINDOW_MS,
    };
    let count = s.count.unwrap_or(1);
    if count == 0 {
        err("count", "must be at least 1".into());
    }
    let mut resolve = |field: &str, list: &[String]| -> Vec<usize> {
        list.iter()
            .filter_map(|n| match names.iter().position(|x| x == n) {
                Some(p) if p == i => {
                    err(field, format!("{n:?} refers to the signal itself"));
                    None
                }
                Some(p) => Some(p),
                None => {
                    err(field, format!("no signal named {n:?} in this rule"));
                    None
                }
            })
            .collect()
    };
    let requires = resolve("requires", &s.requires);
    let unless = resolve("unless", &s.unless);
    if !s.same.is_empty() && requires.is_empty() && unless.is_empty() {
        err("same", "only meaningful with `requires` or `unless`".into());
    }
    let sig = Signal {
        name: names[i].clone(),
        all: s.all.clone(),
        any: s.any.clone(),
        none: s.none.clone(),
        regex,
        not_regex,
        checks,
        min_level,
        context: s.context,
        count,
        within_ms,
        group_by: s.group_by.clone(),
        requires,
        unless,
        same: s.same.clone(),
    };
    (sig, caps, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_cover_every_key_and_save_groups() {
        // 70 keys: 64 distinct ones plus 6 pairs sharing a long substring.
        let mut keys: Vec<String> = (0..58).map(|i| format!("k{i:02}")).collect();
        for i in 0..6 {
            // The pair shares 19 bytes; all twelve share a shorter "-common-core-".
            let w = format!("{i}{i}{i}-common-core-{i}{i}{i}");
            keys.push(format!("A{w}A"));
            keys.push(format!("B{w}B"));
        }
        let pats = scan_patterns(&keys);
        let shown: Vec<String> = pats
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(pats.len(), 64, "one Teddy group is enough: {shown:?}");
        for k in &keys {
            assert!(
                pats.iter()
                    .any(|p| k.as_bytes().windows(p.len()).any(|w| w == p)),
                "{k} is not covered"
            );
        }
        assert_eq!(
            pats.iter().filter(|p| p.len() >= MIN_SCAN_ANCHOR).count(),
            6
        );
        // Nothing to share: the keys are kept as they are (two groups it is).
        let keys: Vec<String> = (0..70).map(|i| format!("k{i:02}")).collect();
        assert_eq!(scan_patterns(&keys).len(), 70);
        // Few keys: left alone.
        let keys = vec![
            "Shared Substring x".to_string(),
            "Shared Substring y".to_string(),
        ];
        assert_eq!(scan_patterns(&keys).len(), 2);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("5w").is_err());
    }

    #[test]
    fn checks_evaluate() {
        let c = Check::parse("tries + 1 >= max").unwrap();
        let v = |k: &str| match k {
            "tries" => Some("9"),
            "max" => Some("10"),
            _ => None,
        };
        assert!(c.holds(v));
        let c = Check::parse("tries + 1 >= max").unwrap();
        assert!(!c.holds(|k| if k == "tries" { Some("2") } else { Some("10") }));
        assert!(!c.holds(|_| None));
        assert!(Check::parse("tries >>= 3").is_err());
    }

    #[test]
    fn templates_render_and_reject_garbage() {
        let t = Template::parse("{host} lost {target}.").unwrap();
        assert_eq!(
            t.render(|k| if k == "host" { Some("nn1") } else { None }),
            "nn1 lost unknown."
        );
        let t = Template::parse_lenient("ls ${HADOOP_HOME}/{a,b} {host} {target|host}");
        assert_eq!(
            t.render(|k| if k == "host" { Some("nn1") } else { None }),
            "ls ${HADOOP_HOME}/{a,b} nn1 nn1"
        );
        let t = Template::parse("{target|host}").unwrap();
        assert_eq!(
            t.render(|k| if k == "host" { Some("nn1") } else { None }),
            "nn1"
        );
        assert!(Template::parse("{oops").is_err());
        assert!(Template::parse("{a b}").is_err());
    }
}
