//! Deterministic tests of `GroupDriver`: three "brokers" each host a replica of the same
//! `GROUPS` partitions, connected by an in-memory network that moves `Output::messages` to
//! `step` calls (and drops traffic of isolated or dead brokers). Everything is stepped by hand:
//! no clock, no threads. Election timeouts are fixed per (broker, group) so that who campaigns
//! first, and therefore every outcome, is the same on every run. Sections cited are from the Raft
//! paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm").

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::wire::Wire;
use common::{all_batches, kafka_batch, tag_of};
use raft::Storage as _;
use skiff_replication::group_driver::{
    Committed, DriverConfig, DriverError, ELECTION_TICK_DEFAULT, GroupDriver, GroupId, NodeId, Output, Proposal,
    ReplicaSpec, remote_proposal, tracing_logger,
};
use skiff_storage::LogConfig;

const NODES: [NodeId; 3] = [1, 2, 3];
const GROUPS: u64 = 50;
/// Bound on ticks for any election in these tests (fixed timeouts are at most 16 ticks, random
/// ones below 20, and a split vote costs one more timeout).
const MAX_ELECTION_TICKS: usize = 100;

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Group `g`'s replica on broker `n` times out after 10, 13 or 16 ticks, rotating with `g`: every
/// group has a single first candidate, and leadership spreads evenly over the brokers.
/// Without `fixed`, raft-rs's randomized timeouts (production behaviour).
/// Every group the test brokers host.
fn groups() -> impl Iterator<Item = GroupId> {
    (0..GROUPS).map(GroupId)
}

fn spec(root: &Path, node: NodeId, group: GroupId, fixed: bool) -> ReplicaSpec {
    ReplicaSpec {
        dir: root.join(format!("broker-{node}")).join(format!("group-{group}")),
        log_config: LogConfig::default(),
        voters: NODES.to_vec(),
        election_timeout: fixed.then_some(ELECTION_TICK_DEFAULT + 3 * ((group.0 + node) % 3) as usize),
    }
}

/// A group whose only voter is broker 1 (its own vote is a majority).
fn single_replica_spec(root: &Path) -> ReplicaSpec {
    ReplicaSpec {
        voters: vec![1],
        ..spec(root, 1, GroupId(0), true)
    }
}

/// 150 replicas write many small checkpoint files: on a RAM-backed directory when there is one,
/// since these tests count fsyncs rather than wait for them.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("skiff-group-driver").tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

struct Net {
    root: PathBuf,
    drivers: BTreeMap<NodeId, GroupDriver>,
    wire: Wire,
    /// Everything reported per broker and group, across restarts.
    /// Committed entries by index: a restarted replica reports those above its persisted commit
    /// index again, which must be identical.
    committed: BTreeMap<(NodeId, GroupId), BTreeMap<u64, Committed>>,
    re_reported: usize,
    high_watermarks: BTreeMap<(NodeId, GroupId), u64>,
    leaders: BTreeMap<(NodeId, GroupId), (Option<NodeId>, u64)>,
    /// Every pass's (readies, log fsyncs).
    passes: Vec<(usize, usize)>,
    fixed_timeouts: bool,
    _tmp: tempfile::TempDir,
}

impl Net {
    fn new() -> Self {
        Self::with_timeouts(true)
    }

    fn with_timeouts(fixed_timeouts: bool) -> Self {
        let tmp = scratch_dir();
        let mut net = Self {
            root: tmp.path().to_path_buf(),
            drivers: BTreeMap::new(),
            wire: Wire::default(),
            committed: BTreeMap::new(),
            re_reported: 0,
            high_watermarks: BTreeMap::new(),
            leaders: BTreeMap::new(),
            passes: Vec::new(),
            fixed_timeouts,
            _tmp: tmp,
        };
        for n in NODES {
            net.start(n);
        }
        net
    }

    /// Starts (or restarts) a broker: opens its replica of every group from its directories.
    fn start(&mut self, node: NodeId) {
        let mut d = GroupDriver::new(DriverConfig::new(node), logger());
        for g in groups() {
            d.open_group(g, &spec(&self.root, node, g, self.fixed_timeouts))
                .unwrap();
        }
        self.drivers.insert(node, d);
    }

