//! The checks' I/O: fetch the NameNode / ResourceManager / Flume answers, probe TCP ports,
//! run the SSH batch-mode check and operator scripts. Each run, good or bad, becomes an
//! [`ExecLog`]; reading the answers is left to the pure readers of this module's siblings.
//! No actix here: the scheduler actor calls these.

use std::path::Path;
use std::time::{Duration, Instant};

use super::flume::FlumeAgentStatus;
use super::namenode::{self, NameNodeStatus};
use super::resourcemanager::{self, RmStatus};
use super::settings::{ClusterSettings, ProbeTarget};
use super::snapshot::{PortOutcome, PortProbe, SshProbe};
use crate::storage::ExecLog;

/// What every check needs: an HTTP client, the per-run timeout, the output kept.
#[derive(Clone, Debug)]
pub struct CheckContext {
    pub http: reqwest::Client,
    pub timeout: Duration,
    pub output_max_bytes: usize,
    /// `schedule` or `api`.
    pub trigger: String,
}

impl CheckContext {
    pub fn new(timeout: Duration, output_max_bytes: usize, trigger: &str) -> CheckContext {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        CheckContext {
            http,
            timeout,
            output_max_bytes,
            trigger: trigger.to_string(),
        }
    }

    fn exec(&self, name: &str, cluster: &str, command: String, target: String) -> ExecLog {
        ExecLog {
            kind: "health_check".into(),
            name: name.into(),
            command,
            cluster: cluster.into(),
            host: "engine".into(),
            target,
            trigger_source: self.trigger.clone(),
            started_at: crate::now_ms(),
            status: "failed".into(),
            ..Default::default()
        }
    }

    fn cut(&self, s: &str) -> String {
        let cut = crate::storage::truncate_str(s, self.output_max_bytes);
        if cut.len() < s.len() {
            format!("{cut}\n[... {} more bytes]", s.len() - cut.len())
        } else {
            cut.to_string()
        }
    }
}

fn finish(e: &mut ExecLog, started: Instant, status: &str) {
    e.finished_at = Some(crate::now_ms());
    e.duration_ms = Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
    e.status = status.into();
}

/// GET `url`; the body when the answer is 2xx, else a message. The run is logged in `log`.
async fn fetch(ctx: &CheckContext, url: &str, log: &mut ExecLog) -> Result<String, String> {
    let started = Instant::now();
    let result = ctx
        .http
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            let (status, msg) = if e.is_timeout() {
                ("timeout", format!("no answer within {:?}", ctx.timeout))
            } else if e.is_connect() {
                ("failed", format!("cannot connect: {}", error_chain(&e)))
            } else {
                ("failed", error_chain(&e))
            };
            log.stderr = msg.clone();
            finish(log, started, status);
            return Err(msg);
        }
    };
    let code = resp.status();
    log.http_status = Some(i32::from(code.as_u16()));
    let body = match resp.text().await {
        Ok(b) => b,
        Err(e) => {
            let (status, msg) = if e.is_timeout() {
                (
                    "timeout",
                    format!("the answer did not finish within {:?}", ctx.timeout),
                )
            } else {
                (
                    "failed",
                    format!("reading the answer failed: {}", error_chain(&e)),
                )
            };
            log.stderr = msg.clone();
            finish(log, started, status);
            return Err(msg);
        }
    };
    log.stdout = ctx.cut(&body);
    if !code.is_success() {
        let msg = format!("HTTP {code} from {url}");
        log.stderr = msg.clone();
        finish(log, started, "failed");
        return Err(msg);
    }
    finish(log, started, "success");
    Ok(body)
}

/// An error with its sources (`reqwest` hides the cause, e.g. "connection refused", in them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn target_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// Read a status from each of `paths` under `base`; a failed fetch or an unreadable answer
/// fails the whole poll (a partial status would look healthier than it is).
async fn poll<T: Default>(
    ctx: &CheckContext,
    name: &str,
    cluster: &str,
    base: &str,
    paths: &[String],
    absorb: impl Fn(&mut T, &str) -> Result<(), super::ReadError>,
    logs: &mut Vec<ExecLog>,
) -> Result<T, String> {
    let mut status = T::default();
    for path in paths {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut log = ctx.exec(name, cluster, format!("GET {url}"), target_of(base));
        let result = fetch(ctx, &url, &mut log).await;
        let outcome =
            result.and_then(|body| absorb(&mut status, &body).map_err(|e| format!("{url}: {e}")));
        if let Err(msg) = &outcome {
            if log.status == "success" {
                log.status = "failed".into();
            }
            log.stderr = msg.clone();
        }
        logs.push(log);
        outcome?;
    }
    Ok(status)
}

