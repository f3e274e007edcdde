//! The cluster metadata every broker rebuilds from the committed metadata log (issue 4: "Every
//! broker applies the metadata log and answers Metadata from its own state"), and the
//! controller-side planning that turns an admin request into metadata records.
//!
//! [`ClusterMetadata::apply`] is deterministic: it depends only on the state and the record, so
//! every broker that applies the same committed records in the same order holds an equal state.
//! A record that does not fit the state (a duplicate topic name, an unknown broker, a reused Raft
//! group, ...) is refused by every broker alike and leaves the state unchanged; the controller
//! plans against its own applied state, so it only refuses records that raced with another
//! change.
//!
//! [`ClusterMetadata::plan_create_topic`] validates a CreateTopics request as Kafka does (typed
//! [`PlanError`]s mapped to Kafka's error codes) and assigns replicas with [`assign_replicas`]:
//! leaders and replicas spread evenly over the live (unfenced) brokers, rack-aware when every
//! live broker has a `broker.rack`, and one new Raft group per partition, allocated monotonically
//! so that a group id is never reused, even after its topic is deleted.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

use crate::group_id::GroupId;
use crate::metadata_records::{
    BrokerId, ChangePartitionReplicas, ConfigEntry, CreatePartitions, CreateTopic, DeleteTopic, Endpoint,
    MetadataCodecError, MetadataRecord, PartitionAssignment, PartitionLeader, RegisterBroker, TopicId, decode_batches,
    metadata_record::Kind,
};
use crate::raft_log::{LogStorage, RaftLogError};

/// How much of the metadata log [`ClusterMetadata::replay`] reads at a time.
pub const REPLAY_READ_BYTES: usize = 1024 * 1024;

/// The Raft group of the controller (the metadata log itself).
pub const CONTROLLER_GROUP: GroupId = GroupId(0);
/// The first Raft group id given to a partition.
pub const FIRST_PARTITION_GROUP: u64 = 1;
/// Most partitions one topic may have: the same bound as the single-node broker's
/// (`broker/src/broker.rs`), so that a request cannot make the controller allocate without limit.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Kafka's limit on a topic name's length.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: BrokerId,
    pub rack: Option<String>,
    pub endpoints: Vec<Endpoint>,
    pub incarnation: u64,
    /// Fenced brokers are registered but not live: no new replicas or leaderships go to them.
    pub fenced: bool,
    /// Where it takes Raft traffic, when it said so.
    pub raft_endpoint: Option<Endpoint>,
}

/// One partition: its replicas (the first is the preferred leader) and its Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Every broker hosting a replica; during a reassignment the target first, then the
    /// replicas that leave.
    pub replicas: Vec<BrokerId>,
    /// A reassignment in progress: replicas joining and leaving (both empty otherwise).
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
    /// The Raft group's voters when it was created: a replica that joins later starts from
    /// them and replays the configuration changes in the log.
    pub initial_replicas: Vec<BrokerId>,
    pub raft_group: GroupId,
    /// The leader its Raft group last reported (`None` until one did).
    pub leader: Option<BrokerId>,
    /// That leader's epoch (its Raft term); -1 until reported.
    pub leader_epoch: i32,
    /// The in-sync replicas that leader reported.
    pub isr: Vec<BrokerId>,
}

impl PartitionInfo {
    pub fn preferred_leader(&self) -> Option<BrokerId> {
        self.replicas.first().copied()
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replica set the partition is moving to (its replicas when no move is in progress).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.removing.contains(b))
            .collect()
    }

    /// The replicas before the reassignment in progress.
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.adding.contains(b))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: TopicId,
    /// Indexed by partition index.
    pub partitions: Vec<PartitionInfo>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Why a committed record was refused by `apply` (identically on every broker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("metadata record without a body")]
    Empty,
    #[error("invalid broker id {0}")]
    InvalidBrokerId(BrokerId),
    #[error("unknown broker {0}")]
    UnknownBroker(BrokerId),
    #[error("broker {broker}: incarnation {got} is not the registered {registered}")]
    StaleIncarnation {
        broker: BrokerId,
        got: u64,
        registered: u64,
    },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic id {0:02x?} is invalid or already in use")]
    InvalidTopicId(Vec<u8>),
    #[error("unknown topic id {0:02x?}")]
    UnknownTopic(Vec<u8>),
    #[error("invalid partition assignment: {0}")]
    InvalidAssignment(String),
    #[error("raft group {group} was allocated before (next free: {next})")]
    RaftGroupReused { group: u64, next: u64 },
}

/// Why the controller refuses to create a topic, with Kafka's error for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("Topic name {name:?} is invalid: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("Number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC} (got {0}).")]
    InvalidPartitions(i32),
    #[error("Topic '{0}' does not exist.")]
    UnknownTopic(String),
    /// RF ≤ 0, or larger than the live (unfenced) brokers.
    #[error("Replication factor: {requested} larger than available brokers: {live}.")]
    InvalidReplicationFactor { requested: i16, live: usize },
    #[error("Topic id is invalid or already in use.")]
    InvalidTopicId,
}

impl PlanError {
    /// The Kafka error a CreateTopics response carries for this.
    pub fn error(&self) -> ResponseError {
        match self {
            Self::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
            Self::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            Self::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Self::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            Self::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
            Self::InvalidTopicId => ResponseError::InvalidRequest,
        }
    }

    pub fn code(&self) -> i16 {
        self.error().code()
    }
}

/// Why the controller refuses a reassignment, with Kafka's error for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("Partition {0} does not exist.")]
    UnknownPartition(String),
    #[error("Invalid replica assignment: {0}")]
    InvalidAssignment(String),
    #[error("No reassignment of {0} is in progress.")]
    NoReassignmentInProgress(String),
}

impl ReassignError {
    pub fn error(&self) -> ResponseError {
        match self {
            Self::UnknownPartition(_) => ResponseError::UnknownTopicOrPartition,
            Self::InvalidAssignment(_) => ResponseError::InvalidReplicaAssignment,
            Self::NoReassignmentInProgress(_) => ResponseError::NoReassignmentInProgress,
        }
    }
}

