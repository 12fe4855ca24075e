//! Predicates over a cluster's latest snapshot, as rules write them in `[[snapshot_cause]]`:
//!
//! - `datanode(<capture>).dead` | `.live` | `.known` — the NameNode's view of a DataNode
//!   (by host name, IP or `host:port`);
//! - `nodemanager(<capture>).lost` | `.unhealthy` | `.running` — the ResourceManager's;
//! - `port(<host capture>:<port capture>).open` | `.refused` | `.filtered` — the engine's own
//!   TCP probe of that port (`filtered`: timed out or no route);
//! - `<metric> <op> <integer>` with a metric of [`METRICS`] and `>`, `>=`, `<`, `<=`, `==`,
//!   `!=`; `safe_mode` alone;
//! - any of them negated with a leading `!`.
//!
//! A predicate is true, false, or unknown (no snapshot, the part was not read, the node or
//! port is not in it); a cause applies only when all its predicates are known to hold.

use crate::cluster::namenode::host_part;
use crate::cluster::snapshot::{ClusterSnapshot, PortOutcome};

/// The cluster-wide numbers a predicate may compare.
pub const METRICS: [&str; 8] = [
    "dead_datanodes",
    "live_datanodes",
    "stale_datanodes",
    "missing_blocks",
    "corrupt_blocks",
    "lost_nodemanagers",
    "unhealthy_nodemanagers",
    "active_nodemanagers",
];

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    DataNode {
        cap: String,
        prop: String,
    },
    NodeManager {
        cap: String,
        prop: String,
    },
    Port {
        host: String,
        port: String,
        prop: String,
    },
    Metric {
        name: String,
        op: String,
        value: i64,
    },
    SafeMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    text: String,
    negated: bool,
    kind: Kind,
}

