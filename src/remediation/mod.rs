//! Remediation through approved scripts, with a full audit trail.
//!
//! Pure: [`plan`] decides what would run for a fault: the script its rule names (allow-listed
//! file name), and arguments taken only from the fault's structured fields (host, service,
//! cluster, id), the host validated against the cluster's configuration, passed as separate
//! arguments (no shell). I/O: [`Remediator`] proposes, runs after approval (or unattended when
//! the rule and the global switch allow it), records every run and every refusal in
//! `exec_logs`, and re-checks: a fault that stays quiet after a successful run is resolved,
//! else the remediation is `not_effective`.

pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::settings::ClusterSettings;
use crate::rules::{RuleSet, RulesHandle};
use crate::storage::{ExecLog, FaultRow, NewRemediation, RemediationRow, Store, StoreError};
use settings::RemediationSettings;

/// What would run for a fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub script: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cluster: String,
    pub host: String,
    /// The rule allows unattended runs.
    pub auto: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("no remediation script is known for fault type {0:?}")]
    NoScript(String),
    #[error("script {0:?} is not in remediation.allow")]
    NotAllowed(String),
    /// A parameter failed validation (recorded in exec_logs).
    #[error("refused: {reason}")]
    Refused { host: String, reason: String },
}

/// A host name as configuration may name it: letters, digits, '.', '-' (no shell
/// metacharacters, no leading '-').
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// The host part of an entity such as `10.0.0.7:9866` or `worker3`.
fn entity_host(entity: &str) -> &str {
    match entity.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => h,
        _ => entity,
    }
}