/// Why the metadata log could not be replayed at start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Log(#[from] RaftLogError),
    #[error("metadata log: {0}")]
    Batch(#[from] skiff_storage::StorageError),
    #[error(transparent)]
    Codec(#[from] MetadataCodecError),
    #[error("metadata log: the batches read at offset {offset} do not move past it")]
    NoProgress { offset: u64 },
}

/// The state applied from the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    brokers: BTreeMap<BrokerId, BrokerInfo>,
    topics: BTreeMap<TopicId, TopicInfo>,
    names: BTreeMap<String, TopicId>,
    /// Every Raft group below this was allocated once (and is never given out again).
    next_raft_group: u64,
    /// Every producer id below this was handed to a broker (`AllocateProducerIds`).
    next_producer_id: i64,
    /// The last block of producer ids each broker was given.
    producer_blocks: BTreeMap<BrokerId, (i64, i64)>,
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterMetadata {
    pub fn new() -> Self {
        Self {
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            names: BTreeMap::new(),
            next_raft_group: FIRST_PARTITION_GROUP,
            next_producer_id: 0,
            producer_blocks: BTreeMap::new(),
        }
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values()
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }

    /// Registered, unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Topics by id.
    pub fn topics(&self) -> impl Iterator<Item = &TopicInfo> {
        self.topics.values()
    }

    pub fn topic(&self, id: &TopicId) -> Option<&TopicInfo> {
        self.topics.get(id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicInfo> {
        self.names.get(name).and_then(|id| self.topics.get(id))
    }

    /// The next Raft group id a partition would get.
    pub fn next_raft_group(&self) -> u64 {
        self.next_raft_group
    }

    /// The topic and partition index replicated by `group`.
    pub fn partition_of_group(&self, group: GroupId) -> Option<(&TopicInfo, i32)> {
        self.topics.values().find_map(|t| {
            let i = t.partitions.iter().position(|p| p.raft_group == group)?;
            Some((t, i32::try_from(i).ok()?))
        })
    }

    /// Applies one committed record. On error the state is unchanged (every broker refuses the
    /// same records, so states stay equal).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record.kind.as_ref().ok_or(ApplyError::Empty)? {
            Kind::RegisterBroker(r) => self.register_broker(r),
            Kind::FenceBroker(r) => self.set_fenced(r.broker_id, r.incarnation, true),
            Kind::UnfenceBroker(r) => self.set_fenced(r.broker_id, r.incarnation, false),
            Kind::CreateTopic(r) => self.create_topic(r),
            Kind::DeleteTopic(r) => {
                let id = self.known_topic(&r.topic_id)?;
                if let Some(t) = self.topics.remove(&id) {
                    self.names.remove(&t.name);
                }
                Ok(())
            }
            Kind::SetTopicConfig(r) => {
                let id = self.known_topic(&r.topic_id)?;
                if let Some(t) = self.topics.get_mut(&id) {
                    t.configs.insert(r.name.clone(), r.value.clone());
                }
                Ok(())
            }
            Kind::DeleteTopicConfig(r) => {
                let id = self.known_topic(&r.topic_id)?;
                if let Some(t) = self.topics.get_mut(&id) {
                    t.configs.remove(&r.name);
                }
                Ok(())
            }
            Kind::ChangePartitionReplicas(r) => self.change_replicas(r),
            Kind::PartitionLeader(r) => self.set_leader(r),
            Kind::CreatePartitions(r) => self.add_partitions(r),
            Kind::UnregisterBroker(r) => self.unregister_broker(r.broker_id),
            Kind::AllocateProducerIds(r) => {
                let end = r.first_id.checked_add(r.count).filter(|_| r.count > 0);
                match end {
                    Some(end) if r.first_id == self.next_producer_id => {
                        self.next_producer_id = end;
                        self.producer_blocks.insert(r.broker_id, (r.first_id, end));
                        Ok(())
                    }
                    _ => Err(ApplyError::InvalidAssignment(format!(
                        "producer id block [{}, +{}) does not start at {}",
                        r.first_id, r.count, self.next_producer_id
                    ))),
                }
            }
            Kind::ElectPreferredLeader(r) => {
                let id = self.known_topic(&r.topic_id)?;
                let known = usize::try_from(r.partition_index)
                    .ok()
                    .and_then(|i| self.topics.get(&id)?.partitions.get(i))
                    .is_some();
                if known {
                    Ok(())
                } else {
                    Err(ApplyError::InvalidAssignment(format!(
                        "unknown partition {}",
                        r.partition_index
                    )))
                }
            }
        }
    }

    /// Rebuilds the state at start from this broker's replica of the metadata log: every batch
    /// below its high watermark (the commit index persisted last), in order. Returns the state
    /// and the Kafka offset it covers; committed entries the driver reports afterwards start at
    /// or below that offset (a restarted replica reports those above its persisted commit index
    /// again) and must be applied only from it on. The log must start at offset 0 (no snapshots
    /// of the metadata yet).
    pub fn replay(store: &LogStorage) -> Result<(Self, u64), ReplayError> {
        let mut state = Self::new();
        let end = store.high_watermark();
        let mut next = 0;
        while next < end {
            let bytes = store.read(next, REPLAY_READ_BYTES, end)?;
            let Some((_, last)) = skiff_storage::batch::split_batches(&bytes)?.pop() else {
                break;
            };
            state.apply_all(&decode_batches(&bytes)?);
            next = u64::try_from(last.last_offset())
                .ok()
                .map(|o| o + 1)
                .filter(|&after| after > next)
                .ok_or(ReplayError::NoProgress { offset: next })?;
        }
        Ok((state, next))
    }

    /// Applies records in order, returning the ones refused (logged too).
    pub fn apply_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Vec<(MetadataRecord, ApplyError)> {
        let mut refused = Vec::new();
        for r in records {
            if let Err(e) = self.apply(r) {
                tracing::warn!(error = %e, "metadata record refused");
                refused.push((r.clone(), e));
            }
        }
        refused
    }

    fn register_broker(&mut self, r: &RegisterBroker) -> Result<(), ApplyError> {
        if r.broker_id < 0 {
            return Err(ApplyError::InvalidBrokerId(r.broker_id));
        }
        if let Some(b) = self.brokers.get(&r.broker_id)
            && r.incarnation < b.incarnation
        {
            return Err(ApplyError::StaleIncarnation {
                broker: r.broker_id,
                got: r.incarnation,
                registered: b.incarnation,
            });
        }
        self.brokers.insert(
            r.broker_id,
            BrokerInfo {
                id: r.broker_id,
                rack: r.rack.clone(),
                endpoints: r.endpoints.clone(),
                incarnation: r.incarnation,
                fenced: r.fenced,
                raft_endpoint: r.raft_endpoint.clone(),
            },
        );
        Ok(())
    }

    fn unregister_broker(&mut self, broker: BrokerId) -> Result<(), ApplyError> {
        if !self.brokers.contains_key(&broker) {
            return Err(ApplyError::UnknownBroker(broker));
        }
        if let Some(where_) = self.replicas_on(broker).first() {
            return Err(ApplyError::InvalidAssignment(format!(
                "broker {broker} still holds a replica of {where_}"
            )));
        }
        self.brokers.remove(&broker);
        Ok(())
    }

    /// Every producer id below this was handed out (to some broker's block).
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The last block of producer ids `broker` was given: `[first, end)`.
    pub fn producer_block(&self, broker: BrokerId) -> Option<(i64, i64)> {
        self.producer_blocks.get(&broker).copied()
    }

    /// The partitions (`topic-index`) with a replica on `broker`, a reassignment's included.
    pub fn replicas_on(&self, broker: BrokerId) -> Vec<String> {
        self.topics
            .values()
            .flat_map(|t| {
                (0..)
                    .zip(&t.partitions)
                    .filter(move |(_, p)| p.replicas.contains(&broker))
                    .map(move |(i, _): (i32, _)| format!("{}-{i}", t.name))
            })
            .collect()
    }

    fn set_fenced(&mut self, broker: BrokerId, incarnation: u64, fenced: bool) -> Result<(), ApplyError> {
        let b = self.brokers.get_mut(&broker).ok_or(ApplyError::UnknownBroker(broker))?;
        if b.incarnation != incarnation {
            return Err(ApplyError::StaleIncarnation {
                broker,
                got: incarnation,
                registered: b.incarnation,
            });
        }
        b.fenced = fenced;
        Ok(())
    }

    /// Validates assignments of partitions numbered from `first`, each with a Raft group never
    /// given out; returns them and the next free Raft group.
    fn new_partitions(
        &self,
        assignments: &[PartitionAssignment],
        first: usize,
    ) -> Result<(Vec<PartitionInfo>, u64), ApplyError> {
        let mut next = self.next_raft_group;
        let mut partitions = Vec::with_capacity(assignments.len());
        for (i, p) in (first..).zip(assignments) {
            if usize::try_from(p.partition_index).ok() != Some(i) {
                return Err(ApplyError::InvalidAssignment(format!(
                    "partition {} listed at position {i}",
                    p.partition_index
                )));
            }
            self.validate_replicas(&p.replicas)?;
            if p.raft_group < next {
                return Err(ApplyError::RaftGroupReused {
                    group: p.raft_group,
                    next,
                });
            }
            next = p.raft_group.checked_add(1).ok_or(ApplyError::RaftGroupReused {
                group: p.raft_group,
                next,
            })?;
            partitions.push(PartitionInfo {
                replicas: p.replicas.clone(),
                adding: Vec::new(),
                removing: Vec::new(),
                initial_replicas: p.replicas.clone(),
                raft_group: GroupId(p.raft_group),
                leader: None,
                leader_epoch: -1,
                isr: Vec::new(),
            });
        }
        Ok((partitions, next))
    }

    fn add_partitions(&mut self, r: &CreatePartitions) -> Result<(), ApplyError> {
        let id = self.known_topic(&r.topic_id)?;
        let first = self.topics.get(&id).map_or(0, |t| t.partitions.len());
        if r.partitions.is_empty() || first + r.partitions.len() > MAX_PARTITIONS_PER_TOPIC as usize {
            return Err(ApplyError::InvalidAssignment(format!(
                "{} partitions added to {first}",
                r.partitions.len()
            )));
        }
        let (added, next) = self.new_partitions(&r.partitions, first)?;
        self.next_raft_group = next;
        if let Some(t) = self.topics.get_mut(&id) {
            t.partitions.extend(added);
        }
        Ok(())
    }

    fn create_topic(&mut self, r: &CreateTopic) -> Result<(), ApplyError> {
        validate_topic_name(&r.name).map_err(|reason| ApplyError::InvalidTopicName {
            name: r.name.clone(),
            reason,
        })?;
        if self.names.contains_key(&r.name) {
            return Err(ApplyError::TopicExists(r.name.clone()));
        }
        let id = topic_id(&r.topic_id)
            .filter(|id| *id != [0; 16] && !self.topics.contains_key(id))
            .ok_or_else(|| ApplyError::InvalidTopicId(r.topic_id.clone()))?;
        if r.partitions.is_empty() {
            return Err(ApplyError::InvalidAssignment("a topic needs a partition".into()));
        }
        let (partitions, next) = self.new_partitions(&r.partitions, 0)?;
        let configs = r.configs.iter().map(|c| (c.name.clone(), c.value.clone())).collect();
        self.next_raft_group = next;
        self.names.insert(r.name.clone(), id);
        self.topics.insert(
            id,
            TopicInfo {
                name: r.name.clone(),
                id,
                partitions,
                configs,
            },
        );
        Ok(())
    }

    fn change_replicas(&mut self, r: &ChangePartitionReplicas) -> Result<(), ApplyError> {
        let id = self.known_topic(&r.topic_id)?;
        self.validate_replicas(&r.replicas)?;
        let listed = |ids: &[BrokerId]| ids.iter().all(|b| r.replicas.contains(b));
        if !listed(&r.adding) || !listed(&r.removing) || r.removing.len() >= r.replicas.len() {
            return Err(ApplyError::InvalidAssignment(format!(
                "adding {:?} and removing {:?} must be among {:?} and leave a replica",
                r.adding, r.removing, r.replicas
            )));
        }
        let p = usize::try_from(r.partition_index)
            .ok()
            .and_then(|i| self.topics.get_mut(&id)?.partitions.get_mut(i))
            .ok_or_else(|| ApplyError::InvalidAssignment(format!("unknown partition {}", r.partition_index)))?;
        if r.complete {
            let target: BTreeSet<BrokerId> = p.target_replicas().into_iter().collect();
            if !p.is_reassigning() || target != r.replicas.iter().copied().collect() {
                // A completion of an older reassignment, or a repeated one: nothing to do.
                return Ok(());
            }
            p.replicas = p.target_replicas();
            p.adding.clear();
            p.removing.clear();
            return Ok(());
        }
        p.replicas = r.replicas.clone();
        p.adding = r.adding.clone();
        p.removing = r.removing.clone();
        Ok(())
    }

    /// Records that start moving a partition to `target` (Kafka's AlterPartitionReassignments),
    /// or with `None` revert a reassignment in progress to the replicas it started from.
    pub fn plan_reassignment(
        &self,
        topic: &str,
        partition: i32,
        target: Option<&[BrokerId]>,
    ) -> Result<Vec<MetadataRecord>, ReassignError> {
        let t = self
            .topic_by_name(topic)
            .ok_or_else(|| ReassignError::UnknownPartition(format!("{topic}-{partition}")))?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or_else(|| ReassignError::UnknownPartition(format!("{topic}-{partition}")))?;
        let target = match target {
            Some(target) => {
                let distinct: BTreeSet<BrokerId> = target.iter().copied().collect();
                if target.is_empty() || distinct.len() != target.len() {
                    return Err(ReassignError::InvalidAssignment(format!(
                        "replicas {target:?} must be distinct and not empty"
                    )));
                }
                if let Some(b) = target.iter().find(|b| self.broker(**b).is_none()) {
                    return Err(ReassignError::InvalidAssignment(format!(
                        "broker {b} is not registered"
                    )));
                }
                target.to_vec()
            }
            None if p.is_reassigning() => p.original_replicas(),
            None => return Err(ReassignError::NoReassignmentInProgress(format!("{topic}-{partition}"))),
        };
        let original = p.original_replicas();
        let mut replicas = target.clone();
        replicas.extend(p.replicas.iter().filter(|b| !target.contains(b)));
        let record = ChangePartitionReplicas {
            topic_id: t.id.to_vec(),
            partition_index: partition,
            adding: target.iter().copied().filter(|b| !original.contains(b)).collect(),
            removing: p.replicas.iter().copied().filter(|b| !target.contains(b)).collect(),
            replicas,
            complete: false,
        };
        if record.adding.is_empty() && record.removing.is_empty() && p.replicas == target {
            return Ok(Vec::new());
        }
        Ok(vec![Kind::ChangePartitionReplicas(record).into()])
    }

    fn set_leader(&mut self, r: &PartitionLeader) -> Result<(), ApplyError> {
        let id = self.known_topic(&r.topic_id)?;
        let p = usize::try_from(r.partition_index)
            .ok()
            .and_then(|i| self.topics.get_mut(&id)?.partitions.get_mut(i))
            .ok_or_else(|| ApplyError::InvalidAssignment(format!("unknown partition {}", r.partition_index)))?;
        if r.leader_epoch >= p.leader_epoch {
            p.leader = Some(r.leader);
            p.leader_epoch = r.leader_epoch;
            p.isr = r.isr.clone();
        }
        Ok(())
    }

    fn validate_replicas(&self, replicas: &[BrokerId]) -> Result<(), ApplyError> {
        if replicas.is_empty() {
            return Err(ApplyError::InvalidAssignment("no replicas".into()));
        }
        let distinct: BTreeSet<BrokerId> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            return Err(ApplyError::InvalidAssignment(format!(
                "duplicate replicas {replicas:?}"
            )));
        }
        match replicas.iter().find(|b| !self.brokers.contains_key(b)) {
            Some(&b) => Err(ApplyError::UnknownBroker(b)),
            None => Ok(()),
        }
    }

    fn known_topic(&self, raw: &[u8]) -> Result<TopicId, ApplyError> {
        topic_id(raw)
            .filter(|id| self.topics.contains_key(id))
            .ok_or_else(|| ApplyError::UnknownTopic(raw.to_vec()))
    }

    /// The records that create topic `name` (controller side), planned against this state:
    /// `partitions` partitions of `replication_factor` replicas over the live brokers, each with
    /// a new Raft group. `topic_id` is the topic's new UUID (the controller generates it, which
    /// keeps planning deterministic).
    pub fn plan_create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
        topic_id: TopicId,
    ) -> Result<Vec<MetadataRecord>, PlanError> {
        validate_topic_name(name).map_err(|reason| PlanError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })?;
        if self.names.contains_key(name) {
            return Err(PlanError::TopicAlreadyExists(name.to_string()));
        }
        if topic_id == [0; 16] || self.topics.contains_key(&topic_id) {
            return Err(PlanError::InvalidTopicId);
        }
        let count = usize::try_from(partitions)
            .ok()
            .filter(|_| (1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions))
            .ok_or(PlanError::InvalidPartitions(partitions))?;
        let live: Vec<(BrokerId, Option<&str>)> = self.live_brokers().map(|b| (b.id, b.rack.as_deref())).collect();
        let rf = usize::try_from(replication_factor)
            .ok()
            .filter(|&rf| rf > 0 && rf <= live.len())
            .ok_or(PlanError::InvalidReplicationFactor {
                requested: replication_factor,
                live: live.len(),
            })?;
        let partitions = self.plan_partitions(&live, 0, count, rf);
        let configs = configs
            .iter()
            .map(|(name, value)| ConfigEntry {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(vec![
            Kind::CreateTopic(CreateTopic {
                name: name.to_string(),
                topic_id: topic_id.to_vec(),
                partitions,
                configs,
            })
            .into(),
        ])
    }

    /// `count` partitions numbered from `first`, `rf` replicas each over `live` (non-empty), each
    /// with the next Raft groups; the start broker rotates with the group counter so that
    /// successive topics do not all start on the same broker.
    fn plan_partitions(
        &self,
        live: &[(BrokerId, Option<&str>)],
        first: i32,
        count: usize,
        rf: usize,
    ) -> Vec<PartitionAssignment> {
        let start = (self.next_raft_group % live.len() as u64) as usize;
        (first..)
            .zip(assign_replicas(live, count, rf, start))
            .zip(self.next_raft_group..)
            .map(|((partition_index, replicas), raft_group)| PartitionAssignment {
                partition_index,
                replicas,
                raft_group,
            })
            .collect()
    }

    /// The record that grows topic `name` to `total` partitions (CreatePartitions), each new one
    /// with as many replicas as the topic's first, spread over the live brokers like a new topic's.
    pub fn plan_create_partitions(&self, name: &str, total: i32) -> Result<Vec<MetadataRecord>, PlanError> {
        let t = self
            .topic_by_name(name)
            .ok_or_else(|| PlanError::UnknownTopic(name.to_string()))?;
        let current = t.partitions.len();
        let added = usize::try_from(total)
            .ok()
            .filter(|&n| n > current && total <= MAX_PARTITIONS_PER_TOPIC)
            .map(|n| n - current)
            .ok_or(PlanError::InvalidPartitions(total))?;
        let live: Vec<(BrokerId, Option<&str>)> = self.live_brokers().map(|b| (b.id, b.rack.as_deref())).collect();
        let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
        if rf == 0 || rf > live.len() {
            return Err(PlanError::InvalidReplicationFactor {
                requested: i16::try_from(rf).unwrap_or(i16::MAX),
                live: live.len(),
            });
        }
        let partitions = self.plan_partitions(&live, i32::try_from(current).unwrap_or(i32::MAX), added, rf);
        Ok(vec![
            Kind::CreatePartitions(CreatePartitions {
                topic_id: t.id.to_vec(),
                partitions,
            })
            .into(),
        ])
    }

    /// The record that deletes topic `name` (controller side). Its Raft groups are not given
    /// out again.
    pub fn plan_delete_topic(&self, name: &str) -> Result<Vec<MetadataRecord>, PlanError> {
        let t = self
            .topic_by_name(name)
            .ok_or_else(|| PlanError::UnknownTopic(name.to_string()))?;
        Ok(vec![
            Kind::DeleteTopic(DeleteTopic {
                topic_id: t.id.to_vec(),
            })
            .into(),
        ])
    }
}

