//! The records of the cluster metadata log (issue 4: "a Raft group over the controller voters
//! holding cluster metadata"), KRaft-like: every change to brokers, topics, partition
//! assignments and topic configs is one record, and every broker rebuilds the same
//! [`ClusterMetadata`](crate::cluster_metadata::ClusterMetadata) by applying the committed log in
//! order.
//!
//! The controller group is a Raft group like any partition's, so each of its entries is exactly
//! one Kafka v2 record batch (`LogStorage` refuses anything else). A proposal therefore carries
//! its metadata records as the *values* of the records of one uncompressed batch, each value a
//! protobuf [`MetadataRecord`] (prost 0.14; field tags are the compatibility contract: never reuse
//! or renumber one). Batches are built and read with `kafka-protocol`'s record codec. The record
//! set follows KIP-631's (`RegisterBrokerRecord`, `FenceBrokerRecord`, `TopicRecord` +
//! `PartitionRecord`, `RemoveTopicRecord`, `ConfigRecord`, `PartitionChangeRecord`), with a topic
//! and all its partitions in one record so that creation is atomic.
//!
//! One entry of the controller group's log (the partition log of Raft group 0):
//!
//! ```text
//! | Kafka v2 record batch header (61 bytes): baseOffset and partitionLeaderEpoch stamped by |
//! |   the Raft log, attributes 0 (no compression, not transactional), producer id -1       |
//! | record 0: length, attributes, timestampDelta, offsetDelta 0, key null,                |
//! |           value = protobuf MetadataRecord, no headers                                 |
//! | record 1: ... offsetDelta 1 ...                                                        |
//! ```

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record, RecordBatchDecoder,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use prost::Message as _;

/// A topic id: Kafka's 16-byte UUID (all zeroes is reserved for "no id").
pub type TopicId = [u8; 16];
/// A broker id, as in Kafka's `node.id` / `broker.id`.
pub type BrokerId = i32;

/// One entry of the metadata log; exactly one variant is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataRecord {
    #[prost(oneof = "metadata_record::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13")]
    pub kind: Option<metadata_record::Kind>,
}

pub mod metadata_record {
    /// The change a [`MetadataRecord`](super::MetadataRecord) makes.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        RegisterBroker(super::RegisterBroker),
        #[prost(message, tag = "2")]
        FenceBroker(super::FenceBroker),
        #[prost(message, tag = "3")]
        UnfenceBroker(super::UnfenceBroker),
        #[prost(message, tag = "4")]
        CreateTopic(super::CreateTopic),
        #[prost(message, tag = "5")]
        DeleteTopic(super::DeleteTopic),
        #[prost(message, tag = "6")]
        SetTopicConfig(super::SetTopicConfig),
        #[prost(message, tag = "7")]
        DeleteTopicConfig(super::DeleteTopicConfig),
        #[prost(message, tag = "8")]
        ChangePartitionReplicas(super::ChangePartitionReplicas),
        #[prost(message, tag = "9")]
        PartitionLeader(super::PartitionLeader),
        #[prost(message, tag = "10")]
        ElectPreferredLeader(super::ElectPreferredLeader),
        #[prost(message, tag = "11")]
        CreatePartitions(super::CreatePartitions),
        #[prost(message, tag = "12")]
        UnregisterBroker(super::UnregisterBroker),
        #[prost(message, tag = "13")]
        AllocateProducerIds(super::AllocateProducerIds),
    }
}

impl From<metadata_record::Kind> for MetadataRecord {
    fn from(kind: metadata_record::Kind) -> Self {
        Self { kind: Some(kind) }
    }
}

/// A request rather than a state change (Kafka's ElectLeaders, election type PREFERRED): the
/// leader of the partition that applies it hands leadership to the preferred replica (the first
/// of its replicas) if that replica is in sync. Going through the log lets any broker take the
/// request, whichever broker leads the partition.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ElectPreferredLeader {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub partition_index: i32,
}

/// A listener a broker accepts clients on (what Metadata answers for it).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Endpoint {
    /// The listener name, e.g. `PLAINTEXT`.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub host: String,
    #[prost(uint32, tag = "3")]
    pub port: u32,
}

/// A broker (re)joins the cluster (KRaft's `RegisterBrokerRecord`). A new incarnation replaces
/// the previous registration of the same id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterBroker {
    #[prost(int32, tag = "1")]
    pub broker_id: BrokerId,
    /// Kafka's `broker.rack`.
    #[prost(string, optional, tag = "2")]
    pub rack: Option<String>,
    #[prost(message, repeated, tag = "3")]
    pub endpoints: Vec<Endpoint>,
    /// Changes on every process start, so that a stale registration (or fencing of it) from a
    /// previous run is told apart.
    #[prost(uint64, tag = "4")]
    pub incarnation: u64,
    /// A broker registers fenced and is unfenced once it has caught up (as in KRaft).
    #[prost(bool, tag = "5")]
    pub fenced: bool,
    /// Where the broker takes Raft traffic: how the others reach a broker that joined after
    /// the cluster was configured (controller voters are known from their configuration).
    #[prost(message, optional, tag = "6")]
    pub raft_endpoint: Option<Endpoint>,
}

