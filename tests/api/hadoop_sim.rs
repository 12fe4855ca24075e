//! A simulated Hadoop cluster at the network edge: a real HTTP server speaking the NameNode
//! `/jmx`, ResourceManager REST and Flume JSON-monitoring APIs, built from the samples in
//! `../shared/reference/hadoop/`, with faults to inject (a dead DataNode, safe mode, a LOST
//! NodeManager, a full Flume channel, a standby NameNode, slow or garbage answers).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// How the simulator answers every request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Normal,
    /// Sleep this long first.
    Slow(Duration),
    /// An HTML error page with status 500.
    HtmlError,
    /// The normal JSON cut in the middle.
    Truncated,
    /// Bare `NaN` for numbers (as Hadoop's JMX servlet writes them).
    WithNaN,
}

#[derive(Debug, Clone)]
pub struct SimState {
    pub workers: Vec<String>,
    pub dead_datanodes: BTreeSet<String>,
    pub lost_nodemanagers: BTreeSet<String>,
    pub safe_mode: bool,
    pub standby: bool,
    pub flume_fill_percent: f64,
    pub answer: Answer,
}

impl Default for SimState {
    fn default() -> Self {
        SimState {
            workers: ["worker1", "worker2", "worker3", "worker4"]
                .map(String::from)
                .to_vec(),
            dead_datanodes: BTreeSet::new(),
            lost_nodemanagers: BTreeSet::new(),
            safe_mode: false,
            standby: false,
            flume_fill_percent: 2.5,
            answer: Answer::Normal,
        }
    }
}

pub struct HadoopSim {
    pub base: String,
    pub state: Arc<Mutex<SimState>>,
    server: actix_web::dev::ServerHandle,
}

struct Samples {
    jmx: Value,
    rm_info: Value,
    rm_metrics: Value,
    rm_nodes: Value,
    flume: Value,
}