/// Poll `bases` in order (the HA pair or set of one daemon) and keep the first that reports
/// itself active (`ha` gives its HA state; a non-HA daemon reports active or nothing).
/// Returns the address that answered and its status.
#[allow(clippy::too_many_arguments)] // private; the arguments name one daemon kind
async fn poll_active<T: Default>(
    ctx: &CheckContext,
    name: &str,
    what: &str,
    cluster: &ClusterSettings,
    bases: &[String],
    paths: &[String],
    absorb: impl Fn(&mut T, &str) -> Result<(), super::ReadError>,
    ha: impl Fn(&T) -> Option<&str>,
    logs: &mut Vec<ExecLog>,
) -> Result<(String, T), String> {
    let mut errors = Vec::new();
    for base in bases {
        match poll(ctx, name, &cluster.name, base, paths, &absorb, logs).await {
            Ok(s) if ha(&s).is_none_or(|h| h.eq_ignore_ascii_case("active")) => {
                return Ok((base.clone(), s));
            }
            Ok(s) => errors.push(format!("{base}: {}", ha(&s).unwrap_or("not active"))),
            Err(e) => errors.push(e),
        }
    }
    Err(if bases.is_empty() {
        format!("no {what} configured")
    } else {
        format!("no active {what} answered: {}", errors.join("; "))
    })
}

/// Poll the NameNodes and keep the first active one: its address and status.
pub async fn poll_namenode(
    ctx: &CheckContext,
    cluster: &ClusterSettings,
    logs: &mut Vec<ExecLog>,
) -> Result<(String, NameNodeStatus), String> {
    let paths: Vec<String> = namenode::BEANS
        .iter()
        .map(|b| format!("/jmx?qry={b}"))
        .collect();
    poll_active(
        ctx,
        "namenode",
        "NameNode",
        cluster,
        &cluster.namenodes,
        &paths,
        NameNodeStatus::absorb,
        |nn: &NameNodeStatus| nn.ha_state.as_deref(),
        logs,
    )
    .await
}

/// Poll the ResourceManagers and keep the first active one.
pub async fn poll_resourcemanager(
    ctx: &CheckContext,
    cluster: &ClusterSettings,
    logs: &mut Vec<ExecLog>,
) -> Result<RmStatus, String> {
    let paths = resourcemanager::paths(cluster.hadoop_version);
    poll_active(
        ctx,
        "resourcemanager",
        "ResourceManager",
        cluster,
        &cluster.resourcemanagers,
        &paths,
        RmStatus::absorb,
        |rm: &RmStatus| rm.ha_state.as_deref(),
        logs,
    )
    .await
    .map(|(_, rm)| rm)
}

/// Poll one Flume agent's JSON monitoring.
pub async fn poll_flume(
    ctx: &CheckContext,
    cluster: &str,
    agent: &str,
    url: &str,
    logs: &mut Vec<ExecLog>,
) -> Result<FlumeAgentStatus, String> {
    let mut log = ctx.exec("flume", cluster, format!("GET {url}"), agent.to_string());
    let result = fetch(ctx, url, &mut log)
        .await
        .and_then(|body| FlumeAgentStatus::parse(agent, &body).map_err(|e| format!("{url}: {e}")));
    if let Err(msg) = &result {
        if log.status == "success" {
            log.status = "failed".into();
        }
        log.stderr = msg.clone();
    }
    logs.push(log);
    result
}

