//! Skiff's storage engine: one segmented, checksummed, crash-safe log per partition.
//!
//! The log stores Kafka v2 record batches exactly as producers sent them (only the base offset and
//! leader epoch, which sit outside the CRC, are stamped in place), so a fetch serves the same bytes
//! back. It knows nothing of the network or of replication: the caller supplies the clock, the
//! leader epoch and the high watermark.

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod group_commit;
mod index_file;
mod leader_epoch;
pub mod log;
mod offset_index;
mod retention;
mod segment;
mod time_index;

pub use config::{LogConfig, TimestampType};
pub use error::{Result, StorageError};
pub use group_commit::{GroupCommit, SharedLog};
pub use log::{AppendInfo, Decompress, FlushJob, Log, RecoveryReport};
