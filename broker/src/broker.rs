//! The broker's state: its config, the topic registry and the partitions it hosts. Topic changes
//! go through here so that the registry on disk and the open logs never disagree.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::error::ApiError;
use crate::partition::Partition;
use crate::topic_config;
use crate::topics::{self, Topic, TopicRegistry};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Registry(#[from] topics::RegistryError),
    #[error("opening partition {topic}-{partition}: {source}")]
    Partition {
        topic: String,
        partition: i32,
        source: skiff_storage::StorageError,
    },
    #[error("{0}")]
    Io(String),
}

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    topics: RwLock<TopicRegistry>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Hands out producer ids for InitProducerId, never the same one twice.
    pub producer_ids: crate::producer_ids::ProducerIdManager,
    /// Consumer groups and their committed offsets.
    pub groups: crate::group_coordinator::GroupCoordinator,
    /// Replication, in a cluster (`controller.quorum.voters` set); then the topic registry is a
    /// mirror of the cluster metadata and partitions are Raft replicas.
    cluster: OnceLock<Arc<Cluster>>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Broker {
    /// Opens the data directory: cluster id, topic registry, and every partition's log
    /// (recovering those that were not closed cleanly).
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, StartError> {
        let meta = config.data_dir.join("meta");
        let registry = TopicRegistry::load(&meta)?;
        let cluster_id = if config.is_cluster() {
            cluster_id_of_voters(&config)
        } else {
            load_or_create_cluster_id(&meta)?
        };
        let broker = Broker {
            groups: crate::group_coordinator::GroupCoordinator::new(
                crate::group_coordinator::CoordinatorConfig::from_broker(&config),
            ),
            config,
            cluster_id,
            topics: RwLock::new(registry),
            partitions: RwLock::new(HashMap::new()),
            producer_ids: crate::producer_ids::ProducerIdManager::open(&meta)
                .map_err(|e| StartError::Io(e.to_string()))?,
            cluster: OnceLock::new(),
        };
        let topics: Vec<Topic> = read(&broker.topics).iter().cloned().collect();
        // In a cluster the replicas are opened by `Cluster::start` from the metadata log.
        for topic in topics.iter().filter(|_| !broker.config.is_cluster()) {
            for p in 0..topic.partitions {
                broker.open_partition(topic, p)?;
            }
        }
        // Never reissue an id the partitions still track, even if the persisted mark was lost.
        if let Some(max) = broker
            .all_partitions()
            .iter()
            .filter_map(|p| p.producer_states().max_producer_id())
            .max()
        {
            broker.producer_ids.ensure_above(max);
        }
        tracing::info!(topics = topics.len(), dir = %broker.config.data_dir.display(), "data directory loaded");
        Ok(Arc::new(broker))
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    fn open_partition(&self, topic: &Topic, index: i32) -> Result<Arc<Partition>, StartError> {
        let log_config = topic_config::log_config(&self.config, &topic.configs);
        let dir = self.partition_dir(&topic.name, index);
        let partition = Partition::open(&dir, &topic.name, topic.id, index, log_config).map_err(|source| {
            StartError::Partition {
                topic: topic.name.clone(),
                partition: index,
                source,
            }
        })?;
        write(&self.partitions).insert((topic.name.clone(), index), Arc::clone(&partition));
        Ok(partition)
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        read(&self.partitions).get(&(topic.to_string(), index)).cloned()
    }

    /// The partition, or the error a handler answers when this broker has none:
    /// NOT_LEADER_OR_FOLLOWER for a partition of the cluster that other brokers host,
    /// UNKNOWN_TOPIC_OR_PARTITION otherwise.
    pub fn partition_or_unknown(&self, topic: &str, index: i32) -> Result<Arc<Partition>, ApiError> {
        self.partition(topic, index)
            .ok_or_else(|| self.no_replica_here(topic, index))
    }

    /// Why this broker has no replica of `topic`-`index`.
    pub fn no_replica_here(&self, topic: &str, index: i32) -> ApiError {
        let elsewhere =
            self.cluster().is_some() && self.topic(topic).is_some_and(|t| (0..t.partitions).contains(&index));
        if elsewhere {
            ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("this broker hosts no replica of {topic}-{index}"),
            )
        } else {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("unknown partition {topic}-{index}"),
            )
        }
    }

    /// The cluster this broker is a member of (`None` on a single node).
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        if self.cluster.set(cluster).is_err() {
            tracing::error!("the broker joined a cluster twice");
        }
    }

    pub(crate) fn cluster_weak(&self) -> Weak<Cluster> {
        self.cluster.get().map(Arc::downgrade).unwrap_or_default()
    }

    pub(crate) fn insert_partition(&self, partition: Arc<Partition>) {
        write(&self.partitions).insert((partition.topic.clone(), partition.index), partition);
    }

    pub(crate) fn remove_partition(&self, topic: &str, index: i32) {
        write(&self.partitions).remove(&(topic.to_string(), index));
    }

    /// Makes the topic registry hold exactly `topics` (a cluster's applied metadata).
    pub(crate) fn mirror_topics(&self, topics: &[Topic]) {
        let mut registry = write(&self.topics);
        let stale: Vec<String> = registry
            .iter()
            .filter(|t| !topics.iter().any(|n| n.name == t.name))
            .map(|t| t.name.clone())
            .collect();
        for name in stale {
            if let Err(e) = registry.remove(&name) {
                tracing::error!(topic = name, error = %e, "cannot update the topic registry");
            }
        }
        for t in topics {
            if registry.get(&t.name) != Some(t)
                && let Err(e) = registry.put(t.clone())
            {
                tracing::error!(topic = %t.name, error = %e, "cannot update the topic registry");
            }
        }
    }

    /// The replication factor of a new topic that does not name one.
    pub fn default_replication_factor(&self, internal: bool) -> i16 {
        match self.cluster() {
            None => 1,
            Some(c) if internal => {
                let live = i16::try_from(c.live_brokers()).unwrap_or(i16::MAX).max(1);
                self.config.offsets_topic_replication_factor.min(live)
            }
            Some(_) => self.config.default_replication_factor,
        }
    }

    pub fn topic(&self, name: &str) -> Option<Topic> {
        read(&self.topics).get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Topic> {
        read(&self.topics).get_by_id(id).cloned()
    }

    pub fn topics(&self) -> Vec<Topic> {
        read(&self.topics).iter().cloned().collect()
    }

    /// Validates a topic creation without performing it (CreateTopics' `validate_only`, and the
    /// first half of `create_topic`).
    pub fn check_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        topics::validate_name(name).map_err(|m| ApiError::new(ResponseError::InvalidTopicException, m))?;
        if read(&self.topics).get(name).is_some() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        check_partition_count(partitions)?;
        if let Some(cluster) = self.cluster() {
            let live = cluster.live_brokers();
            if replication_factor < 1 || replication_factor as usize > live {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!("Replication factor: {replication_factor} larger than available brokers: {live}."),
                ));
            }
        } else if replication_factor != 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {replication_factor} is larger than the 1 available broker"),
            ));
        }
        for (k, v) in configs {
            topic_config::validate(k, v).map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        }
        Ok(())
    }

    /// Creates a topic and opens its partitions, with the default replication factor.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<Topic, ApiError> {
        let rf = self.default_replication_factor(internal);
        self.create_topic_with(name, partitions, rf, configs, internal)
    }

    /// Creates a topic of `replication_factor` replicas: on one node it opens its partitions;
    /// in a cluster the controller assigns its replicas and every replica opens when applied.
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<Topic, ApiError> {
        self.check_new_topic(name, partitions, replication_factor, &configs)?;
        if let Some(cluster) = self.cluster() {
            let topic = cluster.create_topic(name, partitions, replication_factor, &configs)?;
            tracing::info!(topic = name, partitions, replication_factor, "created topic");
            return Ok(topic);
        }
        let topic = Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
            internal,
        };
        {
            let mut registry = write(&self.topics);
            if registry.get(name).is_some() {
                return Err(ApiError::new(
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name} already exists"),
                ));
            }
            // Leftovers of an earlier topic of the same name must not come back.
            for p in 0..partitions {
                let dir = self.partition_dir(name, p);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
                }
            }
            registry
                .put(topic.clone())
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        }
        for p in 0..partitions {
            self.open_partition(&topic, p)
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        }
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: forgets it, then removes its data.
    pub fn delete_topic(&self, name: &str) -> Result<Topic, ApiError> {
        if let Some(cluster) = self.cluster() {
            let topic = cluster.delete_topic(name)?;
            tracing::info!(topic = name, "deleted topic");
            return Ok(topic);
        }
        let topic = write(&self.topics)
            .remove(name)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}")))?;
        let removed: Vec<Arc<Partition>> = {
            let mut parts = write(&self.partitions);
            (0..topic.partitions)
                .filter_map(|p| parts.remove(&(name.to_string(), p)))
                .collect()
        };
        for partition in removed {
            partition.with_log(|log| {
                let dir = log.dir().to_path_buf();
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::error!(dir = %dir.display(), error = %e, "could not remove deleted topic's data");
                }
            });
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `total` partitions.
    pub fn add_partitions(&self, name: &str, total: i32) -> Result<Topic, ApiError> {
        let unknown = || ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}"));
        if let Some(cluster) = self.cluster() {
            check_growth(&self.topic(name).ok_or_else(unknown)?, total)?;
            return cluster.add_partitions(name, total);
        }
        let topic = {
            let mut registry = write(&self.topics);
            let mut topic = registry.get(name).cloned().ok_or_else(unknown)?;
            check_growth(&topic, total)?;
            topic.partitions = total;
            registry
                .put(topic.clone())
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            topic
        };
        for p in 0..total {
            if self.partition(name, p).is_none() {
                self.open_partition(&topic, p)
                    .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            }
        }
        Ok(topic)
    }

    /// Read-modify-write of a topic's config overrides, atomic with respect to other changes:
    /// `change` maps the current overrides to the new ones, which are validated, applied to the
    /// topic's logs, and only then persisted (the logs are put back if persisting fails).
    pub fn update_topic_configs(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
    ) -> Result<Topic, ApiError> {
        if let Some(cluster) = self.cluster() {
            return self.update_replicated_topic_configs(cluster, name, validate_only, change);
        }
        let mut registry = write(&self.topics);
        let mut topic = registry
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}")))?;
        let configs = validated(change(&topic.configs)?)?;
        if validate_only || configs == topic.configs {
            return Ok(topic);
        }
        let old = topic_config::log_config(&self.config, &topic.configs);
        let new = topic_config::log_config(&self.config, &configs);
        let partitions: Vec<Arc<Partition>> = (0..topic.partitions).filter_map(|p| self.partition(name, p)).collect();
        let restore = |applied: &[Arc<Partition>]| {
            for p in applied {
                if let Err(e) = p.with_log(|log| log.set_config(old.clone())) {
                    tracing::error!(topic = name, partition = p.index, error = %e, "could not restore log config");
                }
            }
        };
        for (i, p) in partitions.iter().enumerate() {
            if let Err(e) = p.with_log(|log| log.set_config(new.clone())) {
                restore(&partitions[..i]);
                return Err(e.into());
            }
        }
        topic.configs = configs;
        if let Err(e) = registry.put(topic.clone()) {
            restore(&partitions);
            return Err(ApiError::new(ResponseError::KafkaStorageError, e.to_string()));
        }
        tracing::info!(topic = name, configs = ?topic.configs, "topic configs changed");
        Ok(topic)
    }

    /// A replicated topic's configs live in the metadata log: the change is proposed there and
    /// every broker applies it to the replicas it hosts (`Cluster::reconcile`).
    fn update_replicated_topic_configs(
        &self,
        cluster: &Arc<Cluster>,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
    ) -> Result<Topic, ApiError> {
        let mut topic = self
            .topic(name)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}")))?;
        let configs = validated(change(&topic.configs)?)?;
        if validate_only || configs == topic.configs {
            return Ok(topic);
        }
        cluster.set_topic_configs(name, topic.id, &configs)?;
        tracing::info!(topic = name, configs = ?configs, "topic configs changed");
        topic.configs = configs;
        Ok(topic)
    }

    /// Time and size retention for every topic whose `cleanup.policy` includes `delete`; compacted
    /// topics (like `__consumer_offsets`) keep their segments, as in Kafka.
    pub fn enforce_retention(&self, now_ms: i64) {
        for topic in self.topics() {
            let policy = topic_config::effective(&self.config, &topic.configs, "cleanup.policy").unwrap_or_default();
            if !policy.split(',').any(|p| p.trim() == "delete") {
                continue;
            }
            for p in 0..topic.partitions {
                let Some(partition) = self.partition(&topic.name, p) else {
                    continue;
                };
                // A replicated log's start moves with a Raft snapshot (`cluster/log_start.rs`).
                let result = match partition.replica() {
                    Some(r) => match r.cluster() {
                        Some(cluster) => cluster.enforce_retention(r, now_ms),
                        None => Ok(()),
                    },
                    None => partition
                        .with_log(|log| log.enforce_retention(now_ms))
                        .map(drop)
                        .map_err(ApiError::from),
                };
                if let Err(e) = result {
                    tracing::error!(topic = %topic.name, partition = p, error = %e, "retention failed");
                }
            }
        }
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        read(&self.partitions).values().cloned().collect()
    }

    /// Clean shutdown of every log.
    pub fn shutdown(&self) {
        if let Some(cluster) = self.cluster() {
            cluster.shutdown();
        }
        for partition in self.all_partitions() {
            if let Err(e) = partition.shutdown() {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "unclean close");
            }
        }
    }
}

