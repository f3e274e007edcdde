//! Preferred leaders (Kafka's ElectLeaders with election type PREFERRED, and
//! `auto.leader.rebalance.enable`). Topic creation spreads the first replica of each partition —
//! its preferred leader — evenly over the brokers, but a broker that restarts leads nothing:
//! every failover moved its partitions away. Handing them back is a Raft leadership transfer
//! (thesis §3.10) that only the current leader can start, so both paths end on the leader:
//! ElectLeaders goes through the metadata log (any broker can take the request), the periodic
//! rebalance runs on every leader over the partitions it leads.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use skiff_protocol::kafka_protocol::ResponseError;
use skiff_replication::group_driver::{GroupDriver, GroupId};
use skiff_replication::metadata_records::{
    BrokerId, ElectPreferredLeader, MetadataRecord, TopicId, metadata_record::Kind,
};

use super::{Cluster, raft_id, read};
use crate::error::ApiError;

/// How often an ElectLeaders request looks whether leadership moved.
const ELECTION_POLL: Duration = Duration::from_millis(50);
/// How often an ElectLeaders request proposes the elections that did not happen yet.
const ELECTION_RETRY: Duration = Duration::from_secs(1);
/// The share of the request's timeout an ElectLeaders request waits before it answers.
const ANSWER_WITHIN_SHARE_OF_TIMEOUT: f64 = 0.8;

impl Cluster {
    /// On the leader of `group`: starts handing leadership to the partition's preferred replica
    /// when that replica is in sync. Returns whether a transfer started.
    pub(super) fn hand_to_preferred(&self, driver: &mut GroupDriver, group: GroupId) -> bool {
        if !driver.is_leader(group) {
            return false;
        }
        let replicas = read(&self.replicas);
        let Some(replica) = replicas.get(&group).and_then(|p| p.replica()) else {
            return false;
        };
        let Some(&preferred) = replica.replicas().first() else {
            return false;
        };
        if preferred == self.me || !replica.role().isr.contains(&preferred) {
            return false;
        }
        tracing::info!(%group, to = preferred, "handing leadership to the preferred replica");
        driver.transfer_leader(group, raft_id(preferred)).is_ok()
    }

    /// The raft groups of `ElectPreferredLeader` records among `records`.
    pub(super) fn elections_in(&self, records: &[MetadataRecord]) -> Vec<GroupId> {
        let metadata = read(&self.metadata);
        records
            .iter()
            .filter_map(|r| match &r.kind {
                Some(Kind::ElectPreferredLeader(e)) => {
                    let id = e.topic_id.as_slice().try_into().ok()?;
                    let index = usize::try_from(e.partition_index).ok()?;
                    Some(metadata.topic(&id)?.partitions.get(index)?.raft_group)
                }
                _ => None,
            })
            .collect()
    }

    /// Every `leader.imbalance.check.interval.seconds` (on a tick): for each broker whose share of
    /// preferred partitions led by others exceeds `leader.imbalance.per.broker.percentage`, the
    /// partitions this broker leads are handed back to it.
    pub(super) fn rebalance_leaders(&self, driver: &mut GroupDriver) {
        if !self.config.auto_leader_rebalance_enable {
            return;
        }
        let every = Duration::from_secs(self.config.leader_imbalance_check_interval_seconds);
        {
            let mut last = super::lock(&self.last_rebalance);
            if last.elapsed() < every {
                return;
            }
            *last = Instant::now();
        }
        let (imbalanced, mine) = {
            let metadata = read(&self.metadata);
            // Per preferred broker: (partitions it should lead, partitions others lead).
            let mut counts: HashMap<BrokerId, (u32, u32)> = HashMap::new();
            let mut mine = Vec::new();
            for p in metadata.topics().flat_map(|t| &t.partitions) {
                let Some(&preferred) = p.replicas.first() else { continue };
                let c = counts.entry(preferred).or_default();
                c.0 += 1;
                if p.leader != Some(preferred) {
                    c.1 += 1;
                    if driver.is_leader(p.raft_group) {
                        mine.push((p.raft_group, preferred));
                    }
                }
            }
            let limit = self.config.leader_imbalance_per_broker_percentage;
            let imbalanced: Vec<BrokerId> = counts
                .into_iter()
                .filter(|&(_, (total, others))| u64::from(others) * 100 > u64::from(limit) * u64::from(total))
                .map(|(b, _)| b)
                .collect();
            (imbalanced, mine)
        };
        for (group, preferred) in mine {
            if imbalanced.contains(&preferred) {
                self.hand_to_preferred(driver, group);
            }
        }
    }

