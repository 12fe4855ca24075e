//! The offline commands (`diagnose`, `eval`, `rules ...`): thin wrappers over [`crate::rules`]
//! that read files and print. `main` dispatches here; tests call these directly too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::{Format, RulesCommand};
use crate::config::Settings;
use crate::rules::diagnose::Diagnosis;
use crate::rules::engine::Finding;
use crate::rules::{RuleSet, RuleSource, cases, eval};

/// `--rules DIR`, else the configuration's `rules.dir`, else the built-in pack; plus the
/// drafts of `rules.drafts_dir` (confirmed LLM diagnoses).
pub fn rule_source(cli: Option<&Path>, settings: &Settings) -> RuleSource {
    match cli {
        Some(d) => {
            RuleSource::with_drafts(RuleSource::Dir(d.to_path_buf()), &settings.rules.drafts_dir)
        }
        None => settings.rules.source(),
    }
}

fn load(source: &RuleSource) -> anyhow::Result<Arc<RuleSet>> {
    crate::rules::load(source)
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading rules from {source}"))
}

/// One finding as printed by `diagnose --format json`.
#[derive(Debug, Serialize)]
pub struct FindingOut<'a> {
    pub fault_type: &'a str,
    pub severity: &'a str,
    pub source: &'a str,
    pub rule_id: Option<&'a str>,
    pub title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub host: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub service: &'a str,
    pub entity: &'a str,
    pub fingerprint: &'a str,
    pub diagnosis: &'a str,
    pub occurrences: u64,
    pub evidence: Vec<&'a str>,
    /// The cluster-snapshot values a snapshot cause rested on.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub snapshot_evidence: &'a [String],
    pub remediation: &'a [String],
    pub references: &'a [String],
    pub captures: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> From<&'a Finding> for FindingOut<'a> {
    fn from(f: &'a Finding) -> Self {
        FindingOut {
            fault_type: &f.fault_type,
            severity: f.severity.as_str(),
            source: f.source.as_str(),
            rule_id: f.rule_id.as_deref(),
            title: &f.title,
            host: &f.host,
            service: &f.service,
            entity: &f.entity,
            fingerprint: &f.fingerprint,
            diagnosis: &f.diagnosis,
            occurrences: f.occurrences,
            evidence: f
                .evidence
                .iter()
                .flat_map(|e| e.lines.iter().map(String::as_str))
                .collect(),
            snapshot_evidence: &f.snapshot_evidence,
            remediation: &f.remediation,
            references: &f.references,
            captures: &f.captures,
        }
    }
}

/// Render findings as `diagnose` prints them.
pub fn render_findings(findings: &[Finding], format: Format) -> String {
    match format {
        Format::Json => {
            let list: Vec<FindingOut<'_>> = findings.iter().map(FindingOut::from).collect();
            serde_json::to_string_pretty(&serde_json::json!({ "findings": list }))
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
                + "\n"
        }
        Format::Text => {
            use std::fmt::Write as _;
            let mut s = String::new();
            if findings.is_empty() {
                s.push_str("no findings\n");
            }
            for (i, f) in findings.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "{}. [{}] {} — {}{}{}",
                    i + 1,
                    f.severity.as_str(),
                    f.fault_type,
                    f.title,
                    if f.host.is_empty() {
                        String::new()
                    } else {
                        format!(" (host {})", f.host)
                    },
                    if f.occurrences > 1 {
                        format!(", {} occurrences", f.occurrences)
                    } else {
                        String::new()
                    }
                );
                if i == 0 && findings.len() > 1 {
                    let _ = writeln!(s, "   primary finding (most likely root cause)");
                }
                let _ = writeln!(s, "   {}", f.diagnosis);
                let _ = writeln!(s, "   evidence:");
                for e in f.evidence.iter().take(3) {
                    for l in e.lines.iter().take(4) {
                        let _ = writeln!(s, "     | {l}");
                    }
                }
                if !f.snapshot_evidence.is_empty() {
                    let _ = writeln!(s, "   cluster snapshot:");
                    for v in &f.snapshot_evidence {
                        let _ = writeln!(s, "     = {v}");
                    }
                }
                if !f.remediation.is_empty() {
                    let _ = writeln!(s, "   remediation:");
                    for r in &f.remediation {
                        let _ = writeln!(s, "     $ {r}");
                    }
                }
                s.push('\n');
            }
            s
        }
    }
}

/// `faultline diagnose`: each file is one stream; `-` reads standard input.
pub fn diagnose(
    source: &RuleSource,
    files: &[PathBuf],
    format: Format,
    unknowns: bool,
    snapshot: Option<&Path>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let set = load(source)?;
    let mut d = Diagnosis::new(set);
    d.set_unknowns(unknowns);
    if let Some(path) = snapshot {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading snapshot {}", path.display()))?;
        let snaps = read_snapshots(&text)
            .with_context(|| format!("reading snapshot {}", path.display()))?;
        d.set_snapshots(Arc::new(snaps));
    }
    for file in files {
        if file.as_os_str() == "-" {
            d.feed_reader("-", std::io::stdin().lock())
                .context("reading standard input")?;
            continue;
        }
        // Read at offsets by the workers, not memory-mapped: a live log truncated by
        // logrotate while it is mapped would kill the process with SIGBUS. A pipe or a
        // device cannot be read at offsets: streamed.
        let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        let name = file.display().to_string();
        let regular = f.metadata().is_ok_and(|m| m.is_file());
        if regular {
            d.feed_file(&name, &f)
        } else {
            d.feed_reader(&name, f)
        }
        .with_context(|| format!("reading {}", file.display()))?;
    }
    let findings = d.finish();
    out.write_all(render_findings(&findings, format).as_bytes())?;
    Ok(())
}

