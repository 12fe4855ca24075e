//! Matching records against a [`RuleSet`] and correlating matches over time into findings.
//!
//! Per record: one Aho-Corasick scan of the message over the key literals (no allocation when
//! nothing hits), confirmation of the candidate signals (literals, regex, checks, filters),
//! then per stream scope: `requires` / `unless` facts, `count` thresholds within windows.
//! A record that no signal explains and that looks like a failure (ERROR/FATAL, a stack
//! trace, an exception line) becomes an `unknown` finding keyed by its message template.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde::Serialize;

use super::compile::{AUX_LITERALS, Rule, RuleSet, Severity, Signal, SnapshotCause, Template};
use super::spec::RuleKind;
use crate::domain::{Level, LogRecord};

/// Where a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FindingSource {
    /// A known fault class matched by a rule.
    Rule,
    /// Nothing known explains it: the escalation candidate.
    Unknown,
}

impl FindingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingSource::Rule => "rule",
            FindingSource::Unknown => "unknown",
        }
    }
}

/// One evidencing record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Evidence {
    pub log_id: u64,
    pub event_ms: i64,
    pub lines: Vec<String>,
}

/// A fault the engine believes is happening. Repeats share a `fingerprint`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Finding {
    /// A class id of the taxonomy, or `unknown`.
    pub fault_type: String,
    pub source: FindingSource,
    /// The rule that fired (`None`, `null`, for a generic unknown).
    pub rule_id: Option<String>,
    pub title: String,
    pub severity: Severity,
    pub priority: i32,
    pub component: String,
    pub cluster: String,
    pub host: String,
    pub service: String,
    pub entity: String,
    pub fingerprint: String,
    pub diagnosis: String,
    pub remediation: Vec<String>,
    pub references: Vec<String>,
    pub captures: BTreeMap<String, String>,
    pub evidence: Vec<Evidence>,
    /// The snapshot values a `[[snapshot_cause]]` rested on (empty when none applied).
    pub snapshot_evidence: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub occurrences: u64,
    /// Id of the record that made it fire (the highest evidence id).
    pub trigger_log_id: u64,
}

/// Most lines of one record kept as evidence.
pub const EVIDENCE_LINES_PER_RECORD: usize = 12;
/// Longest evidence line kept (longer ones are cut, marked).
pub const EVIDENCE_LINE_BYTES: usize = 2048;
/// Most records kept as evidence of one finding.
pub const EVIDENCE_RECORDS: usize = 10;

/// A confirmed signal match inside one record.
#[derive(Debug, Clone)]
struct SignalMatch {
    rule: u16,
    signal: u16,
    caps: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Fact {
    rule: u16,
    signal: u16,
    at_ms: i64,
    caps: Vec<(String, String)>,
}

/// A match counted towards a `count` threshold: its time, and its evidence unless the
/// consumer has all it keeps (see [`Correlator::compact_repeats`]).
type CountedMatch = (i64, Option<Evidence>);

#[derive(Debug, Default, Clone)]
struct ScopeState {
    facts: VecDeque<Fact>,
    /// Per (rule, signal, hash of the group value): recent matches.
    counts: super::fxhash::FxHashMap<(u16, u16, u64), VecDeque<CountedMatch>>,
    /// Latest event time seen in this scope (for eviction).
    last_ms: i64,
    /// When the count groups are next swept for expired windows.
    next_sweep_ms: i64,
}

/// The signals a record matched (the pure, parallelisable half of the engine).
#[derive(Debug, Clone, Default)]
pub struct Matched {
    matches: Vec<SignalMatch>,
    /// No signal matched and the record looks like a failure (ERROR/FATAL, stack trace,
    /// exception line): an `unknown` unless the correlator is told otherwise.
    pub unknown_candidate: bool,
}

impl Matched {
    /// Whether correlating this record can have any effect.
    pub fn is_relevant(&self) -> bool {
        !self.matches.is_empty() || self.unknown_candidate
    }
}

/// Reusable buffers so that matching a record that hits nothing does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    hit: Vec<bool>,
    hit_list: Vec<usize>,
    cands: Vec<(u16, u16)>,
}

/// Result of looking at one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Some signal (fault, benign or escalate) matched the record.
    pub explained: bool,
    /// Findings emitted for this record.
    pub findings: usize,
}

/// The latest snapshot of each cluster, as `[[snapshot_cause]]` reads it; called per firing,
/// so it must be cheap (an in-memory map behind a read lock).
pub trait SnapshotLookup: Send + Sync {
    fn with_snapshot(
        &self,
        cluster: &str,
        f: &mut dyn FnMut(&crate::cluster::snapshot::ClusterSnapshot),
    );
}

