//! One Raft group replicated over several test brokers' group drivers on the in-memory wire,
//! stepped by hand: what the reassignment and snapshot tests share. Broker `n`'s election
//! timeout is fixed and grows with `n`, so broker 1 leads first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_replication::group_driver::{DriverConfig, GroupDriver, GroupId, NodeId, ReplicaSpec};
use skiff_storage::LogConfig;

use super::wire::Wire;
use super::{all_batches, kafka_batch, tag_of};

/// The group every test replica hosts.
pub const G: GroupId = GroupId(7);
/// Bound on ticks for an election or a multi-step change.
pub const MAX_TICKS: usize = 200;

pub struct Net {
    pub root: PathBuf,
    /// The group's voters when it was created: what a new replica starts from.
    pub initial: Vec<NodeId>,
    pub drivers: BTreeMap<NodeId, GroupDriver>,
    pub wire: Wire,
    _tmp: tempfile::TempDir,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl Net {
    pub fn new(initial: &[NodeId]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut net = Self {
            root: tmp.path().to_path_buf(),
            initial: initial.to_vec(),
            drivers: BTreeMap::new(),
            wire: Wire::default(),
            _tmp: tmp,
        };
        for &n in initial {
            net.start(n);
        }
        net
    }

    pub fn dir(root: &Path, node: NodeId) -> PathBuf {
        root.join(format!("broker-{node}"))
    }

    /// Opens (or reopens) broker `node`'s replica; a new one starts from the initial voters.
    pub fn start(&mut self, node: NodeId) {
        let mut d = GroupDriver::new(DriverConfig::new(node), logger());
        let spec = ReplicaSpec {
            dir: Self::dir(&self.root, node),
            log_config: LogConfig::default(),
            voters: self.initial.clone(),
            // Broker 1 times out first: a deterministic first leader.
            election_timeout: Some(10 + 3 * usize::try_from(node).unwrap()),
        };
        d.open_group(G, &spec).unwrap();
        self.drivers.insert(node, d);
    }

    pub fn kill(&mut self, node: NodeId) {
        self.drivers.remove(&node);
        self.wire.forget(node);
    }

    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut busy = 0;
            let nodes: Vec<NodeId> = self.drivers.keys().copied().collect();
            for n in nodes {
                let out = self.drivers.get_mut(&n).unwrap().process_ready(0);
                assert!(out.failed.is_empty(), "broker {n}: {:?}", out.failed);
                busy += out.readies;
                self.wire.send(n, out.messages);
            }
            busy += self.wire.deliver(&mut self.drivers);
            if busy == 0 && self.wire.in_flight.is_empty() {
                return;
            }
        }
        panic!("network did not settle");
    }

    pub fn tick(&mut self) {
        for d in self.drivers.values_mut() {
            d.tick();
        }
        self.settle();
    }

    pub fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .drivers
            .iter()
            .filter(|(_, d)| d.is_leader(G))
            .map(|(&n, _)| n)
            .collect();
        match leaders[..] {
            [l] => Some(l),
            _ => None,
        }
    }

    pub fn elect(&mut self) -> NodeId {
        for _ in 0..MAX_TICKS {
            if let Some(l) = self.leader() {
                return l;
            }
            self.tick();
        }
        panic!("no leader elected");
    }

    pub fn propose(&mut self, i: usize) {
        let leader = self.elect();
        self.drivers
            .get_mut(&leader)
            .unwrap()
            .propose(G, kafka_batch(2, format!("batch-{i}").as_bytes()))
            .unwrap();
        self.settle();
    }

    pub fn tags(&self, node: NodeId) -> Vec<String> {
        all_batches(self.drivers[&node].store(G).unwrap())
            .iter()
            .map(|(_, b)| String::from_utf8(tag_of(b).to_vec()).unwrap())
            .collect()
    }
}
