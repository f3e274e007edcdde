//! Helpers shared by the replication integration tests: Kafka batches and a hand-stepped cluster.

#![allow(dead_code, clippy::unwrap_used)]

pub mod one_group;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use raft::prelude::{ConfState, Entry, EntryType, Message};
use raft::{Config, RawNode, StateRole, Storage};
use skiff_replication::raft_log::{LogStorage, is_data_entry};
use skiff_storage::LogConfig;
use skiff_storage::batch::{self, BatchHeader};

/// A v2 record batch of `records` records whose (opaque) record bytes are `tag`: base offset 0,
/// no leader epoch yet; the Raft log stamps both.
pub fn kafka_batch(records: i32, tag: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(61 + tag.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    b.extend_from_slice(&((49 + tag.len()) as i32).to_be_bytes()); // batchLength
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(records - 1).to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&1_000i64.to_be_bytes()); // baseTimestamp
    b.extend_from_slice(&1_000i64.to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    b.extend_from_slice(&records.to_be_bytes()); // recordCount
    b.extend_from_slice(tag);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Every batch of a replica's partition log from its log start (ignoring the high watermark).
pub fn all_batches(store: &LogStorage) -> Vec<(BatchHeader, Vec<u8>)> {
    let start = store.with_log(|log| log.log_start_offset());
    let buf = store.read(start, usize::MAX / 2, u64::MAX).unwrap();
    if buf.is_empty() {
        return Vec::new();
    }
    batch::split_batches(&buf)
        .unwrap()
        .into_iter()
        .map(|(at, h)| (h, buf[at..at + h.total_size()].to_vec()))
        .collect()
}

/// The record bytes (tag) of a stored batch.
pub fn tag_of(bytes: &[u8]) -> &[u8] {
    &bytes[61..]
}

pub const ELECTION_TICK: usize = 10;
pub const HEARTBEAT_TICK: usize = 1;

pub struct Node {
    pub raw: RawNode<LogStorage>,
    pub store: LogStorage,
    pub dir: PathBuf,
    /// Committed entries as applied, in order: (index, whether it is a data entry).
    pub applied: Vec<(u64, bool)>,
}

/// A cluster of replicas of one partition, stepped by hand: no wall clock, no threads. Messages
/// go through an in-memory network that drops everything to or from an isolated node.
pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    pub isolated: BTreeSet<u64>,
    pub network: VecDeque<Message>,
    pub delivered: usize,
    _tmp: tempfile::TempDir,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn config(id: u64, applied: u64) -> Config {
    Config {
        id,
        election_tick: ELECTION_TICK,
        heartbeat_tick: HEARTBEAT_TICK,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        applied,
        ..Default::default()
    }
}

impl Cluster {
    pub fn new(ids: &[u64]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let dir = tmp.path().join(format!("node-{id}"));
            nodes.insert(id, Self::open_node(id, dir, ids));
        }
        Self {
            nodes,
            isolated: BTreeSet::new(),
            network: VecDeque::new(),
            delivered: 0,
            _tmp: tmp,
        }
    }

    fn open_node(id: u64, dir: PathBuf, voters: &[u64]) -> Node {
        let store = LogStorage::open(&dir, LogConfig::default(), ConfState::from((voters.to_vec(), vec![]))).unwrap();
        let applied = store.hard_state().commit;
        let raw = RawNode::new(&config(id, applied), store.clone(), &logger()).unwrap();
        Node {
            raw,
            store,
            dir,
            applied: Vec::new(),
        }
    }

    /// Crash-restarts a node: drops its in-memory state and reopens it from its directory.
    pub fn restart(&mut self, id: u64) {
        let voters: Vec<u64> = self.nodes.keys().copied().collect();
        let dir = self.nodes.remove(&id).unwrap().dir;
        self.nodes.insert(id, Self::open_node(id, dir, &voters));
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).unwrap()
    }

    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(id, n)| n.raw.raft.state == StateRole::Leader && !self.isolated.contains(id))
            .map(|(&id, _)| id)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    pub fn term(&self, id: u64) -> u64 {
        self.node(id).raw.raft.term
    }

    pub fn isolate(&mut self, id: u64) {
        self.isolated.insert(id);
    }

    pub fn heal(&mut self) {
        self.isolated.clear();
    }

    pub fn campaign(&mut self, id: u64) {
        self.node_mut(id).raw.campaign().unwrap();
        self.settle();
    }

    pub fn propose(&mut self, id: u64, batch: Vec<u8>) {
        self.node_mut(id).raw.propose(vec![], batch).unwrap();
        self.settle();
    }

    /// One heartbeat round from `id` (carries the commit index to followers).
    pub fn heartbeat(&mut self, id: u64) {
        for _ in 0..HEARTBEAT_TICK {
            self.node_mut(id).raw.tick();
        }
        self.settle();
    }

    fn send(&mut self, msgs: Vec<Message>) {
        self.network.extend(msgs);
    }

    /// Handles one node's `Ready` as raft-rs's examples do: send, apply, persist entries and
    /// hard state, send the messages that wait for persistence, advance, apply what that commits.
    pub fn handle_ready(&mut self, id: u64) -> bool {
        let node = self.nodes.get_mut(&id).unwrap();
        if !node.raw.has_ready() {
            return false;
        }
        let mut ready = node.raw.ready();
        let mut out = ready.take_messages();
        assert!(ready.snapshot().is_empty(), "snapshots are not expected");
        let committed = ready.take_committed_entries();
        apply(node, committed);
        node.store.append(ready.entries(), 0).unwrap();
        if let Some(hs) = ready.hs() {
            node.store.set_hard_state(hs.clone()).unwrap();
        }
        out.extend(ready.take_persisted_messages());
        let mut light = node.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            node.store.set_commit(commit).unwrap();
        }
        out.extend(light.take_messages());
        let committed = light.take_committed_entries();
        apply(node, committed);
        node.raw.advance_apply();
        self.send(out);
        true
    }

    /// Runs every node's `Ready` and delivers messages until the cluster is quiet.
    pub fn settle(&mut self) {
        for _round in 0..1000 {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                busy |= self.handle_ready(id);
            }
            let msgs: Vec<Message> = self.network.drain(..).collect();
            busy |= !msgs.is_empty();
            for m in msgs {
                if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(&m.to) {
                    self.delivered += 1;
                    // A stale message may be refused; raft-rs's examples ignore that too.
                    let _ = node.raw.step(m);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("cluster did not settle in 1000 rounds");
    }
}

fn apply(node: &mut Node, entries: Vec<Entry>) {
    for e in entries {
        if e.entry_type == EntryType::EntryConfChange as i32 {
            panic!("no configuration change is proposed in these tests");
        }
        // Committed data entries come without their batch: the offset translator tells them apart.
        node.applied.push((e.index, node.store.is_data_index(e.index)));
    }
}

/// The raft log of a replica as (index, term, is data) from the storage itself.
pub fn raft_entries(store: &LogStorage) -> Vec<(u64, u64, bool)> {
    let first = store.first_index().unwrap();
    let last = store.last_index().unwrap();
    store
        .entries(first, last + 1, None, raft::GetEntriesContext::empty(false))
        .unwrap()
        .iter()
        .map(|e| (e.index, e.term, is_data_entry(e)))
        .collect()
}
