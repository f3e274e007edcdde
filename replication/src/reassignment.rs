//! Moving a partition's replicas (Kafka's AlterPartitionReassignments) as Raft configuration
//! changes, one step at a time, on the partition's leader.
//!
//! The target replica set comes from the metadata log; the Raft configuration follows it:
//! 1. replicas that are not in the group yet join as learners (they replicate the log but do
//!    not vote, so a slow newcomer never costs the group its majority);
//! 2. once every learner of the target has caught up, one joint change (Raft thesis §4.3)
//!    promotes them and removes the replicas that leave — raft-rs leaves the joint
//!    configuration by itself once it is committed;
//! 3. a leader that is leaving first hands leadership to a caught-up replica that stays (or,
//!    when no voter stays, right after the change), so that the group is never led by a
//!    replica that is about to stop.
//!
//! [`next_step`] is a pure function of the configuration and progress, so every case is a unit
//! test; the broker calls it on every leader and carries the step out.

use std::collections::BTreeSet;

use raft::prelude::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};

use crate::group_driver::{GroupConf, NodeId};

/// What the leader of a group should do next to reach the target replica set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The configuration is the target.
    Done,
    /// A change is in flight, or learners are still catching up.
    Wait,
    /// Add these replicas as learners.
    AddLearners(Vec<NodeId>),
    /// Make these learners voters and remove these replicas (voters or learners).
    Promote { add: Vec<NodeId>, remove: Vec<NodeId> },
    /// Hand leadership to this voter before (or after) the leader leaves the group.
    TransferLeader(NodeId),
}

impl Step {
    /// The configuration change this step proposes, if it is one.
    pub fn conf_change(&self) -> Option<ConfChangeV2> {
        let single = |node_id: NodeId, change_type: ConfChangeType| ConfChangeSingle {
            change_type: change_type as i32,
            node_id,
        };
        let changes: Vec<ConfChangeSingle> = match self {
            Step::AddLearners(ids) => ids
                .iter()
                .map(|&id| single(id, ConfChangeType::AddLearnerNode))
                .collect(),
            Step::Promote { add, remove } => add
                .iter()
                .map(|&id| single(id, ConfChangeType::AddNode))
                .chain(remove.iter().map(|&id| single(id, ConfChangeType::RemoveNode)))
                .collect(),
            _ => return None,
        };
        Some(ConfChangeV2 {
            transition: ConfChangeTransition::Auto as i32,
            changes,
            context: Vec::new(),
        })
    }
}