/// Fixed snapshots (`faultline diagnose --snapshot`): by cluster name, and one that serves
/// every cluster when the file holds a single cluster.
#[derive(Debug, Default)]
pub struct StaticSnapshots {
    pub by_cluster: HashMap<String, crate::cluster::snapshot::ClusterSnapshot>,
}

impl SnapshotLookup for StaticSnapshots {
    fn with_snapshot(
        &self,
        cluster: &str,
        f: &mut dyn FnMut(&crate::cluster::snapshot::ClusterSnapshot),
    ) {
        let one = (self.by_cluster.len() == 1)
            .then(|| self.by_cluster.values().next())
            .flatten();
        if let Some(s) = self.by_cluster.get(cluster).or(one) {
            f(s);
        }
    }
}

/// Correlation state over a stream of records, for one rule set.
pub struct Correlator {
    /// Where `[[snapshot_cause]]` reads each cluster's latest snapshot (none: causes never
    /// apply).
    pub snapshots: Option<Arc<dyn SnapshotLookup>>,
    set: Arc<RuleSet>,
    scopes: HashMap<u64, ScopeState>,
    referenced: super::fxhash::FxHashSet<(u16, u16)>,
    scratch: Scratch,
    /// Include generic unknown findings (records nothing explains).
    pub unknowns: bool,
    /// Repeats of a fingerprint already emitted carry only the fingerprint, counts and
    /// evidence, and no evidence once the first firings gave all that is kept (for consumers
    /// that merge by fingerprint with [`merge_finding`], like the offline diagnosis).
    pub compact_repeats: bool,
    /// Compact mode: per fingerprint emitted, how many evidence records went with it.
    seen: super::fxhash::FxHashMap<String, usize>,
    /// While a batch is open: each touched scope's state before the batch (`None`: it did not
    /// exist), so that a batch the database did not store can be undone.
    undo: Option<HashMap<u64, Option<ScopeState>>>,
}

const MAX_FACTS_PER_SCOPE: usize = 512;
const MAX_SCOPES: usize = 50_000;

static EXCEPTION_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)(?:^|[\s:(\[])(?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)(?::|\)|$)|^Caused by: |^Exception in thread ",
    )
    .expect("static regex")
});

impl Correlator {
    pub fn new(set: Arc<RuleSet>) -> Correlator {
        let mut referenced = super::fxhash::FxHashSet::default();
        for (ri, r) in set.rules.iter().enumerate() {
            for s in &r.signals {
                for &o in s.requires.iter().chain(s.unless.iter()) {
                    referenced.insert((ri as u16, o as u16));
                }
            }
        }
        Correlator {
            snapshots: None,
            set,
            scopes: HashMap::new(),
            referenced,
            scratch: Scratch::default(),
            unknowns: true,
            compact_repeats: false,
            seen: Default::default(),
            undo: None,
        }
    }

    pub fn rule_set(&self) -> &Arc<RuleSet> {
        &self.set
    }

    /// Start a batch whose effect on the correlation state can be undone with
    /// [`Correlator::rollback_batch`] (when its records were not stored and will be replayed).
    pub fn begin_batch(&mut self) {
        self.undo = Some(HashMap::new());
    }

    /// Keep the batch's effect.
    pub fn commit_batch(&mut self) {
        self.undo = None;
    }

    /// Restore every scope the batch touched to its state before the batch.
    pub fn rollback_batch(&mut self) {
        if let Some(undo) = self.undo.take() {
            for (key, prior) in undo {
                match prior {
                    Some(state) => {
                        self.scopes.insert(key, state);
                    }
                    None => {
                        self.scopes.remove(&key);
                    }
                }
            }
        }
    }

