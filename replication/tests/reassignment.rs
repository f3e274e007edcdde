//! Deterministic tests of partition reassignment through Raft configuration changes: brokers'
//! group drivers on an in-memory network, stepped by hand, the leader following
//! `reassignment::next_step` as the broker does. Checked: a replica that joins rebuilds the
//! whole log from the leader (learner first, then voter in one joint change), the leaving
//! replica stops being needed for commits, offsets never move, and the applied configuration
//! survives restarts — also a restart whose persisted commit index was written between a conf
//! change's commit and its application.

#![allow(clippy::unwrap_used)]

mod common;

use common::all_batches;
use common::kafka_batch;
use common::one_group::{G, MAX_TICKS, Net};
use skiff_replication::group_driver::NodeId;
use skiff_replication::reassignment::{Step, next_step};
use skiff_storage::LogConfig;

/// What the broker's reassignment loop does, on the test network.
trait Reassign {
    fn step_towards(&mut self, target: &[NodeId]) -> Step;
    fn reassign(&mut self, target: &[NodeId]) -> Vec<Step>;
    fn assert_same_log(&self, nodes: &[NodeId], batches: usize);
}

impl Reassign for Net {
    /// What the broker does on a leader: one reassignment step; returns it.
    fn step_towards(&mut self, target: &[NodeId]) -> Step {
        let leader = self.elect();
        let d = self.drivers.get_mut(&leader).unwrap();
        let conf = d.conf(G).unwrap();
        let (_, matched) = d.progress(G).unwrap();
        let step = next_step(leader, &conf, target, d.commit_index(G).unwrap(), &matched);
        match &step {
            Step::TransferLeader(to) => d.transfer_leader(G, *to).unwrap(),
            s => {
                if let Some(cc) = s.conf_change() {
                    d.propose_conf_change(G, cc).unwrap();
                }
            }
        }
        self.settle();
        step
    }

    /// Steps until the leader reports `Done`; returns every step taken.
    fn reassign(&mut self, target: &[NodeId]) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..MAX_TICKS {
            let step = self.step_towards(target);
            if step == Step::Done {
                return steps;
            }
            if step != Step::Wait {
                steps.push(step);
            }
            self.tick();
        }
        panic!("reassignment to {target:?} did not finish: {steps:?}");
    }

    fn assert_same_log(&self, nodes: &[NodeId], batches: usize) {
        let want: Vec<String> = (0..batches).map(|i| format!("batch-{i}")).collect();
        let reference = all_batches(self.drivers[&nodes[0]].store(G).unwrap());
        for &n in nodes {
            assert_eq!(self.tags(n), want, "broker {n}");
            assert_eq!(
                all_batches(self.drivers[&n].store(G).unwrap()),
                reference,
                "broker {n}: same offsets"
            );
            assert_eq!(
                self.drivers[&n].store(G).unwrap().high_watermark(),
                2 * batches as u64,
                "broker {n}"
            );
        }
    }
}

#[test]
fn a_replica_moves_to_a_new_broker_through_a_learner_and_one_joint_change() {
    let mut net = Net::new(&[1, 2, 3]);
    assert_eq!(net.elect(), 1);
    for i in 0..5 {
        net.propose(i);
    }
    net.start(4);
    let steps = net.reassign(&[2, 3, 4]);
    // The leader leaves: learner first, hand-over, then the swap on the new leader.
    assert_eq!(steps[0], Step::AddLearners(vec![4]));
    assert!(matches!(steps[1], Step::TransferLeader(2 | 3)), "{steps:?}");
    assert_eq!(
        steps[2],
        Step::Promote {
            add: vec![4],
            remove: vec![1]
        }
    );
    assert_eq!(steps.len(), 3, "{steps:?}");
    let leader = net.elect();
    assert_ne!(leader, 1);
    let conf = net.drivers[&leader].conf(G).unwrap();
    assert_eq!(
        (conf.voters, conf.outgoing, conf.learners),
        (vec![2, 3, 4], vec![], vec![])
    );
    for n in [2, 3, 4] {
        assert_eq!(
            net.drivers[&n].conf(G).unwrap().voters,
            vec![2, 3, 4],
            "broker {n} applied it"
        );
    }
    net.assert_same_log(&[2, 3, 4], 5);

    // The removed broker is no longer needed: with it gone and one more down, 2 of 3 commit.
    net.kill(1);
    net.propose(5);
    net.assert_same_log(&[2, 3, 4], 6);
    let down = if leader == 2 { 3 } else { 2 };
    net.kill(down);
    net.propose(6);
    let up: Vec<NodeId> = [2, 3, 4].into_iter().filter(|&n| n != down).collect();
    net.assert_same_log(&up, 7);

    // Restarted replicas come back with the applied configuration, including the new one.
    net.start(down);
    net.kill(4);
    net.start(4);
    net.tick();
    for n in [2, 3, 4] {
        assert_eq!(
            net.drivers[&n].conf(G).unwrap().voters,
            vec![2, 3, 4],
            "broker {n} after restart"
        );
    }
    net.propose(7);
    net.assert_same_log(&[2, 3, 4], 8);
}

#[test]
fn a_single_replica_moves_and_hands_leadership_over_after_the_change() {
    let mut net = Net::new(&[1]);
    net.elect();
    for i in 0..3 {
        net.propose(i);
    }
    net.start(2);
    let steps = net.reassign(&[2]);
    assert_eq!(
        steps,
        vec![
            Step::AddLearners(vec![2]),
            Step::Promote {
                add: vec![2],
                remove: vec![1]
            },
            Step::TransferLeader(2),
        ]
    );
    net.kill(1);
    net.propose(3);
    net.assert_same_log(&[2], 4);
}

#[test]
fn a_commit_index_is_never_written_past_a_conf_change_that_is_not_applied() {
    use raft::prelude::{ConfState, Entry, EntryType};
    use skiff_replication::raft_log::LogStorage;
    let tmp = tempfile::tempdir().unwrap();
    let initial = ConfState::from((vec![1, 2, 3], vec![]));
    let store = LogStorage::open(tmp.path(), LogConfig::default(), initial.clone()).unwrap();
    let data = |index| Entry {
        index,
        term: 1,
        entry_type: EntryType::EntryNormal as i32,
        data: kafka_batch(1, b"x"),
        ..Default::default()
    };
    let cc = Step::AddLearners(vec![4]).conf_change().unwrap();
    let conf_entry = Entry {
        index: 3,
        term: 1,
        entry_type: EntryType::EntryConfChangeV2 as i32,
        data: prost_011::Message::encode_to_vec(&cc),
        ..Default::default()
    };
    store.append(&[data(1), data(2), conf_entry, data(4)], 0).unwrap();
    // Committed through index 4, but the conf change at 3 is not applied yet (a crash here
    // must restart with it unapplied and below the commit index).
    store.note_commit(4);
    assert!(store.persist_commit().unwrap());
    assert_eq!(store.persisted_commit(), 2);
    drop(store);
    let store = LogStorage::open(tmp.path(), LogConfig::default(), initial.clone()).unwrap();
    assert_eq!((store.hard_state().commit, store.conf_state()), (2, initial.clone()));

    // Once applied, the whole commit index is written with the new configuration.
    store.note_commit(4);
    let applied = ConfState::from((vec![1, 2, 3], vec![4]));
    store.set_conf_state(applied.clone(), 3).unwrap();
    assert_eq!(store.persisted_commit(), 4);
    drop(store);
    let store = LogStorage::open(tmp.path(), LogConfig::default(), initial).unwrap();
    assert_eq!((store.hard_state().commit, store.conf_state()), (4, applied));
}
