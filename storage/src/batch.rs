//! Kafka v2 record batches as they sit on disk: header parsing, validation and the in-place stamps
//! the leader applies. A batch is kept as the client's bytes; only the two fields outside the CRC
//! (base offset, leader epoch) are ever rewritten, except for `LogAppendTime`, which rewrites the
//! max timestamp and so recomputes the CRC, as Kafka does.
//!
//! ```text
//! offset  size  field                    covered by CRC32C
//!      0     8  baseOffset       i64     no   (stamped by the leader)
//!      8     4  batchLength      i32     no   (bytes after this field)
//!     12     4  partitionLeaderEpoch i32 no   (stamped by the leader)
//!     16     1  magic            i8 = 2  no
//!     17     4  crc              u32     no   (CRC32C of bytes 21..end)
//!     21     2  attributes       i16     yes  (bits 0-2 compression, 3 timestamp type,
//!                                              4 transactional, 5 control)
//!     23     4  lastOffsetDelta  i32     yes
//!     27     8  baseTimestamp    i64     yes
//!     35     8  maxTimestamp     i64     yes
//!     43     8  producerId       i64     yes
//!     51     2  producerEpoch    i16     yes
//!     53     4  baseSequence     i32     yes
//!     57     4  recordCount      i32     yes
//!     61     …  records                  yes
//! ```
//! All integers are big-endian.

use crate::error::{Result, StorageError};

/// Bytes before `batchLength`'s payload starts: base offset + length.
pub const LOG_OVERHEAD: usize = 12;
/// The fixed header of a v2 batch.
pub const HEADER_SIZE: usize = 61;
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_AT: usize = 0;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the fixed header; `buf` must hold at least `HEADER_SIZE` bytes.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < HEADER_SIZE {
            return Err(StorageError::corrupt(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length: be_i32(buf, LENGTH_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            record_count: be_i32(buf, RECORD_COUNT_AT),
        })
    }

    /// Whole size of the batch including the offset and length fields.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Structural checks that need only the header: magic, a sane length, sane counts.
    pub fn check_structure(&self) -> Result<()> {
        if self.magic != MAGIC_V2 {
            return Err(StorageError::UnsupportedMagic(self.magic));
        }
        if (self.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(StorageError::corrupt(format!(
                "batch length {} is below the header size",
                self.batch_length
            )));
        }
        if self.last_offset_delta < 0 || self.record_count < 0 {
            return Err(StorageError::corrupt(format!(
                "negative lastOffsetDelta {} or recordCount {}",
                self.last_offset_delta, self.record_count
            )));
        }
        if i64::from(self.record_count) > i64::from(self.last_offset_delta) + 1 {
            return Err(StorageError::corrupt(format!(
                "recordCount {} exceeds lastOffsetDelta {} + 1",
                self.record_count, self.last_offset_delta
            )));
        }
        Ok(())
    }
}

/// CRC32C (Castagnoli) over the part of a whole batch that the CRC covers.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Checks one whole batch (exactly one, `batch.len()` bytes): header structure, length, CRC.
pub fn validate(batch: &[u8]) -> Result<BatchHeader> {
    let header = BatchHeader::parse(batch)?;
    header.check_structure()?;
    if header.total_size() != batch.len() {
        return Err(StorageError::corrupt(format!(
            "batch length says {} bytes but {} are present",
            header.total_size(),
            batch.len()
        )));
    }
    let crc = compute_crc(batch);
    if crc != header.crc {
        return Err(StorageError::corrupt(format!(
            "CRC32C mismatch at base offset {}: stored {:#010x}, computed {crc:#010x}",
            header.base_offset, header.crc
        )));
    }
    Ok(header)
}

pub fn set_base_offset(batch: &mut [u8], offset: u64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&(offset as i64).to_be_bytes());
}