    /// Make room for a new scope: drop scopes whose windows have all expired, then (if still
    /// full) the half least recently seen.
    fn evict_scopes(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.set.max_window_ms);
        let mut undo = self.undo.take();
        let mut drop_scope = |key: u64, state: ScopeState| {
            if let Some(u) = &mut undo {
                u.entry(key).or_insert(Some(state));
            }
        };
        let expired: Vec<u64> = self
            .scopes
            .iter()
            .filter(|(_, st)| st.last_ms < horizon)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(st) = self.scopes.remove(&k) {
                drop_scope(k, st);
            }
        }
        if self.scopes.len() >= MAX_SCOPES {
            let mut by_age: Vec<(i64, u64)> =
                self.scopes.iter().map(|(k, st)| (st.last_ms, *k)).collect();
            by_age.sort_unstable();
            for (_, k) in by_age.into_iter().take(MAX_SCOPES / 2) {
                if let Some(st) = self.scopes.remove(&k) {
                    drop_scope(k, st);
                }
            }
        }
        self.undo = undo;
    }

    /// Look at one record; findings it triggers are pushed to `out`.
    pub fn process(&mut self, rec: &LogRecord, out: &mut Vec<Finding>) -> Verdict {
        let matched = self.set.match_record(rec, &mut self.scratch);
        self.correlate(rec, &matched, out)
    }

    /// The correlation half of [`Correlator::process`], for a record already matched with
    /// [`RuleSet::match_record`] (possibly on another thread).
    pub fn correlate(
        &mut self,
        rec: &LogRecord,
        matched: &Matched,
        out: &mut Vec<Finding>,
    ) -> Verdict {
        let set = Arc::clone(&self.set);
        let matches = &matched.matches;
        let unknown = self.unknowns && matched.unknown_candidate;
        if matches.is_empty() {
            if unknown {
                out.push(unknown_finding(rec));
                return Verdict {
                    explained: false,
                    findings: 1,
                };
            }
            return Verdict::default();
        }
        let before = out.len();
        let scope_key = scope_of(rec);
        let now = rec.event_ms;
        if self.scopes.len() >= MAX_SCOPES && !self.scopes.contains_key(&scope_key) {
            self.evict_scopes(now);
        }
        if let Some(undo) = &mut self.undo {
            undo.entry(scope_key)
                .or_insert_with(|| self.scopes.get(&scope_key).cloned());
        }
        let scope = self.scopes.entry(scope_key).or_default();
        scope.last_ms = scope.last_ms.max(now);
        prune(scope, now, &set);
        // Facts first: a `requires` may be satisfied by the same record.
        for m in matches {
            if self.referenced.contains(&(m.rule, m.signal)) {
                scope.facts.push_back(Fact {
                    rule: m.rule,
                    signal: m.signal,
                    at_ms: now,
                    caps: m.caps.clone(),
                });
                if scope.facts.len() > MAX_FACTS_PER_SCOPE {
                    scope.facts.pop_front();
                }
            }
        }
        let mut fired_rules: Vec<u16> = Vec::new();
        for m in matches {
            let rule = &set.rules[m.rule as usize];
            let sig = &rule.signals[m.signal as usize];
            if sig.context || rule.kind == RuleKind::Benign || fired_rules.contains(&m.rule) {
                continue;
            }
            let lookup = |name: &str| -> Option<&str> {
                m.caps
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let same_ok = |f: &Fact| {
                sig.same.iter().all(|name| {
                    let mine = lookup(name);
                    let theirs = f
                        .caps
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str());
                    mine.is_some() && mine == theirs
                })
            };
            let in_window = |f: &Fact| f.at_ms >= now - sig.within_ms && f.at_ms <= now;
            let required = sig.requires.iter().all(|&req| {
                scope.facts.iter().any(|f| {
                    f.rule == m.rule && f.signal as usize == req && in_window(f) && same_ok(f)
                })
            });
            if !required {
                continue;
            }
            let suppressed = sig.unless.iter().any(|&u| {
                scope.facts.iter().any(|f| {
                    f.rule == m.rule && f.signal as usize == u && in_window(f) && same_ok(f)
                })
            });
            if suppressed {
                continue;
            }
            // The cluster's latest snapshot may name the root cause (`[[snapshot_cause]]`):
            // the first cause whose predicates all hold decides the diagnosis, and maybe the
            // rule the finding belongs to.
            let mut cause: Option<(&SnapshotCause, Vec<String>)> = None;
            if let (false, Some(look)) = (rule.snapshot_causes.is_empty(), &self.snapshots) {
                let value = |name: &str| -> Option<String> {
                    match name {
                        "host" => Some(rec.host.clone()),
                        _ => lookup(name).map(str::to_string),
                    }
                };
                look.with_snapshot(&rec.cluster, &mut |snap| {
                    cause = rule.snapshot_causes.iter().find_map(|c| {
                        super::snapshot_pred::all_hold(&c.when, snap, &value).map(|ev| (c, ev))
                    });
                });
            }
            let (rule, entity) = match &cause {
                Some((c, _)) => {
                    let target = c.fault_rule.map_or(rule, |ix| &set.rules[ix]);
                    (target, c.entity.as_ref().unwrap_or(&target.entity))
                }
                None => (rule, &rule.entity),
            };
            // Compact mode: a repeat whose merged finding already holds all the evidence it
            // keeps needs none, so most records of a long episode skip copying their lines.
            let mut id = None;
            let wants_evidence = if self.compact_repeats {
                let i = identity(rule, entity, rec, &m.caps);
                let wants = self
                    .seen
                    .get(&i.fingerprint)
                    .is_none_or(|&n| n < EVIDENCE_RECORDS);
                id = Some(i);
                wants
            } else {
                true
            };
            let ev = wants_evidence.then(|| evidence_of(rec, EVIDENCE_LINES_PER_RECORD));
            let mut evidence = vec![];
            let mut first_ms = now;
            let mut count = 1u64;
            if sig.count > 1 {
                let group = {
                    use std::hash::BuildHasher as _;
                    let value = sig
                        .group_by
                        .as_deref()
                        .and_then(|g| {
                            if g == "host" {
                                Some(rec.host.as_str())
                            } else {
                                lookup(g)
                            }
                        })
                        .unwrap_or("");
                    super::fxhash::FxBuildHasher::default().hash_one(value)
                };
                let q = scope.counts.entry((m.rule, m.signal, group)).or_default();
                q.push_back((now, ev));
                while q
                    .front()
                    .is_some_and(|(t, _)| *t < now - sig.within_ms || *t > now)
                {
                    q.pop_front();
                }
                while q.len() > sig.count as usize {
                    q.pop_front();
                }
                if q.len() < sig.count as usize {
                    continue;
                }
                count = q.len() as u64;
                first_ms = q.front().map_or(now, |(t, _)| *t);
                // The run's evidence, this record's last; the next firing needs a fresh run.
                evidence.extend(q.drain(..).filter_map(|(_, e)| e));
            } else {
                evidence.extend(ev);
            }
            let id = id.unwrap_or_else(|| identity(rule, entity, rec, &m.caps));
            fired_rules.push(m.rule);
            let seen = self.compact_repeats.then_some(&mut self.seen);
            let cause = cause.map(|(c, ev)| (&c.cause, ev));
            out.push(rule_finding(
                rule, rec, &m.caps, id, evidence, first_ms, count, seen, cause,
            ));
        }
        if unknown {
            out.push(unknown_finding(rec));
        }
        Verdict {
            explained: !unknown,
            findings: out.len() - before,
        }
    }
}

