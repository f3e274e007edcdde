//! Committed offsets on disk: the internal compacted topic `__consumer_offsets`, written in
//! Kafka's own record schema so that Kafka's tools can read it, and read back on start.
//!
//! A group's records all go to partition `abs(javaHashCode(group_id)) % partitions`, as Kafka
//! places them, so the order within that partition is the order of the group's commits. Every
//! write is one record batch appended with acks=all: it is fsync'd before the commit is
//! acknowledged, exactly as durable as user data.
//!
//! ```text
//! OffsetCommitKey (version 1)          OffsetCommitValue (version 3)
//! +---------+--------------------+     +---------+-----------------------------+
//! | int16   | version = 1        |     | int16   | version = 3                 |
//! | string  | group id           |     | int64   | committed offset            |
//! | string  | topic              |     | int32   | leader epoch (-1: unknown)  |
//! | int32   | partition          |     | string  | metadata                    |
//! +---------+--------------------+     | int64   | commit timestamp (ms)       |
//!                                      +---------+-----------------------------+
//! string = int16 length + UTF-8 bytes. A null value (tombstone) deletes the offset.
//! ```
//! Keys of version 2 are Kafka's group metadata records; we neither write nor need them (members
//! rejoin after a restart), and skip them when reading.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use skiff_protocol::kafka_protocol;
use skiff_storage::StorageError;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::group::CommittedOffset;
use crate::partition::Partition;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `offsets.topic.segment.bytes`
pub const OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT: &str = "104857600";
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// How much of a partition one read takes while loading.
const LOAD_READ_BYTES: usize = 1024 * 1024;
/// Where a batch header keeps its last offset delta.
const LAST_OFFSET_DELTA_AT: usize = 23;
/// Batch header bytes before the records.
const BATCH_HEADER_BYTES: usize = 61;

/// Committed offsets as loaded: group → (topic, partition) → offset.
pub type LoadedOffsets = BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>;

#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    #[error("malformed {OFFSETS_TOPIC} record: {0}")]
    Malformed(String),
    #[error("{0} is too long for a {OFFSETS_TOPIC} record")]
    TooLong(&'static str),
    #[error("reading {OFFSETS_TOPIC}-{partition}: {source}")]
    Storage {
        partition: i32,
        #[source]
        source: StorageError,
    },
    #[error("{OFFSETS_TOPIC}-{partition} at offset {offset}: {reason}")]
    Batch {
        partition: i32,
        offset: u64,
        reason: String,
    },
}

/// The `__consumer_offsets` partition of a group: `Utils.abs(groupId.hashCode()) % partitions`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

fn put_string(buf: &mut BytesMut, s: &str, what: &'static str) -> Result<(), OffsetStoreError> {
    let len = i16::try_from(s.len()).map_err(|_| OffsetStoreError::TooLong(what))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn key(group_id: &str, topic: &str, partition: i32) -> Result<Bytes, OffsetStoreError> {
    let mut buf = BytesMut::with_capacity(10 + group_id.len() + topic.len());
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, group_id, "group id")?;
    put_string(&mut buf, topic, "topic")?;
    buf.put_i32(partition);
    Ok(buf.freeze())
}

/// The key and value recording a commit.
pub fn commit_record(
    group_id: &str,
    topic: &str,
    partition: i32,
    offset: &CommittedOffset,
) -> Result<(Bytes, Option<Bytes>), OffsetStoreError> {
    let mut value = BytesMut::with_capacity(24 + offset.metadata.len());
    value.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    value.put_i64(offset.offset);
    value.put_i32(offset.leader_epoch);
    put_string(&mut value, &offset.metadata, "metadata")?;
    value.put_i64(offset.commit_timestamp);
    Ok((key(group_id, topic, partition)?, Some(value.freeze())))
}

/// The key and null value deleting a commit.
pub fn tombstone_record(
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Result<(Bytes, Option<Bytes>), OffsetStoreError> {
    Ok((key(group_id, topic, partition)?, None))
}

/// A `__consumer_offsets` record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// An offset commit (`None`: a tombstone).
    Offset {
        group_id: String,
        topic: String,
        partition: i32,
        offset: Option<CommittedOffset>,
    },
    /// Group metadata or a record type this broker does not use.
    Other,
}

