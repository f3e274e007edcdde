//! Moving the start of a replicated partition's log: DeleteRecords and retention. The partition
//! log is the Raft log, so its start moves with a Raft snapshot (`LogStorage::advance_log_start`).
//! DeleteRecords is a command in the partition's Raft log, applied by every replica at the same
//! point, so that deleted records never come back with the next leader; retention runs on every
//! replica on its own, as in Kafka. A replica left behind the leader's log start is sent a
//! snapshot and starts its log over there.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use skiff_replication::log_command::LogCommand;
use skiff_storage::StorageError;

use super::{ADMIN_TIMEOUT, Cluster, lock, not_leader};
use crate::error::ApiError;
use crate::partition::{Partition, Replica};

/// How often a DeleteRecords request looks whether its command was applied.
const APPLIED_POLL: Duration = Duration::from_millis(10);

impl Cluster {
    /// DeleteRecords on the leader: proposes the command and waits until this replica applied
    /// it; returns the log start (the low watermark).
    pub fn delete_records(&self, partition: &Partition, replica: &Replica, offset: u64) -> Result<u64, ApiError> {
        let log_start = || replica.store.with_log(|log| log.log_start_offset());
        let hw = partition.high_watermark();
        if offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: log_start(),
                log_end: hw,
            }
            .into());
        }
        if offset <= log_start() {
            return Ok(log_start());
        }
        lock(&self.driver)
            .propose_command(replica.group, LogCommand::DeleteRecords { before: offset })
            .map_err(|e| not_leader(e.to_string()))?;
        self.wake.notify_one();
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        let wait = || loop {
            let start = log_start();
            if start >= offset {
                return Ok(start);
            }
            if Instant::now() >= deadline {
                return Err(ApiError::new(
                    ResponseError::RequestTimedOut,
                    format!(
                        "{}-{}: the deletion was not committed in time",
                        partition.topic, partition.index
                    ),
                ));
            }
            std::thread::sleep(APPLIED_POLL);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(wait),
            Err(_) => wait(),
        }
    }

    /// `retention.ms` / `retention.bytes` on this replica: the whole segments retention would
    /// delete go with a snapshot, never past what this replica applied.
    pub fn enforce_retention(&self, replica: &Replica, now_ms: i64) -> Result<(), ApiError> {
        let cutoff = replica.store.with_log(|log| log.retention_cutoff(now_ms))?;
        let Some((_, first_kept)) = cutoff else {
            return Ok(());
        };
        lock(&self.driver)
            .advance_log_start(replica.group, first_kept)
            .map(drop)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))
    }
}