/// Each partition is a directory of open files and mapped indexes; a request for millions of them
/// is refused rather than left to exhaust the machine.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

fn check_partition_count(partitions: i32) -> Result<(), ApiError> {
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            format!("number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, not {partitions}"),
        ));
    }
    Ok(())
}

/// Every broker of a cluster derives the same id from the voters they all list.
fn cluster_id_of_voters(config: &BrokerConfig) -> String {
    let voters = config.get("controller.quorum.voters").unwrap_or_default();
    let a = crc32fast::hash(voters.as_bytes());
    let b = crc32fast::hash(voters.chars().rev().collect::<String>().as_bytes());
    format!("skiff-{a:08x}{b:08x}")
}

fn load_or_create_cluster_id(meta: &std::path::Path) -> Result<String, StartError> {
    use std::io::Write;
    let path = meta.join("cluster.id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let id = Uuid::new_v4().simple().to_string();
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(id.as_bytes())?;
        f.sync_all()
    });
    written.map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
    skiff_storage::checkpoint::sync_dir(meta).map_err(|e| StartError::Io(e.to_string()))?;
    Ok(id)
}

/// Whether `topic` may grow to `total` partitions (CreatePartitions).
fn check_growth(topic: &Topic, total: i32) -> Result<(), ApiError> {
    check_partition_count(total)?;
    if topic.internal {
        // Groups are mapped to `__consumer_offsets` partitions by count; changing it would
        // orphan every committed offset.
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("the partition count of internal topic {} cannot change", topic.name),
        ));
    }
    if total <= topic.partitions {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            format!(
                "topic {} has {} partitions; the new count must be larger",
                topic.name, topic.partitions
            ),
        ));
    }
    Ok(())
}