/// A sample of `reference/hadoop/` in `dir`; a missing or broken sample fails the test.
fn load(dir: &std::path::Path, name: &str) -> Value {
    let path = dir.join("reference/hadoop").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("simulator sample {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("simulator sample {name}: {e}"))
}

impl HadoopSim {
    /// Start on a free port; `None` only when the shared data is absent outside CI
    /// (`shared_dir` fails the test under `CI=true`). Anything else going wrong fails.
    pub async fn start() -> Option<HadoopSim> {
        let dir = faultline::parse::testdata::shared_dir()?;
        let samples = Arc::new(Samples {
            jmx: load(&dir, "namenode-jmx-degraded.composed.json"),
            rm_info: load(&dir, "rm-cluster-info.doc.json"),
            rm_metrics: load(&dir, "rm-cluster-metrics-degraded.composed.json"),
            rm_nodes: load(&dir, "rm-nodes-degraded.composed.json"),
            flume: load(&dir, "flume-metrics-backlog.composed.json"),
        });
        let state = Arc::new(Mutex::new(SimState::default()));
        let (s2, st2) = (Arc::clone(&samples), Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(Arc::clone(&s2)))
                .app_data(web::Data::from(Arc::clone(&st2)))
                .default_service(web::to(handle))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("the simulator binds a loopback port");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Some(HadoopSim {
            base: format!("http://127.0.0.1:{port}"),
            state,
            server: handle,
        })
    }

    /// The cluster settings pointing at this simulator (NameNode, RM and Flume agent here).
    pub fn cluster_settings(&self) -> faultline::cluster::settings::ClusterSettings {
        faultline::cluster::settings::ClusterSettings {
            name: "sim".into(),
            namenodes: vec![self.base.clone()],
            resourcemanagers: vec![self.base.clone()],
            workers: ["worker1", "worker2", "worker3", "worker4"]
                .map(String::from)
                .to_vec(),
            flume_agents: vec![faultline::cluster::settings::FlumeAgentSettings {
                name: "agent1".into(),
                url: format!("{}/metrics", self.base),
            }],
            ..Default::default()
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut SimState)) {
        f(&mut self.state.lock().unwrap());
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

async fn handle(
    req: HttpRequest,
    samples: web::Data<Samples>,
    state: web::Data<Mutex<SimState>>,
) -> HttpResponse {
    let st = state.lock().unwrap().clone();
    if let Answer::Slow(d) = st.answer {
        actix_web::rt::time::sleep(d).await;
    }
    if st.answer == Answer::HtmlError {
        return HttpResponse::InternalServerError()
            .content_type("text/html")
            .body("<html><head><title>Error 500 Server Error</title></head><body><h2>HTTP ERROR 500</h2></body></html>");
    }
    let body = match req.path() {
        "/jmx" => {
            let qry = req
                .query_string()
                .split('&')
                .find_map(|kv| kv.strip_prefix("qry="))
                .unwrap_or("*:*")
                .replace("%3A", ":")
                .replace("%3D", "=")
                .replace("%2C", ",");
            jmx(&samples.jmx, &st, &qry)
        }
        "/ws/v1/cluster/info" | "/ws/v1/cluster" => {
            let mut v = samples.rm_info.clone();
            v["clusterInfo"]["haState"] = json!(if st.standby { "STANDBY" } else { "ACTIVE" });
            v
        }
        "/ws/v1/cluster/metrics" => {
            let mut v = samples.rm_metrics.clone();
            let lost = st.lost_nodemanagers.len();
            v["clusterMetrics"]["lostNodes"] = json!(lost);
            v["clusterMetrics"]["unhealthyNodes"] = json!(0);
            v["clusterMetrics"]["activeNodes"] = json!(st.workers.len() - lost);
            v
        }
        "/ws/v1/cluster/nodes" => {
            // The RM reads `states` with NodeState.valueOf: an unknown name is an error.
            const STATES: [&str; 8] = [
                "NEW",
                "RUNNING",
                "UNHEALTHY",
                "DECOMMISSIONED",
                "LOST",
                "REBOOTED",
                "DECOMMISSIONING",
                "SHUTDOWN",
            ];
            let states = req
                .query_string()
                .split('&')
                .find_map(|kv| kv.strip_prefix("states="))
                .unwrap_or("");
            if let Some(bad) = states
                .split([',', '%'])
                .filter(|s| !s.is_empty() && !s.starts_with("2C"))
                .find(|s| !STATES.contains(&s.to_ascii_uppercase().as_str()))
            {
                return HttpResponse::BadRequest().json(json!({"RemoteException": {
                    "exception": "BadRequestException",
                    "message": format!("Invalid node state: {bad}"),
                    "javaClassName": "org.apache.hadoop.yarn.webapp.BadRequestException"}}));
            }
            let lost_listed = states.is_empty() || states.to_ascii_uppercase().contains("LOST");
            let mut st = st.clone();
            if !lost_listed {
                st.workers.retain(|w| !st.lost_nodemanagers.contains(w));
            }
            rm_nodes(&samples.rm_nodes, &st)
        }
        "/metrics" => {
            let mut v = samples.flume.clone();
            let cap = 10_000.0;
            v["CHANNEL.c1"]["ChannelFillPercentage"] = json!(format!("{}", st.flume_fill_percent));
            v["CHANNEL.c1"]["ChannelSize"] =
                json!(format!("{}", (st.flume_fill_percent * cap / 100.0) as u64));
            v
        }
        _ => return HttpResponse::NotFound().body("not found"),
    };
    let mut text = serde_json::to_string_pretty(&body).unwrap();
    match st.answer {
        Answer::Truncated => text.truncate(text.len() / 2),
        Answer::WithNaN => text = text.replace("\"CorruptBlocks\": 0", "\"CorruptBlocks\": NaN"),
        _ => {}
    }
    HttpResponse::Ok()
        .content_type("application/json; charset=utf8")
        .body(text)
}

/// The NameNode beans matching `qry` (an exact bean name, or `*:*`), with the state applied.
fn jmx(sample: &Value, st: &SimState, qry: &str) -> Value {
    let mut live = serde_json::Map::new();
    let mut dead = serde_json::Map::new();
    for (i, w) in st.workers.iter().enumerate() {
        let name = format!("{w}:9866");
        let addr = format!("192.168.10.{}:9866", 11 + i);
        if st.dead_datanodes.contains(w) {
            dead.insert(
                name,
                json!({"lastContact": 742, "decommissioned": false, "adminState": "In Service", "xferaddr": addr}),
            );
        } else {
            live.insert(
                name,
                json!({"infoAddr": format!("192.168.10.{}:9864", 11 + i), "xferaddr": addr, "lastContact": 1,
                       "adminState": "In Service", "capacity": 53662375936u64, "usedSpace": 504015530,
                       "remaining": 39587457706u64, "numBlocks": 172, "version": "3.3.6", "volfails": 0}),
            );
        }
    }
    let (n_live, n_dead) = (live.len(), dead.len());
    let beans: Vec<Value> = sample["beans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| qry == "*:*" || b["name"] == qry)
        .map(|b| {
            let mut b = b.clone();
            let name = b["name"].as_str().unwrap_or("").to_string();
            if name.ends_with("NameNodeStatus") {
                b["State"] = json!(if st.standby { "standby" } else { "active" });
            } else if name.ends_with("NameNodeInfo") {
                b["LiveNodes"] = json!(Value::Object(live.clone()).to_string());
                b["DeadNodes"] = json!(Value::Object(dead.clone()).to_string());
                b["Safemode"] = json!(if st.safe_mode {
                    "Safe mode is ON. The reported blocks 0 needs additional 15 blocks to reach the threshold 0.9990 of total blocks 15. The number of live datanodes 0 has reached the minimum number 0. Safe mode will be turned off automatically once the thresholds have been reached."
                } else {
                    ""
                });
            } else if name.ends_with("FSNamesystemState") || name.ends_with("FSNamesystem") {
                b["NumLiveDataNodes"] = json!(n_live);
                b["NumDeadDataNodes"] = json!(n_dead);
                // A dead DataNode's blocks are under-replicated until re-replicated.
                let under = if n_dead > 0 { 57 } else { 0 };
                b["UnderReplicatedBlocks"] = json!(under);
                b["LowRedundancyBlocks"] = json!(under);
                if name.ends_with("FSNamesystemState") {
                    b["FSState"] = json!(if st.safe_mode { "safeMode" } else { "Operational" });
                }
            }
            b
        })
        .collect();
    json!({ "beans": beans })
}

fn rm_nodes(sample: &Value, st: &SimState) -> Value {
    let template = sample["nodes"]["node"][0].clone();
    let nodes: Vec<Value> = st
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut n = template.clone();
            let lost = st.lost_nodemanagers.contains(w);
            n["id"] = json!(format!("{w}:{}", 41000 + i));
            n["nodeHostName"] = json!(w);
            n["state"] = json!(if lost { "LOST" } else { "RUNNING" });
            n["nodeHTTPAddress"] = json!(if lost {
                String::new()
            } else {
                format!("{w}:8042")
            });
            n["healthReport"] = json!("");
            n
        })
        .collect();
    json!({ "nodes": { "node": nodes } })
}
