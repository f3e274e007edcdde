//! The controller group end to end, stepped by hand: three brokers each run a `GroupDriver`
//! hosting the controller's Raft group (the cluster metadata log), connected by an in-memory
//! network. Metadata records are proposed on the controller leader as Kafka record batches; every
//! broker applies what its replica reports committed to its own `ClusterMetadata`, and all three
//! states must be equal, including after the controller leader is isolated, a new one is
//! elected, and the old one (which accepted a proposal nobody else saw) rejoins. Sections cited
//! are from the Raft paper; the records are KIP-631's metadata log.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::wire::Wire;
use skiff_replication::cluster_metadata::{CONTROLLER_GROUP, ClusterMetadata, PlanError};
use skiff_replication::group_driver::{DriverConfig, ELECTION_TICK_DEFAULT, GroupDriver, NodeId, Output, ReplicaSpec};
use skiff_replication::metadata_records::{
    BrokerId, Endpoint, FenceBroker, MetadataRecord, RegisterBroker, UnfenceBroker, decode_batches, encode_batch,
    metadata_record::Kind,
};
use skiff_storage::LogConfig;

const NODES: [NodeId; 3] = [1, 2, 3];
const MAX_ELECTION_TICKS: usize = 100;

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Node `n` times out after 10 + 3·(n mod 3) ticks: node 3 campaigns first, then node 1.
fn spec(root: &Path, node: NodeId) -> ReplicaSpec {
    ReplicaSpec {
        dir: root.join(format!("broker-{node}")).join("controller"),
        log_config: LogConfig::default(),
        voters: NODES.to_vec(),
        election_timeout: Some(ELECTION_TICK_DEFAULT + 3 * (node % 3) as usize),
    }
}

struct Net {
    drivers: BTreeMap<NodeId, GroupDriver>,
    wire: Wire,
    /// Each broker's metadata, applied from its replica's committed entries.
    states: BTreeMap<NodeId, ClusterMetadata>,
    /// The Kafka offset each broker's state has applied up to.
    applied: BTreeMap<NodeId, u64>,
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Net {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut drivers = BTreeMap::new();
        for n in NODES {
            let mut d = GroupDriver::new(DriverConfig::new(n), logger());
            d.open_group(CONTROLLER_GROUP, &spec(tmp.path(), n)).unwrap();
            drivers.insert(n, d);
        }
        Self {
            drivers,
            wire: Wire::default(),
            states: NODES.iter().map(|&n| (n, ClusterMetadata::new())).collect(),
            applied: NODES.iter().map(|&n| (n, 0)).collect(),
            root: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    /// A crash and restart: the broker's memory is gone; it reopens its replica and rebuilds
    /// its metadata by replaying the log up to its persisted commit index. Returns the offset the
    /// replay reached.
    fn restart(&mut self, node: NodeId) -> u64 {
        self.drivers.remove(&node);
        self.wire.forget(node);
        let mut d = GroupDriver::new(DriverConfig::new(node), logger());
        d.open_group(CONTROLLER_GROUP, &spec(&self.root, node)).unwrap();
        let (state, offset) = ClusterMetadata::replay(d.store(CONTROLLER_GROUP).unwrap()).unwrap();
        self.drivers.insert(node, d);
        self.states.insert(node, state);
        self.applied.insert(node, offset);
        offset
    }

    /// Queues the messages and applies the committed metadata batches, reading each back from
    /// the broker's own replica of the log.
    fn record(&mut self, node: NodeId, out: Output) {
        assert!(out.failed.is_empty(), "broker {node}: {:?}", out.failed);
        self.wire.send(node, out.messages);
        for c in out.committed {
            assert_eq!(c.group, CONTROLLER_GROUP);
            let applied = self.applied.get_mut(&node).unwrap();
            if c.offsets.start < *applied {
                continue;
            }
            assert_eq!(c.offsets.start, *applied, "broker {node}: committed entries in order");
            let store = self.drivers[&node].store(CONTROLLER_GROUP).unwrap();
            let bytes = store.read(c.offsets.start, usize::MAX / 2, c.offsets.end).unwrap();
            let records = decode_batches(&bytes).unwrap();
            assert_eq!(records.len() as u64, c.offsets.end - c.offsets.start);
            let refused = self.states.get_mut(&node).unwrap().apply_all(&records);
            assert!(refused.is_empty(), "broker {node}: {refused:?}");
            *applied = c.offsets.end;
        }
    }

    fn deliver(&mut self) -> usize {
        self.wire.deliver(&mut self.drivers)
    }

    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut busy = 0;
            for n in NODES {
                let out = self.drivers.get_mut(&n).unwrap().process_ready(0);
                busy += out.readies;
                self.record(n, out);
            }
            busy += self.deliver();
            if busy == 0 && self.wire.in_flight.is_empty() {
                return;
            }
        }
        panic!("network did not settle");
    }

