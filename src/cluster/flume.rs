//! A Flume agent's JSON monitoring answer (`GET /metrics`): `{"CHANNEL.c1": {...}, ...}`
//! with every value a string. 1.7/1.8 lack the `*Fail` counters; the fill percentage is
//! absent in the oldest answers (then computed from size and capacity).

use serde::{Deserialize, Serialize};

use super::{ReadError, as_f64, as_u64, tolerant_json};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ChannelStat {
    pub name: String,
    pub size: Option<u64>,
    pub capacity: Option<u64>,
    /// `None` (`null`) when unknown (Flume writes `Double.MAX_VALUE` for a zero capacity).
    pub fill_percent: Option<f64>,
    pub put_success: Option<u64>,
    pub take_success: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SinkStat {
    pub name: String,
    pub drain_attempt: Option<u64>,
    pub drain_success: Option<u64>,
    /// IO errors writing downstream (1.9+).
    pub write_fail: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SourceStat {
    pub name: String,
    pub received: Option<u64>,
    pub accepted: Option<u64>,
    /// Batches the channel refused (full), 1.9+.
    pub channel_write_fail: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct FlumeAgentStatus {
    /// The agent's name in the cluster config (or its monitoring URL).
    pub agent: String,
    pub channels: Vec<ChannelStat>,
    pub sinks: Vec<SinkStat>,
    pub sources: Vec<SourceStat>,
}

impl FlumeAgentStatus {
    pub fn parse(agent: &str, body: &str) -> Result<FlumeAgentStatus, ReadError> {
        let v = tolerant_json(body)?;
        let obj = v.as_object().ok_or_else(|| {
            ReadError::Shape("not an object of components: not a Flume /metrics answer".into())
        })?;
        let mut status = FlumeAgentStatus {
            agent: agent.to_string(),
            ..Default::default()
        };
        for (key, attrs) in obj {
            let Some((kind, name)) = key.split_once('.') else {
                continue;
            };
            let name = name.to_string();
            let n = |k: &str| as_u64(attrs.get(k));
            match kind {
                "CHANNEL" => {
                    let (size, capacity) = (n("ChannelSize"), n("ChannelCapacity"));
                    // Flume writes Double.MAX_VALUE when the capacity is 0: unknown.
                    let fill = as_f64(attrs.get("ChannelFillPercentage"))
                        .filter(|f| (0.0..=100.0).contains(f))
                        .or_else(|| match (size, capacity) {
                            (Some(s), Some(c)) if c > 0 => Some(s as f64 * 100.0 / c as f64),
                            _ => None,
                        });
                    status.channels.push(ChannelStat {
                        name,
                        size,
                        capacity,
                        fill_percent: fill,
                        put_success: n("EventPutSuccessCount"),
                        take_success: n("EventTakeSuccessCount"),
                    });
                }
                "SINK" => status.sinks.push(SinkStat {
                    name,
                    drain_attempt: n("EventDrainAttemptCount"),
                    drain_success: n("EventDrainSuccessCount"),
                    write_fail: n("EventWriteFail"),
                }),
                "SOURCE" => status.sources.push(SourceStat {
                    name,
                    received: n("EventReceivedCount"),
                    accepted: n("EventAcceptedCount"),
                    channel_write_fail: n("ChannelWriteFail"),
                }),
                _ => {}
            }
        }
        if status.channels.is_empty() && status.sinks.is_empty() && status.sources.is_empty() {
            if obj.values().any(|v| !v.is_object()) {
                return Err(ReadError::Shape(
                    "not an object of components: not a Flume /metrics answer".into(),
                ));
            }
            return Err(ReadError::Shape(
                "no CHANNEL, SINK or SOURCE component: is the agent running its flows?".into(),
            ));
        }
        status.channels.sort_by(|a, b| a.name.cmp(&b.name));
        status.sinks.sort_by(|a, b| a.name.cmp(&b.name));
        status.sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(status)
    }

    /// The fullest channel.
    pub fn fullest(&self) -> Option<&ChannelStat> {
        self.channels
            .iter()
            .filter(|c| c.fill_percent.is_some())
            .max_by(|a, b| {
                a.fill_percent
                    .partial_cmp(&b.fill_percent)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testdata::sample;

    #[test]
    fn backlog_sample() {
        let Some(body) = sample("flume-metrics-backlog.composed.json") else {
            return;
        };
        let a = FlumeAgentStatus::parse("agent1", &body).unwrap();
        let c = a.fullest().unwrap();
        assert_eq!(c.name, "c1");
        assert_eq!(c.fill_percent, Some(99.87));
        assert_eq!((c.size, c.capacity), (Some(9987), Some(10000)));
        assert_eq!(a.sinks[0].write_fail, Some(1893));
    }

    #[test]
    fn old_key_sets() {
        let (Some(real), Some(guide)) = (
            sample("flume-metrics.real-1.7.json"),
            sample("flume-metrics.userguide-example.json"),
        ) else {
            return;
        };
        let a = FlumeAgentStatus::parse("a", &real).unwrap();
        assert_eq!(a.fullest().unwrap().fill_percent, Some(0.0));
        assert_eq!(a.sinks[0].write_fail, None, "1.7 has no EventWriteFail");
        let g = FlumeAgentStatus::parse("g", &guide).unwrap();
        // No ChannelFillPercentage: computed, 233428 / 600000.
        let file = g.channels.iter().find(|c| c.name == "fileChannel").unwrap();
        assert!((file.fill_percent.unwrap() - 38.9047).abs() < 0.001);
        assert_eq!(g.fullest().unwrap().name, "fileChannel");
    }

    #[test]
    fn zero_capacity_and_bad_answers() {
        let a = FlumeAgentStatus::parse(
            "a",
            r#"{"CHANNEL.c":{"ChannelSize":"0","ChannelCapacity":"0","ChannelFillPercentage":"1.7976931348623157E308"}}"#,
        )
        .unwrap();
        assert_eq!(a.channels[0].fill_percent, None);
        assert!(a.fullest().is_none());
        assert!(
            FlumeAgentStatus::parse("a", "{}")
                .unwrap_err()
                .to_string()
                .contains("no CHANNEL")
        );
        assert!(FlumeAgentStatus::parse("a", "[1,2]").is_err());
        assert!(FlumeAgentStatus::parse("a", "<html><title>404</title></html>").is_err());
    }
}
