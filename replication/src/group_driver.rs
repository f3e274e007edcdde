//! The driving loop of every Raft group hosted on one broker (issue 4: "thousands of partitions
//! per broker must not mean thousands of timers").
//!
//! A [`GroupDriver`] owns one `RawNode<LogStorage>` per partition replica on this broker, keyed by
//! a [`GroupId`]. It has no clock, no thread and no I/O besides storage: the caller owns the one
//! timer ([`GroupDriver::tick`] ticks every group), the transport (feeds [`GroupDriver::step`],
//! sends [`Output::messages`]) and the produce path ([`GroupDriver::propose`]), and runs
//! [`GroupDriver::process_ready`] after them. Tests step it by hand (STYLE: "the Raft driver is a
//! loop that a test can step deterministically").
//!
//! Group commit across groups and across time (DESIGN: "one fsync covers every batch that
//! arrived meanwhile"). A pass has three steps so that the fsync never runs under the driver:
//! - [`GroupDriver::begin_ready`] takes the `Ready` of every group that has one, sends what needs
//!   no persistence (a leader's appends go out in parallel with its own write, Raft thesis
//!   §10.2.1), reports what is committed (durable on a majority already), writes the new entries
//!   without fsync (`LogStorage::append_unsynced`) and hands the `Ready` back to raft-rs with
//!   `advance_append_async`, so steps and proposals may go on at once;
//! - [`ReadyPass::sync`] fsyncs each written partition log once, several logs at a time, with no
//!   lock held: the caller runs it on another thread and may begin further passes meanwhile,
//!   whose fsyncs then share one round ([`ReadyPass::absorb`]);
//! - [`GroupDriver::finish_ready`] then tells raft-rs (`on_persist_ready`) and releases the
//!   messages that wait for persistence (votes, append responses: Figure 2 "respond after
//!   persisting").
//!
//! [`GroupDriver::process_ready`] runs all three in a row (tests step it by hand). A `Ready` that
//! writes nothing, of a group with no write in flight, is completed in place. The small
//! `raft-state`/`raft-entries` checkpoint files are written (and fsync'd) when they must be:
//! `raft-entries` when a non-data entry is appended, `raft-state` only when the term or vote
//! changes (before the vote or the messages of the new term leave, Figure 2 "persistent
//! state"). The commit index is volatile (Figure 2) and only kept in memory by a pass; the caller
//! persists it with [`GroupDriver::persist_commits`] every
//! `replica.high.watermark.checkpoint.interval.ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, Ready};
use raft::{Config, RawNode, StateRole};
use skiff_storage::LogConfig;
use skiff_storage::batch;

use crate::log_command::LogCommand;
use crate::raft_log::{LogStorage, RaftLogError, is_conf_change};
use crate::sync_pool::SyncPool;

/// Identifies one Raft group (one partition) across the cluster; the broker maps it to a
/// topic-partition.
pub use crate::group_id::GroupId;
/// A broker's Raft id (never 0: raft-rs uses 0 for "no leader").
pub type NodeId = u64;

/// Raft's election timeout in ticks (raft-rs randomizes it in `[ELECTION_TICK, 2 * ELECTION_TICK)`).
pub const ELECTION_TICK_DEFAULT: usize = 10;
/// Leader heartbeat interval in ticks.
pub const HEARTBEAT_TICK_DEFAULT: usize = 1;
/// Largest append message raft-rs builds (bytes of entries).
pub const MAX_SIZE_PER_MSG_DEFAULT: u64 = 1024 * 1024;
/// Append messages in flight per follower.
pub const MAX_INFLIGHT_MSGS_DEFAULT: usize = 256;
/// Ticks a leader waits for a follower to catch up after sending it a snapshot before sending
/// another (see `retry_lost_snapshots`).
pub const SNAPSHOT_RETRY_TICKS: usize = 30;
/// Partition logs one [`ReadyPass::sync`] fsyncs at once: the fsyncs share journal commits, and
/// a slow log does not hold up the others.
pub const MAX_PARALLEL_SYNCS: usize = 8;
/// Kafka's `replica.high.watermark.checkpoint.interval.ms`: how often the caller should run
/// [`GroupDriver::persist_commits`].
pub const REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 5_000;

/// Settings shared by every group of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub node_id: NodeId,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub max_size_per_msg: u64,
    pub max_inflight_msgs: usize,
    /// Raft thesis §9.6: a partitioned replica that comes back does not disrupt a working leader.
    pub pre_vote: bool,
    /// Raft thesis §6.2: a leader that has not heard from a majority for an election timeout
    /// steps down, so that clients it can still reach are sent to the leader the majority elected
    /// instead of waiting on writes that cannot commit.
    pub check_quorum: bool,
}