    fn tick(&mut self) {
        for d in self.drivers.values_mut() {
            d.tick();
        }
        self.settle();
    }

    /// The controller leader every reachable broker agrees on.
    fn leader(&self) -> Option<NodeId> {
        let live: Vec<NodeId> = NODES
            .iter()
            .copied()
            .filter(|n| !self.wire.isolated.contains(n))
            .collect();
        let leaders: Vec<NodeId> = live
            .iter()
            .copied()
            .filter(|&n| self.drivers[&n].is_leader(CONTROLLER_GROUP))
            .collect();
        let [leader] = leaders[..] else { return None };
        live.iter()
            .all(|&n| self.drivers[&n].leader(CONTROLLER_GROUP) == Some(leader))
            .then_some(leader)
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..MAX_ELECTION_TICKS {
            if let Some(l) = self.leader() {
                return l;
            }
            self.tick();
        }
        panic!("no controller leader in {MAX_ELECTION_TICKS} ticks");
    }

    /// Proposes `records` as one batch on `node`, then lets them commit and reach every
    /// reachable follower (one more heartbeat carries the commit index).
    fn propose_on(&mut self, node: NodeId, records: &[MetadataRecord]) {
        let batch = encode_batch(records, 0).unwrap();
        self.drivers
            .get_mut(&node)
            .unwrap()
            .propose(CONTROLLER_GROUP, batch)
            .unwrap();
        self.settle();
        self.tick();
    }

    fn state(&self, node: NodeId) -> &ClusterMetadata {
        &self.states[&node]
    }

    fn assert_identical(&self, nodes: &[NodeId]) {
        for &n in &nodes[1..] {
            assert_eq!(self.state(n), self.state(nodes[0]), "broker {n} vs broker {}", nodes[0]);
            assert_eq!(self.applied[&n], self.applied[&nodes[0]], "broker {n}");
        }
    }
}

fn register(id: BrokerId) -> MetadataRecord {
    Kind::RegisterBroker(RegisterBroker {
        broker_id: id,
        rack: Some(format!("rack-{}", id % 2)),
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9090 + id as u32,
        }],
        incarnation: 100 + id as u64,
        fenced: true,
        raft_endpoint: None,
    })
    .into()
}

fn unfence(id: BrokerId) -> MetadataRecord {
    Kind::UnfenceBroker(UnfenceBroker {
        broker_id: id,
        incarnation: 100 + id as u64,
    })
    .into()
}

fn groups_of(state: &ClusterMetadata, topic: &str) -> Vec<u64> {
    state
        .topic_by_name(topic)
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.raft_group.0)
        .collect()
}

