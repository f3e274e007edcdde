//! Partition reassignment (AlterPartitionReassignments, ListPartitionReassignments). Any broker
//! takes the request and writes the target into the metadata log (a `ChangePartitionReplicas`
//! listing the target and the leaving replicas); every broker in the union then hosts a replica
//! (`reconcile`), and the partition's leader walks its Raft configuration towards the target
//! one step at a time (`skiff_replication::reassignment`) while clients keep producing. Once the
//! configuration is the target, the leader writes the completion, and the brokers that left
//! close their replica and delete its data.

use std::time::{Duration, Instant};

use skiff_replication::cluster_metadata::{CONTROLLER_GROUP, ClusterMetadata, ReassignError};
use skiff_replication::group_driver::GroupDriver;
use skiff_replication::metadata_records::{
    BrokerId, ChangePartitionReplicas, MetadataRecord, encode_batch, metadata_record::Kind,
};
use skiff_replication::reassignment::{Step, next_step};

use super::{Cluster, broker_id, lock, raft_id, read};
use crate::clock::now_ms;
use crate::error::ApiError;

/// How often leaders take the next step of the reassignments they lead.
pub(super) const REASSIGNMENT_STEP_INTERVAL: Duration = Duration::from_millis(500);

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

fn reassign_error(e: ReassignError) -> ApiError {
    ApiError::new(e.error(), e.to_string())
}

impl Cluster {
    /// Starts moving a partition to `target` (or, with `None`, reverts the reassignment in
    /// progress) and waits until the metadata log holds it; the move itself runs afterwards.
    pub fn reassign(&self, topic: &str, partition: i32, target: Option<&[BrokerId]>) -> Result<(), ApiError> {
        let expected = {
            let m = read(&self.metadata);
            let records = m.plan_reassignment(topic, partition, target).map_err(reassign_error)?;
            match records.first().and_then(|r| r.kind.as_ref()) {
                Some(Kind::ChangePartitionReplicas(c)) => target_of(c),
                _ => return Ok(()),
            }
        };
        let reached = |m: &ClusterMetadata| {
            m.topic_by_name(topic)
                .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                .is_some_and(|p| p.target_replicas() == expected)
        };
        self.change_metadata(
            |m| {
                if reached(m) {
                    return Ok(Vec::new());
                }
                m.plan_reassignment(topic, partition, Some(&expected))
                    .map_err(reassign_error)
            },
            reached,
        )
    }

    /// The replica set a partition has or is moving to.
    pub fn target_replicas(&self, topic: &str, partition: i32) -> Option<Vec<BrokerId>> {
        let m = read(&self.metadata);
        let p = m
            .topic_by_name(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)?;
        Some(p.target_replicas())
    }

    /// The reassignments in progress, by topic and partition.
    pub fn reassignments(&self) -> Vec<OngoingReassignment> {
        let m = read(&self.metadata);
        m.topics()
            .flat_map(|t| {
                (0i32..)
                    .zip(&t.partitions)
                    .filter(|(_, p)| p.is_reassigning())
                    .map(|(i, p)| OngoingReassignment {
                        topic: t.name.clone(),
                        partition: i,
                        replicas: p.replicas.clone(),
                        adding: p.adding.clone(),
                        removing: p.removing.clone(),
                    })
            })
            .collect()
    }

    /// Every `REASSIGNMENT_STEP_INTERVAL` (on a tick): on each partition this broker leads, one
    /// step of its Raft configuration towards the metadata's target, and the completion record
    /// once it is there.
    pub(super) fn step_reassignments(&self, driver: &mut GroupDriver) {
        {
            let mut last = lock(&self.last_reassignment_step);
            if last.elapsed() < REASSIGNMENT_STEP_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        let mut completed = Vec::new();
        {
            let m = read(&self.metadata);
            for t in m.topics() {
                for (index, p) in (0i32..).zip(&t.partitions) {
                    let group = p.raft_group;
                    if group == CONTROLLER_GROUP || !driver.is_leader(group) {
                        continue;
                    }
                    let (Some(conf), Some((_, matched)), Some(commit)) =
                        (driver.conf(group), driver.progress(group), driver.commit_index(group))
                    else {
                        continue;
                    };
                    let target: Vec<u64> = p.target_replicas().iter().map(|&b| raft_id(b)).collect();
                    let step = next_step(raft_id(self.me), &conf, &target, commit, &matched);
                    let result = match &step {
                        Step::Wait => continue,
                        Step::Done => {
                            if p.is_reassigning() {
                                completed.push(
                                    Kind::ChangePartitionReplicas(ChangePartitionReplicas {
                                        topic_id: t.id.to_vec(),
                                        partition_index: index,
                                        replicas: p.target_replicas(),
                                        complete: true,
                                        ..Default::default()
                                    })
                                    .into(),
                                );
                            }
                            continue;
                        }
                        Step::TransferLeader(to) => driver.transfer_leader(group, *to),
                        other => match other.conf_change() {
                            Some(cc) => driver.propose_conf_change(group, cc),
                            None => continue,
                        },
                    };
                    match result {
                        Ok(()) => tracing::info!(
                            topic = %t.name,
                            partition = index,
                            step = ?describe(&step),
                            target = ?p.target_replicas(),
                            "reassignment step"
                        ),
                        Err(e) => {
                            tracing::debug!(topic = %t.name, partition = index, error = %e, "reassignment step refused")
                        }
                    }
                }
            }
        }
        if completed.is_empty() {
            return;
        }
        let records: Vec<MetadataRecord> = completed;
        match encode_batch(&records, now_ms()) {
            Ok(batch) => {
                if let Err(e) = driver.propose_forwarded(CONTROLLER_GROUP, batch) {
                    tracing::debug!(error = %e, "reassignment completion not accepted yet");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode reassignment completions"),
        }
    }
}

/// The target a planned `ChangePartitionReplicas` moves to.
fn target_of(c: &ChangePartitionReplicas) -> Vec<BrokerId> {
    c.replicas.iter().copied().filter(|b| !c.removing.contains(b)).collect()
}

/// A step with broker ids instead of Raft ids, for the log.
fn describe(step: &Step) -> String {
    let ids = |v: &[u64]| v.iter().map(|&n| broker_id(n)).collect::<Vec<_>>();
    match step {
        Step::AddLearners(v) => format!("add learners {:?}", ids(v)),
        Step::Promote { add, remove } => format!("promote {:?}, remove {:?}", ids(add), ids(remove)),
        Step::TransferLeader(to) => format!("hand leadership to {}", broker_id(*to)),
        Step::Done => "done".into(),
        Step::Wait => "wait".into(),
    }
}