/// Topic config overrides, each checked against its Kafka config's rules.
fn validated(configs: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    for (k, v) in &configs {
        topic_config::validate(k, v).map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
    }
    Ok(configs)
}
#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_batches as batches;

    fn config(dir: &std::path::Path) -> BrokerConfig {
        BrokerConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().expect("a literal address"))
    }

    #[tokio::test]
    async fn retention_spares_compacted_topics() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(config(dir.path())).unwrap();
        let day_old = crate::clock::now_ms() - 24 * 3600 * 1000;
        for (name, policy) in [
            ("deleted", "delete"),
            ("compacted", "compact"),
            ("both", "compact,delete"),
        ] {
            let configs = [
                ("cleanup.policy".to_string(), policy.to_string()),
                ("retention.ms".to_string(), "1000".to_string()),
            ]
            .into();
            broker.create_topic(name, 1, configs, false).unwrap();
            let batch = batches::build(3, 10, day_old, kafka_protocol::records::Compression::None);
            broker.partition(name, 0).unwrap().append(&batch, -1).await.unwrap();
        }
        broker.enforce_retention(crate::clock::now_ms());
        let start = |name: &str| broker.partition(name, 0).unwrap().with_log(|l| l.log_start_offset());
        assert_eq!(start("deleted"), 3, "expired records of a delete topic go");
        assert_eq!(start("both"), 3);
        assert_eq!(start("compacted"), 0, "a compact-only topic keeps its segments");
    }

    #[test]
    fn internal_topics_keep_their_partition_count_and_counts_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(config(dir.path())).unwrap();
        broker
            .create_topic("__consumer_offsets", 2, Default::default(), true)
            .unwrap();
        let e = broker.add_partitions("__consumer_offsets", 4).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidRequest);
        let e = broker
            .create_topic("huge", MAX_PARTITIONS_PER_TOPIC + 1, Default::default(), false)
            .unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidPartitions);
        assert!(broker.topic("huge").is_none());
    }
}
