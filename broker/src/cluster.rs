//! Cluster mode (issue 4): the broker's side of replication. One [`Cluster`] per broker owns the
//! Raft driver of every group this broker hosts (the controller group and one group per
//! partition replica), the broker-to-broker transport, and the cluster metadata applied from the
//! controller group's log.
//!
//! - **One loop, one timer.** [`Cluster::run`] is the only task that steps Raft: it wakes on the
//!   tick (`RAFT_TICK`), on messages from peers, on proposals and on fsyncs done, steps
//!   everything that arrived, ticks every group at once, and begins one pass over every group's
//!   `Ready` (group commit across all groups) whose fsyncs run on the `raft-fsync` thread
//!   (`syncer.rs`) while the loop goes on; the next wake-up finishes it. Messages go out through
//!   the transport after each pass; produce waiters, parked fetches and leadership changes are
//!   settled from its output.
//! - **Every broker is a controller voter** (`controller.quorum.voters`), so every broker holds
//!   the metadata log and answers Metadata from its own applied state. Admin changes
//!   (registration, topic creation and deletion, partition leadership reports) are proposed by
//!   whichever broker receives them: a follower forwards the proposal to the controller
//!   leader (raft-rs `MsgPropose`), and the proposer waits until the record is applied, trying
//!   again if it was lost.
//! - **Offsets are assigned at proposal time** on the leader (`Role::next_offset`): only data
//!   entries take offsets and a leader appends its entries in proposal order, so the offsets a
//!   batch will get are known when it is proposed, which idempotent producers need (a retry is
//!   answered with the original offsets). Every commit checks the prediction; a mismatch fails
//!   the produce request and makes the producer table be rebuilt.
//! - **Leadership and ISR** are what the partition's Raft group says: the leader epoch is the
//!   Raft term, the ISR is the leader plus the followers whose log reached the leader's within
//!   `replica.lag.time.max.ms`. Leaders report both to the metadata log (`PartitionLeader`), so
//!   brokers that host no replica of a partition still answer Metadata truthfully.

mod log_start;
mod membership;
mod preferred_leader;
mod producer_id_blocks;
mod reassignment;
mod syncer;

pub use reassignment::OngoingReassignment;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use skiff_replication::cluster_metadata::{CONTROLLER_GROUP, ClusterMetadata, PlanError, TopicInfo};
use skiff_replication::group_driver::{
    DriverConfig, DriverError, GroupDriver, LeaderChange, NodeId, Output, ReadyPass, ReplicaSpec, tracing_logger,
};
use skiff_replication::group_id::GroupId;
use skiff_replication::metadata_records::{
    BrokerId, DeleteTopicConfig, Endpoint, MetadataRecord, PartitionLeader, RegisterBroker, SetTopicConfig,
    decode_batches, encode_batch, metadata_record::Kind,
};
use skiff_replication::transport::{Incoming, Transport, TransportConfig};
use skiff_storage::batch;
use skiff_storage::{AppendInfo, LogConfig, StorageError, TimestampType};
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::error::ApiError;
use crate::offset_store::OFFSETS_TOPIC;
use crate::partition::{Commit, Partition, Pending, Replica, Role};
use crate::topic_config;
use crate::topics::Topic;

/// The one timer of all Raft groups: an election timeout of `ELECTION_TICK_DEFAULT` (10) ticks
/// is 1–2 s, a leader heartbeats every tick.
pub const RAFT_TICK: Duration = Duration::from_millis(100);
/// How often leaders compare their leadership and ISR with the metadata log's.
const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// How often a broker proposes its registration until it is applied.
const REGISTER_RETRY: Duration = Duration::from_secs(1);
/// How long an admin request (create or delete a topic) waits for its record to be applied.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// A proposed admin record not applied after this is proposed again (it may have been lost in
/// a controller election).
const ADMIN_RETRY: Duration = Duration::from_secs(2);
/// How often unresolved peer host names are looked up again.
const RESOLVE_RETRY: Duration = Duration::from_secs(1);
/// Incoming Raft messages stepped per pass at most, so ticks keep their pace under load.
const MAX_MESSAGES_PER_PASS: usize = 8192;
/// The directory of the metadata log (KRaft's name for it).
const METADATA_DIR: &str = "__cluster_metadata-0";
/// Most metadata-log bytes applied in one read (a pass commits far fewer).
const METADATA_READ_BYTES: usize = 64 * 1024 * 1024;
/// Passes in a row the loop runs at once for work left over by the previous one.
const MAX_IMMEDIATE_PASSES: u32 = 64;
/// New partition replicas opened per pass at most: opening one costs several fsyncs, and a pass
/// that opened a whole new topic (50 `__consumer_offsets` partitions) at once would keep this
/// broker from answering its peers past their election timeout, so leaders elsewhere would lose
/// their quorum and step down. The rest are opened by the passes that follow.
const MAX_REPLICAS_OPENED_PER_PASS: usize = 8;
/// Exit status of a broker whose Raft loop panicked (EX_SOFTWARE).
const RAFT_LOOP_PANIC_EXIT_CODE: i32 = 70;

/// The Raft id of a broker: raft-rs reserves 0 for "none", Kafka broker ids start at 0.
pub fn raft_id(broker: BrokerId) -> NodeId {
    u64::try_from(broker).unwrap_or(0) + 1
}

/// The broker of a Raft id.
pub fn broker_id(node: NodeId) -> BrokerId {
    BrokerId::try_from(node.saturating_sub(1)).unwrap_or(-1)
}

/// Why a cluster member could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Transport(#[from] skiff_replication::transport::TransportError),
    #[error("metadata log: {0}")]
    Driver(#[from] DriverError),
    #[error("metadata log: {0}")]
    Replay(#[from] skiff_replication::cluster_metadata::ReplayError),
    #[error("could not start the raft-fsync thread: {0}")]
    SyncThread(std::io::Error),
}

/// A produce request's batch waiting for its Raft commit.
#[derive(Debug)]
struct Waiter {
    term: u64,
    offsets: Range<u64>,
    tx: oneshot::Sender<Result<(), ApiError>>,
}

/// What Metadata says of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
}