fn topic_id(raw: &[u8]) -> Option<TopicId> {
    raw.try_into().ok()
}

/// Kafka's topic name rules (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the empty string is not allowed".into());
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are not allowed".into());
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(format!("longer than {MAX_TOPIC_NAME_LENGTH} characters"));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return Err("only ASCII alphanumerics, '.', '_' and '-' are allowed".into());
    }
    Ok(())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Replica lists for `partitions` partitions of `rf` replicas over `brokers` (id, rack); the
/// first replica of each is its preferred leader. Requires `1 ≤ rf ≤ brokers.len()` (returns no
/// partitions otherwise).
///
/// Brokers are ordered by id, or rack-alternated (Kafka's order: one broker of each rack in
/// turn) when every broker has a rack, then rotated by `start`. Replica `j` of partition `p` is
/// the broker at position `p + o_j`, with `o_0 = 0` (leaders round-robin: leader counts differ
/// by at most one) and the other offsets chosen so that the replica counts differ by at most one
/// as well: with `r = partitions mod n`, each replica "layer" gives every broker
/// `partitions div n` replicas plus one to the `r` brokers from `o_j`; offsets `o_j = (j mod m)·r +
/// j div m` with `m = n / gcd(r, n)` make those windows tile the ring (`m` of them cover it exactly
/// `r / gcd` times, and a partial round is one contiguous stretch) while staying distinct mod `n`.
/// With racks, a replica whose rack is already used by the partition moves to the least loaded
/// broker of an unused rack (nearest after its position on ties): replicas sit on distinct racks
/// whenever there are at least `rf` racks, leaders stay round-robin; replica counts are then
/// only approximately even.
pub fn assign_replicas(
    brokers: &[(BrokerId, Option<&str>)],
    partitions: usize,
    rf: usize,
    start: usize,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len();
    if rf == 0 || rf > n {
        return Vec::new();
    }
    let ring = ordered_brokers(brokers);
    let racks: Option<Vec<&str>> = ring.iter().map(|b| b.1).collect();
    let rack_count = racks.as_ref().map_or(0, |r| r.iter().collect::<BTreeSet<_>>().len());
    let r = partitions % n;
    let m = n / gcd(r, n);
    let offsets: Vec<usize> = (0..rf).map(|j| ((j % m) * r + j / m) % n).collect();
    let mut load = vec![0usize; n];
    let mut out = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let mut chosen: Vec<usize> = Vec::with_capacity(rf);
        let mut used_racks: BTreeSet<&str> = BTreeSet::new();
        for &o in &offsets {
            let pos = (start + p + o) % n;
            let fits = |i: usize| {
                !chosen.contains(&i)
                    && racks
                        .as_ref()
                        .is_none_or(|r| used_racks.len() >= rack_count || !used_racks.contains(r[i]))
            };
            let pick = if fits(pos) {
                Some(pos)
            } else {
                (0..n)
                    .filter(|&i| fits(i))
                    .min_by_key(|&i| (load[i], (i + n - pos) % n))
            };
            // Some broker always fits: fewer than n are chosen, and an unused rack has a broker.
            let Some(i) = pick else { break };
            chosen.push(i);
            load[i] += 1;
            if let Some(r) = &racks {
                used_racks.insert(r[i]);
            }
        }
        out.push(chosen.into_iter().map(|i| ring[i].0).collect());
    }
    out
}

