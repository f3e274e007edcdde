//! Deterministic tests of log compaction through Raft snapshots: the partition log is the Raft
//! log, so DeleteRecords (a command replicated in the log) and retention move its start, and a
//! replica that falls behind that start — down while records were deleted, or back with an empty
//! data dir — installs the leader's snapshot and starts its log over where the leader's next entry
//! starts, then catches up from the log. Offsets never move and every replica serves the same
//! records above the log start.

#![allow(clippy::unwrap_used)]

mod common;

use common::all_batches;
use common::one_group::{G, Net};
use skiff_replication::group_driver::NodeId;
use skiff_replication::log_command::LogCommand;

fn log_range(net: &Net, node: NodeId) -> (u64, u64) {
    net.drivers[&node]
        .store(G)
        .unwrap()
        .with_log(|log| (log.log_start_offset(), log.log_end_offset()))
}

/// The batches of `node` at or above `from` (offset, tag).
fn batches_from(net: &Net, node: NodeId, from: u64) -> Vec<(i64, Vec<u8>)> {
    all_batches(net.drivers[&node].store(G).unwrap())
        .into_iter()
        .filter(|(h, _)| h.last_offset() as u64 >= from)
        .map(|(h, b)| (h.base_offset, b))
        .collect()
}

fn delete_records(net: &mut Net, before: u64) {
    let leader = net.elect();
    net.drivers
        .get_mut(&leader)
        .unwrap()
        .propose_command(G, LogCommand::DeleteRecords { before })
        .unwrap();
    net.settle();
    net.tick();
}

#[test]
fn deleted_records_go_on_every_replica_and_a_replica_behind_them_installs_a_snapshot() {
    let mut net = Net::new(&[1, 2, 3]);
    assert_eq!(net.elect(), 1);
    for i in 0..10 {
        net.propose(i);
    }
    net.kill(3);
    for i in 10..20 {
        net.propose(i);
    }
    // Inside batch 15 (offsets 30, 31): that batch stays, whole, the log starting at 31.
    delete_records(&mut net, 31);
    for n in [1, 2] {
        assert_eq!(log_range(&net, n), (31, 40), "broker {n}");
        let (index, _, offset) = net.drivers[&n].store(G).unwrap().snapshot_point();
        assert_eq!(
            offset, 30,
            "broker {n}: the entry after the snapshot starts at batch 15"
        );
        assert!(index >= 15, "broker {n}: compacted through the entries below it");
    }
    // Broker 3 stopped at offset 20, below the leader's first entry: it needs the snapshot.
    net.start(3);
    for _ in 0..5 {
        net.tick();
    }
    net.propose(20);
    for n in [1, 2, 3] {
        assert_eq!(log_range(&net, n), (31, 42), "broker {n}");
        assert_eq!(
            batches_from(&net, n, 31),
            batches_from(&net, 1, 31),
            "broker {n}: same batches"
        );
    }
    assert_eq!(
        batches_from(&net, 3, 0).first().map(|b| b.0),
        Some(30),
        "nothing below the snapshot"
    );

    // Everyone reopens from its compacted log; a former follower leads and serves the same.
    for n in [1, 2, 3] {
        net.kill(n);
    }
    for n in [1, 2, 3] {
        net.start(n);
    }
    net.propose(21);
    let reference = batches_from(&net, 1, 31);
    for n in [1, 2, 3] {
        assert_eq!(log_range(&net, n), (31, 44), "broker {n} after restart");
        assert_eq!(batches_from(&net, n, 31), reference, "broker {n}");
    }
}

#[test]
fn a_replica_with_an_emptied_data_dir_rebuilds_from_the_snapshot_and_the_log() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect();
    for i in 0..8 {
        net.propose(i);
    }
    // Retention on the leader alone (each replica applies it on its own, as in Kafka).
    let leader = net.elect();
    let start = net.drivers.get_mut(&leader).unwrap().advance_log_start(G, 6).unwrap();
    assert_eq!(start, 6);
    assert_eq!(log_range(&net, 2), (0, 16), "a follower keeps its log");

    net.kill(3);
    std::fs::remove_dir_all(Net::dir(&net.root, 3)).unwrap();
    net.start(3);
    for _ in 0..5 {
        net.tick();
    }
    net.propose(8);
    assert_eq!(log_range(&net, 3), (6, 18));
    assert_eq!(batches_from(&net, 3, 6), batches_from(&net, leader, 6));
    // The rebuilt replica can lead: kill the others in turn (a majority stays).
    net.kill(leader);
    net.propose(9);
    assert_eq!(batches_from(&net, 3, 6), batches_from(&net, 2, 6));
    assert_eq!(log_range(&net, 3), (6, 20));
}

#[test]
fn the_log_start_never_passes_what_is_committed() {
    let mut net = Net::new(&[1, 2, 3]);
    net.elect();
    for i in 0..4 {
        net.propose(i);
    }
    let leader = net.elect();
    // Far beyond the log end: the start stops at the high watermark.
    let start = net
        .drivers
        .get_mut(&leader)
        .unwrap()
        .advance_log_start(G, 1_000)
        .unwrap();
    assert_eq!(start, 8);
    assert_eq!(log_range(&net, leader), (8, 8));
    net.propose(4);
    assert_eq!(log_range(&net, leader), (8, 10));
    assert_eq!(batches_from(&net, 2, 8), batches_from(&net, leader, 8));
}
