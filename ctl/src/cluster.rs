//! `skiffctl cluster`: what the cluster is (`info`: brokers, controller, cluster id) and whether
//! it is well (`health`: partitions without a leader, with offline replicas, or under-replicated),
//! both from one Metadata request, as `kafka-topics.sh --describe --under-replicated-partitions`
//! and `rpk cluster health` report them. `decommission` moves every replica off a broker (its
//! planner lives with the other reassignments, in `partition`), `unregister` then removes it.

use clap::Subcommand;
use serde::Serialize;

use crate::Status;
use crate::client::{Client, Metadata};
use crate::error::{CtlError, Result};
use crate::output::{Format, Report, Table, dash, emit, fields, ids};
use crate::partition::{self, DecommissionArgs};
use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller and every broker with its address.
    Info,
    /// Check that every partition has a leader, no offline replica and a full ISR.
    ///
    /// Exit status: 0 when healthy, 3 when any partition lacks a leader, has an offline replica or
    /// is under-replicated (its ISR is smaller than its replica set), 1 when the check itself failed.
    Health,
    /// Move every replica off a broker, each to the live broker holding the fewest replicas.
    ///
    /// Each replica keeps its position in the partition's replica list, so a preferred leader is
    /// replaced by a preferred leader. Refused, moving nothing, when some partition has no live
    /// broker to go to. Exit status 1 when any partition could not be moved.
    Decommission(DecommissionArgs),
    /// Remove a decommissioned broker from the cluster (Kafka's UnregisterBroker).
    ///
    /// Refused while the broker still holds replicas (run `cluster decommission --wait` first) and
    /// for a controller voter. Stop the broker's process afterwards; started again, it rejoins.
    Unregister {
        /// The broker to remove.
        #[arg(value_name = "BROKER_ID", value_parser = clap::value_parser!(i32).range(0..))]
        broker: i32,
    },
}

pub async fn run(command: &ClusterCommand, client: &mut Client, format: &Format) -> Result<Status> {
    match command {
        ClusterCommand::Info => {
            let meta = client.metadata(Some(&[])).await?;
            emit(&info(&meta), format)?;
            Ok(Status::Ok)
        }
        ClusterCommand::Health => {
            let meta = client.metadata(None).await?;
            let report = health(&meta);
            emit(&report, format)?;
            Ok(if report.healthy { Status::Ok } else { Status::Unhealthy })
        }
        ClusterCommand::Decommission(a) => partition::decommission(client, a, format).await,
        ClusterCommand::Unregister { broker } => {
            unregister(client, *broker).await?;
            emit(&Unregistered { broker: *broker }, format)?;
            Ok(Status::Ok)
        }
    }
}