impl Predicate {
    /// Parse one predicate; `captures` are the rule's capture names (the arguments must be
    /// among them).
    pub fn parse(text: &str, captures: &[String]) -> Result<Predicate, String> {
        let t = text.trim();
        let (negated, body) = match t.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, t),
        };
        let known_cap = |c: &str| -> Result<String, String> {
            if captures.iter().any(|k| k == c) {
                Ok(c.to_string())
            } else {
                Err(format!(
                    "`{c}` in `{t}` is not a named capture of the rule's signals"
                ))
            }
        };
        let kind = if let Some((call, prop)) = body.split_once(").") {
            let (func, arg) = call
                .split_once('(')
                .ok_or_else(|| format!("`{t}`: expected `name(arg).property`"))?;
            let prop = prop.trim().to_string();
            let props: &[&str] = match func.trim() {
                "datanode" => &["dead", "live", "known"],
                "nodemanager" => &["lost", "unhealthy", "running"],
                "port" => &["open", "refused", "filtered"],
                other => {
                    return Err(format!(
                        "`{t}`: unknown function `{other}` (datanode, nodemanager, port)"
                    ));
                }
            };
            if !props.contains(&prop.as_str()) {
                return Err(format!(
                    "`{t}`: `{prop}` is not one of {}",
                    props.join(", ")
                ));
            }
            match func.trim() {
                "datanode" => Kind::DataNode {
                    cap: known_cap(arg.trim())?,
                    prop,
                },
                "nodemanager" => Kind::NodeManager {
                    cap: known_cap(arg.trim())?,
                    prop,
                },
                _ => {
                    let (h, p) = arg
                        .split_once(':')
                        .ok_or_else(|| format!("`{t}`: port(<host capture>:<port capture>)"))?;
                    Kind::Port {
                        host: known_cap(h.trim())?,
                        port: known_cap(p.trim())?,
                        prop,
                    }
                }
            }
        } else if body == "safe_mode" {
            Kind::SafeMode
        } else {
            let mut parts = body.split_whitespace();
            let (Some(name), Some(op), Some(value), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("`{t}`: expected `<metric> <op> <integer>`"));
            };
            if !METRICS.contains(&name) {
                return Err(format!(
                    "`{t}`: unknown metric `{name}` ({})",
                    METRICS.join(", ")
                ));
            }
            if !matches!(op, ">" | ">=" | "<" | "<=" | "==" | "!=") {
                return Err(format!("`{t}`: unknown operator `{op}`"));
            }
            let value = value
                .parse()
                .map_err(|_| format!("`{t}`: `{value}` is not an integer"))?;
            Kind::Metric {
                name: name.into(),
                op: op.into(),
                value,
            }
        };
        Ok(Predicate {
            text: t.to_string(),
            negated,
            kind,
        })
    }

    /// True, false or unknown (`None`), with the snapshot value it rests on.
    pub fn eval(
        &self,
        snap: &ClusterSnapshot,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(bool, String)> {
        let (value, evidence) = self.eval_plain(snap, lookup)?;
        Some((value != self.negated, evidence))
    }

    fn eval_plain(
        &self,
        snap: &ClusterSnapshot,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(bool, String)> {
        match &self.kind {
            Kind::DataNode { cap, prop } => {
                let nn = snap.namenode.as_ref()?;
                let target = lookup(cap)?;
                match nn.datanode(&target) {
                    Some((d, live)) => {
                        let state = if live { "live" } else { "dead" };
                        let ev = format!(
                            "NameNode lists DataNode {} as {state} (last contact {} s ago)",
                            d.name,
                            d.last_contact_s.map_or("?".into(), |s| s.to_string())
                        );
                        let v = match prop.as_str() {
                            "dead" => !live,
                            "live" => live,
                            _ => true,
                        };
                        Some((v, ev))
                    }
                    // Not listed at all: neither dead nor live (not a DataNode), known false.
                    None => Some((
                        false,
                        format!("NameNode lists no DataNode {}", host_part(&target)),
                    )),
                }
            }
            Kind::NodeManager { cap, prop } => {
                let rm = snap.resourcemanager.as_ref()?;
                let target = lookup(cap)?;
                let n = rm.node_state(&target)?;
                let v = match prop.as_str() {
                    "lost" => n.state == "LOST",
                    "unhealthy" => n.state == "UNHEALTHY",
                    _ => n.state == "RUNNING",
                };
                Some((
                    v,
                    format!("ResourceManager lists NodeManager {} as {}", n.id, n.state),
                ))
            }
            Kind::Port { host, port, prop } => {
                let h = lookup(host)?;
                let p: u16 = lookup(port)?.parse().ok()?;
                let bare = host_part(&h).to_string();
                let probe = snap.ports.iter().find(|x| {
                    x.port == p
                        && (x.host.eq_ignore_ascii_case(&bare)
                            || same_datanode(snap, &x.host, &bare))
                })?;
                let (v, word) = match (&probe.outcome, prop.as_str()) {
                    (PortOutcome::Open, "open") => (true, "open"),
                    (PortOutcome::Refused, "refused") => (true, "refused"),
                    (PortOutcome::Timeout | PortOutcome::NoRoute, "filtered") => (true, "filtered"),
                    (PortOutcome::Error(_), _) => return None,
                    (o, _) => (
                        false,
                        match o {
                            PortOutcome::Open => "open",
                            PortOutcome::Refused => "refused",
                            _ => "filtered",
                        },
                    ),
                };
                Some((v, format!("engine's probe of {}:{p}: {word}", probe.host)))
            }
            Kind::Metric { name, op, value } => {
                let nn = snap.namenode.as_ref();
                let rm = snap.resourcemanager.as_ref();
                let actual = match name.as_str() {
                    "dead_datanodes" => nn?.dead_datanodes,
                    "live_datanodes" => nn?.live_datanodes,
                    "stale_datanodes" => nn?.stale_datanodes,
                    "missing_blocks" => nn?.missing_blocks,
                    "corrupt_blocks" => nn?.corrupt_blocks,
                    "lost_nodemanagers" => rm?.lost_nodes,
                    "unhealthy_nodemanagers" => rm?.unhealthy_nodes,
                    _ => rm?.active_nodes,
                }? as i64;
                let v = match op.as_str() {
                    ">" => actual > *value,
                    ">=" => actual >= *value,
                    "<" => actual < *value,
                    "<=" => actual <= *value,
                    "==" => actual == *value,
                    _ => actual != *value,
                };
                Some((v, format!("{name} = {actual}")))
            }
            Kind::SafeMode => {
                let on = snap.namenode.as_ref()?.safe_mode?;
                Some((
                    on,
                    format!("NameNode safe mode {}", if on { "ON" } else { "off" }),
                ))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Whether two names (a probe's host and a log's target) are the same DataNode by the
/// NameNode's list (a log may name an IP where the probe names the host).
fn same_datanode(snap: &ClusterSnapshot, a: &str, b: &str) -> bool {
    let Some(nn) = snap.namenode.as_ref() else {
        return false;
    };
    match (nn.datanode(a), nn.datanode(b)) {
        (Some((x, _)), Some((y, _))) => x.name == y.name,
        _ => false,
    }
}

/// All of `preds` known to hold: their evidence. `None` when one fails or is unknown.
pub fn all_hold(
    preds: &[Predicate],
    snap: &ClusterSnapshot,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<String>> {
    let mut evidence = Vec::new();
    for p in preds {
        match p.eval(snap, lookup)? {
            (true, ev) => evidence.push(ev),
            (false, _) => return None,
        }
    }
    Some(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::namenode::{DataNodeInfo, NameNodeStatus};
    use crate::cluster::snapshot::PortProbe;

    fn snap() -> ClusterSnapshot {
        let dn = |name: &str, ip: &str| DataNodeInfo {
            name: name.into(),
            host: host_part(name).into(),
            xfer_addr: Some(format!("{ip}:9866")),
            last_contact_s: Some(742),
            ..Default::default()
        };
        ClusterSnapshot {
            namenode: Some(NameNodeStatus {
                live: vec![dn("w1:9866", "10.0.0.11")],
                dead: vec![dn("w2:9866", "10.0.0.12")],
                dead_datanodes: Some(1),
                safe_mode: Some(false),
                ..Default::default()
            }),
            ports: vec![PortProbe {
                host: "w1".into(),
                port: 9866,
                service: "dn".into(),
                outcome: PortOutcome::Open,
                elapsed_ms: 1,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn parse_and_evaluate() {
        let caps = vec!["thost".to_string(), "tport".to_string()];
        let p = |t: &str| Predicate::parse(t, &caps).unwrap();
        let s = snap();
        let look = |ip: &'static str| {
            move |k: &str| match k {
                "thost" => Some(ip.to_string()),
                "tport" => Some("9866".to_string()),
                _ => None,
            }
        };
        // By IP, as logs write it.
        let (v, ev) = p("datanode(thost).dead")
            .eval(&s, &look("10.0.0.12"))
            .unwrap();
        assert!(v && ev.contains("w2:9866 as dead"), "{ev}");
        assert!(
            !p("!datanode(thost).dead")
                .eval(&s, &look("10.0.0.12"))
                .unwrap()
                .0
        );
        assert!(p("datanode(thost).live").eval(&s, &look("w1")).unwrap().0);
        // The probe names w1, the log the IP: the same DataNode.
        assert!(
            p("port(thost:tport).open")
                .eval(&s, &look("10.0.0.11"))
                .unwrap()
                .0
        );
        assert_eq!(
            p("port(thost:tport).open").eval(&s, &look("10.0.0.12")),
            None,
            "not probed"
        );
        assert!(p("dead_datanodes > 0").eval(&s, &look("x")).unwrap().0);
        assert!(!p("safe_mode").eval(&s, &look("x")).unwrap().0);
        assert_eq!(
            p("lost_nodemanagers > 0").eval(&s, &look("x")),
            None,
            "RM not read"
        );
        let held = all_hold(
            &[p("datanode(thost).live"), p("port(thost:tport).open")],
            &s,
            &look("w1"),
        );
        assert_eq!(held.unwrap().len(), 2);
    }

    #[test]
    fn bad_predicates_are_named() {
        let caps = vec!["thost".to_string()];
        let e = |t: &str| Predicate::parse(t, &caps).unwrap_err();
        assert!(e("datanode(nope).dead").contains("not a named capture"));
        assert!(e("datanode(thost).gone").contains("not one of"));
        assert!(e("rack(thost).dead").contains("unknown function"));
        assert!(e("dead_nodes > 0").contains("unknown metric"));
        assert!(e("dead_datanodes >> 0").contains("unknown operator"));
        assert!(e("port(thost).open").contains("port(<host capture>:<port capture>)"));
    }
}
