//! Deterministic tests of a 3-replica partition Raft group over `LogStorage`, stepped by hand
//! (no wall clock, no threads): elections are started with `campaign`, commits travel on explicit
//! heartbeats, faults are isolations in the in-memory network. Each test names the section of the
//! Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm") it checks.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, all_batches, kafka_batch, raft_entries, tag_of};
use raft::StateRole;

/// Every replica's log is well formed: batches tile the Kafka offsets densely from 0, each batch's
/// leader epoch is its Raft entry's term, every offset maps to a data entry (never a non-data
/// one) and back.
fn assert_replica_consistent(c: &Cluster, id: u64) {
    let store = &c.node(id).store;
    let entries = raft_entries(store);
    let data: Vec<_> = entries.iter().filter(|e| e.2).collect();
    let batches = all_batches(store);
    assert_eq!(batches.len(), data.len(), "node {id}: one batch per data entry");
    let mut next = 0u64;
    for ((h, _), &&(index, term, _)) in batches.iter().zip(&data) {
        assert_eq!(h.base_offset as u64, next, "node {id}: offsets dense");
        assert_eq!(
            h.partition_leader_epoch as u64, term,
            "node {id}: leader epoch = raft term"
        );
        let range = store.offsets_of_index(index).unwrap();
        assert_eq!(range, next..h.last_offset() as u64 + 1);
        for o in range.clone() {
            assert_eq!(store.index_of_offset(o), Some(index));
        }
        next = range.end;
    }
    assert_eq!(store.log_end_offset(), next);
    for &(index, _, is_data) in &entries {
        if !is_data {
            assert!(
                store.offsets_of_index(index).unwrap().is_empty(),
                "node {id}: non-data entry {index} has offsets"
            );
            assert!(store.non_data_indexes().contains(&index));
        }
    }
}

/// The high watermark is the Kafka offset after the last committed data entry.
fn expected_high_watermark(c: &Cluster, id: u64) -> u64 {
    let commit = c.node(id).raw.raft.raft_log.committed;
    raft_entries(&c.node(id).store)
        .iter()
        .filter(|e| e.2 && e.0 <= commit)
        .map(|e| c.node(id).store.offsets_of_index(e.0).unwrap().end)
        .max()
        .unwrap_or(0)
}

fn tags(c: &Cluster, id: u64) -> Vec<Vec<u8>> {
    all_batches(&c.node(id).store)
        .iter()
        .map(|(_, b)| tag_of(b).to_vec())
        .collect()
}

/// §5.2 leader election: a candidate that wins a majority becomes the only leader; its first act
/// (the empty entry of its term) is a non-data entry that takes no Kafka offset.
#[test]
fn leader_is_elected_and_its_empty_entry_takes_no_offset() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    assert_eq!(c.leader(), Some(1));
    for id in [2, 3] {
        assert_eq!(c.node(id).raw.raft.state, StateRole::Follower);
        assert_eq!(c.node(id).raw.raft.leader_id, 1);
    }
    c.heartbeat(1);
    for id in [1, 2, 3] {
        let entries = raft_entries(&c.node(id).store);
        assert_eq!(entries, vec![(1, c.term(1), false)], "node {id}");
        assert_eq!(c.node(id).store.log_end_offset(), 0);
        assert_eq!(c.node(id).store.high_watermark(), 0);
        assert_replica_consistent(&c, id);
    }
}

/// §5.3 log replication and the Log Matching Property; the term is the Kafka leader epoch; the
/// high watermark follows the commit index (§5.3: "committed once replicated on a majority").
#[test]
fn committed_batches_land_at_the_same_offsets_on_every_replica() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    let counts = [3, 1, 5, 2, 4];
    for (i, &n) in counts.iter().enumerate() {
        c.propose(1, kafka_batch(n, format!("batch-{i}").as_bytes()));
    }
    c.heartbeat(1);
    let total: u64 = counts.iter().map(|&n| n as u64).sum();
    let reference = all_batches(&c.node(1).store);
    assert_eq!(reference.len(), counts.len());
    for id in [1, 2, 3] {
        assert_replica_consistent(&c, id);
        assert_eq!(
            all_batches(&c.node(id).store),
            reference,
            "node {id}: byte-identical log"
        );
        assert_eq!(c.node(id).store.high_watermark(), total, "node {id}");
        assert_eq!(c.node(id).store.high_watermark(), expected_high_watermark(&c, id));
        for (h, _) in all_batches(&c.node(id).store) {
            assert_eq!(h.partition_leader_epoch as u64, c.term(1));
        }
    }
    // Every data entry was applied exactly once, in order, on every replica.
    for id in [1, 2, 3] {
        let applied: Vec<u64> = c.node(id).applied.iter().filter(|a| a.1).map(|a| a.0).collect();
        assert_eq!(applied, vec![2, 3, 4, 5, 6], "node {id}");
    }
}