/// Brokers by id, or rack-alternated (racks by name, brokers by id within each) when every one
/// has a rack (Kafka's "safe" rack-aware mode: racks are ignored unless all brokers have one).
fn ordered_brokers<'a>(brokers: &[(BrokerId, Option<&'a str>)]) -> Vec<(BrokerId, Option<&'a str>)> {
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    if sorted.iter().any(|b| b.1.is_none()) {
        return sorted.into_iter().map(|(id, _)| (id, None)).collect();
    }
    let mut by_rack: BTreeMap<&str, Vec<BrokerId>> = BTreeMap::new();
    for (id, rack) in &sorted {
        if let Some(rack) = rack {
            by_rack.entry(rack).or_default().push(*id);
        }
    }
    let mut out = Vec::with_capacity(sorted.len());
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..deepest {
        for (rack, ids) in &by_rack {
            if let Some(&id) = ids.get(i) {
                out.push((id, Some(*rack)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::metadata_records::{
        AllocateProducerIds, DeleteTopicConfig, FenceBroker, SetTopicConfig, UnfenceBroker, UnregisterBroker,
        decode_batches, encode_batch,
    };

    fn register(id: BrokerId, rack: Option<&str>) -> MetadataRecord {
        Kind::RegisterBroker(RegisterBroker {
            broker_id: id,
            rack: rack.map(str::to_string),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: format!("broker-{id}"),
                port: 9092,
            }],
            incarnation: 1,
            raft_endpoint: None,
            fenced: true,
        })
        .into()
    }

    fn unfence(id: BrokerId) -> MetadataRecord {
        Kind::UnfenceBroker(UnfenceBroker {
            broker_id: id,
            incarnation: 1,
        })
        .into()
    }

    fn cluster(brokers: &[(BrokerId, Option<&str>)]) -> ClusterMetadata {
        let mut s = ClusterMetadata::new();
        for &(id, rack) in brokers {
            s.apply(&register(id, rack)).unwrap();
            s.apply(&unfence(id)).unwrap();
        }
        s
    }

    fn counts(assignment: &[Vec<BrokerId>]) -> (BTreeMap<BrokerId, usize>, BTreeMap<BrokerId, usize>) {
        let mut leaders = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        for r in assignment {
            *leaders.entry(r[0]).or_insert(0) += 1;
            for &b in r {
                *replicas.entry(b).or_insert(0) += 1;
            }
        }
        (leaders, replicas)
    }

    fn spread(counts: &BTreeMap<BrokerId, usize>, brokers: usize) -> usize {
        let max = counts.values().copied().max().unwrap_or(0);
        let min = if counts.len() < brokers {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        max - min
    }

    /// Every small shape, exhaustively: distinct replicas, leaders and replicas within one.
    #[test]
    fn assignment_is_even_for_every_small_shape() {
        for n in 1..=9 {
            let brokers: Vec<(BrokerId, Option<&str>)> = (0..n).map(|i| (i as BrokerId * 3 + 1, None)).collect();
            for rf in 1..=n {
                for partitions in 1..=40 {
                    for start in [0, 1, n - 1] {
                        let a = assign_replicas(&brokers, partitions, rf, start);
                        assert_eq!(a.len(), partitions);
                        for r in &a {
                            assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), rf, "{n} {rf} {partitions}");
                        }
                        let (leaders, replicas) = counts(&a);
                        assert!(spread(&leaders, n) <= 1, "leaders {n} {rf} {partitions}: {leaders:?}");
                        assert!(
                            spread(&replicas, n) <= 1,
                            "replicas {n} {rf} {partitions}: {replicas:?}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn assignment_properties(
            ids in proptest::collection::btree_set(0i32..1000, 1..12),
            rack_of in proptest::collection::vec(0u8..4, 12),
            racked in any::<bool>(),
            rf_seed in 0usize..12,
            partitions in 1usize..60,
            start in 0usize..12,
        ) {
            let racks = ["a", "b", "c", "d"];
            let brokers: Vec<(BrokerId, Option<&str>)> = ids
                .iter()
                .zip(&rack_of)
                .map(|(&id, &r)| (id, racked.then(|| racks[r as usize])))
                .collect();
            let n = brokers.len();
            let rf = rf_seed % n + 1;
            let a = assign_replicas(&brokers, partitions, rf, start);
            prop_assert_eq!(a.len(), partitions);
            let rack: BTreeMap<BrokerId, Option<&str>> = brokers.iter().copied().collect();
            let rack_count = brokers.iter().filter_map(|b| b.1).collect::<BTreeSet<_>>().len();
            for r in &a {
                prop_assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), rf);
                prop_assert!(r.iter().all(|b| rack.contains_key(b)));
                if racked {
                    let used = r.iter().map(|b| rack[b]).collect::<BTreeSet<_>>().len();
                    prop_assert_eq!(used, rf.min(rack_count), "{:?}", r);
                }
            }
            let (leaders, replicas) = counts(&a);
            prop_assert!(spread(&leaders, n) <= 1, "{:?}", leaders);
            if !racked {
                prop_assert!(spread(&replicas, n) <= 1, "{:?}", replicas);
            }
        }
    }

    #[test]
    fn rack_aware_assignment_alternates_racks() {
        let brokers = [
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ];
        assert_eq!(
            ordered_brokers(&brokers).iter().map(|b| b.0).collect::<Vec<_>>(),
            [1, 3, 5, 2, 4, 6]
        );
        let rack: BTreeMap<BrokerId, &str> = brokers.iter().map(|&(id, r)| (id, r.unwrap())).collect();
        for rf in 1..=3 {
            for r in assign_replicas(&brokers, 12, rf, 0) {
                assert_eq!(r.iter().map(|b| rack[b]).collect::<BTreeSet<_>>().len(), rf, "{r:?}");
            }
        }
        // A broker without a rack turns rack awareness off (Kafka's safe mode).
        let mixed = [(1, Some("a")), (2, None), (3, Some("a"))];
        assert!(ordered_brokers(&mixed).iter().all(|b| b.1.is_none()));
    }

    #[test]
    fn plan_create_topic_refuses_with_kafka_errors() {
        let mut s = cluster(&[(1, None), (2, None), (3, None)]);
        let none = BTreeMap::new();
        let err = s.plan_create_topic("t", 3, 4, &none, [1; 16]).unwrap_err();
        assert_eq!(err, PlanError::InvalidReplicationFactor { requested: 4, live: 3 });
        assert_eq!(err.code(), 38);
        assert_eq!(s.plan_create_topic("t", 3, 0, &none, [1; 16]).unwrap_err().code(), 38);
        assert_eq!(s.plan_create_topic("t", 0, 1, &none, [1; 16]).unwrap_err().code(), 37);
        assert_eq!(s.plan_create_topic("t", -1, 1, &none, [1; 16]).unwrap_err().code(), 37);
        assert_eq!(
            s.plan_create_topic("t", MAX_PARTITIONS_PER_TOPIC + 1, 1, &none, [1; 16])
                .unwrap_err()
                .code(),
            37
        );
        assert_eq!(s.plan_delete_topic("t").unwrap_err().code(), 3);
        assert_eq!(s.plan_create_topic("a/b", 1, 1, &none, [1; 16]).unwrap_err().code(), 17);
        assert_eq!(s.plan_create_topic("t", 1, 1, &none, [0; 16]).unwrap_err().code(), 42);
        // A fenced broker is not live: RF 3 no longer fits.
        s.apply(
            &Kind::FenceBroker(FenceBroker {
                broker_id: 3,
                incarnation: 1,
            })
            .into(),
        )
        .unwrap();
        assert_eq!(
            s.plan_create_topic("t", 1, 3, &none, [1; 16]).unwrap_err(),
            PlanError::InvalidReplicationFactor { requested: 3, live: 2 }
        );
        let records = s.plan_create_topic("t", 4, 2, &none, [1; 16]).unwrap();
        assert!(s.apply_all(&records).is_empty());
        let t = s.topic_by_name("t").unwrap();
        assert!(t.partitions.iter().all(|p| !p.replicas.contains(&3)));
        let err = s.plan_create_topic("t", 1, 1, &none, [2; 16]).unwrap_err();
        assert_eq!(err, PlanError::TopicAlreadyExists("t".into()));
        assert_eq!(err.code(), 36);
        assert_eq!(s.plan_create_topic("u", 1, 1, &none, [1; 16]).unwrap_err().code(), 42);
    }

    #[test]
    fn raft_groups_are_allocated_monotonically_and_never_reused() {
        let mut s = cluster(&[(1, None), (2, None)]);
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let a = s.plan_create_topic("a", 3, 2, &configs, [1; 16]).unwrap();
        // Planned twice before either is applied: the second one loses at apply time.
        let a2 = s.plan_create_topic("a", 1, 1, &BTreeMap::new(), [2; 16]).unwrap();
        assert!(s.apply_all(&a).is_empty());
        assert_eq!(
            s.apply_all(&a2).into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
            [ApplyError::TopicExists("a".into())]
        );
        let t = s.topic_by_name("a").unwrap();
        assert_eq!(t.configs, configs);
        let groups: Vec<u64> = t.partitions.iter().map(|p| p.raft_group.0).collect();
        assert_eq!(groups, [1, 2, 3]);
        assert_eq!(
            s.partition_of_group(GroupId(2)).map(|(t, p)| (t.name.as_str(), p)),
            Some(("a", 1))
        );
        // A plan made before `b` was applied reuses its groups: refused, identically everywhere.
        let stale = s.plan_create_topic("b", 1, 1, &BTreeMap::new(), [3; 16]).unwrap();
        assert!(s.apply_all(&s.clone().plan_delete_topic("a").unwrap()).is_empty());
        assert!(s.topic_by_name("a").is_none());
        let b = s.plan_create_topic("b", 2, 1, &BTreeMap::new(), [4; 16]).unwrap();
        assert!(s.apply_all(&b).is_empty());
        let groups: Vec<u64> = s
            .topic_by_name("b")
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.raft_group.0)
            .collect();
        assert_eq!(groups, [4, 5], "deleting a topic frees no group id");
        let mut reused = stale.clone();
        if let Some(Kind::CreateTopic(c)) = &mut reused[0].kind {
            c.name = "c".into();
        }
        assert!(matches!(
            s.apply(&reused[0]),
            Err(ApplyError::RaftGroupReused { group: 4, next: 6 })
        ));
    }

    #[test]
    fn partitions_are_added_with_new_groups_and_the_topic_replication_factor() {
        let mut s = cluster(&[(1, None), (2, None), (3, None)]);
        assert!(
            s.apply_all(&s.plan_create_topic("t", 2, 2, &BTreeMap::new(), [1; 16]).unwrap())
                .is_empty()
        );
        let grow = s.plan_create_partitions("t", 5).unwrap();
        // Planned twice before applying: the second plan reuses the groups the first took.
        let stale = s.plan_create_partitions("t", 4).unwrap();
        assert!(s.apply_all(&grow).is_empty());
        let t = s.topic_by_name("t").unwrap();
        assert_eq!(t.partitions.len(), 5);
        assert_eq!(
            t.partitions.iter().map(|p| p.raft_group.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(t.partitions.iter().all(|p| p.replicas.len() == 2));
        assert_eq!(
            s.partition_of_group(GroupId(5)).map(|(t, p)| (t.name.as_str(), p)),
            Some(("t", 4))
        );
        assert!(matches!(s.apply(&stale[0]), Err(ApplyError::InvalidAssignment(_))));
        for total in [5, 3, 0, MAX_PARTITIONS_PER_TOPIC + 1] {
            assert_eq!(
                s.plan_create_partitions("t", total).unwrap_err().error(),
                ResponseError::InvalidPartitions
            );
        }
        assert_eq!(
            s.plan_create_partitions("nope", 9).unwrap_err().error(),
            ResponseError::UnknownTopicOrPartition
        );
    }

    #[test]
    fn a_reassignment_lists_both_sets_until_its_leader_completes_it() {
        let mut s = cluster(&[(1, None), (2, None), (3, None), (4, None)]);
        let mut create = s.plan_create_topic("t", 1, 3, &BTreeMap::new(), [1; 16]).unwrap();
        if let Some(Kind::CreateTopic(c)) = &mut create[0].kind {
            c.partitions[0].replicas = vec![1, 2, 3];
        }
        assert!(s.apply_all(&create).is_empty());
        let part = |s: &ClusterMetadata| s.topic_by_name("t").unwrap().partitions[0].clone();

        assert!(
            s.apply_all(&s.plan_reassignment("t", 0, Some(&[2, 3, 4])).unwrap())
                .is_empty()
        );
        let p = part(&s);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![2, 3, 4, 1], vec![4], vec![1])
        );
        assert_eq!(
            (p.target_replicas(), p.original_replicas()),
            (vec![2, 3, 4], vec![2, 3, 1])
        );
        assert_eq!(p.initial_replicas, vec![1, 2, 3]);

        // A completion of another target is stale and ignored; the right one completes it.
        let complete = |replicas: Vec<BrokerId>| -> MetadataRecord {
            Kind::ChangePartitionReplicas(ChangePartitionReplicas {
                topic_id: vec![1; 16],
                partition_index: 0,
                replicas,
                complete: true,
                ..Default::default()
            })
            .into()
        };
        s.apply(&complete(vec![1, 2, 3])).unwrap();
        assert_eq!(part(&s), p);
        s.apply(&complete(vec![4, 3, 2])).unwrap();
        let done = part(&s);
        assert_eq!((done.replicas.clone(), done.is_reassigning()), (vec![2, 3, 4], false));
        assert_eq!(
            done.initial_replicas,
            vec![1, 2, 3],
            "the raft group's first voters never change"
        );
        s.apply(&complete(vec![2, 3, 4])).unwrap();
        assert_eq!(part(&s), done, "a repeated completion changes nothing");

        // Cancelling reverts to the replicas the move started from.
        assert!(
            s.apply_all(&s.plan_reassignment("t", 0, Some(&[1, 2, 4])).unwrap())
                .is_empty()
        );
        assert!(s.apply_all(&s.plan_reassignment("t", 0, None).unwrap()).is_empty());
        let reverted = part(&s);
        assert_eq!(
            (reverted.target_replicas(), reverted.removing.clone()),
            (vec![2, 4, 3], vec![1])
        );

        let err = |r: Result<Vec<MetadataRecord>, ReassignError>| r.unwrap_err().error();
        s.apply(&complete(vec![2, 4, 3])).unwrap();
        assert_eq!(
            err(s.plan_reassignment("t", 0, None)),
            ResponseError::NoReassignmentInProgress
        );
        assert_eq!(
            err(s.plan_reassignment("t", 1, Some(&[1]))),
            ResponseError::UnknownTopicOrPartition
        );
        assert_eq!(
            err(s.plan_reassignment("u", 0, Some(&[1]))),
            ResponseError::UnknownTopicOrPartition
        );
        for bad in [&[][..], &[1, 1], &[1, 9]] {
            assert_eq!(
                err(s.plan_reassignment("t", 0, Some(bad))),
                ResponseError::InvalidReplicaAssignment
            );
        }
        assert!(
            s.plan_reassignment("t", 0, Some(&[2, 4, 3])).unwrap().is_empty(),
            "already there"
        );
    }

    #[test]
    fn a_broker_is_unregistered_only_once_it_holds_no_replica() {
        let mut s = cluster(&[(1, None), (2, None), (3, None)]);
        let mut create = s.plan_create_topic("t", 1, 2, &BTreeMap::new(), [1; 16]).unwrap();
        if let Some(Kind::CreateTopic(c)) = &mut create[0].kind {
            c.partitions[0].replicas = vec![1, 3];
        }
        assert!(s.apply_all(&create).is_empty());
        let unregister = |b| -> MetadataRecord { Kind::UnregisterBroker(UnregisterBroker { broker_id: b }).into() };
        assert_eq!(s.replicas_on(3), vec!["t-0".to_string()]);
        assert!(matches!(s.apply(&unregister(3)), Err(ApplyError::InvalidAssignment(_))));
        // During the move away its replica still counts.
        assert!(
            s.apply_all(&s.plan_reassignment("t", 0, Some(&[1, 2])).unwrap())
                .is_empty()
        );
        assert!(matches!(s.apply(&unregister(3)), Err(ApplyError::InvalidAssignment(_))));
        let done: MetadataRecord = Kind::ChangePartitionReplicas(ChangePartitionReplicas {
            topic_id: vec![1; 16],
            partition_index: 0,
            replicas: vec![1, 2],
            complete: true,
            ..Default::default()
        })
        .into();
        s.apply(&done).unwrap();
        assert!(s.replicas_on(3).is_empty());
        s.apply(&unregister(3)).unwrap();
        assert!(s.broker(3).is_none());
        assert_eq!(s.apply(&unregister(3)), Err(ApplyError::UnknownBroker(3)));
        assert_eq!(s.live_brokers().count(), 2, "new topics no longer go to it");
    }

    #[test]
    fn producer_id_blocks_follow_each_other_and_stale_ones_are_refused() {
        let mut s = cluster(&[(1, None), (2, None)]);
        let block = |broker, first_id| -> MetadataRecord {
            Kind::AllocateProducerIds(AllocateProducerIds {
                broker_id: broker,
                first_id,
                count: 1000,
            })
            .into()
        };
        s.apply(&block(1, 0)).unwrap();
        s.apply(&block(2, 1000)).unwrap();
        // Planned from the same state as broker 2's: refused, broker 1 plans again.
        assert!(s.apply(&block(1, 1000)).is_err());
        s.apply(&block(1, 2000)).unwrap();
        assert_eq!(s.next_producer_id(), 3000);
        assert_eq!(
            (s.producer_block(1), s.producer_block(2)),
            (Some((2000, 3000)), Some((1000, 2000)))
        );
        let empty: MetadataRecord = Kind::AllocateProducerIds(AllocateProducerIds {
            broker_id: 1,
            first_id: 3000,
            count: 0,
        })
        .into();
        assert!(s.apply(&empty).is_err());
    }

    #[test]
    fn apply_validates_and_leaves_the_state_unchanged_on_refusal() {
        let mut s = cluster(&[(1, Some("r1")), (2, Some("r2"))]);
        let before = s.clone();
        let create = |name: &str, id: u8, replicas: Vec<BrokerId>, group: u64| -> MetadataRecord {
            Kind::CreateTopic(CreateTopic {
                name: name.into(),
                topic_id: vec![id; 16],
                partitions: vec![PartitionAssignment {
                    partition_index: 0,
                    replicas,
                    raft_group: group,
                }],
                configs: vec![],
            })
            .into()
        };
        let refused = [
            MetadataRecord { kind: None },
            create("t", 1, vec![1, 1], 1),
            create("t", 1, vec![9], 1),
            create("t", 1, vec![], 1),
            create("t", 0, vec![1], 1),
            create("", 1, vec![1], 1),
            create("t", 1, vec![1], 0),
            unfence(9),
            Kind::UnfenceBroker(UnfenceBroker {
                broker_id: 1,
                incarnation: 2,
            })
            .into(),
            Kind::RegisterBroker(RegisterBroker {
                broker_id: 1,
                incarnation: 0,
                ..Default::default()
            })
            .into(),
            Kind::DeleteTopic(DeleteTopic { topic_id: vec![1; 16] }).into(),
            Kind::SetTopicConfig(SetTopicConfig {
                topic_id: vec![1; 3],
                name: "x".into(),
                value: "y".into(),
            })
            .into(),
        ];
        for r in &refused {
            assert!(s.apply(r).is_err(), "{r:?}");
            assert_eq!(s, before, "{r:?}");
        }
        s.apply(&create("t", 1, vec![1, 2], 1)).unwrap();
        assert!(s.apply(&create("t", 2, vec![1], 2)).is_err(), "duplicate name");
        assert!(s.apply(&create("u", 1, vec![1], 2)).is_err(), "duplicate id");
        s.apply(
            &Kind::SetTopicConfig(SetTopicConfig {
                topic_id: vec![1; 16],
                name: "cleanup.policy".into(),
                value: "compact".into(),
            })
            .into(),
        )
        .unwrap();
        s.apply(
            &Kind::ChangePartitionReplicas(ChangePartitionReplicas {
                topic_id: vec![1; 16],
                partition_index: 0,
                replicas: vec![2],
                ..Default::default()
            })
            .into(),
        )
        .unwrap();
        let t = s.topic_by_name("t").unwrap();
        assert_eq!(t.partitions[0].replicas, [2]);
        assert_eq!(t.configs["cleanup.policy"], "compact");
        s.apply(
            &Kind::DeleteTopicConfig(DeleteTopicConfig {
                topic_id: vec![1; 16],
                name: "cleanup.policy".into(),
            })
            .into(),
        )
        .unwrap();
        assert!(s.topic_by_name("t").unwrap().configs.is_empty());
        // A re-registration with a newer incarnation replaces the old one (fenced again).
        s.apply(
            &Kind::RegisterBroker(RegisterBroker {
                broker_id: 1,
                incarnation: 5,
                fenced: true,
                ..Default::default()
            })
            .into(),
        )
        .unwrap();
        assert_eq!(s.live_brokers().map(|b| b.id).collect::<Vec<_>>(), [2]);
    }

    /// Any sequence of records, valid or not, through a batch encode/decode: two states applying
    /// it are equal and refuse the same records.
    #[test]
    fn apply_is_deterministic_through_the_batch_codec() {
        let mut records = crate::metadata_records::tests::samples();
        let mut planner = cluster(&[(1, Some("a")), (2, Some("b")), (3, Some("a"))]);
        let mut log: Vec<MetadataRecord> = Vec::new();
        for id in 1..=3 {
            log.push(register(id, Some(["a", "b", "a"][id as usize - 1])));
            log.push(unfence(id));
        }
        let before_x = planner.clone();
        for (i, name) in ["x", "y", "x", "z"].into_iter().enumerate() {
            // The second "x" was planned concurrently with the first: refused at apply time.
            let from = if i == 2 { &before_x } else { &planner };
            let plan = from
                .plan_create_topic(name, 5, 2, &BTreeMap::new(), [i as u8 + 1; 16])
                .unwrap();
            planner.apply_all(&plan);
            log.extend(plan);
        }
        log.append(&mut records);
        let batches: Vec<u8> = log.chunks(3).flat_map(|c| encode_batch(c, 7).unwrap()).collect();
        let decoded = decode_batches(&batches).unwrap();
        assert_eq!(decoded, log);
        let mut a = ClusterMetadata::new();
        let mut b = ClusterMetadata::new();
        let ra = a.apply_all(&log);
        let rb = b.apply_all(&decoded);
        assert_eq!(a, b);
        assert_eq!(ra, rb);
        assert_eq!(a.topics().count(), 3);
        assert!(ra.iter().any(|(_, e)| *e == ApplyError::TopicExists("x".into())));
    }
}