/// Try a TCP connect from the engine and say how it ended.
pub async fn probe_port(t: &ProbeTarget, timeout: Duration) -> PortProbe {
    let started = Instant::now();
    let addr = format!("{}:{}", t.host, t.port);
    let outcome =
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str())).await {
            Err(_) => PortOutcome::Timeout,
            Ok(Ok(_)) => PortOutcome::Open,
            Ok(Err(e)) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => PortOutcome::Refused,
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    PortOutcome::NoRoute
                }
                std::io::ErrorKind::TimedOut => PortOutcome::Timeout,
                _ => PortOutcome::Error(e.to_string()),
            },
        };
    PortProbe {
        host: t.host.clone(),
        port: t.port,
        service: t.service.clone(),
        outcome,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Probe every port (concurrently) and log the run as one `exec_logs` row per port.
pub async fn probe_ports(
    ctx: &CheckContext,
    cluster: &ClusterSettings,
    logs: &mut Vec<ExecLog>,
) -> Vec<PortProbe> {
    let targets = cluster.probe_targets();
    let probes =
        futures_util::future::join_all(targets.iter().map(|t| probe_port(t, ctx.timeout))).await;
    for p in &probes {
        let mut log = ctx.exec(
            "ports",
            &cluster.name,
            format!("tcp connect {}:{}", p.host, p.port),
            format!("{}:{}", p.host, p.port),
        );
        log.finished_at = Some(crate::now_ms());
        log.duration_ms = Some(i64::try_from(p.elapsed_ms).unwrap_or(i64::MAX));
        log.status = match p.outcome {
            PortOutcome::Open => "success",
            PortOutcome::Timeout => "timeout",
            _ => "failed",
        }
        .into();
        log.stdout = serde_json::to_string(&p.outcome).unwrap_or_default();
        logs.push(log);
    }
    probes
}

/// The SSH batch-mode check's command line, built from config only (never from log text).
pub fn ssh_command(cluster: &ClusterSettings, host: &str, timeout: Duration) -> Vec<String> {
    let mut args = vec![
        "-o".to_string(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("ConnectTimeout={}", timeout.as_secs().clamp(1, 60)),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-p".into(),
        cluster.ssh_port.to_string(),
    ];
    if !cluster.ssh_known_hosts.is_empty() {
        args.push("-o".into());
        args.push(format!("UserKnownHostsFile={}", cluster.ssh_known_hosts));
    }
    if !cluster.ssh_key.is_empty() {
        // Only the configured key: not whatever else the engine's user has in ~/.ssh.
        args.push("-o".into());
        args.push("IdentitiesOnly=yes".into());
        args.push("-i".into());
        args.push(cluster.ssh_key.clone());
    }
    // `--` ends ssh's options: the destination can never be read as one.
    args.push("--".into());
    args.push(format!("{}@{host}", cluster.ssh_user));
    args.push("true".into());
    args
}

/// Run a program with a timeout (killed when it runs over); its log row.
/// The engine's secrets in its environment (`FAULTLINE_ADMIN_TOKEN`, the database URL, and
/// any `FAULTLINE_*` variable ending in `_TOKEN`, `_SECRET`, `_API_KEY` or `_PASSWORD`, which
/// covers the default LLM key and JWT secret variables) are not passed to checks and scripts,
/// whose output lands in `exec_logs` that `read` tokens can see. Settings scripts use
/// (`FAULTLINE_SSH_USER`, `FAULTLINE_SSH_KEY`, ...) are passed.
fn secret_env_names(names: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let withheld = WITHHELD.lock().unwrap_or_else(|p| p.into_inner());
    names
        .filter(|n| {
            n.to_str().is_some_and(|n| {
                withheld.contains(n)
                    || n.starts_with("FAULTLINE_")
                        && (matches!(n, "FAULTLINE_DATABASE_URL" | "FAULTLINE_DATABASE__URL")
                            || ["_TOKEN", "_SECRET", "_API_KEY", "_PASSWORD"]
                                .iter()
                                .any(|s| n.ends_with(s)))
            })
        })
        .collect()
}

/// Variables the configuration names as holding secrets (`llm.api_key_env`,
/// `auth.jwt.secret_env`), whatever their names. The environment is the process's, and so
/// is this list.
static WITHHELD: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Never pass these variables to checks and scripts (see [`run_program`]).
pub fn withhold_env(names: impl IntoIterator<Item = String>) {
    let mut withheld = WITHHELD.lock().unwrap_or_else(|p| p.into_inner());
    withheld.extend(names.into_iter().filter(|n| !n.trim().is_empty()));
}

pub async fn run_program(
    ctx: &CheckContext,
    name: &str,
    kind: &str,
    cluster: &str,
    program: &Path,
    args: &[String],
    target: &str,
) -> ExecLog {
    let mut log = ctx.exec(
        name,
        cluster,
        program.display().to_string(),
        target.to_string(),
    );
    log.kind = kind.into();
    log.args = args.to_vec();
    let started = Instant::now();
    // Its own process group, so a timeout stops what it started too (an ssh, a sleep).
    let mut command = tokio::process::Command::new(program);
    for name in secret_env_names(std::env::vars_os().map(|(k, _)| k)) {
        command.env_remove(name);
    }
    let child = command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            log.stderr = format!("cannot start {}: {e}", program.display());
            finish(&mut log, started, "failed");
            return log;
        }
    };
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    match tokio::time::timeout(ctx.timeout, child.wait_with_output()).await {
        Err(_) => {
            if let Some(pgid) = pgid {
                // SAFETY: kill(2) on the child's own process group; no memory is involved.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            log.stderr = format!("stopped after {:?} (timeout)", ctx.timeout);
            finish(&mut log, started, "timeout");
        }
        Ok(Err(e)) => {
            log.stderr = format!("waiting for {} failed: {e}", program.display());
            finish(&mut log, started, "failed");
        }
        Ok(Ok(out)) => {
            log.exit_code = out.status.code();
            log.stdout = ctx.cut(&String::from_utf8_lossy(&out.stdout));
            log.stderr = ctx.cut(&String::from_utf8_lossy(&out.stderr));
            let status = if out.status.success() {
                "success"
            } else {
                "failed"
            };
            finish(&mut log, started, status);
        }
    }
    log
}

/// SSH in batch mode to every worker.
pub async fn ssh_checks(
    ctx: &CheckContext,
    cluster: &ClusterSettings,
    ssh_program: &Path,
    logs: &mut Vec<ExecLog>,
) -> Vec<SshProbe> {
    if cluster.ssh_user.is_empty() {
        return Vec::new();
    }
    let runs = futures_util::future::join_all(cluster.ssh_hosts().into_iter().map(|host| {
        let args = ssh_command(cluster, &host, ctx.timeout);
        async move {
            let log = run_program(
                ctx,
                "ssh",
                "health_check",
                &cluster.name,
                ssh_program,
                &args,
                &host,
            )
            .await;
            (host, log)
        }
    }))
    .await;
    let mut probes = Vec::new();
    for (host, log) in runs {
        probes.push(SshProbe {
            host,
            user: cluster.ssh_user.clone(),
            ok: log.status == "success",
            exit_code: log.exit_code,
            output: if log.stderr.is_empty() {
                log.stdout.clone()
            } else {
                log.stderr.clone()
            },
        });
        logs.push(log);
    }
    probes
}

/// Run the allow-listed scripts of `dir`; a listed name that is not a file there fails.
pub async fn run_scripts(
    ctx: &CheckContext,
    cluster: &str,
    dir: &Path,
    allow: &[String],
) -> Vec<ExecLog> {
    let mut logs = Vec::new();
    for name in allow {
        let path = dir.join(name);
        logs.push(run_program(ctx, name, "script", cluster, &path, &[], "engine").await);
    }
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CheckContext {
        CheckContext::new(Duration::from_millis(500), 1024, "api")
    }

    #[tokio::test]
    async fn allow_listed_scripts_run_from_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt as _;
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("check_nn_dirs.sh", "#!/bin/sh\necho dirs ok\n");
        write("not_listed.sh", "#!/bin/sh\necho never\n");
        let allow = vec!["check_nn_dirs.sh".to_string(), "gone.sh".to_string()];
        let logs = run_scripts(&ctx(), "c", dir.path(), &allow).await;
        assert_eq!(logs.len(), 2, "only the listed scripts");
        assert_eq!(
            (logs[0].kind.as_str(), logs[0].name.as_str()),
            ("script", "check_nn_dirs.sh")
        );
        assert_eq!(
            (logs[0].status.as_str(), logs[0].stdout.as_str()),
            ("success", "dirs ok\n")
        );
        assert_eq!(logs[1].status, "failed");
        assert!(
            logs[1].stderr.contains("cannot start"),
            "{}",
            logs[1].stderr
        );
    }

    #[test]
    fn ssh_command_comes_from_config_only() {
        let c = ClusterSettings {
            ssh_user: "hadoop".into(),
            ssh_key: "/etc/faultline/id_ed25519".into(),
            ssh_port: 2222,
            ..Default::default()
        };
        let args = ssh_command(&c, "worker3", Duration::from_secs(5));
        assert_eq!(
            args.join(" "),
            "-o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=yes -p 2222 \
             -o IdentitiesOnly=yes -i /etc/faultline/id_ed25519 -- hadoop@worker3 true"
        );
    }

    #[tokio::test]
    async fn ports_open_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = |port| ProbeTarget {
            host: "127.0.0.1".into(),
            port,
            service: "x".into(),
        };
        let timeout = Duration::from_millis(500);
        assert_eq!(
            probe_port(&t(open), timeout).await.outcome,
            PortOutcome::Open
        );
        assert_eq!(
            probe_port(&t(closed), timeout).await.outcome,
            PortOutcome::Refused
        );
        let bad = ProbeTarget {
            host: "no-such-host.invalid".into(),
            port: 1,
            service: "x".into(),
        };
        assert!(matches!(
            probe_port(&bad, timeout).await.outcome,
            PortOutcome::Error(_)
        ));
    }

    #[test]
    fn the_engines_variables_are_not_inherited() {
        let names = [
            "PATH",
            "FAULTLINE_ADMIN_TOKEN",
            "FAULTLINE_SSH_KEY",
            "FAULTLINE_LLM_API_KEY",
            "FAULTLINE_JWT_SECRET",
            "FAULTLINE_DATABASE_URL",
            "FAULTLINE_SSH_USER",
        ]
        .map(std::ffi::OsString::from);
        assert_eq!(
            secret_env_names(names.into_iter()),
            [
                "FAULTLINE_ADMIN_TOKEN",
                "FAULTLINE_LLM_API_KEY",
                "FAULTLINE_JWT_SECRET",
                "FAULTLINE_DATABASE_URL"
            ]
            .map(std::ffi::OsString::from)
        );
        withhold_env(["OPENAI_API_KEY_FOR_TEST".to_string(), String::new()]);
        let names = ["OPENAI_API_KEY_FOR_TEST", "HOME"].map(std::ffi::OsString::from);
        assert_eq!(
            secret_env_names(names.into_iter()),
            ["OPENAI_API_KEY_FOR_TEST"].map(std::ffi::OsString::from)
        );
    }

    #[tokio::test]
    async fn programs_succeed_fail_and_time_out() {
        let c = ctx();
        let ok = run_program(
            &c,
            "t",
            "script",
            "c",
            Path::new("/bin/sh"),
            &["-c".into(), "echo hi; echo warn >&2".into()],
            "engine",
        )
        .await;
        assert_eq!((ok.status.as_str(), ok.exit_code), ("success", Some(0)));
        assert_eq!((ok.stdout.as_str(), ok.stderr.as_str()), ("hi\n", "warn\n"));
        let failed = run_program(
            &c,
            "t",
            "script",
            "c",
            Path::new("/bin/sh"),
            &["-c".into(), "exit 3".into()],
            "engine",
        )
        .await;
        assert_eq!(
            (failed.status.as_str(), failed.exit_code),
            ("failed", Some(3))
        );
        let slow = run_program(
            &c,
            "t",
            "script",
            "c",
            Path::new("/bin/sh"),
            &["-c".into(), "sleep 5".into()],
            "engine",
        )
        .await;
        assert_eq!(slow.status, "timeout");
        assert!(slow.duration_ms.unwrap() < 4000, "killed at the timeout");
        let missing = run_program(
            &c,
            "t",
            "script",
            "c",
            Path::new("/nonexistent/x.sh"),
            &[],
            "engine",
        )
        .await;
        assert_eq!(missing.status, "failed");
        assert!(missing.stderr.contains("cannot start"));
        let big = run_program(
            &c,
            "t",
            "script",
            "c",
            Path::new("/bin/sh"),
            &["-c".into(), "head -c 5000 /dev/zero | tr '\\0' x".into()],
            "engine",
        )
        .await;
        assert!(
            big.stdout.ends_with("[... 3976 more bytes]"),
            "{}",
            &big.stdout[1000..]
        );
    }
}