/// A registered broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub id: BrokerId,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug)]
pub struct Cluster {
    me: BrokerId,
    /// Distinguishes this process's registration from an earlier run's.
    incarnation: u64,
    config: BrokerConfig,
    driver: Mutex<GroupDriver>,
    transport: Transport,
    metadata: RwLock<ClusterMetadata>,
    /// The Kafka offset of the metadata log applied so far; admin waiters wait on `applied_cv`.
    applied: Mutex<u64>,
    applied_cv: Condvar,
    /// The metadata log (read when its entries commit).
    controller: skiff_replication::raft_log::LogStorage,
    /// Hosted partition replicas by Raft group.
    replicas: RwLock<HashMap<GroupId, Arc<Partition>>>,
    waiters: Mutex<HashMap<GroupId, BTreeMap<u64, Waiter>>>,
    /// When each follower of a group this broker leads last had the leader's whole log.
    caught_up: Mutex<HashMap<(GroupId, BrokerId), Instant>>,
    /// Followers heard from since the last ISR update: only a replica that answers counts as
    /// caught up (on an idle partition a dead follower's progress still matches the log end).
    heard: Mutex<std::collections::HashSet<(GroupId, BrokerId)>>,
    /// Set once this process's own registration is applied: its metadata has then caught up
    /// with everything committed before it started (KRaft's "unfenced" broker). Until then a
    /// restarted broker's metadata may lack recent topics, so it must not call them unknown.
    registered: std::sync::atomic::AtomicBool,
    /// When leaders last looked for partitions to hand back (`preferred_leader.rs`).
    last_rebalance: Mutex<Instant>,
    /// When leaders last stepped the reassignments they lead (`reassignment.rs`).
    last_reassignment_step: Mutex<Instant>,
    /// Whether this broker is one of `controller.quorum.voters`; a broker added later follows
    /// the metadata log as a Raft learner (`membership.rs`).
    is_voter: bool,
    /// Where this broker takes Raft traffic, as it registers it.
    raft_endpoint: Endpoint,
    /// Brokers whose Raft address the transport knows.
    known_peers: Mutex<std::collections::HashSet<BrokerId>>,
    /// The producer ids left in this broker's block: next, end (`producer_id_blocks.rs`).
    producer_ids: Mutex<(i64, i64)>,
    /// On the controller leader: when each broker was last heard from in the controller group,
    /// since when this broker leads it, and when liveness was last checked (`membership.rs`).
    liveness: Mutex<membership::Liveness>,
    /// Wakes the loop after a proposal.
    wake: Notify,
    /// `reconcile` left replicas to open for the next pass (`MAX_REPLICAS_OPENED_PER_PASS`).
    reconcile_again: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn not_leader(message: impl Into<String>) -> ApiError {
    ApiError::new(ResponseError::NotLeaderOrFollower, message)
}

fn plan_error(e: PlanError) -> ApiError {
    ApiError::new(e.error(), e.to_string())
}

impl Cluster {
    /// Joins the cluster: binds the Raft transport on `peer_listen`, opens and replays the
    /// metadata log, opens this broker's partition replicas, and starts the loop, the
    /// registration and the leadership reports. Must run on a multi-threaded tokio runtime.
    pub async fn start(broker: &Arc<Broker>, peer_listen: SocketAddr) -> Result<Arc<Cluster>, ClusterError> {
        let config = broker.config.clone();
        let me = config.node_id;
        let (transport, incoming) = Transport::bind(TransportConfig::new(raft_id(me), peer_listen)).await?;
        let voters: Vec<BrokerId> = config.controller_quorum_voters.iter().map(|v| v.id).collect();
        let is_voter = voters.contains(&me);
        let raft_endpoint = membership::advertised_raft_endpoint(&config, transport.local_addr());
        let mut driver = GroupDriver::new(DriverConfig::new(raft_id(me)), tracing_logger());
        let spec = ReplicaSpec {
            dir: config.data_dir.join(METADATA_DIR),
            log_config: LogConfig::default(),
            voters: config.controller_quorum_voters.iter().map(|v| raft_id(v.id)).collect(),
            election_timeout: None,
        };
        let opened = tokio::task::block_in_place(|| driver.open_group(CONTROLLER_GROUP, &spec));
        opened?;
        let controller = driver
            .store(CONTROLLER_GROUP)
            .cloned()
            .ok_or(DriverError::UnknownGroup(CONTROLLER_GROUP))?;
        let (metadata, applied) = tokio::task::block_in_place(|| ClusterMetadata::replay(&controller))?;
        tracing::info!(
            brokers = metadata.brokers().count(),
            topics = metadata.topics().count(),
            applied,
            "cluster metadata replayed"
        );
        let cluster = Arc::new(Cluster {
            me,
            incarnation: u64::try_from(now_ms()).unwrap_or(0),
            config,
            driver: Mutex::new(driver),
            transport,
            metadata: RwLock::new(metadata),
            applied: Mutex::new(applied),
            applied_cv: Condvar::new(),
            controller,
            replicas: RwLock::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            caught_up: Mutex::new(HashMap::new()),
            heard: Mutex::new(std::collections::HashSet::new()),
            registered: std::sync::atomic::AtomicBool::new(false),
            last_rebalance: Mutex::new(Instant::now()),
            last_reassignment_step: Mutex::new(Instant::now()),
            is_voter,
            raft_endpoint,
            known_peers: Mutex::new(voters.iter().copied().collect()),
            producer_ids: Mutex::new((0, 0)),
            liveness: Mutex::new(membership::Liveness::default()),
            wake: Notify::new(),
            reconcile_again: std::sync::atomic::AtomicBool::new(false),
        });
        broker.set_cluster(Arc::clone(&cluster));
        tokio::task::block_in_place(|| {
            let mut driver = lock(&cluster.driver);
            cluster.reconcile(&mut driver, broker);
        });
        tokio::spawn(Arc::clone(&cluster).resolve_peers());
        let (syncer, synced) = syncer::Syncer::start().map_err(ClusterError::SyncThread)?;
        let raft_loop = tokio::spawn(Arc::clone(&cluster).run(Arc::clone(broker), incoming, syncer, synced));
        tokio::spawn(async move {
            // A broker whose Raft loop died would keep its client port open and answer from
            // frozen state: exiting lets clients and peers fail over, and a supervisor restart it.
            if let Err(e) = raft_loop.await
                && e.is_panic()
            {
                tracing::error!("the Raft loop panicked; exiting");
                std::process::exit(RAFT_LOOP_PANIC_EXIT_CODE);
            }
        });
        tokio::spawn(Arc::clone(&cluster).register());
        tokio::spawn(Arc::clone(&cluster).report_leadership());
        Ok(cluster)
    }