/// KIP-631: every broker's state is a function of the committed metadata log. §5.4 (a leader's
/// committed entries survive a change of leader, an uncommitted one may not), §5.3 (the old
/// leader's conflicting suffix is replaced when it rejoins), Figure 2 (a restarted replica
/// replays its log up to its persisted commit index and learns the rest from the leader).
#[test]
fn every_broker_applies_identical_metadata_across_a_controller_failover() {
    let mut net = Net::new();
    let first = net.elect();
    assert_eq!(first, 3, "the shortest election timeout wins");

    // Brokers register (fenced), one proposal each, then are unfenced in one batch.
    for id in 1..=3 {
        net.propose_on(first, &[register(id)]);
    }
    assert_eq!(net.state(1).live_brokers().count(), 0);
    net.propose_on(first, &[unfence(1), unfence(2), unfence(3)]);
    net.assert_identical(&NODES);
    assert_eq!(net.state(2).live_brokers().map(|b| b.id).collect::<Vec<_>>(), [1, 2, 3]);

    // Topic creation is planned against the leader's applied state.
    let none = BTreeMap::new();
    let err = net
        .state(first)
        .plan_create_topic("orders", 3, 4, &none, [1; 16])
        .unwrap_err();
    assert_eq!(err, PlanError::InvalidReplicationFactor { requested: 4, live: 3 });
    assert_eq!(err.code(), 38);
    let configs = BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]);
    let plan = net
        .state(first)
        .plan_create_topic("orders", 6, 3, &configs, [1; 16])
        .unwrap();
    net.propose_on(first, &plan);
    net.assert_identical(&NODES);
    for n in NODES {
        let t = net.state(n).topic_by_name("orders").unwrap();
        assert_eq!(t.configs, configs);
        assert_eq!(groups_of(net.state(n), "orders"), [1, 2, 3, 4, 5, 6]);
        let mut leaders: BTreeMap<BrokerId, usize> = BTreeMap::new();
        for p in &t.partitions {
            assert_eq!(p.replicas.iter().collect::<BTreeSet<_>>().len(), 3);
            *leaders.entry(p.preferred_leader().unwrap()).or_default() += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    }
    // Broker 2's high watermark checkpoint runs here: a restart replays up to this point.
    assert!(net.drivers.get_mut(&2).unwrap().persist_commits().is_empty());
    let checkpointed = net.state(2).clone();

    // The controller leader is cut off. It still believes it leads and accepts a proposal that
    // can never commit; the other two elect a new controller and keep going.
    net.wire.isolated.insert(first);
    let ghost = net
        .state(first)
        .plan_create_topic("ghost", 1, 1, &none, [2; 16])
        .unwrap();
    net.propose_on(first, &ghost);
    let second = net.elect();
    assert_eq!(second, 1);
    let rest: Vec<NodeId> = NODES.iter().copied().filter(|&n| n != first).collect();
    assert_eq!(
        net.state(second)
            .plan_create_topic("orders", 1, 1, &none, [3; 16])
            .unwrap_err()
            .code(),
        36,
        "TOPIC_ALREADY_EXISTS from the new controller's state"
    );
    let incarnation = net.state(second).broker(first as BrokerId).unwrap().incarnation;
    net.propose_on(
        second,
        &[Kind::FenceBroker(FenceBroker {
            broker_id: first as BrokerId,
            incarnation,
        })
        .into()],
    );
    let plan = net
        .state(second)
        .plan_create_topic("payments", 3, 2, &none, [4; 16])
        .unwrap();
    net.propose_on(second, &plan);
    net.assert_identical(&rest);
    assert!(net.state(first).topic_by_name("payments").is_none());
    assert_eq!(groups_of(net.state(second), "payments"), [7, 8, 9]);
    assert!(net.state(second).topic_by_name("ghost").is_none());
    for p in &net.state(second).topic_by_name("payments").unwrap().partitions {
        assert!(
            !p.replicas.contains(&(first as BrokerId)),
            "fenced broker got a replica"
        );
    }

    // Healed: the old leader steps down, its unacknowledged entry is replaced, and it applies
    // exactly what the others did.
    net.wire.isolated.clear();
    for _ in 0..3 {
        net.tick();
    }
    assert_eq!(net.leader(), Some(second));
    net.assert_identical(&NODES);
    let state = net.state(first);
    assert!(state.topic_by_name("ghost").is_none());
    assert_eq!(groups_of(state, "payments"), [7, 8, 9]);
    assert!(state.broker(first as BrokerId).unwrap().fenced);
    assert_eq!(state.next_raft_group(), 10);

    // Broker 2 crashes and restarts: the replay of its log rebuilds the metadata as of its last
    // checkpoint, and the entries its leader then reports committed again bring it level.
    let final_state = net.state(second).clone();
    let replayed = net.restart(2);
    assert!(replayed > 0 && replayed < net.applied[&second], "{replayed}");
    assert_eq!(net.state(2), &checkpointed);
    for _ in 0..3 {
        net.tick();
    }
    net.assert_identical(&NODES);
    assert_eq!(net.state(2), &final_state);
}
