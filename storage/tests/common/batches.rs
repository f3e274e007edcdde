//! Record batches built with the `kafka-protocol` crate's encoder, byte for byte what a client sends.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One batch of `records` records with `value_len`-byte values and timestamps `timestamp + i`.
pub fn build(records: usize, value_len: usize, timestamp: i64, compression: Compression) -> BytesMut {
    build_from(records, timestamp, compression, |i| {
        vec![b'a' + (i % 26) as u8; value_len]
    })
}

/// One batch whose record `i` has the value `value(i)` (so tests can tell records apart).
pub fn build_from(
    records: usize,
    timestamp: i64,
    compression: Compression,
    value: impl Fn(usize) -> Vec<u8>,
) -> BytesMut {
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays constant;
            // a non-idempotent batch has base sequence -1.
            sequence: i as i32 - 1,
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(format!("user-{i}"))),
            value: Some(Bytes::from(value(i))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding a batch in memory cannot fail");
    buf
}

/// `(offset, timestamp)` of every record of a (compressed) batch, decoded as a client would: what
/// `Log::offset_for_timestamp` needs to open compressed batches.
pub fn decompress(batch: &[u8]) -> Option<Vec<(u64, i64)>> {
    let set = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch)).ok()?;
    Some(set.records.iter().map(|r| (r.offset as u64, r.timestamp)).collect())
}