    pub fn me(&self) -> BrokerId {
        self.me
    }

    /// Whether this broker's metadata has caught up with the cluster's (see `registered`).
    pub fn caught_up(&self) -> bool {
        self.registered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Tells the transport where every voter listens, looking names up until all resolve (in
    /// docker compose a peer's name resolves only once its container exists).
    async fn resolve_peers(self: Arc<Self>) {
        let mut pending: Vec<_> = self
            .config
            .controller_quorum_voters
            .iter()
            .filter(|v| v.id != self.me)
            .cloned()
            .collect();
        while !pending.is_empty() {
            let mut unresolved = Vec::new();
            for v in pending {
                let found = tokio::net::lookup_host(format!("{}:{}", v.host, v.port))
                    .await
                    .map(|mut addrs| addrs.next());
                match found {
                    Ok(Some(addr)) => self.transport.add_peer(raft_id(v.id), addr),
                    Ok(None) => unresolved.push(v),
                    Err(e) => {
                        tracing::debug!(peer = v.id, host = %v.host, error = %e, "cannot resolve peer yet");
                        unresolved.push(v);
                    }
                }
            }
            pending = unresolved;
            if !pending.is_empty() {
                tokio::time::sleep(RESOLVE_RETRY).await;
            }
        }
    }

    /// The Raft loop (see the module doc).
    async fn run(
        self: Arc<Self>,
        broker: Arc<Broker>,
        mut incoming: mpsc::Receiver<Incoming>,
        syncer: syncer::Syncer,
        mut synced: mpsc::UnboundedReceiver<ReadyPass>,
    ) {
        let mut ticker = tokio::time::interval(RAFT_TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let checkpoint_every = Duration::from_millis(
            skiff_replication::group_driver::REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_DEFAULT,
        );
        let mut last_checkpoint = Instant::now();
        let mut immediate = 0;
        loop {
            let mut tick = false;
            let mut messages = Vec::new();
            let mut done = Vec::new();
            tokio::select! {
                _ = ticker.tick() => tick = true,
                m = incoming.recv() => match m {
                    Some(m) => messages.push(m),
                    None => return,
                },
                p = synced.recv() => match p {
                    Some(p) => done.push(p),
                    None => sync_thread_lost(),
                },
                _ = self.wake.notified() => {}
            }
            while let Ok(p) = synced.try_recv() {
                done.push(p);
            }
            while messages.len() < MAX_MESSAGES_PER_PASS {
                match incoming.try_recv() {
                    Ok(m) => messages.push(m),
                    Err(_) => break,
                }
            }
            let checkpoint = last_checkpoint.elapsed() >= checkpoint_every;
            if checkpoint {
                last_checkpoint = Instant::now();
            }
            // On this worker, not under `block_in_place`: a pass is short (its fsyncs are the
            // raft-fsync thread's), and handing the worker's queue to another thread on every
            // pass cost a replicating broker a third of its produce throughput. The long parts,
            // opening replicas and checkpointing commit indexes, hand it over themselves (`pass`).
            let (out, pass) = self.pass(&broker, done, messages, tick, checkpoint);
            if !pass.is_empty() && !syncer.submit(pass) {
                sync_thread_lost();
            }
            self.settle(out);
            // Work an `advance` left behind (entries it committed, messages it made) would
            // otherwise wait for the next tick or message: up to RAFT_TICK added to a commit.
            // Bounded, so that a group that always has work cannot spin the loop.
            let more =
                lock(&self.driver).has_pending() || self.reconcile_again.load(std::sync::atomic::Ordering::Acquire);
            if more && immediate < MAX_IMMEDIATE_PASSES {
                immediate += 1;
                self.wake.notify_one();
            } else {
                immediate = 0;
            }
        }
    }

    /// One pass of the loop under the driver's lock: finish the passes the fsync thread synced,
    /// step, tick, begin the next pass (returned for the fsync thread), and the changes of
    /// leadership and metadata that proposals must see at once.
    fn pass(
        &self,
        broker: &Arc<Broker>,
        done: Vec<ReadyPass>,
        messages: Vec<Incoming>,
        tick: bool,
        checkpoint: bool,
    ) -> (Output, ReadyPass) {
        let mut driver = lock(&self.driver);
        let mut out = Output::default();
        for pass in done {
            out.absorb(driver.finish_ready(pass, now_ms()));
        }
        lock(&self.heard).extend(messages.iter().map(|m| (m.group, broker_id(m.from))));
        self.note_controller_traffic(
            messages
                .iter()
                .filter(|m| m.group == CONTROLLER_GROUP)
                .map(|m| broker_id(m.from)),
        );
        for m in messages {
            match driver.step(m.group, m.message) {
                Ok(()) | Err(DriverError::UnknownGroup(_)) => {}
                Err(e) => tracing::debug!(group = %m.group, from = m.from, error = %e, "raft message refused"),
            }
        }
        if tick {
            driver.tick();
        }
        let (begun, pass) = driver.begin_ready(now_ms());
        out.absorb(begun);
        let mut metadata_changed = false;
        let mut elections = Vec::new();
        for c in out.committed.iter().filter(|c| c.group == CONTROLLER_GROUP) {
            if let Some(records) = self.apply_metadata(c.offsets.clone()) {
                metadata_changed = true;
                elections.extend(self.elections_in(&records));
            }
        }
        if metadata_changed || self.reconcile_again.swap(false, std::sync::atomic::Ordering::AcqRel) {
            // Opening a replica costs several fsyncs (up to MAX_REPLICAS_OPENED_PER_PASS of
            // them here): the runtime's other tasks move to another thread meanwhile.
            tokio::task::block_in_place(|| self.reconcile(&mut driver, broker));
        }
        if metadata_changed {
            self.applied_cv.notify_all();
        }
        for change in &out.leader_changes {
            self.on_leader_change(&driver, broker, change);
        }
        for group in elections {
            self.hand_to_preferred(&mut driver, group);
        }
        if tick {
            self.rebalance_leaders(&mut driver);
            self.step_reassignments(&mut driver);
            self.step_controller_learners(&mut driver);
            self.step_broker_liveness(&mut driver);
        }
        for (group, e) in &out.failed {
            if let Some(p) = read(&self.replicas).get(group)
                && let Some(r) = p.replica()
            {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "partition replica stopped");
                *r.role() = Role::default();
            }
        }
        if tick {
            self.update_isr(&driver);
        }
        if checkpoint {
            // A `raft-state` write (with fsyncs) per group whose commit moved: long, like opening.
            for (group, e) in tokio::task::block_in_place(|| driver.persist_commits()) {
                tracing::error!(%group, error = %e, "could not checkpoint the commit index");
            }
        }
        (out, pass)
    }

    /// After a pass, outside the lock: send, answer produce waiters, wake fetches.
    fn settle(&self, out: Output) {
        for (to, messages) in out.messages {
            for (group, m) in messages {
                if let Err(e) = self.transport.send(to, group, &m) {
                    tracing::trace!(%group, to, error = %e, "raft message dropped");
                }
            }
        }
        let replicas = read(&self.replicas);
        let mut stale = Vec::new();
        let mut waiters = lock(&self.waiters);
        for c in out.committed.iter().filter(|c| c.group != CONTROLLER_GROUP) {
            let Some(pending) = waiters.get_mut(&c.group) else {
                continue;
            };
            let rest = pending.split_off(&(c.index + 1));
            for (index, w) in std::mem::replace(pending, rest) {
                let result = if index == c.index && w.term == c.term && w.offsets == c.offsets {
                    Ok(())
                } else {
                    if index == c.index && w.term == c.term {
                        // Our own entry got other offsets than predicted: the producer table
                        // recorded the wrong ones.
                        tracing::error!(group = %c.group, index, predicted = ?w.offsets, got = ?c.offsets, "offset prediction failed");
                        stale.push(c.group);
                    }
                    Err(not_leader("the batch was lost in a leader change; retry"))
                };
                let _ = w.tx.send(result);
            }
        }
        drop(waiters);
        for group in stale {
            if let Some(r) = replicas.get(&group).and_then(|p| p.replica()) {
                r.role().producers_stale = true;
            }
        }
        for (group, hw) in out.high_watermarks {
            if let Some(p) = replicas.get(&group) {
                p.advance_high_watermark(hw);
            }
        }
    }

    /// Applies committed metadata-log batches in `offsets` (those not applied yet); returns
    /// the records applied, or `None` when there was nothing to apply.
    fn apply_metadata(&self, offsets: Range<u64>) -> Option<Vec<MetadataRecord>> {
        let mut applied = lock(&self.applied);
        if offsets.end <= *applied {
            return None;
        }
        let bytes = match self.controller.read(*applied, METADATA_READ_BYTES, offsets.end) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the metadata log");
                return None;
            }
        };
        let records = match decode_batches(&bytes) {
            Ok(records) => {
                write(&self.metadata).apply_all(&records);
                records
            }
            Err(e) => {
                tracing::error!(error = %e, "undecodable metadata batch skipped");
                Vec::new()
            }
        };
        *applied = offsets.end;
        Some(records)
    }

