//! The ResourceManager's REST answers: `/ws/v1/cluster/info`, `/ws/v1/cluster/metrics`,
//! `/ws/v1/cluster/nodes` (all states; JAXB writes an empty list as `null`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ReadError, as_str, as_u64, tolerant_json};

/// The REST paths polled, in order. The node list asks for every state by name (`states`),
/// so LOST and UNHEALTHY nodes are listed whatever the RM's default; Hadoop 2 before 2.8
/// knows no DECOMMISSIONING / SHUTDOWN and answers an error for a state it does not know.
pub fn paths(hadoop_version: u8) -> [String; 3] {
    let states = if hadoop_version >= 3 {
        "NEW,RUNNING,UNHEALTHY,DECOMMISSIONED,LOST,REBOOTED,DECOMMISSIONING,SHUTDOWN"
    } else {
        "NEW,RUNNING,UNHEALTHY,DECOMMISSIONED,LOST,REBOOTED"
    };
    [
        "/ws/v1/cluster/info".into(),
        "/ws/v1/cluster/metrics".into(),
        format!("/ws/v1/cluster/nodes?states={states}"),
    ]
}

/// A NodeManager as the RM lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct NodeManagerInfo {
    /// `host:nmRpcPort` (the port is ephemeral unless pinned: a restarted NM is a new id).
    pub id: String,
    pub host: String,
    /// `NEW`, `RUNNING`, `UNHEALTHY`, `DECOMMISSIONED`, `LOST`, `REBOOTED`, `DECOMMISSIONING`,
    /// `SHUTDOWN`.
    pub state: String,
    pub health_report: String,
    pub last_health_update_ms: Option<u64>,
}

/// What the ResourceManager reports; a field is `None` when no answer carried it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(
    description = "What the ResourceManager reports; a field is `null` when no answer carried it."
)]
pub struct RmStatus {
    /// `ACTIVE`, `STANDBY`, ... (`clusterInfo.haState`).
    pub ha_state: Option<String>,
    /// `STARTED`, ... (`clusterInfo.state`).
    pub state: Option<String>,
    pub version: Option<String>,
    pub active_nodes: Option<u64>,
    pub lost_nodes: Option<u64>,
    pub unhealthy_nodes: Option<u64>,
    pub decommissioned_nodes: Option<u64>,
    pub decommissioning_nodes: Option<u64>,
    pub total_nodes: Option<u64>,
    pub apps_pending: Option<u64>,
    pub apps_failed: Option<u64>,
    pub apps_running: Option<u64>,
    pub total_mb: Option<u64>,
    pub available_mb: Option<u64>,
    pub nodes: Vec<NodeManagerInfo>,
}