    /// A crash: the broker's memory is gone, its directories stay.
    fn kill(&mut self, node: NodeId) {
        self.drivers.remove(&node);
        self.wire.forget(node);
    }

    fn driver(&self, node: NodeId) -> &GroupDriver {
        &self.drivers[&node]
    }

    fn record(&mut self, node: NodeId, out: Output) {
        assert!(out.failed.is_empty(), "broker {node}: {:?}", out.failed);
        self.passes.push((out.readies, out.log_syncs));
        self.wire.send(node, out.messages);
        for c in out.committed {
            let seen = self.committed.entry((node, c.group)).or_default();
            if let Some(before) = seen.get(&c.index) {
                assert_eq!(before, &c, "broker {node}: a re-reported entry differs");
                self.re_reported += 1;
            }
            seen.insert(c.index, c);
        }
        for (g, hw) in out.high_watermarks {
            self.high_watermarks.insert((node, g), hw);
        }
        for l in out.leader_changes {
            self.leaders.insert((node, l.group), (l.leader, l.term));
        }
    }

    /// One `process_ready` pass on one broker.
    fn pass(&mut self, node: NodeId) -> (usize, usize) {
        let out = self.drivers.get_mut(&node).unwrap().process_ready(0);
        let counts = (out.readies, out.log_syncs);
        self.record(node, out);
        counts
    }

    /// Delivers every message in flight; returns how many were delivered.
    fn deliver(&mut self) -> usize {
        self.wire.deliver(&mut self.drivers)
    }