/// §5.3 / Figure 2 ("commitIndex"): a batch only on the leader (followers cut off) raises its log
/// end but not the high watermark; consumers never see it (Redpanda #14794).
#[test]
fn high_watermark_waits_for_a_majority() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, kafka_batch(2, b"committed"));
    c.heartbeat(1);
    assert_eq!(c.node(1).store.high_watermark(), 2);
    c.isolate(2);
    c.isolate(3);
    c.propose(1, kafka_batch(3, b"only-on-leader"));
    let leader = &c.node(1).store;
    assert_eq!(leader.log_end_offset(), 5);
    assert_eq!(leader.high_watermark(), 2);
    assert_eq!(
        leader.read(0, 1 << 20, leader.high_watermark()).unwrap().len(),
        all_batches(leader)[0].1.len()
    );
    // One follower back is a majority: the batch commits.
    c.isolated.remove(&2);
    c.heartbeat(1);
    assert_eq!(c.node(1).store.high_watermark(), 5);
    assert_eq!(c.node(1).store.high_watermark(), expected_high_watermark(&c, 1));
}

/// §5.3 (a follower's conflicting entries are deleted and replaced by the leader's), §5.4.1 (the
/// election restriction keeps the committed prefix), §5.4.2 (the old leader's uncommitted
/// suffix is never committed): a partitioned old leader converges to the new leader's log.
#[test]
fn partitioned_old_leader_truncates_its_uncommitted_suffix() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, kafka_batch(2, b"a"));
    c.propose(1, kafka_batch(3, b"b"));
    c.heartbeat(1);
    let old_term = c.term(1);
    assert_eq!(c.node(2).store.high_watermark(), 5);

    // The old leader, cut off, keeps accepting batches nobody else sees.
    c.isolate(1);
    for i in 0..3 {
        c.propose(1, kafka_batch(4, format!("lost-{i}").as_bytes()));
    }
    assert_eq!(c.node(1).store.log_end_offset(), 17);
    assert_eq!(c.node(1).store.high_watermark(), 5);

    // The majority elects node 2 (§5.4.1: its log is as up to date as node 3's) and moves on.
    c.campaign(2);
    assert_eq!(c.node(2).raw.raft.state, StateRole::Leader);
    let new_term = c.term(2);
    assert!(new_term > old_term);
    c.propose(2, kafka_batch(1, b"c"));
    c.propose(2, kafka_batch(2, b"d"));
    c.heartbeat(2);
    assert_eq!(c.node(2).store.high_watermark(), 8);

    // Heal: the old leader steps down and its suffix [5, 17) is replaced by the new leader's.
    c.heal();
    c.heartbeat(2);
    c.heartbeat(2);
    assert_eq!(c.leader(), Some(2));
    assert_eq!(c.node(1).raw.raft.state, StateRole::Follower);
    let reference = all_batches(&c.node(2).store);
    let expected_tags: Vec<Vec<u8>> = [&b"a"[..], b"b", b"c", b"d"].iter().map(|t| t.to_vec()).collect();
    for id in [1, 2, 3] {
        assert_replica_consistent(&c, id);
        assert_eq!(all_batches(&c.node(id).store), reference, "node {id}");
        assert_eq!(tags(&c, id), expected_tags, "node {id}");
        assert_eq!(c.node(id).store.high_watermark(), 8, "node {id}");
        assert_eq!(
            raft_entries(&c.node(id).store),
            raft_entries(&c.node(2).store),
            "node {id}"
        );
        let epochs: Vec<u64> = reference.iter().map(|(h, _)| h.partition_leader_epoch as u64).collect();
        assert_eq!(epochs, vec![old_term, old_term, new_term, new_term]);
        // The applied data entries are exactly the surviving ones: nothing lost was applied.
        let applied = c.node(id).applied.iter().filter(|a| a.1).count();
        assert_eq!(applied, 4, "node {id}");
    }
    // Both leaders' empty entries are in the Raft log and none is a Kafka offset.
    assert_eq!(c.node(1).store.non_data_indexes().len(), 2);
}