fn malformed(what: &str) -> OffsetStoreError {
    OffsetStoreError::Malformed(what.to_string())
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, OffsetStoreError> {
    if buf.remaining() < 2 {
        return Err(malformed("truncated int16"));
    }
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, OffsetStoreError> {
    if buf.remaining() < 4 {
        return Err(malformed("truncated int32"));
    }
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, OffsetStoreError> {
    if buf.remaining() < 8 {
        return Err(malformed("truncated int64"));
    }
    Ok(buf.get_i64())
}

fn get_bytes(buf: &mut &[u8], len: usize) -> Result<String, OffsetStoreError> {
    if buf.remaining() < len {
        return Err(malformed("truncated string"));
    }
    let s = String::from_utf8(buf[..len].to_vec()).map_err(|_| malformed("string is not UTF-8"))?;
    buf.advance(len);
    Ok(s)
}

fn get_string(buf: &mut &[u8]) -> Result<String, OffsetStoreError> {
    let len = usize::try_from(get_i16(buf)?).map_err(|_| malformed("null string"))?;
    get_bytes(buf, len)
}

/// A flexible-version string: unsigned varint of length + 1.
fn get_compact_string(buf: &mut &[u8]) -> Result<String, OffsetStoreError> {
    let mut len: u64 = 0;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return Err(malformed("truncated varint"));
        }
        let b = buf.get_u8();
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            let len = usize::try_from(len.checked_sub(1).ok_or_else(|| malformed("null string"))?)
                .map_err(|_| malformed("string too long"))?;
            return get_bytes(buf, len);
        }
    }
    Err(malformed("varint too long"))
}

/// Decodes one record of `__consumer_offsets`, in any version Kafka has written.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Decoded, OffsetStoreError> {
    let mut k = key;
    let version = get_i16(&mut k)?;
    if !matches!(version, 0 | 1) {
        return Ok(Decoded::Other);
    }
    let group_id = get_string(&mut k)?;
    let topic = get_string(&mut k)?;
    let partition = get_i32(&mut k)?;
    let offset = match value {
        None => None,
        Some(mut v) => {
            let version = get_i16(&mut v)?;
            let offset = get_i64(&mut v)?;
            let (leader_epoch, metadata) = match version {
                0..=2 => (-1, get_string(&mut v)?),
                3 => (get_i32(&mut v)?, get_string(&mut v)?),
                4 => (get_i32(&mut v)?, get_compact_string(&mut v)?),
                v => return Err(OffsetStoreError::Malformed(format!("unknown value version {v}"))),
            };
            let commit_timestamp = get_i64(&mut v)?;
            Some(CommittedOffset {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp,
            })
        }
    };
    Ok(Decoded::Offset {
        group_id,
        topic,
        partition,
        offset,
    })
}

/// One uncompressed, non-idempotent record batch of `records`.
pub fn batch(records: &[(Bytes, Option<Bytes>)], timestamp: i64) -> Result<BytesMut, ApiError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder keeps records in one batch while offset - sequence stays constant;
                // a non-idempotent batch has base sequence -1.
                sequence: i - 1,
                timestamp,
                key: Some(key.clone()),
                value: value.clone(),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
    Ok(buf)
}

/// The error an OffsetCommit gets for a failed append (Kafka's mapping in the coordinator).
fn commit_error(e: &ApiError) -> ResponseError {
    match e.code {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => ResponseError::NotCoordinator,
        ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge | ResponseError::InvalidFetchSize => {
            ResponseError::InvalidCommitOffsetSize
        }
        _ => ResponseError::UnknownServerError,
    }
}