/// A block of producer ids handed to one broker for InitProducerId (KRaft's ProducerIdsRecord):
/// the metadata log is what keeps ids unique across brokers, restarts and lost data dirs.
/// Refused unless `first_id` is exactly where the previous block ended.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AllocateProducerIds {
    #[prost(int32, tag = "1")]
    pub broker_id: BrokerId,
    #[prost(int64, tag = "2")]
    pub first_id: i64,
    #[prost(int64, tag = "3")]
    pub count: i64,
}

/// A decommissioned broker leaves the cluster (Kafka's UnregisterBroker): refused while it
/// still holds replicas.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnregisterBroker {
    #[prost(int32, tag = "1")]
    pub broker_id: BrokerId,
}

/// The broker stopped heartbeating: it gets no new leaderships or replicas.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FenceBroker {
    #[prost(int32, tag = "1")]
    pub broker_id: BrokerId,
    /// The incarnation this applies to; refused for any other.
    #[prost(uint64, tag = "2")]
    pub incarnation: u64,
}

/// The broker is live (caught up and heartbeating).
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnfenceBroker {
    #[prost(int32, tag = "1")]
    pub broker_id: BrokerId,
    #[prost(uint64, tag = "2")]
    pub incarnation: u64,
}

/// One partition of a topic: its replicas (the first is the preferred leader) and the Raft group
/// that replicates it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionAssignment {
    #[prost(int32, tag = "1")]
    pub partition_index: i32,
    #[prost(int32, repeated, tag = "2")]
    pub replicas: Vec<BrokerId>,
    #[prost(uint64, tag = "3")]
    pub raft_group: u64,
}

/// A topic config override (`retention.ms`, `cleanup.policy`, ...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigEntry {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A new topic with all its partitions and configs, applied atomically.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTopic {
    #[prost(string, tag = "1")]
    pub name: String,
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub topic_id: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    pub partitions: Vec<PartitionAssignment>,
    #[prost(message, repeated, tag = "4")]
    pub configs: Vec<ConfigEntry>,
}

/// Partitions added to an existing topic (CreatePartitions), numbered on from its last one,
/// each with a new Raft group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreatePartitions {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub partitions: Vec<PartitionAssignment>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTopic {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SetTopicConfig {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteTopicConfig {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub name: String,
}

/// A partition's replica set changes (reassignment); its Raft group stays the same. Like
/// KRaft's `PartitionChangeRecord`, a reassignment in progress lists every replica that may be
/// in the group (`replicas`: the target first, then the leaving ones) and which of them join
/// (`adding`) and leave (`removing`); it completes with a record of the target alone.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChangePartitionReplicas {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub partition_index: i32,
    #[prost(int32, repeated, tag = "3")]
    pub replicas: Vec<BrokerId>,
    #[prost(int32, repeated, tag = "4")]
    pub adding: Vec<BrokerId>,
    #[prost(int32, repeated, tag = "5")]
    pub removing: Vec<BrokerId>,
    /// Sent by the partition's leader once its Raft configuration is `replicas`: ignored unless
    /// that is still the reassignment's target (a newer reassignment may have replaced it).
    #[prost(bool, tag = "6")]
    pub complete: bool,
}

/// A partition's leader and in-sync replicas as its Raft leader reports them (KRaft's
/// `PartitionChangeRecord`): what lets every broker answer Metadata for partitions it does not
/// host. Reports of an older leader epoch than the applied one are ignored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionLeader {
    #[prost(bytes = "vec", tag = "1")]
    pub topic_id: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub partition_index: i32,
    #[prost(int32, tag = "3")]
    pub leader: BrokerId,
    /// The Raft term of the partition's group.
    #[prost(int32, tag = "4")]
    pub leader_epoch: i32,
    #[prost(int32, repeated, tag = "5")]
    pub isr: Vec<BrokerId>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataCodecError {
    #[error("metadata record batch: {0}")]
    Batch(String),
    #[error("metadata record at offset delta {offset}: {reason}")]
    Record { offset: i64, reason: String },
    #[error("metadata record at offset delta {offset}: {source}")]
    Decode { offset: i64, source: prost::DecodeError },
}