async fn unregister(client: &mut Client, broker: i32) -> Result<()> {
    let conn = client.any();
    let version = conn.version::<UnregisterBrokerRequest>()?;
    let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker));
    let response = conn.send(&request, version).await?;
    if response.error_code != 0 {
        return Err(CtlError::kafka(
            format!("unregister broker {broker}"),
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Unregistered {
    pub broker: i32,
}

impl Report for Unregistered {
    fn text(&self) -> String {
        format!("broker {} unregistered: stop its process\n", self.broker)
    }
}

#[derive(Debug, Serialize)]
pub struct BrokerRow {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerRow>,
}

fn info(meta: &Metadata) -> ClusterInfo {
    ClusterInfo {
        cluster_id: meta.cluster_id.clone(),
        controller_id: (meta.controller >= 0).then_some(meta.controller),
        brokers: meta
            .brokers
            .iter()
            .map(|b| BrokerRow {
                id: b.id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
            })
            .collect(),
    }
}

impl Report for ClusterInfo {
    fn text(&self) -> String {
        let mut out = fields(&[
            ("Cluster id", dash(self.cluster_id.as_deref())),
            ("Controller", dash(self.controller_id)),
            ("Brokers", self.brokers.len().to_string()),
        ]);
        let mut t = Table::new(&["ID", "HOST", "PORT", "RACK"]);
        for b in &self.brokers {
            t.row(vec![
                b.id.to_string(),
                b.host.clone(),
                b.port.to_string(),
                dash(b.rack.as_deref()),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
        out
    }
}

/// A partition that is not well, and why.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub topic: String,
    pub partition: i32,
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// `no leader`, `offline replicas`, `under-replicated`.
    pub problems: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub brokers: Vec<i32>,
    /// Brokers that replicas are assigned to but that Metadata does not list as alive.
    pub brokers_down: Vec<i32>,
    pub controller_id: Option<i32>,
    pub topics: usize,
    pub partitions: usize,
    pub leaderless_partitions: usize,
    pub offline_partitions: usize,
    pub under_replicated_partitions: usize,
    /// Every partition with at least one problem.
    pub problems: Vec<Problem>,
}

const NO_LEADER: &str = "no leader";
const OFFLINE: &str = "offline replicas";
const UNDER_REPLICATED: &str = "under-replicated";

/// Classifies every partition: without a leader (leader -1), with offline replicas (the broker
/// says so, or the replica's broker is not alive), under-replicated (ISR smaller than replicas).
pub fn health(meta: &Metadata) -> Health {
    let alive: Vec<i32> = meta.brokers.iter().map(|b| b.id).collect();
    let mut down = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    let mut partitions = 0;
    let (mut leaderless, mut offline, mut under) = (0, 0, 0);
    for topic in &meta.topics {
        for p in &topic.partitions {
            partitions += 1;
            let mut offline_replicas: Vec<i32> = p.offline.clone();
            for r in &p.replicas {
                if !alive.contains(r) {
                    down.insert(*r);
                    if !offline_replicas.contains(r) {
                        offline_replicas.push(*r);
                    }
                }
            }
            let mut found = Vec::new();
            if p.leader < 0 || !alive.contains(&p.leader) {
                found.push(NO_LEADER);
                leaderless += 1;
            }
            if !offline_replicas.is_empty() {
                found.push(OFFLINE);
                offline += 1;
            }
            if p.isr.len() < p.replicas.len() {
                found.push(UNDER_REPLICATED);
                under += 1;
            }
            if !found.is_empty() {
                problems.push(Problem {
                    topic: topic.name.clone(),
                    partition: p.partition,
                    leader: (p.leader >= 0).then_some(p.leader),
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    offline_replicas,
                    problems: found,
                });
            }
        }
    }
    Health {
        healthy: problems.is_empty() && !alive.is_empty(),
        brokers: alive,
        brokers_down: down.into_iter().collect(),
        controller_id: (meta.controller >= 0).then_some(meta.controller),
        topics: meta.topics.len(),
        partitions,
        leaderless_partitions: leaderless,
        offline_partitions: offline,
        under_replicated_partitions: under,
        problems,
    }
}

impl Report for Health {
    fn text(&self) -> String {
        let mut out = fields(&[
            ("Healthy", if self.healthy { "yes" } else { "no" }.to_string()),
            ("Brokers", ids(&self.brokers)),
            ("Brokers down", ids(&self.brokers_down)),
            ("Controller", dash(self.controller_id)),
            (
                "Partitions",
                format!(
                    "{} in {} topic{}",
                    self.partitions,
                    self.topics,
                    if self.topics == 1 { "" } else { "s" }
                ),
            ),
            ("Partitions without a leader", self.leaderless_partitions.to_string()),
            ("Offline partitions", self.offline_partitions.to_string()),
            (
                "Under-replicated partitions",
                self.under_replicated_partitions.to_string(),
            ),
        ]);
        if !self.problems.is_empty() {
            let mut t = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE", "PROBLEM"]);
            for p in &self.problems {
                t.row(vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    dash(p.leader),
                    ids(&p.replicas),
                    ids(&p.isr),
                    ids(&p.offline_replicas),
                    p.problems.join(", "),
                ]);
            }
            out.push('\n');
            out.push_str(&t.render());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{BrokerMeta, PartitionMeta, TopicMeta};

    fn partition(partition: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionMeta {
        PartitionMeta {
            partition,
            error: 0,
            leader,
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline: vec![],
        }
    }

    #[test]
    fn health_classifies_each_partition() {
        let meta = Metadata {
            cluster_id: Some("c".into()),
            controller: 1,
            brokers: [1, 2]
                .iter()
                .map(|&id| BrokerMeta {
                    id,
                    host: "h".into(),
                    port: 9092,
                    rack: None,
                })
                .collect(),
            topics: vec![TopicMeta {
                name: "t".into(),
                id: uuid::Uuid::nil(),
                internal: false,
                error: 0,
                partitions: vec![
                    partition(0, 1, &[1, 2], &[1, 2]),
                    partition(1, 1, &[1, 2], &[1]),
                    partition(2, -1, &[1, 3], &[]),
                ],
            }],
        };
        let h = health(&meta);
        assert!(!h.healthy);
        assert_eq!(h.partitions, 3);
        assert_eq!(
            (
                h.leaderless_partitions,
                h.offline_partitions,
                h.under_replicated_partitions
            ),
            (1, 1, 2)
        );
        assert_eq!(h.brokers_down, vec![3]);
        assert_eq!(h.problems.len(), 2);
        assert_eq!(h.problems[0].problems, vec![UNDER_REPLICATED]);
        assert_eq!(h.problems[1].problems, vec![NO_LEADER, OFFLINE, UNDER_REPLICATED]);
        assert_eq!(h.problems[1].offline_replicas, vec![3]);
    }
}