/// Bytes of a header looked at by [`RuleSet::has_signal_literals`].
const CLASSIFY_BYTES: usize = 8 * 1024;

impl RuleSet {
    /// Match one record against every signal: prefilter scan, then confirmation. Pure.
    pub fn match_record(&self, rec: &LogRecord, scratch: &mut Scratch) -> Matched {
        let text = rec.message.as_str();
        scan(self, text, scratch);
        let aux = |i: usize, s: &Scratch| {
            let (p, exact) = self.aux[i];
            s.hit[p] && (exact || text.contains(AUX_LITERALS[i]))
        };
        let aux_exception = aux(0, scratch);
        let aux_error = aux(1, scratch);
        let aux_frame = aux(2, scratch);
        let mut matches: Vec<SignalMatch> = Vec::new();
        for &(ri, si) in &scratch.cands {
            let rule = &self.rules[ri as usize];
            let sig = &rule.signals[si as usize];
            if let Some(caps) = confirm(rule, sig, rec, text) {
                matches.push(SignalMatch {
                    rule: ri,
                    signal: si,
                    caps,
                });
            }
        }
        clear_scratch(scratch);
        // Context signals are facts for other signals, not explanations: a failure that only
        // they match is still an unknown.
        let explained = matches
            .iter()
            .any(|m| !self.rules[m.rule as usize].signals[m.signal as usize].context);
        let unknown_candidate =
            !explained && is_unknown_candidate(rec, aux_exception || aux_error, aux_frame);
        Matched {
            matches,
            unknown_candidate,
        }
    }