    /// Passes and deliveries until nothing moves.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let nodes: Vec<NodeId> = self.drivers.keys().copied().collect();
            let mut busy = 0;
            for n in nodes {
                busy += self.pass(n).0;
            }
            busy += self.deliver();
            if busy == 0 && self.wire.in_flight.is_empty() {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// One tick of every live broker's single timer, then settle.
    fn tick(&mut self) {
        for d in self.drivers.values_mut() {
            d.tick();
        }
        self.settle();
    }

    /// The leader of `g` if exactly one live, reachable broker leads it and every live,
    /// reachable replica agrees.
    fn leader(&self, g: GroupId) -> Option<NodeId> {
        let live: Vec<NodeId> = self
            .drivers
            .keys()
            .copied()
            .filter(|n| !self.wire.isolated.contains(n))
            .collect();
        let leaders: Vec<NodeId> = live.iter().copied().filter(|&n| self.driver(n).is_leader(g)).collect();
        let [leader] = leaders[..] else { return None };
        live.iter()
            .all(|&n| self.driver(n).leader(g) == Some(leader))
            .then_some(leader)
    }

    /// Ticks until every group has a leader; returns the ticks it took.
    fn elect_all(&mut self) -> usize {
        for ticks in 0..MAX_ELECTION_TICKS {
            if groups().all(|g| self.leader(g).is_some()) {
                return ticks;
            }
            self.tick();
        }
        panic!("not every group elected a leader in {MAX_ELECTION_TICKS} ticks");
    }

    /// Proposes on the leader of `g`.
    fn propose(&mut self, g: GroupId, batch: Vec<u8>) -> (NodeId, Proposal) {
        let leader = self.leader(g).unwrap();
        let p = self.drivers.get_mut(&leader).unwrap().propose(g, batch).unwrap();
        (leader, p)
    }
}

fn tag(g: GroupId, i: usize) -> Vec<u8> {
    format!("group-{g}-batch-{i}").into_bytes()
}

fn records(i: usize) -> i32 {
    (i % 4 + 1) as i32
}

/// Every live replica of every group holds the same batches (tags `0..batches` in order), at
/// the same dense offsets; its high watermark covers them all and equals what the driver
/// reported, both as a high watermark and as the end of the committed entries it reported.
fn assert_converged(net: &Net, batches: usize) {
    let total: u64 = (0..batches).map(|i| records(i) as u64).sum();
    for g in groups() {
        let reference = all_batches(net.driver(net.leader(g).unwrap()).store(g).unwrap());
        let tags: Vec<Vec<u8>> = reference.iter().map(|(_, b)| tag_of(b).to_vec()).collect();
        assert_eq!(tags, (0..batches).map(|i| tag(g, i)).collect::<Vec<_>>(), "group {g}");
        for (&n, d) in &net.drivers {
            let store = d.store(g).unwrap();
            assert_eq!(all_batches(store), reference, "group {g} broker {n}: identical log");
            assert_eq!(store.high_watermark(), total, "group {g} broker {n}");
            assert_eq!(net.high_watermarks.get(&(n, g)), Some(&total), "group {g} broker {n}");
            let committed = &net.committed[&(n, g)];
            let mut next = 0;
            for (c, (h, _)) in committed.values().zip(&reference) {
                assert_eq!(c.offsets, next..h.last_offset() as u64 + 1, "group {g} broker {n}");
                assert_eq!(c.term, h.partition_leader_epoch as u64, "group {g} broker {n}");
                next = c.offsets.end;
            }
            assert_eq!(
                committed.len(),
                batches,
                "group {g} broker {n}: each batch reported once"
            );
            assert_eq!(next, total, "group {g} broker {n}: committed offsets = high watermark");
        }
    }
}

/// §5.2 leader election driven only by the broker-level tick: one timer for all groups, yet every
/// group elects exactly one leader, every replica learns it, and the driver reports it.
#[test]
fn every_group_elects_a_leader_with_one_tick_for_all_groups() {
    let mut net = Net::new();
    let ticks = net.elect_all();
    assert!(ticks <= 2 * ELECTION_TICK_DEFAULT, "took {ticks} ticks");
    let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
    for g in groups() {
        let leader = net.leader(g).unwrap();
        *led.entry(leader).or_default() += 1;
        let term = net.driver(leader).term(g).unwrap();
        for n in NODES {
            assert_eq!(net.leaders[&(n, g)], (Some(leader), term), "group {g} broker {n}");
        }
        // The first candidate is the replica with the shortest timeout.
        assert_eq!((g.0 + leader) % 3, 0, "group {g}");
    }
    assert_eq!(led.len(), 3, "leadership is spread over the brokers: {led:?}");
}

/// §5.2 with raft-rs's randomized election timeouts (the default): split votes may happen, but
/// every group still converges on one leader within a few election timeouts.
#[test]
fn every_group_elects_a_leader_with_randomized_timeouts() {
    let mut net = Net::with_timeouts(false);
    net.elect_all();
    for g in groups() {
        let leader = net.leader(g).unwrap();
        let term = net.driver(leader).term(g).unwrap();
        for n in NODES {
            assert_eq!(net.leaders[&(n, g)], (Some(leader), term), "group {g} broker {n}");
        }
    }
}

/// §5.3 log replication through the driver, with group commit across groups: the leader's pass
/// writes every group's proposals and fsyncs each partition log once; every replica ends with
/// identical batches at identical offsets, and the high watermarks match the committed offsets.
#[test]
fn proposals_on_many_groups_commit_with_one_fsync_per_log_per_pass() {
    let mut net = Net::new();
    net.elect_all();
    net.tick();
    const BATCHES: usize = 3;
    let mut proposals: BTreeMap<GroupId, Vec<Proposal>> = BTreeMap::new();
    let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
    for g in groups() {
        for i in 0..BATCHES {
            let (leader, p) = net.propose(g, kafka_batch(records(i), &tag(g, i)));
            proposals.entry(g).or_default().push(p);
            if i == 0 {
                *led.entry(leader).or_default() += 1;
            }
        }
    }
    // A follower refuses proposals and names the leader (NOT_LEADER_OR_FOLLOWER).
    let leader0 = net.leader(GroupId(0)).unwrap();
    let follower0 = NODES.iter().copied().find(|&n| n != leader0).unwrap();
    let err = net
        .drivers
        .get_mut(&follower0)
        .unwrap()
        .propose(GroupId(0), kafka_batch(1, b"x"))
        .unwrap_err();
    assert!(
        matches!(err, DriverError::NotLeader { group: GroupId(0), leader: Some(l) } if l == leader0),
        "{err:?}"
    );

    // One pass per leader: every group it leads had 3 entries, each log is fsync'd once.
    for (&n, &count) in &led {
        let syncs_before = net.driver(n).stats().log_syncs;
        let state_writes_before = net.driver(n).stats().state_writes;
        let (readies, syncs) = net.pass(n);
        assert_eq!(
            net.driver(n).stats().state_writes,
            state_writes_before,
            "no term or vote change"
        );
        assert_eq!(readies, count, "broker {n}");
        assert_eq!(syncs, count, "broker {n}: one fsync per touched log, not per entry");
        assert_eq!(net.driver(n).stats().log_syncs - syncs_before, count as u64);
    }
    net.settle();
    net.tick();
    // Follower passes carried many groups' appends too: never more than one fsync per group.
    assert!(net.passes.iter().all(|&(readies, syncs)| syncs <= readies));
    assert!(net.passes.iter().any(|&(readies, syncs)| syncs > 1 && readies >= syncs));

    assert_converged(&net, BATCHES);
    // The commit index is volatile (Figure 2): passes kept it in memory, the high watermark
    // checkpoint persists it, once.
    for n in NODES {
        let d = net.drivers.get_mut(&n).unwrap();
        assert!(groups().any(|g| d.store(g).unwrap().persisted_commit() < d.commit_index(g).unwrap()));
        let writes = d.stats().state_writes;
        assert!(d.persist_commits().is_empty());
        assert_eq!(d.stats().state_writes, writes + GROUPS, "broker {n}");
        assert!(d.persist_commits().is_empty());
        assert_eq!(
            d.stats().state_writes,
            writes + GROUPS,
            "broker {n}: nothing left to write"
        );
        for g in groups() {
            assert_eq!(d.store(g).unwrap().persisted_commit(), d.commit_index(g).unwrap());
        }
    }
    // acks=all: each proposal is committed with the index and term it was given.
    for (g, ps) in &proposals {
        let leader = net.leader(*g).unwrap();
        let committed = &net.committed[&(leader, *g)];
        let got: Vec<Proposal> = committed
            .values()
            .map(|c| Proposal {
                index: c.index,
                term: c.term,
            })
            .collect();
        assert_eq!(&got, ps, "group {g}");
    }
}

/// §5.2/§5.4.1 availability with a majority: a dead broker's groups re-elect among the other two
/// and keep committing; Figure 2's persistent state lets the restarted broker reopen from its
/// directories, and §5.3's consistency check brings its logs back in line with the leaders'.
#[test]
fn a_dead_broker_leaves_every_group_available_and_catches_up_after_restart() {
    let mut net = Net::new();
    net.elect_all();
    for g in groups() {
        net.propose(g, kafka_batch(records(0), &tag(g, 0)));
    }
    net.settle();
    net.tick();
    assert_converged(&net, 1);
    let led_by_1: Vec<GroupId> = groups().filter(|&g| net.leader(g) == Some(1)).collect();
    assert!(!led_by_1.is_empty());
    // Broker 1 dies before its high watermark checkpoint: its commit indexes on disk lag.
    for g in groups() {
        let d = net.driver(1);
        assert!(
            d.store(g).unwrap().persisted_commit() < d.commit_index(g).unwrap(),
            "group {g}"
        );
    }

    net.kill(1);
    net.elect_all();
    for &g in &led_by_1 {
        assert_ne!(net.leader(g), Some(1));
        let (_, term) = net.leaders[&(2, g)];
        assert!(
            term > net.committed[&(2, g)].values().next().unwrap().term,
            "group {g}: a new leader epoch"
        );
    }
    for g in groups() {
        for i in 1..3 {
            net.propose(g, kafka_batch(records(i), &tag(g, i)));
        }
    }
    net.settle();
    net.tick();
    assert_converged(&net, 3);

    // An isolated broker is the same as a dead one for the others: still a majority of 3.
    net.start(1);
    net.wire.isolated.insert(1);
    for _ in 0..3 {
        net.tick();
    }
    for g in groups() {
        net.propose(g, kafka_batch(records(3), &tag(g, 3)));
    }
    net.settle();
    net.tick();
    assert_eq!(
        net.driver(1).store(GroupId(0)).unwrap().log_end_offset(),
        records(0) as u64
    );

    // Healed: the restarted broker catches up on every group (pre-vote keeps the leaders).
    net.wire.isolated.clear();
    for _ in 0..3 {
        net.tick();
    }
    assert!(groups().all(|g| net.leader(g).is_some_and(|l| l != 1)));
    assert_converged(&net, 4);
    // It restarted from its older commit indexes and reported those entries again, identically.
    assert!(net.re_reported >= GROUPS as usize, "{}", net.re_reported);
}

/// A broker whose disk was replaced comes back with no log at all, while the leaders remember
/// it as having matched their logs: raft-rs alone would panic on the first heartbeat and the
/// leader would ignore the follower's rejections (see `lost_log`). The broker rebuilds every
/// group's log from the leaders, and the groups keep committing meanwhile.
#[test]
fn a_broker_whose_disk_was_wiped_rebuilds_every_log_from_the_leaders() {
    let mut net = Net::new();
    net.elect_all();
    for i in 0..2 {
        for g in groups() {
            net.propose(g, kafka_batch(records(i), &tag(g, i)));
        }
    }
    net.settle();
    net.tick();
    assert_converged(&net, 2);

    net.kill(3);
    std::fs::remove_dir_all(net.root.join("broker-3")).unwrap();
    net.start(3);
    assert_eq!(net.driver(3).store(GroupId(0)).unwrap().log_end_offset(), 0);
    net.elect_all();
    for g in groups() {
        net.propose(g, kafka_batch(records(2), &tag(g, 2)));
    }
    net.settle();
    for _ in 0..3 {
        net.tick();
    }
    assert_converged(&net, 3);
}

/// The driver's refusals, on a single-replica group (its own vote is a majority): a second open,
/// an unknown group, a non-leader, and anything but exactly one valid record batch; a valid
/// proposal commits after the pass that fsyncs it (§5.3 with a majority of one).
#[test]
fn proposals_are_validated_and_a_single_replica_group_commits_after_its_own_fsync() {
    let tmp = scratch_dir();
    let spec = single_replica_spec(tmp.path());
    let mut d = GroupDriver::new(DriverConfig::new(1), tracing_logger());
    d.open_group(GroupId(7), &spec).unwrap();
    assert!(matches!(
        d.open_group(GroupId(7), &spec),
        Err(DriverError::GroupExists(GroupId(7)))
    ));
    assert!(matches!(
        d.propose(GroupId(7), kafka_batch(1, b"a")),
        Err(DriverError::NotLeader {
            group: GroupId(7),
            leader: None
        })
    ));
    assert!(matches!(
        d.propose(GroupId(8), kafka_batch(1, b"a")),
        Err(DriverError::UnknownGroup(GroupId(8)))
    ));
    for _ in 0..=2 * ELECTION_TICK_DEFAULT {
        d.tick();
        d.process_ready(0);
    }
    assert!(d.is_leader(GroupId(7)));
    let mut bad = kafka_batch(1, b"a");
    bad[20] ^= 1;
    assert!(matches!(
        d.propose(GroupId(7), bad),
        Err(DriverError::InvalidBatch { .. })
    ));
    let two = [kafka_batch(1, b"a"), kafka_batch(1, b"b")].concat();
    assert!(matches!(
        d.propose(GroupId(7), two),
        Err(DriverError::InvalidBatch { .. })
    ));
    // Proposals from other brokers (a broker joining the cluster registers so) are checked the
    // same way before raft-rs appends them.
    let mut bad = kafka_batch(1, b"a");
    bad[20] ^= 1;
    assert!(matches!(
        d.step(GroupId(7), remote_proposal(9, 1, bad)),
        Err(DriverError::InvalidBatch { .. })
    ));
    assert!(d.process_ready(0).committed.is_empty(), "nothing appended");
    let p = d.propose(GroupId(7), kafka_batch(2, b"ok")).unwrap();
    let out = d.process_ready(0);
    assert_eq!(out.log_syncs, 1);
    assert_eq!(
        out.committed,
        vec![Committed {
            group: GroupId(7),
            index: p.index,
            term: p.term,
            offsets: 0..2
        }]
    );
    assert_eq!(out.high_watermarks.get(&GroupId(7)), Some(&2));
    assert!(out.messages.is_empty());

    // A clean shutdown persists the commit index: the reopened replica starts from it.
    assert!(d.shutdown(0).is_empty());
    assert_eq!(d.groups().count(), 0);
    let mut d = GroupDriver::new(DriverConfig::new(1), logger());
    d.open_group(GroupId(7), &spec).unwrap();
    assert_eq!(d.commit_index(GroupId(7)), Some(p.index));
    assert_eq!(d.store(GroupId(7)).unwrap().high_watermark(), 2);
    for _ in 0..=2 * ELECTION_TICK_DEFAULT {
        d.tick();
        d.process_ready(0);
    }
    d.step(GroupId(7), remote_proposal(9, 1, kafka_batch(3, b"remote")))
        .unwrap();
    let out = d.process_ready(0);
    assert_eq!(
        out.committed.last().map(|c| c.offsets.clone()),
        Some(2..5),
        "a valid remote proposal commits"
    );
}

/// §6.2 (check quorum): a leader cut off from every other replica steps down within an election
/// timeout or two, for every group it led, while the majority elects new leaders; so clients it
/// can still reach are sent elsewhere instead of waiting on writes that cannot commit.
#[test]
fn a_leader_cut_off_from_the_majority_steps_down() {
    let mut net = Net::new();
    net.elect_all();
    let cut = net.leader(GroupId(0)).unwrap();
    let led: Vec<GroupId> = groups().filter(|&g| net.leader(g) == Some(cut)).collect();
    assert!(!led.is_empty());
    net.wire.isolated.insert(cut);
    for _ in 0..3 * ELECTION_TICK_DEFAULT {
        net.tick();
    }
    for &g in &led {
        assert!(
            !net.driver(cut).is_leader(g),
            "group {g}: the isolated broker still leads"
        );
        let others: Vec<NodeId> = NODES
            .iter()
            .copied()
            .filter(|&n| n != cut && net.driver(n).is_leader(g))
            .collect();
        assert_eq!(others.len(), 1, "group {g}: the majority elected a leader");
    }
}

/// The halves of a pass (`begin_ready`, `ReadyPass::sync`, `finish_ready`) with proposals made
/// while one is syncing and a second pass begun before the first finished, as the broker's loop
/// and its fsync thread run them: nothing is reported committed before its own fsync on a
/// single replica (a majority of one), and everything commits in proposal order with the offsets
/// the log gave it, durably.
#[test]
fn proposals_between_the_halves_of_a_pass_commit_in_order() {
    let tmp = scratch_dir();
    let spec = single_replica_spec(tmp.path());
    let g = GroupId(3);
    let mut d = GroupDriver::new(DriverConfig::new(1), logger());
    d.open_group(g, &spec).unwrap();
    for _ in 0..=2 * ELECTION_TICK_DEFAULT {
        d.tick();
        d.process_ready(0);
    }
    assert!(d.is_leader(g));

    let a = d.propose(g, kafka_batch(1, b"a")).unwrap();
    let (out_a, mut pass_a) = d.begin_ready(0);
    assert!(out_a.committed.is_empty(), "not durable anywhere yet");
    // A proposal while the first pass is written but not synced, and a second pass over it.
    let b = d.propose(g, kafka_batch(2, b"b")).unwrap();
    assert_eq!(b.index, a.index + 1);
    let (out_b, mut pass_b) = d.begin_ready(0);
    assert!(out_b.committed.is_empty());
    let c = d.propose(g, kafka_batch(3, b"c")).unwrap();

    pass_a.sync(0);
    let mut committed = d.finish_ready(pass_a, 0).committed;
    pass_b.sync(0);
    let out = d.finish_ready(pass_b, 0);
    assert_eq!(out.log_syncs, 0, "a's fsync ran after b was written and covered it");
    committed.extend(out.committed);
    // c was proposed after b's pass began: its own pass commits it.
    committed.extend(d.process_ready(0).committed);
    assert_eq!(
        committed,
        vec![
            Committed {
                group: g,
                index: a.index,
                term: a.term,
                offsets: 0..1
            },
            Committed {
                group: g,
                index: b.index,
                term: b.term,
                offsets: 1..3
            },
            Committed {
                group: g,
                index: c.index,
                term: c.term,
                offsets: 3..6
            },
        ]
    );
    // The commits came from the offset translator: no batch was read back from the log for them.
    let store = d.store(g).unwrap();
    assert_eq!(store.payload_reads(), 0);
    let read = store
        .entries(a.index, c.index + 1, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    assert!(read.iter().all(|e| !e.data.is_empty()), "{read:?}");
    assert_eq!(store.payload_reads(), 1);
    assert_eq!(d.store(g).unwrap().high_watermark(), 6);

    // Durable: a crash (no shutdown) keeps all three batches in order.
    drop(d);
    let mut d = GroupDriver::new(DriverConfig::new(1), logger());
    d.open_group(g, &spec).unwrap();
    let tags: Vec<Vec<u8>> = all_batches(d.store(g).unwrap())
        .iter()
        .map(|(_, b)| tag_of(b).to_vec())
        .collect();
    assert_eq!(tags, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

/// A leader whose fsyncs lag: its appends leave before its own fsync (Raft thesis §10.2.1), the
/// followers' acknowledgements are stepped while its passes are still syncing, and several
/// passes are in flight at once. Every replica ends with the same batches in proposal order, and
/// the leader reports each committed once, in order, with dense offsets.
#[test]
fn a_leader_with_passes_in_flight_commits_in_order_on_every_replica() {
    let mut net = Net::new();
    net.elect_all();
    let g = GroupId(0);
    let leader = net.leader(g).unwrap();
    let mut in_flight = Vec::new();
    const BATCHES: usize = 8;
    for i in 0..BATCHES {
        let d = net.drivers.get_mut(&leader).unwrap();
        d.propose(g, kafka_batch(records(i), &tag(g, i))).unwrap();
        let (out, pass) = d.begin_ready(0);
        net.record(leader, out);
        in_flight.push(pass);
        for n in NODES.into_iter().filter(|&n| n != leader) {
            net.pass(n);
        }
        net.deliver();
        if i % 3 == 2 {
            // The oldest round completes; two stay in flight.
            let mut pass = in_flight.remove(0);
            pass.sync(0);
            let out = net.drivers.get_mut(&leader).unwrap().finish_ready(pass, 0);
            net.record(leader, out);
        }
    }
    for mut pass in in_flight {
        pass.sync(0);
        let out = net.drivers.get_mut(&leader).unwrap().finish_ready(pass, 0);
        net.record(leader, out);
    }
    net.settle();

    let reference = all_batches(net.driver(leader).store(g).unwrap());
    let tags: Vec<Vec<u8>> = reference.iter().map(|(_, b)| tag_of(b).to_vec()).collect();
    assert_eq!(tags, (0..BATCHES).map(|i| tag(g, i)).collect::<Vec<_>>());
    for n in NODES {
        assert_eq!(all_batches(net.driver(n).store(g).unwrap()), reference, "broker {n}");
    }
    let committed: Vec<&Committed> = net.committed[&(leader, g)].values().collect();
    assert_eq!(committed.len(), BATCHES);
    let mut next = 0;
    for (c, (h, _)) in committed.iter().zip(&reference) {
        assert_eq!(c.offsets, next..h.last_offset() as u64 + 1);
        next = c.offsets.end;
    }
}