/// The snapshots of a saved `GET /api/cluster/status` answer (`{"clusters": [{"cluster",
/// "snapshot"}, ...]}`), or of one snapshot object.
pub fn read_snapshots(text: &str) -> anyhow::Result<crate::rules::engine::StaticSnapshots> {
    use crate::cluster::snapshot::ClusterSnapshot;
    let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let mut out = crate::rules::engine::StaticSnapshots::default();
    match v.get("clusters").and_then(|c| c.as_array()) {
        Some(list) => {
            for c in list {
                let snap: ClusterSnapshot =
                    serde_json::from_value(c.get("snapshot").cloned().unwrap_or_default())
                        .context("a `snapshot` of `clusters` is not a cluster snapshot")?;
                let name = c
                    .get("cluster")
                    .and_then(|n| n.as_str())
                    .unwrap_or(&snap.cluster)
                    .to_string();
                out.by_cluster.insert(name, snap);
            }
        }
        None => {
            anyhow::ensure!(
                v.get("clusters").is_none() && v.get("cluster").is_some_and(|c| c.is_string()),
                "neither a /api/cluster/status answer (`clusters`: a list) nor a cluster snapshot (`cluster`, `namenode`, ...)"
            );
            let snap: ClusterSnapshot = serde_json::from_value(v)
                .context("neither a /api/cluster/status answer nor a cluster snapshot")?;
            out.by_cluster.insert(snap.cluster.clone(), snap);
        }
    }
    anyhow::ensure!(
        !out.by_cluster.is_empty(),
        "no cluster snapshot in the file"
    );
    Ok(out)
}

/// `faultline eval`: returns the report (the caller decides the exit status).
pub fn eval(source: &RuleSource, corpus: &Path) -> anyhow::Result<eval::EvalReport> {
    let set = load(source)?;
    let text = std::fs::read_to_string(corpus)
        .with_context(|| format!("reading corpus {}", corpus.display()))?;
    let cases =
        eval::parse_corpus(&text).map_err(|e| anyhow::anyhow!("{}: {e}", corpus.display()))?;
    Ok(eval::evaluate(&set, &cases))
}

/// `faultline rules ...`: prints and returns whether everything passed.
pub fn rules(
    command: &RulesCommand,
    settings: &Settings,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    match command {
        RulesCommand::Check { rules } => {
            let source = rule_source(rules.as_deref(), settings);
            match crate::rules::load_checked(&source) {
                Ok(set) => {
                    writeln!(out, "{} rule(s) OK ({source})", set.rules.len())?;
                    Ok(true)
                }
                Err(e) => {
                    for err in &e.errors {
                        writeln!(out, "{err}")?;
                    }
                    Ok(false)
                }
            }
        }
        RulesCommand::Test { rules, cases: dir } => {
            let source = rule_source(rules.as_deref(), settings);
            let set = crate::rules::load_checked(&source)
                .map(Arc::new)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("loading rules from {source}"))?;
            let reports = cases::run_all(&set, dir);
            let mut ok = true;
            for r in &reports {
                if r.passed() {
                    writeln!(
                        out,
                        "ok    {:<24} {} cases ({} positive, {} negative)",
                        r.rule, r.cases, r.positives, r.negatives
                    )?;
                } else {
                    ok = false;
                    writeln!(out, "FAIL  {:<24} {}", r.rule, r.case_file)?;
                    for p in &r.problems {
                        writeln!(out, "        {p}")?;
                    }
                }
            }
            let failed = reports.iter().filter(|r| !r.passed()).count();
            writeln!(
                out,
                "\n{} rule(s), {} failed, {} cases",
                reports.len(),
                failed,
                reports.iter().map(|r| r.cases).sum::<usize>()
            )?;
            Ok(ok)
        }
        RulesCommand::List { rules } => {
            let set = load(&rule_source(rules.as_deref(), settings))?;
            for r in &set.rules {
                writeln!(
                    out,
                    "{:<24} {:<9} {:<9} {:>4}  {}",
                    r.id,
                    format!("{:?}", r.kind).to_lowercase(),
                    r.severity.as_str(),
                    r.priority,
                    r.file
                )?;
            }
            Ok(true)
        }
        RulesCommand::Literals { rules } => {
            let set = load(&rule_source(rules.as_deref(), settings))?;
            for l in &set.literals {
                writeln!(out, "{l}")?;
            }
            Ok(true)
        }
    }
}

/// `faultline token hash|new`, writing to `out`; `input` is standard input.
pub fn token(
    command: &crate::cli::TokenCommand,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    use crate::auth::{generate_token, hash_token, to_hex};
    match command {
        crate::cli::TokenCommand::Hash => {
            let mut line = String::new();
            input.read_line(&mut line).context("reading the token")?;
            let token = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            writeln!(out, "{}", to_hex(&hash_token(token)))?;
        }
        crate::cli::TokenCommand::New { name, role } => {
            let token = generate_token().context("generating a token")?;
            writeln!(
                out,
                "# The token (shown once; give it to its holder, keep it out of files):\n{token}\n\n\
                 # For faultline.toml:\n[[auth.tokens]]\nname = {name:?}\nrole = \"{role}\"\nsha256 = \"{}\"",
                to_hex(&hash_token(&token))
            )?;
        }
    }
    Ok(())
}