    /// Whether `text` contains the literals of some fault / escalate / benign signal (its
    /// `all` and `any` literals; regexes are not run). Used by the parser to close such
    /// records early.
    pub fn has_signal_literals(&self, text: &str) -> bool {
        let Some(ac) = &self.prefilter else {
            return false;
        };
        // A header decides early closing: its first bytes are enough, and each pattern is
        // confirmed once (a long line of repeats must stay linear).
        let mut end = text.len().min(CLASSIFY_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text[..end];
        let mut checked: u128 = 0;
        let mut checked_more: HashSet<usize> = HashSet::new();
        ac.find_overlapping_iter(text).any(|m| {
            let p = m.pattern().as_usize();
            let first = if p < 128 {
                let bit = 1u128 << p;
                let fresh = checked & bit == 0;
                checked |= bit;
                fresh
            } else {
                checked_more.insert(p)
            };
            first
                && self.pattern_signals[p].iter().any(|&(ri, si)| {
                    let sig = &self.rules[ri as usize].signals[si as usize];
                    !sig.context
                        && sig.all.iter().all(|l| text.contains(l.as_str()))
                        && (sig.any.is_empty() || sig.any.iter().any(|l| text.contains(l.as_str())))
                })
        })
    }
}

/// Correlation scope of a record: its cluster and host, and its file when the stream named one
/// (a file's records share a scope even when their loggers imply different services), else
/// its service.
fn scope_of(rec: &LogRecord) -> u64 {
    let mut h = super::fxhash::FxHasher::default();
    rec.cluster.hash(&mut h);
    rec.host.hash(&mut h);
    if rec.source_file.is_empty() {
        rec.service.hash(&mut h);
    } else {
        rec.source_file.hash(&mut h);
    }
    h.finish()
}

/// Count groups are swept at most this often (event time) per scope.
const SWEEP_INTERVAL_MS: i64 = 1_000;

/// Drop facts older than the longest window, and (at most once per `SWEEP_INTERVAL_MS`)
/// count groups whose own signal's window has passed.
fn prune(scope: &mut ScopeState, now: i64, set: &RuleSet) {
    let horizon = now.saturating_sub(set.max_window_ms);
    while scope.facts.front().is_some_and(|f| f.at_ms < horizon) {
        scope.facts.pop_front();
    }
    if now >= scope.next_sweep_ms || now < scope.next_sweep_ms - SWEEP_INTERVAL_MS {
        scope.next_sweep_ms = now.saturating_add(SWEEP_INTERVAL_MS);
        scope.counts.retain(|(r, sg, _), q| {
            let within = set.rules[*r as usize].signals[*sg as usize].within_ms;
            q.back()
                .is_some_and(|(t, _)| *t >= now.saturating_sub(within) && *t <= now)
        });
    }
}

/// Fill `s.hit_list` / `s.cands` with the automaton patterns found in `text` and the signals
/// they make candidates (plus literal-less signals whose regex matches).
fn scan(set: &RuleSet, text: &str, s: &mut Scratch) {
    if s.hit.len() != set.pattern_signals.len() {
        s.hit = vec![false; set.pattern_signals.len()];
    }
    if let Some(ac) = &set.prefilter {
        for m in ac.find_overlapping_iter(text) {
            let p = m.pattern().as_usize();
            if !s.hit[p] {
                s.hit[p] = true;
                s.hit_list.push(p);
                for &c in &set.pattern_signals[p] {
                    if !s.cands.contains(&c) {
                        s.cands.push(c);
                    }
                }
            }
        }
    }
    if let Some((rs, sigs)) = &set.fallback {
        for i in rs.matches(text).iter() {
            if !s.cands.contains(&sigs[i]) {
                s.cands.push(sigs[i]);
            }
        }
    }
    // Confirm in rule order, so findings come out in a stable order.
    s.cands.sort_unstable();
}

fn clear_scratch(s: &mut Scratch) {
    for &p in &s.hit_list {
        s.hit[p] = false;
    }
    s.hit_list.clear();
    s.cands.clear();
}

/// Everything but the prefilter: filters, literals, regexes, checks. The captures on success.
fn confirm(
    rule: &Rule,
    sig: &Signal,
    rec: &LogRecord,
    text: &str,
) -> Option<Vec<(String, String)>> {
    if rec.level != Level::Unknown && (rec.level < rule.min_level || rec.level < sig.min_level) {
        return None;
    }
    if !rule.services.is_empty()
        && !rec.service.is_empty()
        && !rule.services.iter().any(|s| s == &rec.service)
    {
        return None;
    }
    if !rule.loggers.is_empty()
        && !rec.logger.is_empty()
        && !rule
            .loggers
            .iter()
            .any(|l| rec.logger.starts_with(l.as_str()))
    {
        return None;
    }
    if !sig.all.iter().all(|l| text.contains(l.as_str())) {
        return None;
    }
    if !sig.any.is_empty() && !sig.any.iter().any(|l| text.contains(l.as_str())) {
        return None;
    }
    if sig.none.iter().any(|l| text.contains(l.as_str())) {
        return None;
    }
    if sig
        .not_regex
        .as_ref()
        .is_some_and(|r| r.get().is_some_and(|r| r.is_match(text)))
    {
        return None;
    }
    let mut caps = Vec::new();
    if let Some(lazy) = &sig.regex {
        let re = lazy.get()?;
        let c = re.captures(text)?;
        for name in lazy.capture_names() {
            if let Some(v) = c.name(name) {
                caps.push((name.to_string(), v.as_str().to_string()));
            }
        }
    }
    let lookup = |name: &str| -> Option<&str> {
        caps.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !sig.checks.iter().all(|c| c.holds(lookup)) {
        return None;
    }
    Some(caps)
}

fn evidence_of(rec: &LogRecord, max_lines: usize) -> Evidence {
    let mut lines: Vec<String> = rec
        .message
        .split('\n')
        .take(max_lines)
        .map(|l| {
            if l.len() <= EVIDENCE_LINE_BYTES {
                l.to_string()
            } else {
                let mut end = EVIDENCE_LINE_BYTES;
                while !l.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{} [... {} more bytes]", &l[..end], l.len() - end)
            }
        })
        .collect();
    let total = rec.message.split('\n').count();
    if total > max_lines {
        lines.push(format!("[... {} more lines]", total - max_lines));
    }
    Evidence {
        log_id: rec.id,
        event_ms: rec.event_ms,
        lines,
    }
}

/// Who a rule finding is about: its host, and its fingerprint (rule, cluster and entity),
/// built in one string with no formatting machinery: it is computed for every firing.
struct Identity<'a> {
    host: &'a str,
    fingerprint: String,
    /// Where the entity starts in `fingerprint` (it runs to the end).
    entity_at: usize,
}

impl Identity<'_> {
    fn entity(&self) -> &str {
        &self.fingerprint[self.entity_at..]
    }
}