    /// Makes the hosted replicas and the broker's topic registry match the applied metadata:
    /// opens the groups of partitions assigned to this broker (`MAX_REPLICAS_OPENED_PER_PASS` at a
    /// time), closes (and deletes) the others.
    fn reconcile(&self, driver: &mut GroupDriver, broker: &Arc<Broker>) {
        let metadata = read(&self.metadata);
        self.learn_peers(&metadata);
        let topics: Vec<Topic> = metadata.topics().map(topic_of).collect();
        broker.mirror_topics(&topics);
        let mut wanted = HashMap::new();
        for t in metadata.topics() {
            for (index, p) in (0i32..).zip(&t.partitions) {
                if p.replicas.contains(&self.me) {
                    wanted.insert(p.raft_group, (t, index, p));
                }
            }
        }
        let mut replicas = write(&self.replicas);
        let gone: Vec<GroupId> = replicas.keys().filter(|g| !wanted.contains_key(g)).copied().collect();
        for group in gone {
            driver.close_group(group);
            if let Some(p) = replicas.remove(&group) {
                broker.remove_partition(&p.topic, p.index);
                let dir = p.with_log(|log| log.dir().to_path_buf());
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::error!(dir = %dir.display(), error = %e, "could not remove a deleted partition's data");
                }
                tracing::info!(topic = %p.topic, partition = p.index, %group, "partition replica removed");
            }
        }
        let mut opened = 0;
        for (group, (t, index, p)) in wanted {
            if let Some(existing) = replicas.get(&group) {
                if let Some(r) = existing.replica() {
                    r.set_replicas(&p.replicas);
                }
                // Topic configs changed in the metadata log reach the hosted log here.
                let config = topic_config::log_config(&self.config, &t.configs);
                let changed = existing.with_log(|log| *log.config() != config);
                if changed && let Err(e) = existing.with_log(|log| log.set_config(config)) {
                    tracing::error!(topic = %t.name, partition = index, error = %e, "could not apply topic configs");
                }
                continue;
            }
            if opened == MAX_REPLICAS_OPENED_PER_PASS {
                self.reconcile_again.store(true, std::sync::atomic::Ordering::Release);
                continue;
            }
            opened += 1;
            let topic = Topic {
                name: t.name.clone(),
                id: Uuid::from_bytes(t.id),
                partitions: 0,
                configs: t.configs.clone(),
                internal: false,
            };
            let spec = ReplicaSpec {
                dir: partition_dir(&self.config.data_dir, &t.name, index, group),
                log_config: topic_config::log_config(&self.config, &topic.configs),
                // A replica that joins later starts from the group's first configuration and
                // replays the changes in the log it is sent.
                voters: p.initial_replicas.iter().map(|&b| raft_id(b)).collect(),
                election_timeout: None,
            };
            if let Err(e) = driver.open_group(group, &spec) {
                tracing::error!(topic = %t.name, partition = index, error = %e, "cannot open partition replica");
                continue;
            }
            let Some(store) = driver.store(group).cloned() else {
                continue;
            };
            let me: Weak<Cluster> = broker.cluster_weak();
            let partition = Partition::replicated(&t.name, topic.id, index, group, store, p.replicas.clone(), me);
            broker.insert_partition(Arc::clone(&partition));
            replicas.insert(group, partition);
            tracing::debug!(topic = %t.name, partition = index, %group, replicas = ?p.replicas, "partition replica opened");
        }
    }

