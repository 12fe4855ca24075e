//! The NameNode's `/jmx` beans (Hadoop 2 and 3 names), read into one status.
//! Polled one bean per request (`/jmx?qry=<bean>`): small answers, and a `NaN` in one bean
//! cannot spoil the others.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ReadError, as_str, as_u64, tolerant_json};

/// The beans polled, in order.
pub const BEANS: [&str; 4] = [
    "Hadoop:service=NameNode,name=NameNodeStatus",
    "Hadoop:service=NameNode,name=NameNodeInfo",
    "Hadoop:service=NameNode,name=FSNamesystemState",
    "Hadoop:service=NameNode,name=FSNamesystem",
];

/// A DataNode as the NameNode lists it (`LiveNodes` / `DeadNodes` of `NameNodeInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct DataNodeInfo {
    /// The key the NameNode uses: `<hostname>:<xferPort>`.
    pub name: String,
    pub host: String,
    /// `ip:port` of the data transfer address, when reported.
    pub xfer_addr: Option<String>,
    /// Seconds since the last heartbeat.
    pub last_contact_s: Option<u64>,
    /// `In Service`, `Decommission In Progress`, `Decommissioned`, maintenance states.
    pub admin_state: Option<String>,
    pub decommissioned: bool,
    pub capacity_bytes: Option<u64>,
    pub remaining_bytes: Option<u64>,
    pub failed_volumes: Option<u64>,
}

/// What the NameNode reports. A field is `None` when no bean polled reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(
    description = "What the NameNode reports; a field is `null` when no bean polled reported it."
)]
pub struct NameNodeStatus {
    /// HA state: `active`, `standby`, `observer`, `initializing`, `stopping`.
    pub ha_state: Option<String>,
    /// The RPC address it reports (`HostAndPort`).
    pub rpc_address: Option<String>,
    pub safe_mode: Option<bool>,
    /// The NameNode's own safe-mode sentence (`Safe mode is ON. ...`), empty when off.
    pub safe_mode_text: Option<String>,
    pub live_datanodes: Option<u64>,
    pub dead_datanodes: Option<u64>,
    pub stale_datanodes: Option<u64>,
    pub decommissioning_datanodes: Option<u64>,
    pub live: Vec<DataNodeInfo>,
    pub dead: Vec<DataNodeInfo>,
    pub capacity_total_bytes: Option<u64>,
    pub capacity_used_bytes: Option<u64>,
    pub capacity_remaining_bytes: Option<u64>,
    pub under_replicated_blocks: Option<u64>,
    pub missing_blocks: Option<u64>,
    pub corrupt_blocks: Option<u64>,
    pub version: Option<String>,
}

impl NameNodeStatus {
    /// Read one `/jmx` answer (any of [`BEANS`], or several at once) into this status.
    pub fn absorb(&mut self, body: &str) -> Result<(), ReadError> {
        let v = tolerant_json(body)?;
        let beans = v
            .get("beans")
            .and_then(Value::as_array)
            .ok_or_else(|| ReadError::Shape("no `beans` array: not a Hadoop /jmx answer".into()))?;
        if beans.is_empty() {
            return Err(ReadError::Shape(
                "`beans` is empty: the NameNode has no such bean (not a NameNode, or a Hadoop version without it)".into(),
            ));
        }
        let mut known = 0;
        for bean in beans {
            let name = as_str(bean.get("name")).unwrap_or("");
            let short = name.rsplit("name=").next().unwrap_or("");
            match short {
                "NameNodeStatus" => self.read_status(bean),
                "NameNodeInfo" => self.read_info(bean)?,
                "FSNamesystemState" => self.read_state(bean),
                "FSNamesystem" => self.read_fsnamesystem(bean),
                _ => continue,
            }
            known += 1;
        }
        if known == 0 {
            return Err(ReadError::Shape(
                "none of the NameNode health beans in the answer".into(),
            ));
        }
        Ok(())
    }

    fn read_status(&mut self, b: &Value) {
        if let Some(s) = as_str(b.get("State")) {
            self.ha_state = Some(s.to_ascii_lowercase());
        }
        if let Some(s) = as_str(b.get("HostAndPort")) {
            self.rpc_address = Some(s.to_string());
        }
    }

    fn read_info(&mut self, b: &Value) -> Result<(), ReadError> {
        if let Some(s) = as_str(b.get("Safemode")) {
            self.safe_mode = Some(!s.trim().is_empty());
            self.safe_mode_text = Some(s.trim().to_string());
        }
        self.capacity_total_bytes = as_u64(b.get("Total")).or(self.capacity_total_bytes);
        self.capacity_used_bytes = as_u64(b.get("Used")).or(self.capacity_used_bytes);
        self.capacity_remaining_bytes = as_u64(b.get("Free")).or(self.capacity_remaining_bytes);
        self.missing_blocks = as_u64(b.get("NumberOfMissingBlocks")).or(self.missing_blocks);
        if let Some(v) = as_str(b.get("Version")) {
            self.version = Some(v.to_string());
        }
        if let Some(live) = nodes_field(b, "LiveNodes")? {
            self.live = live;
            self.live_datanodes.get_or_insert(self.live.len() as u64);
        }
        if let Some(dead) = nodes_field(b, "DeadNodes")? {
            self.dead = dead;
            self.dead_datanodes.get_or_insert(self.dead.len() as u64);
        }
        Ok(())
    }