fn identity<'a>(
    rule: &Rule,
    entity: &Template,
    rec: &'a LogRecord,
    caps: &'a [(String, String)],
) -> Identity<'a> {
    let host = caps
        .iter()
        .find(|(k, _)| k == "host")
        .map_or(rec.host.as_str(), |(_, v)| v.as_str());
    let mut fingerprint = String::with_capacity(rule.id.len() + rec.cluster.len() + 48);
    if rule.kind == RuleKind::Escalate {
        fingerprint.push_str("unknown:");
    }
    fingerprint.push_str(&rule.id);
    fingerprint.push(':');
    fingerprint.push_str(&rec.cluster);
    fingerprint.push(':');
    let entity_at = fingerprint.len();
    // `{count}` is refused in entities at load (it would split one fault per firing).
    entity.render_into(&mut fingerprint, |name| {
        builtin_or_capture(name, host, rec, "", caps)
    });
    Identity {
        host,
        fingerprint,
        entity_at,
    }
}

/// A template variable: a built-in (`host`, `service`, `cluster`, `count`) or a capture.
fn builtin_or_capture<'a>(
    name: &str,
    host: &'a str,
    rec: &'a LogRecord,
    count: &'a str,
    caps: &'a [(String, String)],
) -> Option<&'a str> {
    match name {
        "host" => Some(host),
        "service" => Some(rec.service.as_str()),
        "cluster" => Some(rec.cluster.as_str()),
        "count" => Some(count),
        _ => caps
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str()),
    }
}

// Private constructor with one call site; the arguments are the finding's parts.
#[allow(clippy::too_many_arguments)]
fn rule_finding(
    rule: &Rule,
    rec: &LogRecord,
    caps: &[(String, String)],
    id: Identity<'_>,
    evidence: Vec<Evidence>,
    first_ms: i64,
    count: u64,
    seen: Option<&mut super::fxhash::FxHashMap<String, usize>>,
    cause: Option<(&Template, Vec<String>)>,
) -> Finding {
    let escalate = rule.kind == RuleKind::Escalate;
    let source = if escalate {
        FindingSource::Unknown
    } else {
        FindingSource::Rule
    };
    if let Some(seen) = seen {
        if let Some(n) = seen.get_mut(&id.fingerprint) {
            *n += evidence.len();
            // A repeat the consumer merges by fingerprint: only the fingerprint, counts and
            // evidence (see `Correlator::compact_repeats`).
            return Finding {
                snapshot_evidence: Vec::new(),
                fault_type: String::new(),
                source,
                rule_id: None,
                title: String::new(),
                severity: rule.severity,
                priority: rule.priority,
                component: String::new(),
                cluster: String::new(),
                host: String::new(),
                service: String::new(),
                entity: String::new(),
                fingerprint: id.fingerprint,
                diagnosis: String::new(),
                remediation: Vec::new(),
                references: Vec::new(),
                captures: BTreeMap::new(),
                evidence,
                first_ms,
                last_ms: rec.event_ms,
                occurrences: count,
                trigger_log_id: rec.id,
            };
        }
        seen.insert(id.fingerprint.clone(), evidence.len());
    }
    let fault_type = if escalate {
        "unknown".to_string()
    } else {
        rule.class.clone()
    };
    let (host, entity) = (id.host, id.entity().to_string());
    let fingerprint = id.fingerprint;
    let count_s = count.to_string();
    let lookup = |name: &str| builtin_or_capture(name, host, rec, &count_s, caps);
    let (diagnosis, snapshot_evidence) = match cause {
        Some((t, ev)) => (t.render(lookup), ev),
        None => (rule.diagnosis.render(lookup), Vec::new()),
    };
    let remediation = rule.remediation.iter().map(|t| t.render(lookup)).collect();
    Finding {
        snapshot_evidence,
        fault_type,
        source,
        rule_id: Some(rule.id.clone()),
        title: rule.title.clone(),
        severity: rule.severity,
        priority: rule.priority,
        component: rule.component.clone(),
        cluster: rec.cluster.clone(),
        host: host.to_string(),
        service: rec.service.clone(),
        entity,
        fingerprint,
        diagnosis,
        remediation,
        references: rule.references.clone(),
        captures: {
            let mut c: BTreeMap<String, String> = caps.iter().cloned().collect();
            if escalate {
                // The escalation groups an escalated fault's instances by message template.
                c.entry("template".into())
                    .or_insert_with(|| message_template(&rec.message));
            }
            c
        },
        evidence,
        first_ms,
        last_ms: rec.event_ms,
        occurrences: count,
        trigger_log_id: rec.id,
    }
}

