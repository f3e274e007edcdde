//! A partition replica on this broker: its log, its high watermark, and the wake-ups that parked
//! fetches wait on. Two backends sit behind one `append` / `read` / high-watermark surface:
//! - local (a single node): "committed" means fsync'd, so the high watermark follows the group
//!   commit's durable offset; a batch that is only in the page cache is never visible;
//! - replicated (a cluster): the log is the Raft log of the partition's group (see
//!   `cluster.rs`); appends are Raft proposals on the leader, and the high watermark follows
//!   the Raft commit index (majority persisted).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use skiff_replication::group_id::GroupId;
use skiff_replication::metadata_records::BrokerId;
use skiff_replication::raft_log::LogStorage;
use skiff_storage::{AppendInfo, Log, LogConfig, SharedLog, StorageError};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::producer_state::ProducerStates;

/// How long acks=all waits for the Raft commit before answering REQUEST_TIMED_OUT (a partition
/// that lost its majority stays unavailable rather than diverging).
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    backend: Backend,
    /// Offsets below this are committed and may be read. Fetchers park on it.
    high_watermark: watch::Sender<u64>,
    /// Idempotent producers' sequence state, checked and updated under the log's lock (local)
    /// or the Raft driver's lock (replicated, on the leader only).
    producers: ProducerStates,
}

#[derive(Debug)]
enum Backend {
    Local(Box<SharedLog>),
    Replicated(Replica),
}

/// The replicated side of a partition: its Raft group and what this replica knows of its role.
#[derive(Debug)]
pub struct Replica {
    pub group: GroupId,
    pub store: LogStorage,
    /// Every replica of the partition, the preferred leader first (during a reassignment, the
    /// target's and the leaving ones); the metadata log changes it.
    replicas: Mutex<Vec<BrokerId>>,
    role: Mutex<Role>,
    cluster: Weak<Cluster>,
}

/// A replica's view of its partition's leadership; changed by the Raft loop only.
#[derive(Debug, Clone, Default)]
pub struct Role {
    /// The leader this replica knows of.
    pub leader: Option<BrokerId>,
    /// The Raft term, i.e. the Kafka leader epoch.
    pub epoch: i32,
    pub is_leader: bool,
    /// On the leader: the Kafka offset the next proposed batch gets. Raft appends a leader's
    /// entries in proposal order and only data entries take offsets, so offsets are known when
    /// a batch is proposed; every commit checks the prediction.
    pub next_offset: u64,
    /// On the leader: the producer table must be rebuilt from the log before the next append.
    pub producers_stale: bool,
    /// On the leader: the in-sync replicas (Raft progress within `replica.lag.time.max.ms`).
    pub isr: Vec<BrokerId>,
}

impl Replica {
    pub fn role(&self) -> MutexGuard<'_, Role> {
        self.role.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.upgrade()
    }

    pub fn replicas(&self) -> Vec<BrokerId> {
        self.replicas.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_replicas(&self, replicas: &[BrokerId]) {
        let mut current = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        if *current != replicas {
            *current = replicas.to_vec();
        }
    }
}