/// One Kafka v2 record batch holding `records` (one Kafka record each, the protobuf as value):
/// the payload of one controller-group proposal. Base offset 0 and no leader epoch: the Raft log
/// stamps both.
pub fn encode_batch(records: &[MetadataRecord], timestamp_ms: i64) -> Result<Vec<u8>, MetadataCodecError> {
    if records.is_empty() {
        return Err(MetadataCodecError::Batch("a batch needs at least one record".into()));
    }
    let records: Vec<Record> = (0i64..)
        .zip(records)
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // The encoder keeps records in one batch while offset - sequence stays constant; a
            // non-idempotent batch has base sequence -1.
            sequence: (i - 1) as i32,
            timestamp: timestamp_ms,
            key: None,
            value: Some(Bytes::from(r.encode_to_vec())),
            headers: Default::default(),
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
    .map_err(|e| MetadataCodecError::Batch(e.to_string()))?;
    Ok(buf.to_vec())
}

/// The metadata records of every batch in `bytes` (as read from the controller group's log), in
/// log order.
pub fn decode_batches(bytes: &[u8]) -> Result<Vec<MetadataRecord>, MetadataCodecError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| MetadataCodecError::Batch(e.to_string()))?;
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            if r.control {
                continue;
            }
            let value = r.value.ok_or_else(|| MetadataCodecError::Record {
                offset: r.offset,
                reason: "no value".into(),
            })?;
            let record = MetadataRecord::decode(value).map_err(|source| MetadataCodecError::Decode {
                offset: r.offset,
                source,
            })?;
            out.push(record);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::metadata_record::Kind;
    use super::*;

    pub(crate) fn samples() -> Vec<MetadataRecord> {
        vec![
            Kind::RegisterBroker(RegisterBroker {
                broker_id: 1,
                rack: Some("r1".into()),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "h1".into(),
                    port: 9092,
                }],
                incarnation: 7,
                fenced: true,
                raft_endpoint: Some(Endpoint {
                    name: "RAFT".into(),
                    host: "h1".into(),
                    port: 9093,
                }),
            })
            .into(),
            Kind::UnregisterBroker(UnregisterBroker { broker_id: 4 }).into(),
            Kind::AllocateProducerIds(AllocateProducerIds {
                broker_id: 2,
                first_id: 1000,
                count: 1000,
            })
            .into(),
            Kind::UnfenceBroker(UnfenceBroker {
                broker_id: 1,
                incarnation: 7,
            })
            .into(),
            Kind::CreateTopic(CreateTopic {
                name: "t".into(),
                topic_id: vec![9; 16],
                partitions: vec![PartitionAssignment {
                    partition_index: 0,
                    replicas: vec![1],
                    raft_group: 1,
                }],
                configs: vec![ConfigEntry {
                    name: "retention.ms".into(),
                    value: "1000".into(),
                }],
            })
            .into(),
            Kind::SetTopicConfig(SetTopicConfig {
                topic_id: vec![9; 16],
                name: "cleanup.policy".into(),
                value: "compact".into(),
            })
            .into(),
            Kind::DeleteTopicConfig(DeleteTopicConfig {
                topic_id: vec![9; 16],
                name: "retention.ms".into(),
            })
            .into(),
            Kind::ChangePartitionReplicas(ChangePartitionReplicas {
                topic_id: vec![9; 16],
                partition_index: 0,
                replicas: vec![1, 2],
                adding: vec![2],
                removing: vec![],
                complete: false,
            })
            .into(),
            Kind::FenceBroker(FenceBroker {
                broker_id: 1,
                incarnation: 7,
            })
            .into(),
            Kind::DeleteTopic(DeleteTopic { topic_id: vec![9; 16] }).into(),
        ]
    }

    #[test]
    fn records_round_trip_through_one_kafka_batch() {
        let records = samples();
        let batch = encode_batch(&records, 1_000).unwrap();
        let header = skiff_storage::batch::validate(&batch).unwrap();
        assert_eq!(header.total_size(), batch.len(), "exactly one batch");
        assert_eq!(header.last_offset_delta as usize, records.len() - 1);
        assert_eq!(decode_batches(&batch).unwrap(), records);
        // Two batches read back to back decode in order.
        let two = [batch.clone(), encode_batch(&records[..1], 2_000).unwrap()].concat();
        let mut expected = records.clone();
        expected.push(records[0].clone());
        assert_eq!(decode_batches(&two).unwrap(), expected);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(encode_batch(&[], 0).is_err());
        let batch = encode_batch(&samples(), 0).unwrap();
        for cut in [0, 10, 61, batch.len() - 1] {
            let _ = decode_batches(&batch[..cut]);
        }
        let mut bad = batch.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let _ = decode_batches(&bad);
        assert!(decode_batches(&[1, 2, 3]).is_err());
    }
}