impl RmStatus {
    /// Read one answer of [`paths`], whichever it is (recognised by its top-level key).
    pub fn absorb(&mut self, body: &str) -> Result<(), ReadError> {
        let v = tolerant_json(body)?;
        if let Some(info) = v.get("clusterInfo") {
            self.ha_state = as_str(info.get("haState")).map(str::to_string);
            self.state = as_str(info.get("state")).map(str::to_string);
            self.version = as_str(info.get("hadoopVersion")).map(str::to_string);
            return Ok(());
        }
        if let Some(m) = v.get("clusterMetrics") {
            let n = |k: &str| as_u64(m.get(k));
            self.active_nodes = n("activeNodes");
            self.lost_nodes = n("lostNodes");
            self.unhealthy_nodes = n("unhealthyNodes");
            self.decommissioned_nodes = n("decommissionedNodes");
            self.decommissioning_nodes = n("decommissioningNodes");
            self.total_nodes = n("totalNodes");
            self.apps_pending = n("appsPending");
            self.apps_failed = n("appsFailed");
            self.apps_running = n("appsRunning");
            self.total_mb = n("totalMB");
            self.available_mb = n("availableMB");
            return Ok(());
        }
        if let Some(nodes) = v.get("nodes") {
            let list = match nodes {
                Value::Null => Vec::new(),
                Value::Object(o) => match o.get("node") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a.clone(),
                    // XML-to-JSON style single element.
                    Some(one @ Value::Object(_)) => vec![one.clone()],
                    Some(_) => {
                        return Err(ReadError::Shape("`nodes.node` is not a list".into()));
                    }
                },
                _ => return Err(ReadError::Shape("`nodes` is not an object".into())),
            };
            self.nodes = list
                .iter()
                .map(|n| {
                    let id = as_str(n.get("id")).unwrap_or("").to_string();
                    let host = as_str(n.get("nodeHostName"))
                        .map(str::to_string)
                        .unwrap_or_else(|| super::namenode::host_part(&id).to_string());
                    NodeManagerInfo {
                        id,
                        host,
                        state: as_str(n.get("state")).unwrap_or("").to_ascii_uppercase(),
                        health_report: as_str(n.get("healthReport")).unwrap_or("").to_string(),
                        last_health_update_ms: as_u64(n.get("lastHealthUpdate")),
                    }
                })
                .collect();
            self.nodes
                .sort_by(|a, b| a.host.cmp(&b.host).then(a.id.cmp(&b.id)));
            return Ok(());
        }
        if let Some(e) = v.get("RemoteException") {
            let msg = as_str(e.get("message")).unwrap_or("no message");
            return Err(ReadError::Shape(format!("the RM answered an error: {msg}")));
        }
        Err(ReadError::Shape(
            "neither clusterInfo, clusterMetrics nor nodes: not a ResourceManager REST answer"
                .into(),
        ))
    }

    /// The state of the NodeManager on `host`: a host keeps old ids of restarted NodeManagers
    /// (LOST) beside its current one, so an active entry wins.
    pub fn node_state(&self, host: &str) -> Option<&NodeManagerInfo> {
        let bare = super::namenode::host_part(host);
        let mut best: Option<&NodeManagerInfo> = None;
        for n in self
            .nodes
            .iter()
            .filter(|n| n.host.eq_ignore_ascii_case(bare))
        {
            let rank = |n: &NodeManagerInfo| match n.state.as_str() {
                "RUNNING" => 3,
                "NEW" | "DECOMMISSIONING" => 2,
                "UNHEALTHY" => 1,
                _ => 0,
            };
            if best.is_none_or(|b| rank(n) > rank(b)) {
                best = Some(n);
            }
        }
        best
    }

    /// Hosts whose NodeManager is in `state` (after [`RmStatus::node_state`]'s preference).
    pub fn hosts_in(&self, state: &str) -> Vec<&NodeManagerInfo> {
        let mut hosts: Vec<&str> = self.nodes.iter().map(|n| n.host.as_str()).collect();
        hosts.dedup();
        hosts
            .into_iter()
            .filter_map(|h| self.node_state(h))
            .filter(|n| n.state == state)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testdata::sample;

    #[test]
    fn degraded_samples() {
        let (Some(metrics), Some(nodes), Some(info)) = (
            sample("rm-cluster-metrics-degraded.composed.json"),
            sample("rm-nodes-degraded.composed.json"),
            sample("rm-cluster-info.doc.json"),
        ) else {
            return;
        };
        let mut rm = RmStatus::default();
        rm.absorb(&info).unwrap();
        rm.absorb(&metrics).unwrap();
        rm.absorb(&nodes).unwrap();
        assert!(rm.ha_state.is_some());
        assert_eq!(
            (rm.active_nodes, rm.lost_nodes, rm.unhealthy_nodes),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!((rm.apps_pending, rm.apps_failed), (Some(1), Some(2)));
        assert_eq!(rm.nodes.len(), 4);
        let lost = rm.hosts_in("LOST");
        assert_eq!(lost.len(), 1);
        let unhealthy = rm.hosts_in("UNHEALTHY");
        assert_eq!(unhealthy.len(), 1);
        assert!(
            unhealthy[0]
                .health_report
                .contains("local-dirs usable space")
        );
    }

    #[test]
    fn doc_samples_and_empty_lists() {
        if let Some(m) = sample("rm-cluster-metrics.doc.json") {
            let mut rm = RmStatus::default();
            rm.absorb(&m).unwrap();
            assert!(rm.total_nodes.is_some());
        }
        let mut rm = RmStatus::default();
        rm.absorb(r#"{"nodes":null}"#).unwrap();
        rm.absorb(r#"{"nodes":{"node":null}}"#).unwrap();
        assert!(rm.nodes.is_empty());
    }

    #[test]
    fn restarted_nodemanager_prefers_the_running_entry() {
        let mut rm = RmStatus::default();
        rm.absorb(
            r#"{"nodes":{"node":[
              {"id":"worker3:45219","nodeHostName":"worker3","state":"LOST","healthReport":""},
              {"id":"worker3:38811","nodeHostName":"worker3","state":"RUNNING","healthReport":""},
              {"id":"worker4:40000","nodeHostName":"worker4","state":"lost","healthReport":""}]}}"#,
        )
        .unwrap();
        assert_eq!(rm.node_state("worker3").unwrap().state, "RUNNING");
        assert_eq!(rm.node_state("worker4:40000").unwrap().state, "LOST");
        let lost: Vec<&str> = rm
            .hosts_in("LOST")
            .iter()
            .map(|n| n.host.as_str())
            .collect();
        assert_eq!(lost, ["worker4"]);
    }

    #[test]
    fn errors() {
        let mut rm = RmStatus::default();
        let e = rm
            .absorb(r#"{"RemoteException":{"exception":"BadRequestException","message":"Invalid node state"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("Invalid node state"));
        assert!(rm.absorb(r#"{"something":1}"#).is_err());
        assert!(rm.absorb(r#"{"nodes":{"node":5}}"#).is_err());
    }
}