/// Does this unexplained record look like a failure?
fn is_unknown_candidate(rec: &LogRecord, exception_word: bool, frame: bool) -> bool {
    if rec.level >= Level::Error {
        return true;
    }
    let m = rec.message.as_str();
    if frame && m.contains("\n\tat ") {
        return true;
    }
    exception_word && EXCEPTION_LINE.is_match(m)
}

/// The normalised template of a record: its first line (plus its first exception line when
/// that is a different line), with variable tokens (anything with a digit, paths, hex ids,
/// quoted strings) replaced by `<*>`.
pub fn message_template(message: &str) -> String {
    let mut lines = message.split('\n');
    let head = lines.next().unwrap_or("");
    let mut parts = vec![head];
    if !EXCEPTION_LINE.is_match(head)
        && let Some(ex) = lines.find(|l| !l.starts_with('\t') && EXCEPTION_LINE.is_match(l))
    {
        parts.push(ex);
    }
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        for (j, tok) in p.split_whitespace().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            let variable = tok.bytes().any(|b| b.is_ascii_digit())
                || tok.contains('/')
                || tok.starts_with('"')
                || tok.starts_with('\'');
            out.push_str(if variable { "<*>" } else { tok });
            if out.len() > 400 {
                break;
            }
        }
    }
    out
}

pub(crate) fn short_hash(s: &str) -> String {
    // FNV-1a 64: stable across processes and releases (fingerprints are stored).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn unknown_finding(rec: &LogRecord) -> Finding {
    let template = message_template(&rec.message);
    let fingerprint = format!(
        "unknown:{}:{}:{}",
        rec.cluster,
        rec.host,
        short_hash(&template)
    );
    let mut title: String = template.chars().take(160).collect();
    if title.is_empty() {
        title = "unrecognised failure".into();
    }
    let severity = if rec.level >= Level::Error {
        Severity::Error
    } else {
        Severity::Warning
    };
    let mut captures = BTreeMap::new();
    captures.insert("template".to_string(), template);
    Finding {
        snapshot_evidence: Vec::new(),
        fault_type: "unknown".into(),
        source: FindingSource::Unknown,
        rule_id: None,
        title,
        severity,
        priority: i32::MIN,
        component: rec.service.clone(),
        cluster: rec.cluster.clone(),
        host: rec.host.clone(),
        service: rec.service.clone(),
        entity: rec.host.clone(),
        fingerprint,
        diagnosis:
            "No known fault rule explains this failure; it is a candidate for LLM escalation."
                .into(),
        remediation: Vec::new(),
        references: Vec::new(),
        captures,
        evidence: vec![evidence_of(rec, EVIDENCE_LINES_PER_RECORD)],
        first_ms: rec.event_ms,
        last_ms: rec.event_ms,
        occurrences: 1,
        trigger_log_id: rec.id,
    }
}

impl Finding {
    /// The escalation group of an unknown finding (generic or of an escalate rule): its rule
    /// and its message template. `None` for rule findings and for merged repeats.
    pub fn template_key(&self) -> Option<String> {
        if self.source != FindingSource::Unknown {
            return None;
        }
        let template = self.captures.get("template")?;
        Some(template_key(self.rule_id.as_deref(), template))
    }
}

/// The stored key of an escalation group (32 hex digits, stable across releases).
pub fn template_key(rule_id: Option<&str>, template: &str) -> String {
    format!(
        "{}{}",
        short_hash(rule_id.unwrap_or("")),
        short_hash(template)
    )
}

/// Merge `f` (a later occurrence) into `into` (same fingerprint).
pub fn merge_finding(into: &mut Finding, f: Finding) {
    into.occurrences = into.occurrences.saturating_add(f.occurrences);
    into.first_ms = into.first_ms.min(f.first_ms);
    into.last_ms = into.last_ms.max(f.last_ms);
    into.trigger_log_id = into.trigger_log_id.max(f.trigger_log_id);
    for e in f.evidence {
        if into.evidence.len() >= EVIDENCE_RECORDS {
            break;
        }
        if !into.evidence.iter().any(|x| x.log_id == e.log_id) {
            into.evidence.push(e);
        }
    }
}