    fn on_leader_change(&self, driver: &GroupDriver, broker: &Arc<Broker>, change: &LeaderChange) {
        if change.group == CONTROLLER_GROUP {
            tracing::info!(leader = ?change.leader.map(broker_id), term = change.term, "controller leader changed");
            return;
        }
        let Some(partition) = read(&self.replicas).get(&change.group).cloned() else {
            return;
        };
        let Some(replica) = partition.replica() else { return };
        let leader = change.leader.map(broker_id);
        let is_leader = leader == Some(self.me) && driver.is_leader(change.group);
        {
            let mut role = replica.role();
            role.leader = leader;
            role.epoch = i32::try_from(change.term).unwrap_or(i32::MAX);
            role.is_leader = is_leader;
            if is_leader {
                role.next_offset = replica.store.log_end_offset();
                role.producers_stale = true;
                role.isr = replica.replicas();
            } else {
                role.isr.clear();
            }
        }
        if is_leader {
            let now = Instant::now();
            let mut caught_up = lock(&self.caught_up);
            for b in replica.replicas() {
                caught_up.insert((change.group, b), now);
            }
            if partition.topic == OFFSETS_TOPIC {
                tokio::spawn(load_offsets_when_caught_up(Arc::clone(broker), Arc::clone(&partition)));
            }
        }
        tracing::info!(
            topic = %partition.topic,
            partition = partition.index,
            leader = ?leader,
            epoch = change.term,
            "partition leader changed"
        );
    }

    /// ISR of every partition this broker leads, from Raft progress.
    fn update_isr(&self, driver: &GroupDriver) {
        let lag = Duration::from_millis(self.config.replica_lag_time_max_ms);
        let now = Instant::now();
        let replicas = read(&self.replicas);
        let heard = std::mem::take(&mut *lock(&self.heard));
        let mut caught_up = lock(&self.caught_up);
        for (&group, p) in replicas.iter() {
            let Some(r) = p.replica() else { continue };
            let Some((last, matched)) = driver.progress(group) else {
                continue;
            };
            for (node, m) in matched {
                if m >= last && heard.contains(&(group, broker_id(node))) {
                    caught_up.insert((group, broker_id(node)), now);
                }
            }
            let isr: Vec<BrokerId> = r
                .replicas()
                .into_iter()
                .filter(|&b| {
                    b == self.me
                        || caught_up
                            .get(&(group, b))
                            .is_some_and(|t| now.duration_since(*t) <= lag)
                })
                .collect();
            let mut role = r.role();
            if role.is_leader && role.isr != isr {
                tracing::info!(topic = %p.topic, partition = p.index, from = ?role.isr, to = ?isr, "ISR changed");
                role.isr = isr;
            }
        }
    }

    /// Proposes records to the controller group from this broker (forwarded if it does not lead).
    fn submit(&self, records: &[MetadataRecord]) -> Result<(), ApiError> {
        let batch = encode_batch(records, now_ms())
            .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
        let proposed = lock(&self.driver).propose_forwarded(CONTROLLER_GROUP, batch);
        self.wake.notify_one();
        proposed.map_err(|e| ApiError::new(ResponseError::NotController, e.to_string()))
    }