impl Partition {
    pub fn open(
        dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<Self>, StorageError> {
        let log = Log::open(dir, config)?;
        // Producer state comes from the newest snapshot plus a replay of the batches after it.
        let producers = ProducerStates::load(&log, now_ms());
        // Everything recovery kept has been fsync'd, so all of it is committed.
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            backend: Backend::Local(Box::new(SharedLog::new(log))),
            high_watermark,
            producers,
        }))
    }

    /// A replica of a partition replicated by Raft group `group`, over its opened Raft log.
    pub fn replicated(
        topic: &str,
        topic_id: Uuid,
        index: i32,
        group: GroupId,
        store: LogStorage,
        replicas: Vec<BrokerId>,
        cluster: Weak<Cluster>,
    ) -> Arc<Self> {
        // Producer state is rebuilt when this replica becomes leader (`Role::producers_stale`).
        let producers = store.with_log(|log| ProducerStates::empty(log.dir()));
        let (high_watermark, _) = watch::channel(store.high_watermark());
        Arc::new(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            backend: Backend::Replicated(Replica {
                group,
                store,
                replicas: Mutex::new(replicas),
                role: Mutex::new(Role::default()),
                cluster,
            }),
            high_watermark,
            producers,
        })
    }

    /// The replicated side, `None` on a single node.
    pub fn replica(&self) -> Option<&Replica> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Replicated(r) => Some(r),
        }
    }

    /// The Kafka leader epoch: constant 0 on a single node, the Raft term in a cluster.
    pub fn leader_epoch(&self) -> i32 {
        match &self.backend {
            Backend::Local(_) => 0,
            Backend::Replicated(r) => r.role().epoch,
        }
    }

    /// NOT_LEADER_OR_FOLLOWER unless this replica leads the partition (always, on one node).
    pub fn check_leader(&self) -> Result<(), ApiError> {
        match &self.backend {
            Backend::Local(_) => Ok(()),
            Backend::Replicated(r) => {
                let role = r.role();
                if role.is_leader {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        ResponseError::NotLeaderOrFollower,
                        format!(
                            "broker is not the leader of {}-{} (leader: {:?})",
                            self.topic, self.index, role.leader
                        ),
                    ))
                }
            }
        }
    }

    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// Runs `f` with the log locked, for lookups and admin operations.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> R {
        match &self.backend {
            Backend::Local(log) => f(&mut log.lock()),
            Backend::Replicated(r) => r.store.with_log(f),
        }
    }

    /// The idempotent producers this partition tracks.
    pub fn producer_states(&self) -> &ProducerStates {
        &self.producers
    }

    /// Appends a producer's batches now and returns the commit to wait for: once it completes the
    /// batches are fsync'd and visible. Several appends (of one request, or of requests in flight
    /// on one connection) can wait at once, so their fsyncs overlap or merge.
    /// Idempotent batches are checked against the producer state under the same lock as the
    /// append; a retry of a batch already written is answered with its original offsets instead
    /// of being written twice, and its commit waits for the original to be durable.
    /// On a replicated partition the batches are proposed to Raft (leader only) and the commit
    /// is the Raft commit; acks=all is refused with NOT_ENOUGH_REPLICAS while the ISR is smaller
    /// than `min.insync.replicas`.
    pub fn begin_append(self: &Arc<Self>, records: &[u8], acks: i16) -> Result<(AppendInfo, Commit), ApiError> {
        let log = match &self.backend {
            Backend::Local(log) => log,
            Backend::Replicated(r) => {
                let cluster = r
                    .cluster()
                    .ok_or_else(|| ApiError::new(ResponseError::NotLeaderOrFollower, "the broker is shutting down"))?;
                return cluster.append(self, r, records, acks);
            }
        };
        let mut batches = BytesMut::from(records);
        let appended = {
            let mut log = log.lock();
            self.producers.append(&mut log, &mut batches, 0, now_ms())?
        };
        if let Some(job) = appended.snapshot {
            let this = Arc::clone(self);
            tokio::task::spawn_blocking(move || this.producers.write_snapshot(job));
        }
        let info = appended.info;
        let this = Arc::clone(self);
        let upto = info.last_offset + 1;
        let handle = tokio::task::spawn_blocking(move || {
            let Backend::Local(log) = &this.backend else {
                return Ok(());
            };
            let result = log.flush_to(upto, now_ms());
            this.advance_high_watermark(log.commit().durable_offset());
            result
        });
        Ok((info, self.commit(Pending::Fsync(handle))))
    }

    /// A commit to wait for, of this partition.
    pub(crate) fn commit(&self, pending: Pending) -> Commit {
        Commit {
            pending,
            topic: self.topic.clone(),
            index: self.index,
        }
    }

    /// `begin_append` and, for acks=all, the wait for the commit.
    pub async fn append(self: &Arc<Self>, records: &[u8], acks: i16) -> Result<AppendInfo, ApiError> {
        let (info, commit) = self.begin_append(records, acks)?;
        if acks == -1 {
            commit.wait().await?;
        } else {
            commit.detach();
        }
        Ok(info)
    }

    pub(crate) fn advance_high_watermark(&self, durable: u64) {
        self.high_watermark.send_if_modified(|hw| {
            let advanced = durable > *hw;
            if advanced {
                *hw = durable;
            }
            advanced
        });
    }

    /// Whole batches from `offset`, never past the high watermark.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let hw = self.high_watermark();
        match &self.backend {
            Backend::Local(log) => log.lock().read(offset, max_bytes, hw),
            Backend::Replicated(r) => r.store.with_log(|log| log.read(offset, max_bytes, hw)),
        }
    }

    /// DeleteRecords: moves the log start, never past the high watermark.
    pub fn delete_records(&self, offset: u64) -> Result<u64, ApiError> {
        let hw = self.high_watermark();
        let log = match &self.backend {
            Backend::Local(log) => log,
            Backend::Replicated(r) => {
                let cluster = r
                    .cluster()
                    .ok_or_else(|| ApiError::new(ResponseError::NotLeaderOrFollower, "the broker is stopping"))?;
                return cluster.delete_records(self, r, offset);
            }
        };
        let mut log = log.lock();
        if offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: log.log_start_offset(),
                log_end: hw,
            }
            .into());
        }
        log.set_log_start_offset(offset)?;
        Ok(log.log_start_offset())
    }

    /// Clean shutdown of a local log: flush, checkpoint, marker (the Raft driver closes
    /// replicated logs).
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let Backend::Local(log) = &self.backend else {
            return Ok(());
        };
        let mut log = log.lock();
        log.shutdown(now_ms())?;
        // Lets the next open skip the producer-state replay.
        self.producers.write_snapshot(self.producers.snapshot(&log));
        Ok(())
    }
}