    /// ElectLeaders, election type PREFERRED, for `partitions` of `topic`: proposes the
    /// elections through the metadata log and waits up to `timeout` for leadership to move.
    /// `ELECTION_NOT_NEEDED` where the preferred replica leads, `PREFERRED_LEADER_NOT_AVAILABLE`
    /// where it is not in sync or did not take over in time.
    pub fn elect_preferred(
        &self,
        topic: &str,
        partitions: &[i32],
        timeout: Duration,
    ) -> Vec<(i32, Result<(), ApiError>)> {
        let mut results = Vec::new();
        let mut pending = Vec::new();
        let topic_id = read(&self.metadata).topic_by_name(topic).map(|t| t.id);
        for &index in partitions {
            let view = self.partition_view(topic, index);
            let outcome = match (&view, topic_id) {
                (Some(v), Some(id)) => match v.replicas.first() {
                    Some(&preferred) if v.leader == Some(preferred) => Err(ApiError::new(
                        ResponseError::ElectionNotNeeded,
                        format!("broker {preferred} already leads"),
                    )),
                    Some(&preferred) if v.isr.contains(&preferred) => {
                        pending.push((index, preferred, id));
                        continue;
                    }
                    _ => Err(ApiError::new(
                        ResponseError::PreferredLeaderNotAvailable,
                        "the preferred replica is not in sync",
                    )),
                },
                _ => Err(ApiError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown partition {topic}-{index}"),
                )),
            };
            results.push((index, outcome));
        }
        if pending.is_empty() {
            return results;
        }
        let records = |pending: &[(i32, BrokerId, TopicId)]| -> Vec<MetadataRecord> {
            pending
                .iter()
                .map(|&(index, _, id)| {
                    Kind::ElectPreferredLeader(ElectPreferredLeader {
                        topic_id: id.to_vec(),
                        partition_index: index,
                    })
                    .into()
                })
                .collect()
        };
        let moved = |index: i32, preferred: BrokerId| {
            self.partition_view(topic, index)
                .is_some_and(|v| v.leader == Some(preferred))
        };
        // Answer before the client gives up on the request (it sends its own timeout).
        let deadline = Instant::now() + timeout.mul_f64(ANSWER_WITHIN_SHARE_OF_TIMEOUT);
        let mut submitted = Ok(());
        tokio::task::block_in_place(|| {
            let mut last_try: Option<Instant> = None;
            loop {
                let left: Vec<_> = pending.iter().copied().filter(|&(i, p, _)| !moved(i, p)).collect();
                if left.is_empty() || Instant::now() >= deadline {
                    return;
                }
                // A transfer lapses when the target was not caught up in time, a proposal when
                // the controller changes: ask again.
                if last_try.is_none_or(|t| t.elapsed() >= ELECTION_RETRY) {
                    submitted = self.submit(&records(&left));
                    last_try = Some(Instant::now());
                }
                std::thread::sleep(ELECTION_POLL);
            }
        });
        for (index, preferred, _) in pending {
            let outcome = match &submitted {
                Err(e) => Err(e.clone()),
                Ok(()) if moved(index, preferred) => Ok(()),
                Ok(()) => Err(ApiError::new(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("broker {preferred} did not take over within {} ms", timeout.as_millis()),
                )),
            };
            results.push((index, outcome));
        }
        results
    }
}