/// Durability across a crash-restart (Figure 2, "persistent state on all servers"): a replica
/// reopened from its directory rebuilds the same Raft log, offsets and high watermark, and the
/// group keeps going with it.
#[test]
fn replica_rebuilds_its_raft_log_after_a_restart() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.propose(1, kafka_batch(2, b"a"));
    c.heartbeat(1);
    c.campaign(2);
    c.propose(2, kafka_batch(3, b"b"));
    c.heartbeat(2);
    let before = raft_entries(&c.node(3).store);
    let batches = all_batches(&c.node(3).store);
    let hw = c.node(3).store.high_watermark();
    assert_eq!(hw, 5);

    c.restart(3);
    assert_eq!(raft_entries(&c.node(3).store), before);
    assert_eq!(all_batches(&c.node(3).store), batches);
    assert_eq!(c.node(3).store.high_watermark(), hw);
    assert_replica_consistent(&c, 3);

    c.propose(2, kafka_batch(1, b"c"));
    c.heartbeat(2);
    assert_eq!(tags(&c, 3), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(c.node(3).store.high_watermark(), 6);

    // The restarted node can lead: §5.4.1 lets it win since its log is up to date.
    c.campaign(3);
    assert_eq!(c.leader(), Some(3));
    c.propose(3, kafka_batch(2, b"d"));
    c.heartbeat(3);
    for id in [1, 2, 3] {
        assert_replica_consistent(&c, id);
        assert_eq!(c.node(id).store.high_watermark(), 8);
    }
}

/// §5.4.1 election restriction: a replica missing a committed batch cannot win an election, so
/// no committed batch is ever lost; one that has it can.
#[test]
fn a_replica_without_a_committed_batch_cannot_become_leader() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.campaign(1);
    c.isolate(2);
    c.propose(1, kafka_batch(2, b"committed-by-1-and-3"));
    c.heartbeat(1);
    assert_eq!(c.node(1).store.high_watermark(), 2);
    assert_eq!(c.node(2).store.log_end_offset(), 0);

    c.heal();
    c.isolate(1);
    c.campaign(2);
    assert_ne!(
        c.node(2).raw.raft.state,
        StateRole::Leader,
        "node 3 must refuse its vote"
    );
    c.campaign(3);
    assert_eq!(c.leader(), Some(3));
    c.heartbeat(3);
    c.heal();
    c.heartbeat(3);
    c.heartbeat(3);
    for id in [1, 2, 3] {
        assert_replica_consistent(&c, id);
        assert_eq!(tags(&c, id), vec![b"committed-by-1-and-3".to_vec()], "node {id}");
        assert_eq!(c.node(id).store.high_watermark(), 2, "node {id}");
    }
}

/// §5.3 follower truncation and §5.4.2 (an entry of an old term that reached only a minority is
/// never committed): in a 5-replica group, a batch that reached the leader and one follower is
/// replaced on both once the other three elect a leader and move on.
#[test]
fn minority_follower_truncates_an_uncommitted_batch() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5]);
    c.campaign(1);
    c.propose(1, kafka_batch(1, b"x"));
    c.heartbeat(1);
    for id in [3, 4, 5] {
        c.isolate(id);
    }
    c.propose(1, kafka_batch(3, b"minority"));
    c.heartbeat(1);
    assert_eq!(c.node(2).store.log_end_offset(), 4, "the follower has the batch");
    assert_eq!(c.node(2).store.high_watermark(), 1, "but it is not committed");

    c.heal();
    c.isolate(1);
    c.isolate(2);
    c.campaign(3);
    assert_eq!(c.leader(), Some(3));
    c.propose(3, kafka_batch(2, b"y"));
    c.heartbeat(3);
    c.heal();
    c.heartbeat(3);
    c.heartbeat(3);
    assert_eq!(c.leader(), Some(3));
    let reference = raft_entries(&c.node(3).store);
    for id in [1, 2, 3, 4, 5] {
        assert_replica_consistent(&c, id);
        assert_eq!(tags(&c, id), vec![b"x".to_vec(), b"y".to_vec()], "node {id}");
        assert_eq!(raft_entries(&c.node(id).store), reference, "node {id}");
        assert_eq!(c.node(id).store.high_watermark(), 3, "node {id}");
        let applied_data = c.node(id).applied.iter().filter(|a| a.1).count();
        assert_eq!(applied_data, 2, "node {id}: the minority batch was never applied");
    }
}