/// The `__consumer_offsets` topic, created on first use (blocking: in a cluster the controller
/// must apply it).
pub fn offsets_topic(broker: &Broker) -> Result<crate::topics::Topic, ResponseError> {
    if let Some(t) = broker.topic(OFFSETS_TOPIC) {
        return Ok(t);
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("compression.type".to_string(), "producer".to_string()),
        (
            "segment.bytes".to_string(),
            OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT.to_string(),
        ),
        // Until compaction runs, time-based retention would delete live offsets.
        ("retention.ms".to_string(), "-1".to_string()),
    ]);
    match broker.create_topic(OFFSETS_TOPIC, broker.config.offsets_topic_num_partitions, configs, true) {
        Ok(t) => Ok(t),
        // Someone else created it meanwhile.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => broker
            .topic(OFFSETS_TOPIC)
            .ok_or(ResponseError::CoordinatorNotAvailable),
        Err(e) => {
            tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// The `__consumer_offsets` partition of a group, creating the topic on first use.
async fn group_partition(broker: &Arc<Broker>, group_id: &str) -> Result<Arc<Partition>, ResponseError> {
    let topic = match broker.topic(OFFSETS_TOPIC) {
        Some(t) => t,
        None => {
            let b = Arc::clone(broker);
            tokio::task::spawn_blocking(move || offsets_topic(&b))
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable)??
        }
    };
    broker
        .partition(OFFSETS_TOPIC, partition_for(group_id, topic.partitions))
        .ok_or(ResponseError::NotCoordinator)
}

/// Appends a group's records as one batch and waits until it is fsync'd.
pub async fn append(
    broker: &Arc<Broker>,
    group_id: &str,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), ResponseError> {
    let partition = group_partition(broker, group_id).await?;
    let batch = batch(&records, now_ms()).map_err(|e| commit_error(&e))?;
    partition.append(&batch, -1).await.map(|_| ()).map_err(|e| {
        tracing::warn!(group = group_id, error = %e, "offset write failed");
        commit_error(&e)
    })
}

/// Reads every partition of `__consumer_offsets` from its start to its high watermark and
/// rebuilds the latest committed offset of every (group, topic, partition), honouring tombstones.
pub fn load(broker: &Broker) -> Result<LoadedOffsets, OffsetStoreError> {
    let mut offsets = LoadedOffsets::new();
    let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
        return Ok(offsets);
    };
    for index in 0..topic.partitions {
        if let Some(partition) = broker.partition(OFFSETS_TOPIC, index) {
            load_partition(&partition, &mut offsets)?;
        }
    }
    offsets.retain(|_, o| !o.is_empty());
    Ok(offsets)
}

/// The committed offsets of the groups one partition holds (a new coordinator's load).
pub fn load_one(partition: &Partition) -> Result<LoadedOffsets, OffsetStoreError> {
    let mut offsets = LoadedOffsets::new();
    load_partition(partition, &mut offsets)?;
    Ok(offsets)
}