/// Order findings primary first: rule findings by priority (root cause first), then by
/// occurrences and first appearance; unknowns after every rule finding.
pub fn rank_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let src = |f: &Finding| match (f.source, f.rule_id.is_some()) {
            (FindingSource::Rule, _) => 0,
            (FindingSource::Unknown, true) => 1,
            (FindingSource::Unknown, false) => 2,
        };
        src(a)
            .cmp(&src(b))
            .then(b.priority.cmp(&a.priority))
            .then(b.occurrences.cmp(&a.occurrences))
            .then(a.first_ms.cmp(&b.first_ms))
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Layout;

    fn rec(id: u64, ms: i64, file: &str, msg: &str) -> LogRecord {
        LogRecord {
            id,
            last_seq: id,
            received_ms: ms,
            event_ms: ms,
            cluster: "c".into(),
            host: "gw".into(),
            service: String::new(),
            source_file: file.into(),
            level: Level::Info,
            logger: String::new(),
            thread: String::new(),
            message: msg.into(),
            layout: Layout::Syslog,
            line_count: 1,
        }
    }

    const PAM: &str = "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.77";

    fn correlator() -> Correlator {
        Correlator::new(Arc::new(
            crate::rules::load(&crate::rules::RuleSource::Embedded).unwrap(),
        ))
    }

    #[test]
    fn a_rolled_back_batch_leaves_no_trace_in_the_windows() {
        let mut c = correlator();
        let mut out = Vec::new();
        let t0 = 1_700_000_000_000;
        let batch: Vec<LogRecord> = (0..4)
            .map(|i| rec(i, t0 + i as i64, "/var/log/auth.log", PAM))
            .collect();
        c.begin_batch();
        batch.iter().for_each(|r| {
            c.process(r, &mut out);
        });
        c.rollback_batch();
        c.begin_batch();
        batch.iter().for_each(|r| {
            c.process(r, &mut out);
        });
        c.commit_batch();
        assert!(
            out.is_empty(),
            "4 failures replayed are still 4, not 8: {out:#?}"
        );
        c.process(&rec(9, t0 + 9, "/var/log/auth.log", PAM), &mut out);
        assert_eq!(out.len(), 1, "the 5th failure fires");
    }

    #[test]
    fn count_groups_expire_with_their_own_window() {
        let mut c = correlator();
        let mut out = Vec::new();
        let t0 = 1_700_000_000_000i64;
        // 20 000 failures from distinct hosts, 72 ms apart (24 min): the 10 min window keeps
        // at most ~8 300 groups alive, whatever the longest window of the pack (1 day).
        for i in 0..20_000u64 {
            let msg = format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.{}.{}.{}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            );
            c.process(
                &rec(i, t0 + (i as i64) * 72, "/var/log/auth.log", &msg),
                &mut out,
            );
        }
        let groups: usize = c.scopes.values().map(|s| s.counts.len()).sum();
        assert!(groups <= 8_400, "{groups} count groups kept");
    }

    #[test]
    fn a_full_scope_table_evicts_old_scopes_not_open_windows() {
        let mut c = correlator();
        let mut out = Vec::new();
        let t0 = 1_700_000_000_000;
        for i in 0..4 {
            c.process(&rec(i, t0 + i as i64, "/var/log/auth.log", PAM), &mut out);
        }
        let retry = "Retrying connect to server: rm1/10.0.0.1:8030. Already tried 0 time(s); retry policy is RetryUpToMaximumCountWithFixedSleep(maxRetries=10, sleepTime=1000 MILLISECONDS)";
        for i in 0..MAX_SCOPES as u64 {
            let f = format!("/var/log/yarn/container_{i}/syslog");
            c.process(
                &rec(100 + i, t0 - 1_000_000 + i as i64, &f, retry),
                &mut out,
            );
        }
        out.clear();
        c.process(&rec(1_000_000, t0 + 20, "/var/log/auth.log", PAM), &mut out);
        assert_eq!(out.len(), 1, "the 5th failure within 10 min must fire");
        assert!(c.scopes.len() <= MAX_SCOPES);
    }

    #[test]
    fn templates_mask_variable_tokens() {
        let a = message_template(
            "Failed to start namenode.\njava.io.IOException: There appears to be a gap in the edit log.  We expected txid 1048577, but got txid 1049203.\n\tat x.y(Z.java:1)",
        );
        let b = message_template(
            "Failed to start namenode.\njava.io.IOException: There appears to be a gap in the edit log.  We expected txid 17, but got txid 99.",
        );
        assert_eq!(a, b);
        assert!(a.contains("gap in the edit log"));
        assert!(!a.contains("1048577"));
    }

    #[test]
    fn exception_lines_are_recognised_but_words_are_not() {
        assert!(EXCEPTION_LINE.is_match("java.io.IOException: No space left on device"));
        assert!(EXCEPTION_LINE.is_match("x\nCaused by: foo"));
        assert!(
            EXCEPTION_LINE
                .is_match("org.apache.hadoop.ipc.RemoteException(java.io.IOException): File")
        );
        assert!(
            !EXCEPTION_LINE
                .is_match("cmd=create src=/data/reports/exceptions/2025/exception_summary.csv")
        );
        assert!(!EXCEPTION_LINE.is_match("\t\tOUT_OF_MEMORY_ERROR=12"));
        assert!(!EXCEPTION_LINE.is_match("com.acme.logs.JavaExceptionParserMapper$Counters"));
    }
}
