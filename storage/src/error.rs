//! The storage crate's one error type. Each variant knows the Kafka error code a broker should send
//! back, so handlers never have to guess how a storage failure looks on the wire.

use std::io;
use std::path::PathBuf;

/// Kafka error codes that storage failures map to (from the Kafka protocol guide).
pub mod kafka_code {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_CONFIG: i16 = 40;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const INVALID_RECORD: i16 = 87;
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A batch failed its structural checks or its CRC32C.
    #[error("corrupt record batch: {reason}")]
    CorruptBatch { reason: String },

    /// A batch that a producer sent is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes ({max})")]
    BatchTooLarge { size: usize, max: u32 },

    /// Only v2 (magic 2) record batches are stored; Kafka refuses older ones on Produce v3+.
    #[error("record batch has magic {0}; only magic 2 batches are supported")]
    UnsupportedMagic(i8),

    /// A batch whose header contradicts itself in a way Kafka's validator refuses.
    #[error("invalid record batch: {reason}")]
    InvalidBatch { reason: String },

    /// A replicated batch that does not continue the log densely.
    #[error("batch base offset {got} does not continue the log at {expected}")]
    NonContiguousOffset { expected: u64, got: u64 },

    #[error("offset {offset} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange { offset: u64, log_start: u64, log_end: u64 },

    #[error("invalid value {value:?} for {name}: {reason}")]
    InvalidConfig {
        name: String,
        value: String,
        reason: String,
    },

    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// After a failed fsync the page cache can no longer be trusted (the "fsyncgate" lesson), so the
    /// log refuses further work until it is reopened and recovered.
    #[error("log {dir} is offline after an I/O failure: {reason}")]
    Offline { dir: PathBuf, reason: String },
}

impl StorageError {
    /// The Kafka error code a broker answers with for this failure.
    pub fn kafka_code(&self) -> i16 {
        match self {
            StorageError::CorruptBatch { .. } => kafka_code::CORRUPT_MESSAGE,
            StorageError::BatchTooLarge { .. } => kafka_code::MESSAGE_TOO_LARGE,
            StorageError::UnsupportedMagic(_)
            | StorageError::InvalidBatch { .. }
            | StorageError::NonContiguousOffset { .. } => kafka_code::INVALID_RECORD,
            StorageError::OffsetOutOfRange { .. } => kafka_code::OFFSET_OUT_OF_RANGE,
            StorageError::InvalidConfig { .. } => kafka_code::INVALID_CONFIG,
            StorageError::Io { .. } | StorageError::Offline { .. } => kafka_code::KAFKA_STORAGE_ERROR,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        StorageError::CorruptBatch { reason: reason.into() }
    }
}

/// Attaches what was being done, and to which file, to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn io_context(self, context: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context(self, context: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            context,
            path: path.to_path_buf(),
            source,
        })
    }
}
