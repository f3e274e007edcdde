//! Per-log configuration, with Kafka's topic config names and defaults so that `DescribeConfigs`
//! and `AlterConfigs` can pass names straight through.

use crate::error::{Result, StorageError};

/// `segment.bytes`: roll to a new segment once the active one reaches this size.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// `segment.ms`: roll once the active segment's first batch is this old.
pub const SEGMENT_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// `segment.index.bytes`: the size each index file is preallocated to.
pub const SEGMENT_INDEX_BYTES_DEFAULT: u64 = 10 * 1024 * 1024;
/// `index.interval.bytes`: bytes of log between two index entries.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4096;
/// `retention.ms`: delete segments whose newest record is older than this; -1 keeps forever.
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// `retention.bytes`: delete the oldest segments while the log is larger; -1 means no limit.
pub const RETENTION_BYTES_DEFAULT: i64 = -1;
/// `flush.messages`: fsync after this many records (Kafka's default: leave it to the OS).
pub const FLUSH_MESSAGES_DEFAULT: i64 = i64::MAX;
/// `flush.ms`: fsync when the last fsync is this old (Kafka's default: leave it to the OS).
pub const FLUSH_MS_DEFAULT: i64 = i64::MAX;
/// `max.message.bytes`: the largest record batch a producer may append.
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 1024 * 1024 + 12;

/// `message.timestamp.type`: whether batches keep the producer's timestamps or get the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub max_message_bytes: u32,
    pub message_timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            segment_index_bytes: SEGMENT_INDEX_BYTES_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_ms: RETENTION_MS_DEFAULT,
            retention_bytes: RETENTION_BYTES_DEFAULT,
            flush_messages: FLUSH_MESSAGES_DEFAULT,
            flush_ms: FLUSH_MS_DEFAULT,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            message_timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// The config names this type understands, in the order `DescribeConfigs` lists them.
pub const LOG_CONFIG_NAMES: [&str; 10] = [
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "retention.ms",
    "retention.bytes",
    "flush.messages",
    "flush.ms",
    "max.message.bytes",
    "message.timestamp.type",
];

impl LogConfig {
    /// Sets one config by its Kafka name, with Kafka's validation bounds.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let invalid = |reason: &str| StorageError::InvalidConfig {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let int = |min: i64| -> Result<i64> {
            let v: i64 = value.trim().parse().map_err(|_| invalid("not an integer"))?;
            if v < min {
                return Err(invalid(&format!("must be at least {min}")));
            }
            Ok(v)
        };
        match name {
            "segment.bytes" => self.segment_bytes = int(14)? as u64,
            "segment.ms" => self.segment_ms = int(1)?,
            "segment.index.bytes" => self.segment_index_bytes = int(4)? as u64,
            "index.interval.bytes" => self.index_interval_bytes = int(0)? as u64,
            "retention.ms" => self.retention_ms = int(-1)?,
            "retention.bytes" => self.retention_bytes = int(-1)?,
            "flush.messages" => self.flush_messages = int(1)?,
            "flush.ms" => self.flush_ms = int(0)?,
            "max.message.bytes" => {
                self.max_message_bytes = u32::try_from(int(0)?).map_err(|_| invalid("too large"))?;
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("must be CreateTime or LogAppendTime")),
                }
            }
            _ => return Err(invalid("unknown log config")),
        }
        Ok(())
    }

    /// The current value of a config, as `DescribeConfigs` shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => self.message_timestamp_type.as_str().to_string(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = LogConfig::default();
        assert_eq!(c.get("segment.bytes").as_deref(), Some("1073741824"));
        assert_eq!(c.get("retention.ms").as_deref(), Some("604800000"));
        assert_eq!(c.get("retention.bytes").as_deref(), Some("-1"));
        assert_eq!(c.get("max.message.bytes").as_deref(), Some("1048588"));
        assert_eq!(c.get("flush.messages").as_deref(), Some(i64::MAX.to_string().as_str()));
        assert_eq!(c.get("message.timestamp.type").as_deref(), Some("CreateTime"));
    }

    #[test]
    fn every_name_round_trips() {
        let mut c = LogConfig::default();
        for name in LOG_CONFIG_NAMES {
            let v = c.get(name).expect("listed name has a value");
            c.set(name, &v).expect("its own value is valid");
        }
        assert_eq!(c, LogConfig::default());
        c.set("retention.ms", "1000").unwrap();
        assert_eq!(c.retention_ms, 1000);
    }

    #[test]
    fn bad_values_are_invalid_config() {
        let mut c = LogConfig::default();
        for (name, value) in [
            ("retention.ms", "-2"),
            ("segment.bytes", "abc"),
            ("segment.bytes", "13"),
            ("message.timestamp.type", "Wallclock"),
            ("no.such.config", "1"),
            ("max.message.bytes", "99999999999"),
        ] {
            let err = c.set(name, value).unwrap_err();
            assert_eq!(
                err.kafka_code(),
                crate::error::kafka_code::INVALID_CONFIG,
                "{name}={value}"
            );
        }
        assert_eq!(c, LogConfig::default(), "a refused value changes nothing");
    }
}