/// Decide what would run for `fault`.
pub fn plan(
    fault: &FaultRow,
    rules: &RuleSet,
    settings: &RemediationSettings,
    clusters: &[ClusterSettings],
) -> Result<Plan, PlanError> {
    let ev: serde_json::Value = serde_json::from_str(&fault.evidence).unwrap_or_default();
    let rule_id = ev.get("rule_id").and_then(|r| r.as_str());
    // The rule that found the fault; else (an LLM diagnosis naming a known class) the rule of
    // that class, which may only run after approval.
    let by_rule = rules
        .rules
        .iter()
        .find(|r| Some(r.id.as_str()) == rule_id && r.script.is_some())
        .filter(|_| fault.source == "rule" || fault.source == "health_check");
    let rule = by_rule
        .or_else(|| {
            rules
                .rules
                .iter()
                .find(|r| r.class == fault.fault_type && r.script.is_some())
        })
        .ok_or_else(|| PlanError::NoScript(fault.fault_type.clone()))?;
    let script = rule.script.clone().unwrap_or_default();
    if !settings.allow.contains(&script) {
        return Err(PlanError::NotAllowed(script));
    }
    let refuse = |host: &str, reason: String| PlanError::Refused {
        host: host.to_string(),
        reason,
    };
    let Some(cluster) = clusters.iter().find(|c| c.name == fault.cluster) else {
        return Err(refuse(
            &fault.host,
            format!(
                "cluster {:?} is not configured ([[clusters]]): its hosts cannot be validated",
                fault.cluster
            ),
        ));
    };
    let known = cluster.host_names();
    let entity = ev.get("entity").and_then(|e| e.as_str()).unwrap_or("");
    // What the fault is about (the DataNode of `datanode_lost`), never the host that merely
    // logged it; a fault without an entity is about its host.
    let target = if entity.is_empty() {
        fault.host.as_str()
    } else {
        entity_host(entity)
    };
    let Some(host) = [target]
        .into_iter()
        .find(|h| plain_host(h) && known.iter().any(|k| k == h))
    else {
        let h = if plain_host(target) || fault.host.is_empty() {
            target
        } else {
            &fault.host
        };
        let why = if plain_host(h) {
            format!("host {h:?} is not a host of cluster {:?}", cluster.name)
        } else {
            format!("host {h:?} is not a plain host name (shell metacharacters or spaces)")
        };
        return Err(refuse(h, why));
    };
    let service_ok = fault.service.len() <= 32
        && fault
            .service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !service_ok {
        return Err(refuse(
            host,
            format!("service {:?} is not a plain service name", fault.service),
        ));
    }
    Ok(Plan {
        program: Path::new(&settings.scripts_dir).join(&script),
        script,
        args: vec![
            "--host".into(),
            host.to_string(),
            "--service".into(),
            fault.service.clone(),
            "--cluster".into(),
            cluster.name.clone(),
            "--fault-id".into(),
            fault.id.to_string(),
        ],
        cluster: cluster.name.clone(),
        host: host.to_string(),
        auto: rule.auto && by_rule.is_some(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    #[error("no fault with id {0}")]
    NoFault(i64),
    #[error("no remediation with id {0}")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
    /// Refused and recorded (the row is the audit).
    #[error("{reason}")]
    Refused {
        reason: String,
        remediation: Box<RemediationRow>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Remediator {
    store: Store,
    settings: RemediationSettings,
    clusters: Vec<ClusterSettings>,
    rules: Arc<RulesHandle>,
}

impl Remediator {
    pub fn new(
        store: Store,
        settings: RemediationSettings,
        clusters: Vec<ClusterSettings>,
        rules: Arc<RulesHandle>,
    ) -> Remediator {
        Remediator {
            store,
            settings,
            clusters,
            rules,
        }
    }

    async fn fault(&self, id: i64) -> Result<FaultRow, RemediateError> {
        self.store
            .get_fault(id)
            .await?
            .ok_or(RemediateError::NoFault(id))
    }

    async fn row(&self, id: i64) -> Result<RemediationRow, RemediateError> {
        self.store
            .get_remediation(id)
            .await?
            .ok_or(RemediateError::NotFound(id))
    }

    /// Propose the remediation of a fault (a dry run: nothing runs until approved). A
    /// parameter that fails validation is refused and recorded (remediations and exec_logs).
    pub async fn propose(
        &self,
        fault_id: i64,
        by: &str,
        mode: &str,
    ) -> Result<RemediationRow, RemediateError> {
        let fault = self.fault(fault_id).await?;
        if fault.status == "resolved" {
            return Err(RemediateError::Conflict(format!(
                "fault {fault_id} is resolved"
            )));
        }
        if let Some(open) = self
            .store
            .fault_remediations(fault_id)
            .await?
            .into_iter()
            .find(|r| matches!(r.status.as_str(), "proposed" | "running"))
        {
            return Err(RemediateError::Conflict(format!(
                "remediation {} of fault {fault_id} is already {}",
                open.id, open.status
            )));
        }
        let now = crate::now_ms();
        let set = self.rules.current();
        match plan(&fault, &set, &self.settings, &self.clusters) {
            Ok(p) => {
                let inserted = self
                    .store
                    .insert_remediation(&NewRemediation {
                        fault_id,
                        script: &p.script,
                        args: &p.args,
                        cluster: &p.cluster,
                        host: &p.host,
                        status: "proposed",
                        mode,
                        proposed_by: by,
                        message: "awaiting approval",
                        now_ms: now,
                    })
                    .await;
                let id = match inserted {
                    Ok(id) => id,
                    // Another proposal got there first (one open remediation per fault).
                    Err(StoreError::Sql(sqlx::Error::Database(db))) if db.is_unique_violation() => {
                        return Err(RemediateError::Conflict(format!(
                            "fault {fault_id} already has an open remediation"
                        )));
                    }
                    Err(e) => return Err(e.into()),
                };
                self.row(id).await
            }
            Err(PlanError::Refused { host, reason }) => {
                let id = self
                    .store
                    .insert_remediation(&NewRemediation {
                        fault_id,
                        script: "",
                        args: &[],
                        cluster: &fault.cluster,
                        host: &host,
                        status: "refused",
                        mode,
                        proposed_by: by,
                        message: &reason,
                        now_ms: now,
                    })
                    .await?;
                let log = ExecLog {
                    kind: "remediation".into(),
                    name: "refused".into(),
                    command: String::new(),
                    cluster: fault.cluster.clone(),
                    host: "engine".into(),
                    target: host,
                    trigger_source: format!("fault:{fault_id}"),
                    fault_id: Some(fault_id),
                    requested_by: Some(by.to_string()),
                    started_at: now,
                    finished_at: Some(now),
                    duration_ms: Some(0),
                    status: "refused".into(),
                    stderr: reason.clone(),
                    ..Default::default()
                };
                let exec_id = self.store.insert_exec_log(&log).await?;
                self.store
                    .finish_remediation(id, "refused", Some(exec_id), &reason, now)
                    .await?;
                tracing::warn!(fault = fault_id, %reason, "remediation refused");
                Err(RemediateError::Refused {
                    reason,
                    remediation: Box::new(self.row(id).await?),
                })
            }
            Err(e) => Err(RemediateError::Conflict(e.to_string())),
        }
    }

    /// Approve a proposed remediation: it runs in the background (`running` until done).
    pub async fn approve(
        self: &Arc<Self>,
        id: i64,
        by: &str,
    ) -> Result<RemediationRow, RemediateError> {
        let row = self.row(id).await?;
        if !self
            .store
            .approve_remediation(id, by, crate::now_ms())
            .await?
        {
            return Err(RemediateError::Conflict(format!(
                "remediation {id} is {}, not proposed",
                row.status
            )));
        }
        let row = self.row(id).await?;
        let this = Arc::clone(self);
        let run_row = row.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run(run_row).await {
                tracing::error!(error = %e, remediation = id, "recording a remediation run failed");
            }
        });
        Ok(row)
    }

    async fn run(self: &Arc<Self>, row: RemediationRow) -> Result<(), StoreError> {
        let args: Vec<String> = serde_json::from_str(&row.args).unwrap_or_default();
        // What the fault looked like when the script ran (the re-check compares).
        let before = self.store.get_fault(row.fault_id).await?;
        let program = Path::new(&self.settings.scripts_dir).join(&row.script);
        let ctx = crate::cluster::checks::CheckContext::new(
            Duration::from_secs(self.settings.timeout_secs),
            self.settings.output_max_bytes,
            &format!("fault:{}", row.fault_id),
        );
        let mut log = crate::cluster::checks::run_program(
            &ctx,
            &row.script,
            "remediation",
            &row.cluster,
            &program,
            &args,
            &row.host,
        )
        .await;
        log.fault_id = Some(row.fault_id);
        log.requested_by = Some(row.proposed_by.clone());
        log.approved_by = row.approved_by.clone();
        let exec_id = self.store.insert_exec_log(&log).await?;
        let status = match log.status.as_str() {
            "success" => "succeeded",
            "timeout" => "timeout",
            _ => "failed",
        };
        let finished = log.finished_at.unwrap_or_else(crate::now_ms);
        let message = match status {
            "succeeded" => format!(
                "ran; the fault is resolved if it stays quiet for {} s",
                self.settings.recheck_quiet_secs
            ),
            _ => crate::storage::truncate_str(&log.stderr, 500).to_string(),
        };
        self.store
            .finish_remediation(row.id, status, Some(exec_id), &message, finished)
            .await?;
        tracing::info!(remediation = row.id, fault = row.fault_id, script = %row.script, status, "remediation ran");
        if status == "succeeded"
            && let Some(f) = before
        {
            self.schedule_recheck(row.id, f, self.settings.recheck_quiet_secs);
        }
        Ok(())
    }

    fn schedule_recheck(self: &Arc<Self>, id: i64, fault: FaultRow, after_secs: u64) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(after_secs)).await;
            if let Err(e) = this.recheck(id, &fault).await {
                tracing::error!(error = %e, remediation = id, "remediation re-check failed");
            }
        });
    }

    /// At start: runs cut short by the stop are failed, and runs awaiting their re-check get
    /// it (after a full quiet period from now).
    pub async fn recover(self: &Arc<Self>) -> Result<(), StoreError> {
        for r in self.store.recover_remediations(crate::now_ms()).await? {
            if let Some(f) = self.store.get_fault(r.fault_id).await? {
                self.schedule_recheck(r.id, f, self.settings.recheck_quiet_secs);
            }
        }
        Ok(())
    }

    /// After the quiet period: no new occurrence since the run (same row, same occurrences,
    /// no reopened fault of the same identity) ⇒ the fault is resolved and the remediation
    /// `effective`; else `not_effective`.
    async fn recheck(&self, id: i64, before: &FaultRow) -> Result<(), StoreError> {
        let now = crate::now_ms();
        let quiet = if self
            .store
            .resolve_fault_if_quiet(before.id, before.occurrences, now)
            .await?
        {
            true
        } else {
            // Already resolved by someone (quiet unless it came back), or it occurred again.
            let current = self.store.get_fault(before.id).await?;
            current.is_some_and(|f| f.status == "resolved" && f.occurrences == before.occurrences)
                && !self.store.fingerprint_open(&before.fingerprint).await?
        };
        let (status, message) = if quiet {
            ("effective", "quiet after the run: fault resolved")
        } else {
            ("not_effective", "the fault occurred again after the run")
        };
        self.store
            .finish_remediation(id, status, None, message, now)
            .await
    }

    /// Unattended runs: for open faults whose rule has `auto = true`, when the global switch
    /// is on, propose and approve (as `auto`) once per fault.
    pub async fn auto_sweep(self: &Arc<Self>) -> Result<usize, StoreError> {
        if !self.settings.auto {
            return Ok(0);
        }
        let set = self.rules.current();
        let auto_classes: Vec<String> = set
            .rules
            .iter()
            .filter(|r| r.auto && r.script.is_some())
            .map(|r| r.class.clone())
            .collect();
        if auto_classes.is_empty() {
            return Ok(0);
        }
        let mut started = 0;
        for f in self.store.open_faults(20_000).await? {
            if f.source != "rule"
                || !auto_classes.contains(&f.fault_type)
                || !self.store.fault_remediations(f.id).await?.is_empty()
            {
                continue;
            }
            let Ok(p) = plan(&f, &set, &self.settings, &self.clusters) else {
                // Refusals are recorded by a proposal: do it once.
                let _ = self.propose(f.id, "auto", "auto").await;
                continue;
            };
            if !p.auto {
                continue;
            }
            match self.propose(f.id, "auto", "auto").await {
                Ok(row) => {
                    if self.approve(row.id, "auto").await.is_ok() {
                        started += 1;
                    }
                }
                Err(RemediateError::Store(e)) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSource;

    fn fault(host: &str, entity: &str) -> FaultRow {
        FaultRow {
            id: 9,
            fingerprint: "f".into(),
            fault_type: "datanode_lost".into(),
            severity: "critical".into(),
            status: "open".into(),
            source: "rule".into(),
            cluster: "prod".into(),
            host: host.into(),
            service: "namenode".into(),
            title: "t".into(),
            root_cause: "r".into(),
            remediation: "[]".into(),
            evidence: serde_json::json!({"rule_id": "datanode_lost", "entity": entity}).to_string(),
            occurrences: 1,
            first_seen: 0,
            last_seen: 0,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            created_at: 0,
            updated_at: 0,
            template_key: None,
            llm_status: None,
            llm_model: None,
            llm_confidence: None,
            llm_answer: None,
        }
    }

    fn cluster() -> Vec<ClusterSettings> {
        vec![ClusterSettings {
            name: "prod".into(),
            workers: vec!["10.0.0.7".into(), "dn2".into()],
            namenodes: vec!["http://nn1:9870".into()],
            ..Default::default()
        }]
    }

    #[test]
    fn the_datanode_from_the_entity_is_the_target_and_args_are_separate() {
        let set = crate::rules::load(&RuleSource::Embedded).unwrap();
        let p = plan(
            &fault("nn1", "10.0.0.7:9866"),
            &set,
            &RemediationSettings::default(),
            &cluster(),
        )
        .unwrap();
        assert_eq!(p.script, "restart-datanode.sh");
        assert_eq!(p.host, "10.0.0.7");
        assert_eq!(
            p.args,
            [
                "--host",
                "10.0.0.7",
                "--service",
                "namenode",
                "--cluster",
                "prod",
                "--fault-id",
                "9"
            ]
        );
    }

    #[test]
    fn an_llm_chosen_class_never_runs_unattended() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/rules/hdfs/datanode_lost.toml"
        ))
        .unwrap()
        .replace(
            "script = \"restart-datanode.sh\"",
            "script = \"restart-datanode.sh\"\nauto = true",
        );
        let set = RuleSet::compile(&[("hdfs/datanode_lost.toml".into(), text)]).unwrap();
        let s = RemediationSettings::default();
        assert!(
            plan(&fault("nn1", "10.0.0.7:9866"), &set, &s, &cluster())
                .unwrap()
                .auto
        );
        let mut llm = fault("nn1", "10.0.0.7:9866");
        llm.source = "llm".into();
        llm.evidence = serde_json::json!({"entity": "10.0.0.7:9866"}).to_string();
        let p = plan(&llm, &set, &s, &cluster()).unwrap();
        assert!(!p.auto, "approval only");
    }

    #[test]
    fn hosts_outside_the_configuration_or_with_metacharacters_are_refused() {
        let set = crate::rules::load(&RuleSource::Embedded).unwrap();
        let s = RemediationSettings::default();
        let e = plan(&fault("dn1;rm -rf /", "dn1;rm -rf /"), &set, &s, &cluster()).unwrap_err();
        assert!(
            matches!(&e, PlanError::Refused { reason, .. } if reason.contains("metacharacters")),
            "{e}"
        );
        let e = plan(&fault("dn9", "dn9:9866"), &set, &s, &cluster()).unwrap_err();
        assert!(
            matches!(&e, PlanError::Refused { reason, .. } if reason.contains("not a host of")),
            "{e}"
        );
        let e = plan(&fault("dn2", "dn2:9866"), &set, &s, &[]).unwrap_err();
        assert!(
            matches!(&e, PlanError::Refused { reason, .. } if reason.contains("not configured")),
            "{e}"
        );
        // An unknown DataNode never falls back to the NameNode that logged it.
        let e = plan(&fault("nn1", "10.9.9.9:9866"), &set, &s, &cluster()).unwrap_err();
        assert!(
            matches!(&e, PlanError::Refused { host, .. } if host == "10.9.9.9"),
            "{e}"
        );
        let none = RemediationSettings {
            allow: vec![],
            ..RemediationSettings::default()
        };
        assert!(matches!(
            plan(&fault("dn2", "dn2:9866"), &set, &none, &cluster()),
            Err(PlanError::NotAllowed(_))
        ));
    }
}