    fn read_state(&mut self, b: &Value) {
        if let Some(s) = as_str(b.get("FSState")) {
            // `safeMode` or `Operational`.
            self.safe_mode = Some(s.eq_ignore_ascii_case("safemode"));
        }
        self.read_counts(b);
        if let Some(n) = as_u64(b.get("NumStaleDataNodes")) {
            self.stale_datanodes = Some(n);
        }
    }

    fn read_fsnamesystem(&mut self, b: &Value) {
        if let Some(s) = as_str(b.get("tag.HAState")) {
            self.ha_state.get_or_insert_with(|| s.to_ascii_lowercase());
        }
        self.read_counts(b);
        if let Some(n) = as_u64(b.get("StaleDataNodes")) {
            self.stale_datanodes = Some(n);
        }
        self.missing_blocks = as_u64(b.get("MissingBlocks")).or(self.missing_blocks);
        self.corrupt_blocks = as_u64(b.get("CorruptBlocks")).or(self.corrupt_blocks);
    }

    /// Counters both `FSNamesystemState` and `FSNamesystem` carry (Hadoop 3 renamed
    /// under-replicated to low-redundancy and keeps the old name deprecated).
    fn read_counts(&mut self, b: &Value) {
        let pick = |keys: &[&str]| keys.iter().find_map(|k| as_u64(b.get(*k)));
        if let Some(n) = pick(&["NumLiveDataNodes"]) {
            self.live_datanodes = Some(n);
        }
        if let Some(n) = pick(&["NumDeadDataNodes"]) {
            self.dead_datanodes = Some(n);
        }
        if let Some(n) = pick(&["NumDecommissioningDataNodes"]) {
            self.decommissioning_datanodes = Some(n);
        }
        if let Some(n) = pick(&["UnderReplicatedBlocks", "LowRedundancyBlocks"]) {
            self.under_replicated_blocks = Some(n);
        }
        if let Some(n) = pick(&["CapacityTotal"]) {
            self.capacity_total_bytes = Some(n);
        }
        if let Some(n) = pick(&["CapacityUsed"]) {
            self.capacity_used_bytes = Some(n);
        }
        if let Some(n) = pick(&["CapacityRemaining"]) {
            self.capacity_remaining_bytes = Some(n);
        }
    }

    /// DFS space used, in percent of the configured capacity.
    pub fn used_percent(&self) -> Option<f64> {
        let total = self.capacity_total_bytes.filter(|t| *t > 0)? as f64;
        Some(self.capacity_used_bytes? as f64 * 100.0 / total)
    }

    /// The DataNode on `host` (a host name, an IP, or `host:port`), live or dead.
    pub fn datanode(&self, host: &str) -> Option<(&DataNodeInfo, bool)> {
        let bare = host_part(host);
        let matches = |d: &DataNodeInfo| {
            d.name == host
                || d.host.eq_ignore_ascii_case(bare)
                || d.xfer_addr.as_deref().map(host_part) == Some(bare)
        };
        self.live
            .iter()
            .find(|d| matches(d))
            .map(|d| (d, true))
            .or_else(|| self.dead.iter().find(|d| matches(d)).map(|d| (d, false)))
    }
}

/// `host` of `host:port` (an IPv6 literal in brackets keeps its brackets off).
pub(crate) fn host_part(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => s,
    }
}