fn load_partition(partition: &Partition, offsets: &mut LoadedOffsets) -> Result<(), OffsetStoreError> {
    let index = partition.index;
    let storage = |source| OffsetStoreError::Storage {
        partition: index,
        source,
    };
    let end = partition.high_watermark();
    let mut next = partition.with_log(|log| log.log_start_offset());
    while next < end {
        let mut data = partition.read(next, LOAD_READ_BYTES).map_err(storage)?;
        if data.is_empty() {
            tracing::warn!(
                partition = index,
                offset = next,
                end,
                "nothing readable below the high watermark"
            );
            break;
        }
        if data.len() < BATCH_HEADER_BYTES {
            return Err(OffsetStoreError::Batch {
                partition: index,
                offset: next,
                reason: format!("{} bytes below the high watermark {end} are not a batch", data.len()),
            });
        }
        while data.len() >= BATCH_HEADER_BYTES {
            let bad = |reason: String| OffsetStoreError::Batch {
                partition: index,
                offset: next,
                reason,
            };
            let base = i64::from_be_bytes(data[0..8].try_into().map_err(|_| bad("short header".into()))?);
            let length = i32::from_be_bytes(data[8..12].try_into().map_err(|_| bad("short header".into()))?);
            let delta = i32::from_be_bytes(
                data[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                    .try_into()
                    .map_err(|_| bad("short header".into()))?,
            );
            let size = usize::try_from(length).map_err(|_| bad(format!("negative batch length {length}")))? + 12;
            if size > data.len() {
                return Err(bad("batch runs past the data read".into()));
            }
            let mut raw = data.split_to(size);
            let set = RecordBatchDecoder::decode(&mut raw).map_err(|e| bad(e.to_string()))?;
            for record in set.records.iter().filter(|r| !r.control) {
                let Some(key) = &record.key else {
                    continue;
                };
                match decode(key, record.value.as_deref()) {
                    Ok(Decoded::Offset {
                        group_id,
                        topic,
                        partition,
                        offset: Some(o),
                    }) => {
                        offsets.entry(group_id).or_default().insert((topic, partition), o);
                    }
                    Ok(Decoded::Offset {
                        group_id,
                        topic,
                        partition,
                        offset: None,
                    }) => {
                        if let Some(group) = offsets.get_mut(&group_id) {
                            group.remove(&(topic, partition));
                        }
                    }
                    Ok(Decoded::Other) => {}
                    Err(e) => {
                        tracing::warn!(partition = index, offset = record.offset, error = %e, "skipping an unreadable {OFFSETS_TOPIC} record");
                    }
                }
            }
            let after = base.saturating_add(i64::from(delta)).saturating_add(1);
            let after = u64::try_from(after).map_err(|_| bad(format!("batch ends at offset {after}")))?;
            if after <= next {
                return Err(bad(format!("batch ending at {after} does not move past {next}")));
            }
            next = after;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn committed(offset: i64, metadata: &str) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 3,
            metadata: metadata.into(),
            commit_timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn partitions_follow_javas_string_hash_code() {
        assert_eq!(partition_for("", 50), 0);
        // Java: "a".hashCode() == 97, "ab".hashCode() == 97 * 31 + 98 == 3105.
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("ab", 50), 3105 % 50);
        // Java: "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Java: "hello world".hashCode() == 1794106052; "Aa" and "BB" collide (2112).
        assert_eq!(partition_for("hello world", 50), 1_794_106_052 % 50);
        assert_eq!(partition_for("Aa", 50), partition_for("BB", 50));
        // Negative hashes are made positive; non-ASCII ids hash by UTF-16 code units.
        let id = "grüppe-😀";
        let h = id
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        assert_eq!(partition_for(id, 7), h.wrapping_abs() % 7);
    }

    #[test]
    fn records_round_trip_in_kafkas_schema() {
        let (k, v) = commit_record("g", "clicks", 4, &committed(42, "meta")).unwrap();
        assert_eq!(&k[..], b"\x00\x01\x00\x01g\x00\x06clicks\x00\x00\x00\x04");
        let v = v.unwrap();
        assert_eq!(&v[..2], b"\x00\x03");
        assert_eq!(
            decode(&k, Some(&v)).unwrap(),
            Decoded::Offset {
                group_id: "g".into(),
                topic: "clicks".into(),
                partition: 4,
                offset: Some(committed(42, "meta")),
            }
        );
        let (tk, tv) = tombstone_record("g", "clicks", 4).unwrap();
        assert_eq!((tk.clone(), tv), (k, None));
        assert!(matches!(
            decode(&tk, None).unwrap(),
            Decoded::Offset { offset: None, .. }
        ));
        // Group metadata (key version 2) is not ours to read.
        assert_eq!(decode(b"\x00\x02\x00\x01g", Some(b"junk")).unwrap(), Decoded::Other);
        assert!(decode(b"\x00\x01\x00\x09g", None).is_err());
        assert!(commit_record("g", "t", 0, &committed(1, &"x".repeat(40_000))).is_err());
    }

    #[test]
    fn older_value_versions_decode() {
        let (k, _) = commit_record("g", "t", 0, &committed(1, "")).unwrap();
        // Version 1: offset, metadata, commit timestamp, expire timestamp.
        let mut v1 = BytesMut::new();
        v1.put_i16(1);
        v1.put_i64(9);
        v1.put_i16(2);
        v1.put_slice(b"md");
        v1.put_i64(5);
        v1.put_i64(6);
        let Decoded::Offset { offset: Some(o), .. } = decode(&k, Some(&v1)).unwrap() else {
            panic!("not an offset")
        };
        assert_eq!(
            (o.offset, o.leader_epoch, o.metadata.as_str(), o.commit_timestamp),
            (9, -1, "md", 5)
        );
        // Version 4 (flexible): compact string, then tagged fields.
        let mut v4 = BytesMut::new();
        v4.put_i16(4);
        v4.put_i64(11);
        v4.put_i32(2);
        v4.put_u8(3);
        v4.put_slice(b"hi");
        v4.put_i64(7);
        v4.put_u8(0);
        let Decoded::Offset { offset: Some(o), .. } = decode(&k, Some(&v4)).unwrap() else {
            panic!("not an offset")
        };
        assert_eq!((o.offset, o.leader_epoch, o.metadata.as_str()), (11, 2, "hi"));
    }

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = BrokerConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
        config.offsets_topic_num_partitions = 3;
        Broker::open(config).unwrap()
    }

    #[tokio::test]
    async fn commits_and_tombstones_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = broker(dir.path());
            let write = |group: &'static str, records: Vec<(Bytes, Option<Bytes>)>| {
                let b = Arc::clone(&b);
                async move { append(&b, group, records).await.unwrap() }
            };
            write(
                "g1",
                vec![
                    commit_record("g1", "t", 0, &committed(10, "")).unwrap(),
                    commit_record("g1", "t", 1, &committed(20, "x")).unwrap(),
                ],
            )
            .await;
            write("g1", vec![commit_record("g1", "t", 0, &committed(15, "")).unwrap()]).await;
            write("g1", vec![tombstone_record("g1", "t", 1).unwrap()]).await;
            for i in 0..20 {
                let g: &'static str = Box::leak(format!("group-{i}").into_boxed_str());
                write(g, vec![commit_record(g, "u", i, &committed(i64::from(i), "")).unwrap()]).await;
            }
            let topic = b.topic(OFFSETS_TOPIC).unwrap();
            assert!(topic.internal);
            assert_eq!(topic.partitions, 3);
            assert_eq!(topic.configs.get("cleanup.policy").map(String::as_str), Some("compact"));
            b.shutdown();
        }
        let b = broker(dir.path());
        let loaded = load(&b).unwrap();
        assert_eq!(loaded.len(), 21);
        assert_eq!(
            loaded["g1"],
            BTreeMap::from([(("t".to_string(), 0), committed(15, ""))]),
            "the latest commit wins and the tombstone deleted partition 1"
        );
        assert_eq!(loaded["group-7"][&("u".to_string(), 7)].offset, 7);

        // And through the coordinator: offsets come back on first use.
        let coordinator = crate::group_coordinator::GroupCoordinator::new(Default::default());
        coordinator.ensure_loaded(&b).await.unwrap();
        let fetched = coordinator.fetch_offsets("g1", None);
        assert_eq!(fetched, vec![("t".to_string(), 0, Some(committed(15, "")))]);
    }

    #[tokio::test]
    async fn the_coordinator_commits_deletes_and_reloads() {
        use crate::group_coordinator::{Committer, GroupCoordinator, OffsetCommit};
        let dir = tempfile::tempdir().unwrap();
        let simple = Committer {
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            group_id_not_found_error: false,
        };
        let commit = |t: &str, p, o| OffsetCommit {
            topic: t.into(),
            partition: p,
            offset: committed(o, ""),
        };
        {
            let b = broker(dir.path());
            let c = GroupCoordinator::new(Default::default());
            c.ensure_loaded(&b).await.unwrap();
            c.commit_offsets(&b, "g", simple.clone(), vec![commit("t", 0, 5), commit("t", 1, 6)])
                .await
                .unwrap();
            c.commit_offsets(&b, "h", simple.clone(), vec![commit("t", 0, 1)])
                .await
                .unwrap();
            let deleted = c
                .delete_offsets(&b, "g", vec![("t".into(), 1), ("t".into(), 9)])
                .await
                .unwrap();
            assert_eq!(deleted.iter().filter(|(_, _, e)| e.is_none()).count(), 2);
            c.delete_group(&b, "h").await.unwrap();
            assert_eq!(c.delete_group(&b, "h").await, Err(ResponseError::GroupIdNotFound));
            let not_member = Committer {
                generation_id: 3,
                member_id: "m".into(),
                ..simple.clone()
            };
            assert_eq!(
                c.commit_offsets(&b, "nope", not_member, vec![commit("t", 0, 1)]).await,
                Err(ResponseError::IllegalGeneration)
            );
            b.shutdown();
        }
        let b = broker(dir.path());
        let c = GroupCoordinator::new(Default::default());
        c.ensure_loaded(&b).await.unwrap();
        assert_eq!(
            c.fetch_offsets("g", None),
            vec![("t".to_string(), 0, Some(committed(5, "")))]
        );
        assert!(c.fetch_offsets("h", None).is_empty());
        let ids: Vec<String> = c.list_groups().into_iter().map(|g| g.group_id).collect();
        assert_eq!(ids, vec!["g".to_string()]);
    }
}