pub fn set_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as `LogAppendTime` with the broker's clock and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Splits a buffer of concatenated batches into `(start, header)` pairs, validating each one.
/// Fails on the first bad batch or on trailing bytes that do not form a whole batch.
pub fn split_batches(buf: &[u8]) -> Result<Vec<(usize, BatchHeader)>> {
    let mut out = Vec::with_capacity(1);
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < HEADER_SIZE {
            return Err(StorageError::corrupt(format!(
                "{} trailing bytes do not form a batch",
                rest.len()
            )));
        }
        let header = BatchHeader::parse(rest)?;
        header.check_structure()?;
        let size = header.total_size();
        if size > rest.len() {
            return Err(StorageError::corrupt(format!(
                "batch of {size} bytes is cut off after {}",
                rest.len()
            )));
        }
        validate(&rest[..size])?;
        out.push((at, header));
        at += size;
    }
    if out.is_empty() {
        return Err(StorageError::corrupt("no record batch in the request"));
    }
    Ok(out)
}

/// Reads a zigzag varint (Kafka's record encoding) and returns it with the bytes it took.
fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((decoded, i + 1));
        }
    }
    None
}

/// `(offset delta, timestamp)` of each record of an uncompressed batch, or `None` for a compressed
/// or malformed one. Used for the record-precise answers of ListOffsets by timestamp.
pub fn record_timestamps(batch: &[u8], header: &BatchHeader) -> Option<Vec<(i32, i64)>> {
    if header.compression() != 0 || batch.len() < HEADER_SIZE {
        return None;
    }
    // The count is the client's word; every record takes at least a few bytes, so the batch's
    // length bounds what is worth reserving.
    let mut out = Vec::with_capacity((header.record_count.max(0) as usize).min(batch.len() - HEADER_SIZE));
    let mut rest = &batch[HEADER_SIZE..];
    for _ in 0..header.record_count {
        let (len, n) = read_varlong(rest)?;
        let body = rest.get(n..n + usize::try_from(len).ok()?)?;
        // attributes (1 byte), then timestampDelta and offsetDelta as varints.
        let (ts_delta, m) = read_varlong(body.get(1..)?)?;
        let (offset_delta, _) = read_varlong(body.get(1 + m..)?)?;
        let ts = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp + ts_delta
        };
        out.push((i32::try_from(offset_delta).ok()?, ts));
        rest = &rest[n + len as usize..];
    }
    Some(out)
}

#[cfg(test)]
#[path = "../tests/common/batches.rs"]
pub(crate) mod test_batches;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    #[test]
    fn header_layout_matches_the_kafka_encoder() {
        let b = test_batches::build(3, 10, 1_000, Compression::None);
        let h = validate(&b).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.compression(), 0);
    }

    #[test]
    fn stamping_offset_and_epoch_keeps_the_crc_valid() {
        let mut b = test_batches::build(2, 10, 5, Compression::None);
        set_base_offset(&mut b, 1234);
        set_leader_epoch(&mut b, 7);
        let h = validate(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.last_offset()),
            (1234, 7, 1235)
        );
    }

    #[test]
    fn log_append_time_rewrites_timestamp_and_crc() {
        let mut b = test_batches::build(2, 10, 5, Compression::None);
        set_log_append_time(&mut b, 99_999);
        let h = validate(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(record_timestamps(&b, &h).unwrap(), vec![(0, 99_999), (1, 99_999)]);
    }

    #[test]
    fn any_flipped_covered_byte_fails_the_crc() {
        let b = test_batches::build(2, 10, 5, Compression::None);
        for i in ATTRIBUTES_AT..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(validate(&c).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn structural_errors_are_typed() {
        let mut b = test_batches::build(1, 10, 5, Compression::None);
        b[MAGIC_AT] = 1;
        assert!(matches!(validate(&b), Err(StorageError::UnsupportedMagic(1))));
        assert!(validate(&b[..30]).is_err());
        let good = test_batches::build(1, 10, 5, Compression::None);
        assert!(split_batches(&good[..good.len() - 1]).is_err());
        assert!(split_batches(&[]).is_err());
        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert_eq!(split_batches(&two).unwrap().len(), 2);
    }

    #[test]
    fn record_timestamps_of_plain_and_compressed_batches() {
        let b = test_batches::build(4, 10, 100, Compression::None);
        let h = validate(&b).unwrap();
        assert_eq!(
            record_timestamps(&b, &h).unwrap(),
            vec![(0, 100), (1, 101), (2, 102), (3, 103)]
        );
        let z = test_batches::build(4, 10, 100, Compression::Gzip);
        let hz = validate(&z).unwrap();
        assert_eq!(hz.compression(), 1);
        assert!(record_timestamps(&z, &hz).is_none());
    }
}