/// What commits an append (see `Partition::begin_append`).
#[derive(Debug)]
pub struct Commit {
    pending: Pending,
    topic: String,
    index: i32,
}

#[derive(Debug)]
pub(crate) enum Pending {
    /// A single node's fsync.
    Fsync(tokio::task::JoinHandle<Result<(), StorageError>>),
    /// The Raft commit of each proposed batch, answered by the Raft loop.
    Raft(Vec<oneshot::Receiver<Result<(), ApiError>>>),
    /// A retry of a batch proposed before: committed once the high watermark passes its end.
    HighWatermark(watch::Receiver<u64>, u64),
}

impl Commit {
    /// Waits until the appended batches are durable and visible.
    pub async fn wait(self) -> Result<(), ApiError> {
        let lost = || {
            ApiError::new(
                ResponseError::NotLeaderOrFollower,
                "the replica stopped before the commit",
            )
        };
        match self.pending {
            Pending::Fsync(handle) => match handle.await {
                Ok(result) => Ok(result?),
                Err(join) => Err(StorageError::Offline {
                    dir: Default::default(),
                    reason: join.to_string(),
                }
                .into()),
            },
            Pending::Raft(receivers) => {
                let all = async {
                    for rx in receivers {
                        rx.await.map_err(|_| lost())??;
                    }
                    Ok(())
                };
                tokio::time::timeout(REPLICATION_TIMEOUT, all)
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
            }
            Pending::HighWatermark(mut hw, upto) => {
                let reached = hw.wait_for(|&hw| hw >= upto);
                match tokio::time::timeout(REPLICATION_TIMEOUT, reached).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(_)) => Err(lost()),
                    Err(_) => Err(timed_out()),
                }
            }
        }
    }

    /// Lets the commit finish on its own (acks=0/1); a failure is logged, and the log goes offline.
    pub fn detach(self) {
        let Commit { pending, topic, index } = self;
        if let Pending::Fsync(handle) = pending {
            tokio::spawn(async move {
                if let Ok(Err(e)) = handle.await {
                    tracing::error!(%topic, partition = index, error = %e, "background fsync failed");
                }
            });
        }
    }
}

fn timed_out() -> ApiError {
    ApiError::new(
        ResponseError::RequestTimedOut,
        format!(
            "not committed by a majority of replicas within {} s",
            REPLICATION_TIMEOUT.as_secs()
        ),
    )
}
