//! A partition this broker leads: its log, its high watermark, and the wake-ups that parked
//! fetches wait on. On one node "committed" means fsync'd, so the high watermark follows the
//! group commit's durable offset; a batch that is only in the page cache is never visible.
//! Replication (issue 4) slots in behind the same `append` / `read` / high-watermark surface.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use skiff_storage::{AppendInfo, Log, LogConfig, SharedLog, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::producer_state::ProducerStates;

#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    log: SharedLog,
    /// Offsets below this are committed (durable) and may be read. Fetchers park on it.
    high_watermark: watch::Sender<u64>,
    /// The Kafka leader epoch; constant on a single node until replication owns it.
    leader_epoch: i32,
    /// Idempotent producers' sequence state, checked and updated under the log's lock.
    producers: ProducerStates,
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
            log: SharedLog::new(log),
            high_watermark,
            leader_epoch: 0,
            producers,
        }))
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// Runs `f` with the log locked, for lookups and admin operations.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> R {
        f(&mut self.log.lock())
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
    pub fn begin_append(self: &Arc<Self>, records: &[u8]) -> Result<(AppendInfo, Commit), ApiError> {
        let mut batches = BytesMut::from(records);
        let appended = {
            let mut log = self.log.lock();
            self.producers
                .append(&mut log, &mut batches, self.leader_epoch, now_ms())?
        };
        if let Some(job) = appended.snapshot {
            let this = Arc::clone(self);
            tokio::task::spawn_blocking(move || this.producers.write_snapshot(job));
        }
        let info = appended.info;
        let this = Arc::clone(self);
        let upto = info.last_offset + 1;
        let handle = tokio::task::spawn_blocking(move || {
            let result = this.log.flush_to(upto, now_ms());
            this.advance_high_watermark(this.log.commit().durable_offset());
            result
        });
        Ok((
            info,
            Commit {
                handle,
                topic: self.topic.clone(),
                index: self.index,
            },
        ))
    }

    /// `begin_append` and, for acks=all, the wait for the commit.
    pub async fn append(self: &Arc<Self>, records: &[u8], acks: i16) -> Result<AppendInfo, ApiError> {
        let (info, commit) = self.begin_append(records)?;
        if acks == -1 {
            commit.wait().await?;
        } else {
            commit.detach();
        }
        Ok(info)
    }

    fn advance_high_watermark(&self, durable: u64) {
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
        self.log.lock().read(offset, max_bytes, hw)
    }

    /// DeleteRecords: moves the log start, never past the high watermark.
    pub fn delete_records(&self, offset: u64) -> Result<u64, StorageError> {
        let hw = self.high_watermark();
        let mut log = self.log.lock();
        if offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: log.log_start_offset(),
                log_end: hw,
            });
        }
        log.set_log_start_offset(offset)?;
        Ok(log.log_start_offset())
    }

    /// Clean shutdown of the log: flush, checkpoint, marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let mut log = self.log.lock();
        log.shutdown(now_ms())?;
        // Lets the next open skip the producer-state replay.
        self.producers.write_snapshot(self.producers.snapshot(&log));
        Ok(())
    }
}

/// The fsync that commits an append (see `Partition::begin_append`).
#[derive(Debug)]
pub struct Commit {
    handle: tokio::task::JoinHandle<Result<(), StorageError>>,
    topic: String,
    index: i32,
}

impl Commit {
    /// Waits until the appended batches are durable and visible.
    pub async fn wait(self) -> Result<(), ApiError> {
        match self.handle.await {
            Ok(result) => Ok(result?),
            Err(join) => Err(StorageError::Offline {
                dir: Default::default(),
                reason: join.to_string(),
            }
            .into()),
        }
    }

    /// Lets the commit finish on its own (acks=0/1); a failure is logged, and the log goes offline.
    pub fn detach(self) {
        let Commit { handle, topic, index } = self;
        tokio::spawn(async move {
            if let Ok(Err(e)) = handle.await {
                tracing::error!(%topic, partition = index, error = %e, "background fsync failed");
            }
        });
    }
}