/// `LiveNodes` / `DeadNodes`: a JSON object written as a string (parsed again); `None` when
/// the attribute is absent.
fn nodes_field(bean: &Value, key: &str) -> Result<Option<Vec<DataNodeInfo>>, ReadError> {
    let raw = match bean.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => {
            tolerant_json(s).map_err(|e| ReadError::Shape(format!("NameNodeInfo {key}: {e}")))?
        }
        Some(v) => v.clone(),
    };
    let obj = raw
        .as_object()
        .ok_or_else(|| ReadError::Shape(format!("NameNodeInfo {key} is not an object")))?;
    let mut nodes: Vec<DataNodeInfo> = obj
        .iter()
        .map(|(name, v)| DataNodeInfo {
            name: name.clone(),
            host: host_part(name).to_string(),
            xfer_addr: as_str(v.get("xferaddr")).map(str::to_string),
            last_contact_s: as_u64(v.get("lastContact")),
            admin_state: as_str(v.get("adminState")).map(str::to_string),
            decommissioned: v
                .get("decommissioned")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || as_str(v.get("adminState")) == Some("Decommissioned"),
            capacity_bytes: as_u64(v.get("capacity")),
            remaining_bytes: as_u64(v.get("remaining")),
            failed_volumes: as_u64(v.get("volfails")),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testdata::sample;

    #[test]
    fn degraded_sample_one_dead_datanode() {
        let Some(body) = sample("namenode-jmx-degraded.composed.json") else {
            return;
        };
        let mut nn = NameNodeStatus::default();
        nn.absorb(&body).unwrap();
        assert_eq!(nn.ha_state.as_deref(), Some("active"));
        assert_eq!(nn.safe_mode, Some(false));
        assert_eq!(
            (nn.live_datanodes, nn.dead_datanodes, nn.stale_datanodes),
            (Some(3), Some(1), Some(0))
        );
        assert_eq!(nn.dead.len(), 1);
        assert_eq!(nn.dead[0].name, "worker3:9866");
        assert_eq!(nn.dead[0].last_contact_s, Some(742));
        assert_eq!(nn.live.len(), 3);
        assert_eq!(nn.under_replicated_blocks, Some(57));
        assert_eq!((nn.missing_blocks, nn.corrupt_blocks), (Some(0), Some(0)));
        assert_eq!(nn.capacity_total_bytes, Some(160_987_127_808));
        let (dn, live) = nn.datanode("worker3").unwrap();
        assert!(!live);
        assert_eq!(dn.xfer_addr.as_deref(), Some("192.168.10.13:9866"));
        assert!(nn.datanode("192.168.10.11").unwrap().1, "found by IP");
        assert!(nn.datanode("worker9").is_none());
    }

    #[test]
    fn real_captures_read() {
        let (Some(info), Some(fsn)) = (
            sample("namenode-jmx-namenodeinfo.real.json"),
            sample("namenode-jmx-fsnamesystem.real.json"),
        ) else {
            return;
        };
        let mut nn = NameNodeStatus::default();
        nn.absorb(&info).unwrap();
        assert_eq!(nn.safe_mode, Some(false));
        assert!(!nn.live.is_empty(), "LiveNodes is JSON in a string");
        nn.absorb(&fsn).unwrap();
        assert!(nn.live_datanodes.is_some() && nn.missing_blocks.is_some());
    }

    #[test]
    fn safe_mode_nan_and_hadoop2_names() {
        let body = r#"{"beans":[
          {"name":"Hadoop:service=NameNode,name=FSNamesystemState","FSState":"safeMode",
           "NumLiveDataNodes":0,"NumDeadDataNodes":0,"NumStaleDataNodes":0,"UnderReplicatedBlocks":NaN,
           "CapacityTotal":100,"CapacityUsed":95,"CapacityRemaining":5},
          {"name":"Hadoop:service=NameNode,name=NameNodeInfo",
           "Safemode":"Safe mode is ON. The reported blocks 0 needs additional 15 blocks to reach the threshold 0.9990 of total blocks 15.",
           "LiveNodes":"{}","DeadNodes":"{\"worker2:50010\":{\"lastContact\":900,\"decommissioned\":false}}"}
        ]}"#;
        let mut nn = NameNodeStatus::default();
        nn.absorb(body).unwrap();
        assert_eq!(nn.safe_mode, Some(true));
        assert!(
            nn.safe_mode_text
                .as_deref()
                .unwrap()
                .starts_with("Safe mode is ON.")
        );
        assert_eq!(nn.under_replicated_blocks, None, "NaN is unknown, not 0");
        assert_eq!(nn.dead[0].host, "worker2");
        assert_eq!(nn.used_percent(), Some(95.0));
    }

    #[test]
    fn bad_answers_are_errors() {
        let mut nn = NameNodeStatus::default();
        let e = nn.absorb(r#"{"beans":[]}"#).unwrap_err().to_string();
        assert!(e.contains("`beans` is empty"), "{e}");
        let e = nn.absorb(r#"{"result":"ERROR","message":"query format is not as expected."}"#);
        assert!(e.unwrap_err().to_string().contains("no `beans`"));
        let e = nn
            .absorb(r#"{"beans":[{"name":"Hadoop:service=NameNode,name=NameNodeInfo","LiveNodes":"{\"w1:9866\":"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("LiveNodes") && e.contains("truncated"), "{e}");
        assert_eq!(
            nn,
            NameNodeStatus::default(),
            "a failed read changes nothing it did not read"
        );
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_part("worker1:9866"), "worker1");
        assert_eq!(host_part("10.0.0.1"), "10.0.0.1");
        assert_eq!(host_part("[::1]:9866"), "::1");
        assert_eq!(host_part("fe80::1"), "fe80::1");
    }
}
