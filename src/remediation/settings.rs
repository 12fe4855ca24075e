//! `[remediation]`: where approved scripts live, which may run, and the global switch for
//! unattended runs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationSettings {
    /// Directory of remediation scripts (`deploy/scripts/` ships examples).
    pub scripts_dir: String,
    /// The only file names that may run (a rule naming another script cannot run it).
    pub allow: Vec<String>,
    /// Global switch: rules with `auto = true` run their script without approval only when
    /// this is on too.
    pub auto: bool,
    /// A run taking longer is killed and recorded as `timeout`.
    pub timeout_secs: u64,
    /// Output kept per run in exec_logs (stdout and stderr each).
    pub output_max_bytes: usize,
    /// After a successful run the fault must stay quiet (no new occurrence) this long to be
    /// resolved; else the remediation is marked `not_effective`.
    pub recheck_quiet_secs: u64,
}

impl Default for RemediationSettings {
    fn default() -> Self {
        RemediationSettings {
            scripts_dir: "deploy/scripts".into(),
            allow: vec![
                "restart-datanode.sh".into(),
                "leave-safemode.sh".into(),
                "clear-flume-backlog.sh".into(),
                "fix-ssh-permissions.sh".into(),
            ],
            auto: false,
            timeout_secs: 120,
            output_max_bytes: 16 * 1024,
            recheck_quiet_secs: 300,
        }
    }
}

impl RemediationSettings {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |k: &str, r: &str| Err((format!("remediation.{k}"), r.to_string()));
        if self.timeout_secs == 0 {
            return e("timeout_secs", "must be at least 1");
        }
        if self.recheck_quiet_secs == 0 {
            return e("recheck_quiet_secs", "must be at least 1");
        }
        for a in &self.allow {
            if a.is_empty()
                || a.starts_with('.')
                || !a
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return e("allow", "entries must be plain file names (no '/')");
            }
        }
        Ok(())
    }
}