    /// Waits (blocking) until `done` holds of the applied metadata, or `timeout` passes.
    fn wait_applied(&self, timeout: Duration, done: impl Fn(&ClusterMetadata) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut applied = lock(&self.applied);
        loop {
            if done(&read(&self.metadata)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            applied = self
                .applied_cv
                .wait_timeout(applied, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Submits the records `plan` makes of the applied metadata until `done` sees them applied
    /// (re-planned every `ADMIN_RETRY`, as a proposal can be lost in a controller election).
    fn change_metadata(
        &self,
        plan: impl Fn(&ClusterMetadata) -> Result<Vec<MetadataRecord>, ApiError>,
        done: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<(), ApiError> {
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        let wait = || {
            let mut first = true;
            loop {
                if !first && done(&read(&self.metadata)) {
                    return Ok(());
                }
                let records = plan(&read(&self.metadata))?;
                first = false;
                // A proposal that finds no controller leader yet is retried like a lost one.
                if let Err(e) = self.submit(&records) {
                    tracing::debug!(error = %e, "metadata proposal not accepted yet");
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if self.wait_applied(left.min(ADMIN_RETRY), &done) {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(ApiError::new(
                        ResponseError::RequestTimedOut,
                        "the controller did not apply the change in time",
                    ));
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(wait),
            Err(_) => wait(),
        }
    }

    /// CreateTopics through the controller: plans replicas over the live brokers, proposes, and
    /// waits until the topic is applied here.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<Topic, ApiError> {
        let id = Uuid::new_v4();
        self.change_metadata(
            |m| {
                if m.topic_by_name(name).is_some_and(|t| t.id == *id.as_bytes()) {
                    return Ok(Vec::new());
                }
                m.plan_create_topic(name, partitions, replication_factor, configs, *id.as_bytes())
                    .map_err(plan_error)
            },
            |m| m.topic_by_name(name).is_some(),
        )?;
        let metadata = read(&self.metadata);
        let t = metadata
            .topic_by_name(name)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, "topic vanished"))?;
        if t.id != *id.as_bytes() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        Ok(Topic {
            name: name.to_string(),
            id,
            partitions,
            configs: configs.clone(),
            internal: name.starts_with("__"),
        })
    }

    /// CreatePartitions through the controller (the broker checked the request): plans replicas
    /// for the new partitions over the live brokers, proposes, and waits until the topic has
    /// `total` partitions here.
    pub fn add_partitions(&self, name: &str, total: i32) -> Result<Topic, ApiError> {
        let count = usize::try_from(total).unwrap_or(0);
        self.change_metadata(
            |m| m.plan_create_partitions(name, total).map_err(plan_error),
            |m| m.topic_by_name(name).is_some_and(|t| t.partitions.len() >= count),
        )?;
        read(&self.metadata)
            .topic_by_name(name)
            .map(topic_of)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, "topic vanished"))
    }

    /// Replaces a topic's config overrides through the controller: one record per config set
    /// or removed, and waits until they are applied here.
    pub fn set_topic_configs(&self, name: &str, id: Uuid, configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
        let topic_id = id.as_bytes().to_vec();
        let matches = |m: &ClusterMetadata| {
            m.topic_by_name(name)
                .is_some_and(|t| t.id == *id.as_bytes() && t.configs == *configs)
        };
        self.change_metadata(
            |m| {
                let current = m
                    .topic_by_name(name)
                    .filter(|t| t.id == *id.as_bytes())
                    .ok_or_else(|| {
                        ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}"))
                    })?;
                let mut records: Vec<MetadataRecord> = configs
                    .iter()
                    .filter(|(k, v)| current.configs.get(*k) != Some(*v))
                    .map(|(k, v)| {
                        Kind::SetTopicConfig(SetTopicConfig {
                            topic_id: topic_id.clone(),
                            name: k.clone(),
                            value: v.clone(),
                        })
                        .into()
                    })
                    .collect();
                records.extend(current.configs.keys().filter(|k| !configs.contains_key(*k)).map(|k| {
                    Kind::DeleteTopicConfig(DeleteTopicConfig {
                        topic_id: topic_id.clone(),
                        name: k.clone(),
                    })
                    .into()
                }));
                Ok(records)
            },
            matches,
        )
    }

    /// DeleteTopics through the controller.
    pub fn delete_topic(&self, name: &str) -> Result<Topic, ApiError> {
        let topic = {
            let m = read(&self.metadata);
            m.topic_by_name(name)
                .map(topic_of)
                .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}")))?
        };
        let id = *topic.id.as_bytes();
        self.change_metadata(
            |m| match m.topic_by_name(name) {
                Some(t) if t.id == id => m.plan_delete_topic(name).map_err(plan_error),
                _ => Ok(Vec::new()),
            },
            |m| m.topic_by_name(name).is_none_or(|t| t.id != id),
        )?;
        Ok(topic)
    }

    /// Live brokers registered in the metadata, by id, with their endpoint for `listener` (the
    /// listener the asking client came in on; a broker without one shows its first).
    /// This broker is always among them: before its registration is applied (a cluster that is
    /// still forming) a Metadata answer without a single broker leaves clients stuck.
    pub fn brokers(&self, listener: &str) -> Vec<BrokerView> {
        let mut brokers: Vec<BrokerView> = read(&self.metadata)
            .brokers()
            // Fenced brokers (not heard from: `membership.rs`) are not listed, as in Kafka: clients
            // stop trying them and their replicas show as offline.
            .filter(|b| !b.fenced || b.id == self.me)
            .filter_map(|b| {
                let e = b
                    .endpoints
                    .iter()
                    .find(|e| e.name == listener)
                    .or(b.endpoints.first())?;
                Some(BrokerView {
                    id: b.id,
                    host: e.host.clone(),
                    port: i32::try_from(e.port).unwrap_or(-1),
                    rack: b.rack.clone(),
                })
            })
            .collect();
        if !brokers.iter().any(|b| b.id == self.me) {
            let own = self.config.listener(listener);
            brokers.push(BrokerView {
                id: self.me,
                host: own.advertised_host.clone(),
                port: i32::from(own.advertised_port),
                rack: self.config.broker_rack.clone(),
            });
            brokers.sort_by_key(|b| b.id);
        }
        brokers
    }

    /// Live brokers (registered and unfenced): the most replicas a new topic may have.
    pub fn live_brokers(&self) -> usize {
        read(&self.metadata).live_brokers().count()
    }

    /// The broker leading the controller group, as this broker knows it.
    pub fn controller(&self) -> Option<BrokerId> {
        lock(&self.driver).leader(CONTROLLER_GROUP).map(broker_id)
    }

    /// The controller id Metadata and DescribeCluster report. Every broker takes admin requests
    /// and forwards them to the controller group, so while no controller leader is known this
    /// broker names itself: clients (librdkafka) park admin requests on a controller id of -1
    /// until their next metadata refresh, minutes later.
    pub fn controller_for_clients(&self) -> BrokerId {
        self.controller().unwrap_or(self.me)
    }

    /// Leader, epoch, replicas and ISR of a partition: this broker's own view when it hosts a
    /// replica, else what the partition's leader reported to the metadata log.
    pub fn partition_view(&self, topic: &str, index: i32) -> Option<PartitionView> {
        let metadata = read(&self.metadata);
        let info = metadata
            .topic_by_name(topic)?
            .partitions
            .get(usize::try_from(index).ok()?)?;
        let mut view = PartitionView {
            leader: info.leader,
            leader_epoch: info.leader_epoch,
            replicas: info.replicas.clone(),
            isr: info.isr.clone(),
        };
        if let Some(p) = read(&self.replicas).get(&info.raft_group)
            && let Some(r) = p.replica()
        {
            let role = r.role();
            if role.epoch >= view.leader_epoch {
                view.leader = role.leader;
                view.leader_epoch = role.epoch;
                if role.is_leader {
                    view.isr = role.isr.clone();
                }
            }
        }
        Some(view)
    }

    /// The broker coordinating group (or transactional id) `key`: the leader of its
    /// `__consumer_offsets` partition, the topic being created on first use (blocking).
    pub fn coordinator(&self, broker: &Broker, key: &str) -> Result<BrokerId, ResponseError> {
        if !self.caught_up() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let topic = crate::offset_store::offsets_topic(broker)?;
        let index = crate::offset_store::partition_for(key, topic.partitions);
        let leader = self
            .partition_view(OFFSETS_TOPIC, index)
            .and_then(|v| v.leader)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        if read(&self.metadata).broker(leader).is_none() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(leader)
    }

    /// Proposes a produce request's batches on the leader (see `Partition::begin_append`).
    pub fn append(
        &self,
        partition: &Arc<Partition>,
        replica: &Replica,
        records: &[u8],
        acks: i16,
    ) -> Result<(AppendInfo, Commit), ApiError> {
        let now = now_ms();
        let mut data = records.to_vec();
        let headers = batch::split_batches(&data)?;
        let (max_message_bytes, log_append_time) = replica.store.with_log(|log| {
            let c = log.config();
            (
                c.max_message_bytes as usize,
                (c.message_timestamp_type == TimestampType::LogAppendTime).then_some(now),
            )
        });
        let mut batches = Vec::with_capacity(headers.len());
        for (at, mut header) in headers {
            let size = header.total_size();
            if size > max_message_bytes {
                return Err(StorageError::BatchTooLarge {
                    size,
                    max: u32::try_from(max_message_bytes).unwrap_or(u32::MAX),
                }
                .into());
            }
            if header.record_count < 1 || header.record_count != header.last_offset_delta + 1 {
                return Err(StorageError::InvalidBatch {
                    reason: format!(
                        "recordCount {} does not match lastOffsetDelta {}",
                        header.record_count, header.last_offset_delta
                    ),
                }
                .into());
            }
            let bytes = &mut data[at..at + size];
            if let Some(t) = log_append_time {
                batch::set_log_append_time(bytes, t);
                header.max_timestamp = t;
            }
            batches.push((bytes.to_vec(), header));
        }
        let min_insync: usize = topic_config::effective(
            &self.config,
            &partition_configs(partition, &self.metadata),
            "min.insync.replicas",
        )
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);

        let mut driver = lock(&self.driver);
        let mut role = replica.role();
        if !role.is_leader {
            return Err(not_leader(format!(
                "broker {} is not the leader of {}-{} (leader: {:?})",
                self.me, partition.topic, partition.index, role.leader
            )));
        }
        if acks == -1 && role.isr.len() < min_insync {
            return Err(ApiError::new(
                ResponseError::NotEnoughReplicas,
                format!(
                    "{} in-sync replicas of {}-{}, min.insync.replicas is {min_insync}",
                    role.isr.len(),
                    partition.topic,
                    partition.index
                ),
            ));
        }
        if role.producers_stale {
            replica
                .store
                .with_log(|log| partition.producer_states().reload(log, now));
            role.producers_stale = false;
        }
        let header_list: Vec<_> = batches.iter().map(|(_, h)| *h).collect();
        let first_offset = role.next_offset;
        if let Some(dup) = partition
            .producer_states()
            .admit(&header_list, first_offset, log_append_time, now)?
        {
            let hw = partition.subscribe();
            return Ok((dup, partition.commit(Pending::HighWatermark(hw, dup.last_offset + 1))));
        }
        let mut receivers = Vec::with_capacity(batches.len());
        let mut waiters = lock(&self.waiters);
        let mut next = first_offset;
        for (bytes, header) in batches {
            let span = u64::try_from(header.last_offset_delta).unwrap_or(0) + 1;
            match driver.propose(replica.group, bytes) {
                Ok(p) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.entry(replica.group).or_default().insert(
                        p.index,
                        Waiter {
                            term: p.term,
                            offsets: next..next + span,
                            tx,
                        },
                    );
                    receivers.push(rx);
                    next += span;
                }
                Err(e) => {
                    // The producer table already holds these batches: rebuild it.
                    role.producers_stale = true;
                    role.next_offset = next;
                    return Err(match e {
                        DriverError::InvalidBatch { reason, .. } => {
                            ApiError::new(ResponseError::CorruptMessage, reason)
                        }
                        e => not_leader(e.to_string()),
                    });
                }
            }
        }
        role.next_offset = next;
        drop((waiters, role, driver));
        self.wake.notify_one();
        let info = AppendInfo {
            first_offset,
            last_offset: next.saturating_sub(1),
            max_timestamp: header_list.iter().map(|h| h.max_timestamp).max().unwrap_or(-1),
            log_append_time,
            record_count: header_list
                .iter()
                .map(|h| u64::try_from(h.record_count).unwrap_or(0))
                .sum(),
            bytes: records.len(),
        };
        Ok((info, partition.commit(Pending::Raft(receivers))))
    }

    /// Proposes this broker's registration until the metadata log holds it.
    async fn register(self: Arc<Self>) {
        let record: MetadataRecord = Kind::RegisterBroker(RegisterBroker {
            broker_id: self.me,
            rack: self.config.broker_rack.clone(),
            endpoints: self
                .config
                .listeners()
                .iter()
                .map(|l| Endpoint {
                    name: l.name.clone(),
                    host: l.advertised_host.clone(),
                    port: u32::from(l.advertised_port),
                })
                .collect(),
            incarnation: self.incarnation,
            fenced: false,
            raft_endpoint: Some(self.raft_endpoint.clone()),
        })
        .into();
        loop {
            let registered = read(&self.metadata)
                .broker(self.me)
                .is_some_and(|b| b.incarnation >= self.incarnation);
            if registered {
                self.registered.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(
                    broker = self.me,
                    incarnation = self.incarnation,
                    "registered with the controller"
                );
                return;
            }
            if let Err(e) = self.submit(std::slice::from_ref(&record)) {
                tracing::debug!(error = %e, "registration not accepted yet");
            }
            if !self.is_voter {
                // A broker that joins a running cluster is not in the controller group yet and
                // knows no leader to forward to: it hands its registration to every voter.
                self.propose_to_voters(std::slice::from_ref(&record));
            }
            tokio::time::sleep(REGISTER_RETRY).await;
        }
    }

    /// Every `REPORT_INTERVAL`: reports the leadership and ISR of the partitions this broker
    /// leads where the metadata log says otherwise.
    async fn report_leadership(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REPORT_INTERVAL).await;
            let records: Vec<MetadataRecord> = {
                let metadata = read(&self.metadata);
                read(&self.replicas)
                    .values()
                    .filter_map(|p| {
                        let r = p.replica()?;
                        let role = r.role().clone();
                        if !role.is_leader {
                            return None;
                        }
                        let t = metadata.topic_by_name(&p.topic)?;
                        let info = t.partitions.get(usize::try_from(p.index).ok()?)?;
                        let current = (info.leader, info.leader_epoch, &info.isr);
                        (current != (Some(self.me), role.epoch, &role.isr)).then(|| {
                            Kind::PartitionLeader(PartitionLeader {
                                topic_id: t.id.to_vec(),
                                partition_index: p.index,
                                leader: self.me,
                                leader_epoch: role.epoch,
                                isr: role.isr.clone(),
                            })
                            .into()
                        })
                    })
                    .collect()
            };
            if !records.is_empty()
                && let Err(e) = tokio::task::block_in_place(|| self.submit(&records))
            {
                tracing::debug!(error = %e, "leadership report not accepted yet");
            }
        }
    }

    /// Clean shutdown of every hosted log.
    pub fn shutdown(&self) {
        for (group, e) in lock(&self.driver).shutdown(now_ms()) {
            tracing::error!(%group, error = %e, "unclean close of a raft log");
        }
    }
}