impl DriverConfig {
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            election_tick: ELECTION_TICK_DEFAULT,
            heartbeat_tick: HEARTBEAT_TICK_DEFAULT,
            max_size_per_msg: MAX_SIZE_PER_MSG_DEFAULT,
            max_inflight_msgs: MAX_INFLIGHT_MSGS_DEFAULT,
            pre_vote: true,
            check_quorum: true,
        }
    }
}

/// One replica to host: its partition directory and the group's voters.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    pub dir: PathBuf,
    pub log_config: LogConfig,
    /// Voters of a new group (every replica must be given the same); ignored once persisted.
    pub voters: Vec<NodeId>,
    /// A fixed election timeout in ticks (at least `election_tick`) instead of raft-rs's random
    /// one: deterministic tests, or a placement policy that spreads leaders over brokers.
    pub election_timeout: Option<usize>,
}

/// A group's Raft configuration: voters (in a joint configuration, the incoming ones), the
/// outgoing voters of a joint configuration, learners, and whether a change is still pending.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupConf {
    pub voters: Vec<NodeId>,
    pub outgoing: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub pending: bool,
}

fn sorted(mut ids: Vec<NodeId>) -> Vec<NodeId> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Where an accepted proposal will sit in the Raft log: it is committed (acks=all may answer)
/// once an entry with this index *and* this term is reported in [`Output::committed`]; a
/// committed entry at that index with another term means the proposal was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
}

/// A committed data entry: one Kafka batch and the offsets the Raft log gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub group: GroupId,
    pub index: u64,
    /// The Raft term, i.e. the batch's Kafka leader epoch.
    pub term: u64,
    pub offsets: Range<u64>,
}

/// A group's view of its leader changed (`leader: None` while an election is running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderChange {
    pub group: GroupId,
    pub leader: Option<NodeId>,
    /// The term: the Kafka leader epoch of that leader.
    pub term: u64,
}

/// What a pass (or one half of it) produced, for the transport, produce waiters and parked
/// fetches.
#[derive(Debug, Default)]
pub struct Output {
    /// Raft messages to send, per destination broker, each tagged with its group.
    pub messages: BTreeMap<NodeId, Vec<(GroupId, Message)>>,
    /// Committed data entries in commit order per group.
    pub committed: Vec<Committed>,
    /// New high watermarks of groups whose high watermark moved.
    pub high_watermarks: BTreeMap<GroupId, u64>,
    pub leader_changes: Vec<LeaderChange>,
    /// Groups stopped by a storage (or unsupported-entry) error in this pass: their in-memory
    /// state may be ahead of the disk, so they are removed from the driver (reopen to recover).
    pub failed: Vec<(GroupId, DriverError)>,
    /// Partition-log fsyncs this pass issued (at most one per group that wrote entries).
    pub log_syncs: usize,
    /// `raft-state` writes this pass issued (term or vote changes only).
    pub state_writes: usize,
    /// Groups whose `Ready` was handled.
    pub readies: usize,
    /// Snapshots installed from leaders in this pass.
    pub snapshots_installed: usize,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.committed.is_empty()
            && self.high_watermarks.is_empty()
            && self.leader_changes.is_empty()
            && self.failed.is_empty()
            && self.readies == 0
    }

    /// Appends what a later half-pass produced.
    pub fn absorb(&mut self, later: Output) {
        for (to, msgs) in later.messages {
            self.messages.entry(to).or_default().extend(msgs);
        }
        self.committed.extend(later.committed);
        self.high_watermarks.extend(later.high_watermarks);
        self.leader_changes.extend(later.leader_changes);
        self.failed.extend(later.failed);
        self.log_syncs += later.log_syncs;
        self.state_writes += later.state_writes;
        self.readies += later.readies;
        self.snapshots_installed += later.snapshots_installed;
    }
}

/// Totals since the driver was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub passes: u64,
    pub readies: u64,
    pub log_syncs: u64,
    pub state_writes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("raft group {0} is not hosted here")]
    UnknownGroup(GroupId),
    #[error("raft group {0} is already open")]
    GroupExists(GroupId),
    /// Becomes NOT_LEADER_OR_FOLLOWER, with the leader (if known) for the client's metadata.
    #[error("not the leader of raft group {group} (leader: {leader:?})")]
    NotLeader { group: GroupId, leader: Option<NodeId> },
    /// raft-rs dropped the proposal (a leadership transfer is under way): retriable.
    #[error("raft group {group} dropped the proposal")]
    ProposalDropped { group: GroupId },
    #[error("invalid record batch for raft group {group}: {reason}")]
    InvalidBatch { group: GroupId, reason: String },
    #[error("raft group {group}: {reason}")]
    Unsupported { group: GroupId, reason: String },
    #[error("raft group {group}: {source}")]
    Storage { group: GroupId, source: RaftLogError },
    #[error("raft group {group}: {source}")]
    Raft { group: GroupId, source: raft::Error },
}

