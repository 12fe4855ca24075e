//! The offline runner: parse lines with the engine's own parser and joiner, run the rules,
//! and merge repeats into one finding per fingerprint, primary first.
//! Used by `faultline diagnose`, `faultline eval`, `faultline rules test` and the tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::compile::RuleSet;
use super::engine::{Correlator, Finding, merge_finding, rank_findings};
use crate::domain::{LogRecord, StreamKey};
use crate::parse::{Joiner, JoinerConfig};

/// Collects findings over one or more streams and merges them by fingerprint.
pub struct Diagnosis {
    correlator: Correlator,
    joiner: Joiner,
    findings: Vec<Finding>,
    by_fingerprint: HashMap<String, usize>,
    next_seq: u64,
    received_ms: i64,
    records: Vec<LogRecord>,
    /// Records looked at.
    pub records_seen: u64,
    /// Physical lines fed.
    pub lines_seen: u64,
}

impl Diagnosis {
    pub fn new(set: Arc<RuleSet>) -> Diagnosis {
        Diagnosis {
            correlator: Correlator::new(set),
            joiner: Joiner::new(JoinerConfig::default()),
            findings: Vec::new(),
            by_fingerprint: HashMap::new(),
            next_seq: 1,
            received_ms: crate::now_ms(),
            records: Vec::new(),
            records_seen: 0,
            lines_seen: 0,
        }
    }

    /// Whether generic `unknown` findings are reported (default: yes).
    pub fn set_unknowns(&mut self, on: bool) {
        self.correlator.unknowns = on;
    }

    /// Feed the lines of one stream (a file: its lines carry their host, or none).
    pub fn feed_stream<'a>(&mut self, file: &str, lines: impl IntoIterator<Item = &'a str>) {
        let stream = Arc::new(StreamKey {
            cluster: "default".into(),
            host: String::new(),
            service: String::new(),
            file: file.to_string(),
        });
        let now = Instant::now();
        for line in lines {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.lines_seen += 1;
            self.joiner
                .push(&stream, seq, self.received_ms, line, now, &mut self.records);
            if self.records.len() >= 256 {
                self.drain();
            }
        }
        self.joiner.flush_all(&mut self.records);
        self.drain();
    }

    fn drain(&mut self) {
        let mut out = Vec::new();
        for rec in std::mem::take(&mut self.records) {
            self.records_seen += 1;
            self.correlator.process(&rec, &mut out);
        }
        for f in out {
            self.add(f);
        }
    }

    fn add(&mut self, f: Finding) {
        match self.by_fingerprint.get(&f.fingerprint) {
            Some(&i) => merge_finding(&mut self.findings[i], f),
            None => {
                self.by_fingerprint
                    .insert(f.fingerprint.clone(), self.findings.len());
                self.findings.push(f);
            }
        }
    }

    /// The merged findings, primary first.
    pub fn finish(mut self) -> Vec<Finding> {
        self.joiner.flush_all(&mut self.records);
        self.drain();
        let mut f = self.findings;
        rank_findings(&mut f);
        f
    }
}

/// Diagnose one excerpt (its lines as one stream) and return the findings, primary first.
pub fn diagnose_lines<'a>(
    set: &Arc<RuleSet>,
    lines: impl IntoIterator<Item = &'a str>,
) -> Vec<Finding> {
    let mut d = Diagnosis::new(Arc::clone(set));
    d.feed_stream("excerpt", lines);
    d.finish()
}

/// The label of an excerpt: the primary finding's `fault_type`, or `none`.
pub fn primary_label(findings: &[Finding]) -> &str {
    findings.first().map_or("none", |f| f.fault_type.as_str())
}