/// Without its fsync thread the loop could never report a write durable: exit like a broker
/// whose loop panicked, so that clients and peers fail over.
fn sync_thread_lost() -> ! {
    tracing::error!("the raft-fsync thread died; exiting");
    std::process::exit(RAFT_LOOP_PANIC_EXIT_CODE)
}

/// A topic of the metadata log as the broker's registry holds it.
fn topic_of(t: &TopicInfo) -> Topic {
    Topic {
        name: t.name.clone(),
        id: Uuid::from_bytes(t.id),
        partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
        configs: t.configs.clone(),
        internal: t.name.starts_with("__"),
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// A topic's config overrides as the metadata holds them.
fn partition_configs(partition: &Partition, metadata: &RwLock<ClusterMetadata>) -> BTreeMap<String, String> {
    read(metadata)
        .topic_by_name(&partition.topic)
        .map(|t| t.configs.clone())
        .unwrap_or_default()
}

/// A replica's directory: named by topic and partition like Kafka's, and by Raft group so that
/// a deleted topic's leftovers never become a new topic of the same name.
fn partition_dir(data_dir: &std::path::Path, topic: &str, index: i32, group: GroupId) -> PathBuf {
    data_dir.join(format!("{topic}-{index}.group-{}", group.0))
}

/// A new leader of a `__consumer_offsets` partition serves its groups' committed offsets once
/// everything its predecessor committed is committed here too (its log end at election).
async fn load_offsets_when_caught_up(broker: Arc<Broker>, partition: Arc<Partition>) {
    let Some(replica) = partition.replica() else { return };
    let end = replica.store.log_end_offset();
    let mut hw = partition.subscribe();
    if tokio::time::timeout(crate::partition::REPLICATION_TIMEOUT, hw.wait_for(|&h| h >= end))
        .await
        .is_err()
    {
        tracing::warn!(
            partition = partition.index,
            "committed offsets not loaded: the partition did not commit"
        );
        return;
    }
    let p = Arc::clone(&partition);
    match tokio::task::spawn_blocking(move || crate::offset_store::load_one(&p)).await {
        Ok(Ok(loaded)) => {
            let count: usize = loaded.values().map(BTreeMap::len).sum();
            broker.groups.replace_offsets(loaded);
            tracing::info!(
                partition = partition.index,
                offsets = count,
                "committed offsets loaded as coordinator"
            );
        }
        Ok(Err(e)) => tracing::error!(partition = partition.index, error = %e, "cannot load committed offsets"),
        Err(e) => tracing::error!(error = %e, "loading committed offsets panicked"),
    }
}