struct Replica {
    raw: RawNode<LogStorage>,
    store: LogStorage,
    /// Ticks each follower has spent waiting for a snapshot it was sent.
    snapshot_wait: BTreeMap<NodeId, usize>,
    /// Last reported (leader id, term).
    leader: (NodeId, u64),
    high_watermark: u64,
    /// Tells this replica from an earlier one of the same group (closed and reopened while one of
    /// its passes was syncing).
    generation: u64,
    /// Readies handed to raft-rs with `advance_append_async` and not finished yet.
    unfinished: usize,
}

/// One group's `Ready` whose entries are written but not yet fsync'd: what waits for them.
#[derive(Debug)]
struct PendingReady {
    group: GroupId,
    generation: u64,
    number: u64,
    /// Append responses and votes, sent once the entries are durable.
    persisted_messages: Vec<Message>,
    /// The last entry (or snapshot) the ready reported; raft-rs accepts it as applied only once
    /// it is durable here.
    apply_to: u64,
}

/// A partition log a pass wrote to, and how its fsync went.
#[derive(Debug)]
struct SyncTarget {
    store: LogStorage,
    result: Option<Result<bool, RaftLogError>>,
}

/// The second half of a pass, begun by [`GroupDriver::begin_ready`]: the logs to fsync and the
/// readies waiting for them. [`ReadyPass::sync`] needs no driver, so it can run on another thread
/// while the driver goes on; [`GroupDriver::finish_ready`] completes it.
#[derive(Debug, Default)]
pub struct ReadyPass {
    pending: Vec<PendingReady>,
    /// By group and replica generation.
    targets: BTreeMap<(GroupId, u64), SyncTarget>,
}

impl ReadyPass {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Merges a later, not yet synced pass into this one: one fsync round covers both, and they
    /// finish in order.
    pub fn absorb(&mut self, later: ReadyPass) {
        self.pending.extend(later.pending);
        for (key, t) in later.targets {
            self.targets.entry(key).or_insert(t);
        }
    }

    /// fsyncs every log the pass wrote, up to `MAX_PARALLEL_SYNCS` at once.
    pub fn sync(&mut self, now_ms: i64) {
        let mut todo: Vec<&mut SyncTarget> = self.targets.values_mut().filter(|t| t.result.is_none()).collect();
        let stores = todo.iter().map(|t| t.store.clone()).collect();
        for (t, result) in todo.iter_mut().zip(SyncPool::shared().sync_all(stores, now_ms)) {
            t.result = result;
        }
    }
}

/// Every Raft group of one broker, stepped by the caller.
pub struct GroupDriver {
    config: DriverConfig,
    logger: slog::Logger,
    groups: BTreeMap<GroupId, Replica>,
    /// Groups that may have a `Ready` (touched since the last pass).
    dirty: BTreeSet<GroupId>,
    stats: DriverStats,
    /// Handed to each replica opened, see `Replica::generation`.
    next_generation: u64,
}

