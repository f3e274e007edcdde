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
        // Everything recovery kept has been fsync'd, so all of it is committed.
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            log: SharedLog::new(log),
            high_watermark,
            leader_epoch: 0,
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

    /// Appends a producer's batches. With `acks=all` it returns once they are fsync'd (and so
    /// visible); otherwise right after the append, while the fsync proceeds in the background.
    pub async fn append(self: &Arc<Self>, records: &[u8], acks: i16) -> Result<AppendInfo, StorageError> {
        let mut batches = BytesMut::from(records);
        let info = self.log.lock().append(&mut batches, self.leader_epoch, now_ms())?;
        let this = Arc::clone(self);
        let upto = info.last_offset + 1;
        let commit = tokio::task::spawn_blocking(move || {
            let result = this.log.flush_to(upto, now_ms());
            this.advance_high_watermark(this.log.commit().durable_offset());
            result
        });
        if acks == -1 {
            match commit.await {
                Ok(result) => result?,
                Err(join) => {
                    return Err(StorageError::Offline {
                        dir: Default::default(),
                        reason: join.to_string(),
                    });
                }
            }
        } else {
            let (topic, index) = (self.topic.clone(), self.index);
            tokio::spawn(async move {
                if let Ok(Err(e)) = commit.await {
                    tracing::error!(%topic, partition = index, error = %e, "background fsync failed");
                }
            });
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
        self.log.lock().shutdown(now_ms())
    }
}