/// The next step for the leader `me` of a group with configuration `conf` towards the voters
/// `target`, given the group's commit index and every replica's matched index. A replica counts
/// as caught up once it holds everything committed: under a steady produce load its log trails
/// the leader's last index by the entries in flight, as the voters' do, so demanding the last
/// index could postpone a promotion indefinitely, while a replica that was never heard from
/// (matched 0) never qualifies.
pub fn next_step(me: NodeId, conf: &GroupConf, target: &[NodeId], commit: u64, matched: &[(NodeId, u64)]) -> Step {
    if conf.pending || !conf.outgoing.is_empty() || target.is_empty() {
        return Step::Wait;
    }
    let target: BTreeSet<NodeId> = target.iter().copied().collect();
    let voters: BTreeSet<NodeId> = conf.voters.iter().copied().collect();
    let learners: BTreeSet<NodeId> = conf.learners.iter().copied().collect();
    let caught_up = |id: NodeId| matched.iter().any(|&(n, m)| n == id && m > 0 && m >= commit);
    // The most caught-up voter that stays, other than the leader.
    let successor = || {
        matched
            .iter()
            .filter(|&&(n, _)| n != me && voters.contains(&n) && target.contains(&n) && caught_up(n))
            .max_by_key(|&&(n, m)| (m, std::cmp::Reverse(n)))
            .map(|&(n, _)| n)
    };
    if voters == target && learners.is_empty() {
        if voters.contains(&me) {
            return Step::Done;
        }
        return successor().map_or(Step::Wait, Step::TransferLeader);
    }
    let missing: Vec<NodeId> = target
        .iter()
        .filter(|id| !voters.contains(id) && !learners.contains(id))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Step::AddLearners(missing);
    }
    let joining: Vec<NodeId> = learners.intersection(&target).copied().collect();
    if !joining.iter().all(|&id| caught_up(id)) {
        return Step::Wait;
    }
    let leaving: Vec<NodeId> = voters
        .difference(&target)
        .chain(learners.difference(&target))
        .copied()
        .collect();
    if leaving.contains(&me)
        && let Some(to) = successor()
    {
        return Step::TransferLeader(to);
    }
    Step::Promote {
        add: joining,
        remove: leaving,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(voters: &[NodeId], learners: &[NodeId]) -> GroupConf {
        GroupConf {
            voters: voters.to_vec(),
            outgoing: vec![],
            learners: learners.to_vec(),
            pending: false,
        }
    }

    const LAST: u64 = 1_000;

    fn all_caught_up(ids: &[NodeId]) -> Vec<(NodeId, u64)> {
        ids.iter().map(|&id| (id, LAST)).collect()
    }

    #[test]
    fn a_move_adds_learners_then_swaps_in_one_joint_change() {
        let progress = all_caught_up(&[1, 2, 3, 4]);
        assert_eq!(
            next_step(2, &conf(&[1, 2, 3], &[]), &[2, 3, 4], LAST, &progress[..3]),
            Step::AddLearners(vec![4])
        );
        assert_eq!(
            next_step(2, &conf(&[1, 2, 3], &[4]), &[2, 3, 4], LAST, &progress),
            Step::Promote {
                add: vec![4],
                remove: vec![1]
            }
        );
        assert_eq!(
            next_step(2, &conf(&[2, 3, 4], &[]), &[2, 3, 4], LAST, &progress),
            Step::Done
        );
    }

    #[test]
    fn learners_that_lag_are_waited_for() {
        let progress = vec![(1, LAST + 5), (2, LAST), (3, LAST), (4, LAST - 1)];
        assert_eq!(
            next_step(1, &conf(&[1, 2, 3], &[4]), &[2, 3, 4], LAST, &progress),
            Step::Wait
        );
        // Never heard from: not caught up even in a group that committed nothing yet.
        let silent = vec![(1, 1), (2, 0), (3, 0), (4, 0)];
        assert_eq!(
            next_step(1, &conf(&[1, 2, 3], &[4]), &[2, 3, 4], 0, &silent),
            Step::Wait
        );
        let progress = vec![(1, LAST + 5), (2, LAST), (3, LAST), (4, LAST)];
        assert_eq!(
            next_step(2, &conf(&[1, 2, 3], &[4]), &[2, 3, 4], LAST, &progress),
            Step::Promote {
                add: vec![4],
                remove: vec![1]
            }
        );
    }

    #[test]
    fn a_leaving_leader_hands_over_first_to_the_most_caught_up_staying_voter() {
        let progress = vec![(1, LAST), (2, LAST - 3), (3, LAST - 1), (4, LAST)];
        assert_eq!(
            next_step(1, &conf(&[1, 2, 3], &[4]), &[2, 3, 4], LAST - 3, &progress),
            Step::TransferLeader(3)
        );
    }

    #[test]
    fn a_leader_with_no_staying_voter_changes_first_and_hands_over_after() {
        // RF 1 moved from broker 1 to broker 2.
        let progress = all_caught_up(&[1, 2]);
        assert_eq!(
            next_step(1, &conf(&[1], &[2]), &[2], LAST, &progress),
            Step::Promote {
                add: vec![2],
                remove: vec![1]
            }
        );
        assert_eq!(
            next_step(1, &conf(&[2], &[]), &[2], LAST, &progress),
            Step::TransferLeader(2)
        );
        // Nobody to hand to yet: wait rather than leave the group leaderless.
        assert_eq!(
            next_step(1, &conf(&[2], &[]), &[2], LAST, &[(1, LAST), (2, 3)]),
            Step::Wait
        );
    }

    #[test]
    fn pending_or_joint_configurations_wait() {
        let progress = all_caught_up(&[1, 2, 3, 4]);
        let mut pending = conf(&[1, 2, 3], &[4]);
        pending.pending = true;
        assert_eq!(next_step(1, &pending, &[2, 3, 4], LAST, &progress), Step::Wait);
        let joint = GroupConf {
            voters: vec![2, 3, 4],
            outgoing: vec![1, 2, 3],
            learners: vec![],
            pending: false,
        };
        assert_eq!(next_step(2, &joint, &[2, 3, 4], LAST, &progress), Step::Wait);
        assert_eq!(next_step(2, &conf(&[1, 2, 3], &[]), &[], LAST, &progress), Step::Wait);
    }

    #[test]
    fn a_cancelled_move_removes_the_learners_it_added() {
        let progress = all_caught_up(&[1, 2, 3, 4]);
        assert_eq!(
            next_step(1, &conf(&[1, 2, 3], &[4]), &[1, 2, 3], LAST, &progress),
            Step::Promote {
                add: vec![],
                remove: vec![4]
            }
        );
    }

    #[test]
    fn steps_become_raft_conf_changes() {
        let cc = Step::Promote {
            add: vec![4],
            remove: vec![1],
        }
        .conf_change()
        .unwrap();
        let kinds: Vec<(i32, NodeId)> = cc.changes.iter().map(|c| (c.change_type, c.node_id)).collect();
        assert_eq!(
            kinds,
            vec![
                (ConfChangeType::AddNode as i32, 4),
                (ConfChangeType::RemoveNode as i32, 1)
            ]
        );
        assert_eq!(
            Step::AddLearners(vec![5]).conf_change().unwrap().changes[0].change_type,
            ConfChangeType::AddLearnerNode as i32
        );
        assert!(Step::Done.conf_change().is_none());
        assert!(Step::TransferLeader(2).conf_change().is_none());
    }
}