impl std::fmt::Debug for GroupDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupDriver")
            .field("config", &self.config)
            .field("groups", &self.groups.len())
            .field("dirty", &self.dirty.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl GroupDriver {
    /// `logger` receives raft-rs's own logging.
    pub fn new(config: DriverConfig, logger: slog::Logger) -> Self {
        Self {
            config,
            logger,
            groups: BTreeMap::new(),
            dirty: BTreeSet::new(),
            stats: DriverStats::default(),
            next_generation: 0,
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// Opens (or creates) this broker's replica of `group` from its directory.
    pub fn open_group(&mut self, group: GroupId, spec: &ReplicaSpec) -> Result<(), DriverError> {
        if self.groups.contains_key(&group) {
            return Err(DriverError::GroupExists(group));
        }
        let storage = |source| DriverError::Storage { group, source };
        let initial = ConfState::from((spec.voters.clone(), vec![]));
        let store = LogStorage::open(&spec.dir, spec.log_config.clone(), initial).map_err(storage)?;
        let hs = store.hard_state();
        let mut config = Config {
            id: self.config.node_id,
            election_tick: self.config.election_tick,
            heartbeat_tick: self.config.heartbeat_tick,
            max_size_per_msg: self.config.max_size_per_msg,
            max_inflight_msgs: self.config.max_inflight_msgs,
            pre_vote: self.config.pre_vote,
            check_quorum: self.config.check_quorum,
            // Everything up to the durable commit index was applied before: for a partition the
            // log itself is the state machine.
            applied: hs.commit,
            ..Default::default()
        };
        if let Some(t) = spec.election_timeout {
            config.min_election_tick = t;
            config.max_election_tick = t + 1;
        }
        let raw =
            RawNode::new(&config, store.clone(), &self.logger).map_err(|source| DriverError::Raft { group, source })?;
        let high_watermark = store.high_watermark();
        self.next_generation += 1;
        self.groups.insert(
            group,
            Replica {
                raw,
                store,
                snapshot_wait: BTreeMap::new(),
                leader: (0, hs.term),
                high_watermark,
                generation: self.next_generation,
                unfinished: 0,
            },
        );
        self.dirty.insert(group);
        Ok(())
    }

    /// Removes a group (its storage stays on disk); returns whether it was hosted.
    pub fn close_group(&mut self, group: GroupId) -> bool {
        self.dirty.remove(&group);
        self.groups.remove(&group).is_some()
    }

    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// The Raft log of a hosted group (fetches read from it below its high watermark).
    pub fn store(&self, group: GroupId) -> Option<&LogStorage> {
        self.groups.get(&group).map(|r| &r.store)
    }

    /// The leader this replica knows of, if any.
    pub fn leader(&self, group: GroupId) -> Option<NodeId> {
        let r = self.groups.get(&group)?;
        (r.raw.raft.leader_id != 0).then_some(r.raw.raft.leader_id)
    }

    /// Whether some group has work left for another `process_ready` (an `advance` that
    /// committed entries or produced messages): the caller should run one without waiting for
    /// its next tick or message.
    pub fn has_pending(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub fn is_leader(&self, group: GroupId) -> bool {
        self.groups
            .get(&group)
            .is_some_and(|r| r.raw.raft.state == StateRole::Leader)
    }

    /// The current term of this replica (the leader epoch when it is the leader).
    pub fn term(&self, group: GroupId) -> Option<u64> {
        self.groups.get(&group).map(|r| r.raw.raft.term)
    }

    /// The commit index this replica knows of.
    pub fn commit_index(&self, group: GroupId) -> Option<u64> {
        self.groups.get(&group).map(|r| r.raw.raft.raft_log.committed)
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// One logical clock tick for every group: the broker's single timer calls this.
    pub fn tick(&mut self) {
        for (&id, r) in &mut self.groups {
            if r.raw.tick() {
                self.dirty.insert(id);
            }
            if retry_lost_snapshots(r) {
                self.dirty.insert(id);
            }
        }
    }

    /// Delivers a Raft message that arrived for `group`.
    pub fn step(&mut self, group: GroupId, mut msg: Message) -> Result<(), DriverError> {
        let r = self.groups.get_mut(&group).ok_or(DriverError::UnknownGroup(group))?;
        // A proposal from another broker is appended as it is: it must hold what a local one
        // may (one valid batch per entry), or the storage would refuse it and stop the group.
        if msg.msg_type == raft::prelude::MessageType::MsgPropose as i32 {
            for e in &msg.entries {
                check_one_batch(group, &e.data)?;
            }
        }
        self.dirty.insert(group);
        if let Some(c) = crate::lost_log::correct(&mut r.raw, &mut msg) {
            tracing::warn!(group = %group, correction = ?c, "a replica lost log entries it had acknowledged");
        }
        r.raw.step(msg).map_err(|source| DriverError::Raft { group, source })
    }

    /// Proposes one Kafka v2 record batch (validate and split producer requests first) on the
    /// leader. It is durable on the leader after the next `process_ready` and committed once
    /// reported in [`Output::committed`] with the returned index and term.
    pub fn propose(&mut self, group: GroupId, kafka_batch: Vec<u8>) -> Result<Proposal, DriverError> {
        // The storage refuses a malformed entry, which would stop the replica: refuse it here.
        check_one_batch(group, &kafka_batch)?;
        self.propose_on_leader(group, vec![], kafka_batch)
    }

    /// Appends one entry on the leader; `NotLeader` (with the leader it knows) elsewhere.
    fn propose_on_leader(&mut self, group: GroupId, context: Vec<u8>, data: Vec<u8>) -> Result<Proposal, DriverError> {
        let r = self.groups.get_mut(&group).ok_or(DriverError::UnknownGroup(group))?;
        if r.raw.raft.state != StateRole::Leader {
            let leader = (r.raw.raft.leader_id != 0).then_some(r.raw.raft.leader_id);
            return Err(DriverError::NotLeader { group, leader });
        }
        r.raw.propose(context, data).map_err(|source| match source {
            raft::Error::ProposalDropped => DriverError::ProposalDropped { group },
            source => DriverError::Raft { group, source },
        })?;
        self.dirty.insert(group);
        Ok(Proposal {
            index: r.raw.raft.raft_log.last_index(),
            term: r.raw.raft.term,
        })
    }

    /// Proposes a batch from any replica: a follower forwards it to the leader it knows (raft-rs
    /// `MsgPropose`), so any broker can submit controller records. Nothing tells the caller
    /// whether a forwarded proposal arrived: it watches the applied state and proposes again.
    pub fn propose_forwarded(&mut self, group: GroupId, kafka_batch: Vec<u8>) -> Result<(), DriverError> {
        let r = self.groups.get_mut(&group).ok_or(DriverError::UnknownGroup(group))?;
        if r.raw.raft.state == StateRole::Leader {
            return self.propose(group, kafka_batch).map(drop);
        }
        check_one_batch(group, &kafka_batch)?;
        r.raw.propose(vec![], kafka_batch).map_err(|source| match source {
            raft::Error::ProposalDropped => DriverError::ProposalDropped { group },
            source => DriverError::Raft { group, source },
        })?;
        self.dirty.insert(group);
        Ok(())
    }

    /// On the leader: its last log index and every voter's matched index (the leader's own
    /// included), from which the broker derives the ISR. `None` on a follower.
    pub fn progress(&self, group: GroupId) -> Option<(u64, Vec<(NodeId, u64)>)> {
        let r = self.groups.get(&group)?;
        if r.raw.raft.state != StateRole::Leader {
            return None;
        }
        let last = r.raw.raft.raft_log.last_index();
        let matched = r.raw.raft.prs().iter().map(|(&id, pr)| (id, pr.matched)).collect();
        Some((last, matched))
    }

    /// On the leader: proposes a command every replica applies at its place in the log (see
    /// `log_command`); it is applied once reported committed like a batch (index and term).
    pub fn propose_command(&mut self, group: GroupId, command: LogCommand) -> Result<Proposal, DriverError> {
        self.propose_on_leader(group, command.encode(), vec![])
    }

    /// Moves this replica's log start to `offset` (retention, on every replica independently),
    /// never past what it applied; returns the log start afterwards.
    pub fn advance_log_start(&mut self, group: GroupId, offset: u64) -> Result<u64, DriverError> {
        let r = self.groups.get_mut(&group).ok_or(DriverError::UnknownGroup(group))?;
        let applied = r.raw.raft.raft_log.applied;
        r.store
            .advance_log_start(offset, applied)
            .map_err(|source| DriverError::Storage { group, source })
    }

    /// The group's configuration as this replica has applied it.
    pub fn conf(&self, group: GroupId) -> Option<GroupConf> {
        let r = self.groups.get(&group)?;
        let cs = r.raw.raft.prs().conf().to_conf_state();
        Some(GroupConf {
            voters: sorted(cs.voters),
            outgoing: sorted(cs.voters_outgoing),
            learners: sorted(cs.learners.into_iter().chain(cs.learners_next).collect()),
            pending: r.raw.raft.has_pending_conf(),
        })
    }

    /// On the leader: proposes a configuration change (one at a time: refused while another is
    /// pending or the group is in a joint configuration, which raft-rs leaves by itself).
    pub fn propose_conf_change(&mut self, group: GroupId, cc: ConfChangeV2) -> Result<(), DriverError> {
        let r = self.groups.get_mut(&group).ok_or(DriverError::UnknownGroup(group))?;
        if r.raw.raft.state != StateRole::Leader {
            let leader = (r.raw.raft.leader_id != 0).then_some(r.raw.raft.leader_id);
            return Err(DriverError::NotLeader { group, leader });
        }
        if r.raw.raft.has_pending_conf() || !r.raw.raft.prs().conf().to_conf_state().voters_outgoing.is_empty() {
            return Err(DriverError::ProposalDropped { group });
        }
        r.raw.propose_conf_change(vec![], cc).map_err(|source| match source {
            raft::Error::ProposalDropped => DriverError::ProposalDropped { group },
            source => DriverError::Raft { group, source },
        })?;
        self.dirty.insert(group);
        Ok(())
    }

    /// Asks the leader of `group` (this replica) to hand leadership to `to` (Raft thesis §3.10).
    pub fn transfer_leader(&mut self, group: GroupId, to: NodeId) -> Result<(), DriverError> {
        let r = self.groups.get_mut(&group).ok_or(DriverError::UnknownGroup(group))?;
        r.raw.transfer_leader(to);
        self.dirty.insert(group);
        Ok(())
    }

    /// Handles the `Ready` of every group that has one, with one partition-log fsync per touched
    /// group for the whole pass: all three halves of a pass in a row (see the module doc).
    pub fn process_ready(&mut self, now_ms: i64) -> Output {
        let (mut out, mut pass) = self.begin_ready(now_ms);
        pass.sync(now_ms);
        out.absorb(self.finish_ready(pass, now_ms));
        out
    }

    /// The first half of a pass (see the module doc): what it produced at once, and the pass to
    /// `sync` and then `finish_ready`.
    pub fn begin_ready(&mut self, now_ms: i64) -> (Output, ReadyPass) {
        let mut out = Output::default();
        let mut pass = ReadyPass::default();
        for id in std::mem::take(&mut self.dirty) {
            let Some(r) = self.groups.get_mut(&id) else { continue };
            if !r.raw.has_ready() {
                continue;
            }
            let ready = r.raw.ready();
            out.readies += 1;
            let result = if r.unfinished == 0 && ready.entries().is_empty() && ready.snapshot().is_empty() {
                complete_in_place(r, id, ready, &mut out)
            } else {
                begin_write(r, id, ready, now_ms, &mut out).map(|pending| {
                    pass.targets.insert(
                        (id, r.generation),
                        SyncTarget {
                            store: r.store.clone(),
                            result: None,
                        },
                    );
                    pass.pending.push(pending);
                })
            };
            self.conclude(id, result, &mut out);
        }
        self.stats.passes += 1;
        self.count(&out);
        (out, pass)
    }

    /// The last half of a pass whose logs were synced: tells raft-rs what is durable and releases
    /// what waited for it, in the order the readies were taken.
    pub fn finish_ready(&mut self, pass: ReadyPass, now_ms: i64) -> Output {
        let mut out = Output::default();
        let mut sync_failed = Vec::new();
        for ((group, generation), t) in pass.targets {
            // Not synced (a caller that skipped `sync`): a sync now keeps the promise.
            match t.result.unwrap_or_else(|| t.store.sync(now_ms)) {
                Ok(synced) => out.log_syncs += usize::from(synced),
                Err(source) => sync_failed.push((group, generation, source)),
            }
        }
        for (group, generation, source) in sync_failed {
            if self.groups.get(&group).is_some_and(|r| r.generation == generation) {
                self.fail(group, DriverError::Storage { group, source }, &mut out);
            }
        }
        let mut finished = BTreeSet::new();
        for p in pass.pending {
            let Some(r) = self.groups.get_mut(&p.group) else {
                continue;
            };
            if r.generation != p.generation {
                continue;
            }
            push_messages(&mut out, p.group, p.persisted_messages);
            r.raw.on_persist_ready(p.number);
            if p.apply_to > 0 {
                r.raw.advance_apply_to(p.apply_to);
            }
            r.unfinished -= 1;
            finished.insert(p.group);
        }
        for id in finished {
            let Some(r) = self.groups.get_mut(&id) else { continue };
            // What became durable may commit entries (a single replica's) or let them be applied:
            // report them now unless a write is under way, which must come first.
            let mut result = Ok(());
            if r.unfinished == 0
                && r.raw.raft.raft_log.unstable_entries().is_empty()
                && r.raw.raft.raft_log.unstable_snapshot().is_none()
                && r.raw.has_ready()
            {
                out.readies += 1;
                let ready = r.raw.ready();
                result = complete_in_place(r, id, ready, &mut out);
            }
            self.conclude(id, result, &mut out);
        }
        self.count(&out);
        out
    }

    /// After a group's ready was handled: report what changed and keep the group dirty while
    /// raft-rs has more for it, or stop it.
    fn conclude(&mut self, id: GroupId, result: Result<(), DriverError>, out: &mut Output) {
        match result {
            Ok(()) => {
                if let Some(r) = self.groups.get_mut(&id) {
                    observe(r, id, out);
                    if r.raw.has_ready() {
                        self.dirty.insert(id);
                    }
                }
            }
            Err(e) => self.fail(id, e, out),
        }
    }

    fn count(&mut self, out: &Output) {
        self.stats.readies += out.readies as u64;
        self.stats.log_syncs += out.log_syncs as u64;
        self.stats.state_writes += out.state_writes as u64;
    }

    /// Persists the commit index of every group whose `raft-state` lags it (Kafka's high
    /// watermark checkpoint); a replica restarted from an older one learns the rest from its
    /// leader and reports those entries as committed again. Groups that fail are stopped and
    /// returned.
    pub fn persist_commits(&mut self) -> Vec<(GroupId, DriverError)> {
        let mut failed = Vec::new();
        for (&id, r) in &self.groups {
            match r.store.persist_commit() {
                Ok(wrote) => self.stats.state_writes += u64::from(wrote),
                Err(source) => failed.push((id, DriverError::Storage { group: id, source })),
            }
        }
        for (id, e) in &failed {
            tracing::error!(group = %id, error = %e, "stopping raft group replica");
            self.groups.remove(id);
            self.dirty.remove(id);
        }
        failed
    }

    /// Clean shutdown: persists every commit index, then flushes and closes every partition log
    /// (they refuse writes afterwards) and drops all groups. Returns the groups that failed.
    pub fn shutdown(&mut self, now_ms: i64) -> Vec<(GroupId, DriverError)> {
        let mut failed = self.persist_commits();
        for (id, r) in std::mem::take(&mut self.groups) {
            if let Err(source) = r.store.shutdown(now_ms) {
                failed.push((id, DriverError::Storage { group: id, source }));
            }
        }
        self.dirty.clear();
        failed
    }

    fn fail(&mut self, id: GroupId, err: DriverError, out: &mut Output) {
        tracing::error!(group = %id, error = %err, "stopping raft group replica");
        self.groups.remove(&id);
        self.dirty.remove(&id);
        out.failed.push((id, err));
    }
}

/// raft-rs pauses a follower it sent a snapshot to until told how the send went; a snapshot lost
/// on the way (a dropped connection, a full queue) would pause it for good. After
/// `SNAPSHOT_RETRY_TICKS` without the follower catching up, the send is reported failed and
/// raft-rs probes the follower again. Returns whether something was reported.
fn retry_lost_snapshots(r: &mut Replica) -> bool {
    if r.raw.raft.state != StateRole::Leader {
        r.snapshot_wait.clear();
        return false;
    }
    let waiting: Vec<NodeId> = r
        .raw
        .raft
        .prs()
        .iter()
        .filter(|(_, pr)| pr.state == raft::ProgressState::Snapshot)
        .map(|(&id, _)| id)
        .collect();
    r.snapshot_wait.retain(|id, _| waiting.contains(id));
    let mut reported = false;
    for id in waiting {
        let ticks = r.snapshot_wait.entry(id).or_insert(0);
        *ticks += 1;
        if *ticks > SNAPSHOT_RETRY_TICKS {
            r.snapshot_wait.remove(&id);
            r.raw.report_snapshot(id, raft::SnapshotStatus::Failure);
            reported = true;
        }
    }
    reported
}

/// What a proposed entry must be: exactly one valid Kafka record batch.
fn check_one_batch(group: GroupId, kafka_batch: &[u8]) -> Result<(), DriverError> {
    let header = batch::validate(kafka_batch).map_err(|e| DriverError::InvalidBatch {
        group,
        reason: e.to_string(),
    })?;
    if header.total_size() != kafka_batch.len() {
        return Err(DriverError::InvalidBatch {
            group,
            reason: "exactly one record batch per proposal".into(),
        });
    }
    Ok(())
}

/// A proposal for `to`'s replica of a group, from a broker that hosts no replica of it (or knows
/// no leader): raft-rs appends it on a leader and forwards it from a follower. The batch is
/// validated like a local proposal by whoever appends it.
pub fn remote_proposal(from: NodeId, to: NodeId, kafka_batch: Vec<u8>) -> Message {
    Message {
        msg_type: raft::prelude::MessageType::MsgPropose as i32,
        to,
        from,
        entries: vec![Entry {
            entry_type: EntryType::EntryNormal as i32,
            data: kafka_batch,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn push_messages(out: &mut Output, group: GroupId, msgs: Vec<Message>) {
    for m in msgs {
        out.messages.entry(m.to).or_default().push((group, m));
    }
}

/// Writes a ready's entries without fsync (see the module doc) and hands it back to raft-rs; what
/// must wait for the fsync is returned.
fn begin_write(
    r: &mut Replica,
    id: GroupId,
    mut ready: Ready,
    now_ms: i64,
    out: &mut Output,
) -> Result<PendingReady, DriverError> {
    let storage = |source| DriverError::Storage { group: id, source };
    let mut apply_to = 0;
    if !ready.snapshot().is_empty() {
        // Behind the leader's log start: start over from its snapshot, before the entries that
        // follow it are written.
        r.store.install_snapshot(ready.snapshot()).map_err(storage)?;
        out.snapshots_installed += 1;
        apply_to = ready.snapshot().get_metadata().index;
    }
    push_messages(out, id, ready.take_messages());
    let committed = ready.take_committed_entries();
    if let Some(e) = committed.last() {
        apply_to = e.index;
    }
    apply(r, id, committed, out)?;
    r.store.append_unsynced(ready.entries(), now_ms).map_err(storage)?;
    save_hard_state(r, id, ready.hs(), out)?;
    let pending = PendingReady {
        group: id,
        generation: r.generation,
        number: ready.number(),
        persisted_messages: ready.take_persisted_messages(),
        apply_to,
    };
    r.raw.advance_append_async(ready);
    r.unfinished += 1;
    Ok(pending)
}

/// Handles a ready that writes no entry and no snapshot, of a replica with no write in flight:
/// nothing to wait for, so raft-rs is advanced at once.
fn complete_in_place(r: &mut Replica, id: GroupId, mut ready: Ready, out: &mut Output) -> Result<(), DriverError> {
    save_hard_state(r, id, ready.hs(), out)?;
    push_messages(out, id, ready.take_messages());
    push_messages(out, id, ready.take_persisted_messages());
    apply(r, id, ready.take_committed_entries(), out)?;
    let mut light = r.raw.advance_append(ready);
    if let Some(commit) = light.commit_index() {
        r.store.note_commit(commit);
    }
    push_messages(out, id, light.take_messages());
    apply(r, id, light.take_committed_entries(), out)?;
    r.raw.advance_apply();
    Ok(())
}

/// Persists a term or vote change before anything of the new term leaves (this also fsyncs the
/// entries written so far); a commit index alone is only kept in memory (see the module doc).
fn save_hard_state(
    r: &mut Replica,
    id: GroupId,
    hs: Option<&raft::prelude::HardState>,
    out: &mut Output,
) -> Result<(), DriverError> {
    let Some(hs) = hs else { return Ok(()) };
    let current = r.store.hard_state();
    if (hs.term, hs.vote) != (current.term, current.vote) {
        r.store
            .set_hard_state(hs.clone())
            .map_err(|source| DriverError::Storage { group: id, source })?;
        out.state_writes += 1;
    } else {
        r.store.note_commit(hs.commit);
    }
    Ok(())
}

/// Reports a change of leader or of high watermark since the last report.
fn observe(r: &mut Replica, id: GroupId, out: &mut Output) {
    let leader = (r.raw.raft.leader_id, r.raw.raft.term);
    if leader.0 != r.leader.0 || (leader.0 != 0 && leader.1 != r.leader.1) {
        r.leader = leader;
        out.leader_changes.push(LeaderChange {
            group: id,
            leader: (leader.0 != 0).then_some(leader.0),
            term: leader.1,
        });
    }
    let hw = r.store.high_watermark();
    if hw != r.high_watermark {
        r.high_watermark = hw;
        out.high_watermarks.insert(id, hw);
    }
}

/// Reports committed data entries with their Kafka offsets and applies committed
/// configuration changes (persisting the configuration they produce).
fn apply(r: &mut Replica, group: GroupId, entries: Vec<Entry>, out: &mut Output) -> Result<(), DriverError> {
    for e in entries {
        if is_conf_change(&e) {
            apply_conf_change(r, group, &e)?;
            continue;
        }
        // Committed data entries come without their batch (`raft_log::payload_wanted`): the
        // offset translator knows which entries are data.
        let offsets = r.store.offsets_of_index(e.index).ok_or_else(|| DriverError::Storage {
            group,
            source: RaftLogError::InvalidEntry {
                index: e.index,
                reason: "committed entry the log does not track".into(),
            },
        })?;
        if offsets.is_empty() {
            apply_command(r, group, &e)?;
            continue;
        }
        out.committed.push(Committed {
            group,
            index: e.index,
            term: e.term,
            offsets,
        });
    }
    Ok(())
}

/// Applies a command entry (see `log_command`) on this replica, at its place in the log.
fn apply_command(r: &mut Replica, group: GroupId, e: &Entry) -> Result<(), DriverError> {
    let command = LogCommand::decode(&e.context).map_err(|reason| DriverError::Storage {
        group,
        source: RaftLogError::InvalidEntry { index: e.index, reason },
    })?;
    match command {
        None => Ok(()),
        Some(LogCommand::DeleteRecords { before }) => {
            // Everything up to this entry is applied: the start may move up to it.
            let start = r
                .store
                .advance_log_start(before, e.index)
                .map_err(|source| DriverError::Storage { group, source })?;
            tracing::info!(%group, index = e.index, before, log_start = start, "records deleted");
            Ok(())
        }
    }
}

fn apply_conf_change(r: &mut Replica, group: GroupId, e: &Entry) -> Result<(), DriverError> {
    if e.index <= r.store.conf_index() {
        // Already in the configuration (a snapshot brought a newer one than its index).
        return Ok(());
    }
    use prost_011::Message as _;
    let invalid = |reason: String| DriverError::Storage {
        group,
        source: RaftLogError::InvalidEntry { index: e.index, reason },
    };
    let result = if e.entry_type == EntryType::EntryConfChangeV2 as i32 {
        let cc = ConfChangeV2::decode(e.data.as_slice()).map_err(|d| invalid(d.to_string()))?;
        r.raw.apply_conf_change(&cc)
    } else {
        let cc = ConfChange::decode(e.data.as_slice()).map_err(|d| invalid(d.to_string()))?;
        r.raw.apply_conf_change(&cc)
    };
    let cs = result.map_err(|source| DriverError::Raft { group, source })?;
    tracing::info!(%group, index = e.index, voters = ?cs.voters, outgoing = ?cs.voters_outgoing, learners = ?cs.learners, "raft configuration changed");
    r.store
        .set_conf_state(cs, e.index)
        .map_err(|source| DriverError::Storage { group, source })
}

/// A `slog` drain that forwards raft-rs's own logging to `tracing` (message only, without its
/// key-value pairs), for [`tracing_logger`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, _values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{msg}"),
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}"),
            slog::Level::Info => tracing::info!(target: "raft", "{msg}"),
            slog::Level::Debug => tracing::debug!(target: "raft", "{msg}"),
            slog::Level::Trace => tracing::trace!(target: "raft", "{msg}"),
        }
        Ok(())
    }
}

/// The logger to give [`GroupDriver::new`] in the broker: raft-rs's logs go to `tracing`.
pub fn tracing_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
