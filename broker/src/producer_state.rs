//! The idempotent producer's state in one partition (KIP-98, KIP-360): for every producer id that
//! wrote here, its epoch and the sequence numbers and offsets of its last five batches. The leader
//! checks every idempotent batch against it, under the log's lock, before appending: a retry of
//! one of those five batches is not written again but answered with the offsets it got the first
//! time, a gap or a reordering is refused with `OUT_OF_ORDER_SEQUENCE_NUMBER`, and a zombie with an
//! older epoch gets `INVALID_PRODUCER_EPOCH`. This is what turns the producer's retries
//! (at-least-once) into exactly-once delivery to the log.
//!
//! The state is derived from the log (every batch header carries producer id, epoch and base
//! sequence), so it survives restarts by replaying batch headers on open. To keep that replay
//! short, a snapshot of the table is written at clean shutdown, after a replay, and about once per
//! `segment.bytes` appended; open loads the newest snapshot that lies within the log and replays
//! only what follows it. A missing, corrupt or out-of-range snapshot just means a longer replay.
//!
//! Snapshot file `<offset, 20 digits>.snapshot` in the partition directory (as Kafka names them),
//! written with `skiff_storage::checkpoint` (CRC32, atomic rename). Payload, big-endian:
//! ```text
//! offset  size  field
//!      0     8  covered offset u64: the table reflects every batch below this offset
//!      8     4  producer count u32
//!     12     …  producers, each:
//!                 0  8  producer id i64
//!                 8  2  producer epoch i16 (every cached batch has this epoch)
//!                10  8  last timestamp i64
//!                18  1  batch count u8 (at most 5), then the batches oldest first, each:
//!                      0  4  first sequence i32
//!                      4  4  last sequence i32
//!                      8  8  first offset u64
//!                     16  8  last offset u64
//!                     24  8  timestamp i64
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use skiff_storage::batch::{BatchHeader, HEADER_SIZE};
use skiff_storage::{AppendInfo, Log, StorageError, TimestampType, checkpoint};

use crate::error::ApiError;

/// `producer.id.expiration.ms`: a producer id idle this long is forgotten.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// `producer.id.expiration.check.interval.ms`: how often appends look for expired producer ids.
pub const PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT: i64 = 10 * 60 * 1000;
/// Batches remembered per producer (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`): an
/// idempotent producer has at most 5 requests in flight per partition, so any retry it sends is
/// one of its last 5 batches.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Snapshots kept on disk; the older one is a fallback if the newest turns out corrupt.
const SNAPSHOTS_RETAINED: usize = 2;
/// How much log one read takes during replay.
const REPLAY_CHUNK_BYTES: usize = 1024 * 1024;
const SNAPSHOT_HEADER: usize = 12;
const PRODUCER_RECORD: usize = 19;
const BATCH_RECORD: usize = 32;

/// One of a producer's recent batches, as it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: u64,
    pub last_offset: u64,
    /// The batch's max timestamp (the broker's clock under `LogAppendTime`).
    pub timestamp: i64,
}

/// What a partition knows about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    /// The newest epoch seen; every cached batch was written with it (a new epoch clears them).
    pub epoch: i16,
    /// Oldest first, at most `NUM_BATCHES_TO_RETAIN`.
    pub batches: VecDeque<BatchMetadata>,
    /// Timestamp of the newest batch; expiration counts from it, as Kafka's does.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn new(producer_id: i64, epoch: i16) -> Self {
        ProducerEntry {
            producer_id,
            epoch,
            batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
            last_timestamp: -1,
        }
    }

    /// The last sequence written with the current epoch, -1 if none.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    fn push(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        self.batches.push_back(batch);
        while self.batches.len() > NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.last_timestamp = batch.timestamp;
    }
}

/// The producer fields of one idempotent batch about to be appended (or being replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    /// Offsets the batch takes: `lastOffsetDelta + 1`.
    pub offset_count: u64,
    pub max_timestamp: i64,
}

impl ProducerBatch {
    /// `None` for a batch without a producer id (a non-idempotent producer).
    pub fn from_header(h: &BatchHeader) -> Option<Self> {
        (h.producer_id >= 0).then(|| ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: increment_sequence(h.base_sequence, h.last_offset_delta),
            offset_count: h.last_offset_delta.max(0) as u64 + 1,
            max_timestamp: h.max_timestamp,
        })
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences run from 0 to `i32::MAX` and wrap to 0.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    let next = i64::from(seq) + i64::from(by);
    next.rem_euclid(i64::from(i32::MAX) + 1) as i32
}

/// Whether `next` directly follows `last` (Kafka's `ProducerAppendInfo.inSequence`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New and in order: append it.
    Append,
    /// A retry of a batch already in the log: do not append; answer with these offsets.
    Duplicate(BatchMetadata),
}

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} sent epoch {epoch}, older than its current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("out of order sequence from producer {producer_id} epoch {epoch}: {reason}")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        reason: String,
    },
    #[error("producer {producer_id} is unknown to this partition and sent sequence {first_seq}, not 0")]
    UnknownProducerId { producer_id: i64, first_seq: i32 },
    #[error("{0}")]
    InvalidRecord(String),
    #[error("{0}")]
    InvalidTxnState(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<ProducerError> for ApiError {
    fn from(e: ProducerError) -> Self {
        let code = match e {
            ProducerError::Storage(s) => return ApiError::from(s),
            ProducerError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            ProducerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            ProducerError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
            ProducerError::InvalidRecord(_) => ResponseError::InvalidRecord,
            ProducerError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Checks one batch against what is known of its producer (`None`: nothing, e.g. expired).
/// The order of the checks is Kafka's: a duplicate of a cached batch first, then the epoch, then
/// the sequence.
pub fn check(entry: Option<&ProducerEntry>, batch: &ProducerBatch) -> Result<Verdict, ProducerError> {
    // A producer this partition knows nothing of starts at sequence 0. Any other sequence is
    // UNKNOWN_PRODUCER_ID (KIP-360: its state expired or its batches were deleted), which
    // clients answer by bumping the epoch and starting again at 0 when nothing of theirs is
    // unacknowledged. Accepting it instead would be a loss: a new leader that never received a
    // producer's first batch (the old leader was cut off before replicating it) would take the
    // second, and librdkafka counts the first as delivered once a later one is ("implicitly
    // acked").
    let Some(entry) = entry else {
        return if batch.first_seq == 0 {
            Ok(Verdict::Append)
        } else {
            Err(ProducerError::UnknownProducerId {
                producer_id: batch.producer_id,
                first_seq: batch.first_seq,
            })
        };
    };
    if batch.epoch == entry.epoch
        && let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.first_seq && b.last_seq == batch.last_seq)
    {
        return Ok(Verdict::Duplicate(*dup));
    }
    let out_of_order = |reason: String| ProducerError::OutOfOrderSequence {
        producer_id: batch.producer_id,
        epoch: batch.epoch,
        reason,
    };
    if batch.epoch < entry.epoch {
        return Err(ProducerError::InvalidProducerEpoch {
            producer_id: batch.producer_id,
            epoch: batch.epoch,
            current: entry.epoch,
        });
    }
    if batch.epoch > entry.epoch {
        return if batch.first_seq == 0 {
            Ok(Verdict::Append)
        } else {
            Err(out_of_order(format!(
                "a new epoch must start at sequence 0, not {}",
                batch.first_seq
            )))
        };
    }
    let last = entry.last_seq();
    if in_sequence(last, batch.first_seq) {
        Ok(Verdict::Append)
    } else {
        Err(out_of_order(format!(
            "expected sequence {} but got {}",
            increment_sequence(last, 1),
            batch.first_seq
        )))
    }
}

/// The producer fields of a request's batches for one partition, after the checks Kafka's
/// `LogValidator` makes on client batches. Empty when no batch is idempotent. A request whose
/// batches come from more than one producer (or mix idempotent and plain batches) is refused:
/// clients never send that (Produce v3+ carries one batch per partition).
pub fn producer_batches(headers: &[BatchHeader]) -> Result<Vec<ProducerBatch>, ProducerError> {
    if headers.iter().any(BatchHeader::is_control) {
        return Err(ProducerError::InvalidRecord(
            "clients are not allowed to write control records".into(),
        ));
    }
    if headers.iter().any(BatchHeader::is_transactional) {
        return Err(ProducerError::InvalidTxnState(
            "transactions are not supported by this broker yet; transactional batches are refused".into(),
        ));
    }
    let batches: Vec<ProducerBatch> = headers.iter().filter_map(ProducerBatch::from_header).collect();
    let Some(first) = batches.first() else {
        return Ok(batches);
    };
    if batches.len() != headers.len() || batches.iter().any(|b| b.producer_id != first.producer_id) {
        return Err(ProducerError::InvalidRecord(
            "the batches of one partition in one request must all come from the same producer".into(),
        ));
    }
    if let Some(bad) = batches.iter().find(|b| b.first_seq < 0) {
        return Err(ProducerError::InvalidRecord(format!(
            "invalid sequence number {} in record batch with producerId {}",
            bad.first_seq, bad.producer_id
        )));
    }
    Ok(batches)
}

/// Every producer this partition knows, by producer id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }

    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().next_back().copied()
    }

    /// Decides a request's batches (all from one producer, in order) as a whole: either every
    /// one is new and in sequence (append them all), or every one is a retry (answer with the
    /// offsets from the first's first to the last's last). Anything else is refused, so a
    /// request is never half-appended.
    pub fn plan(&self, batches: &[ProducerBatch]) -> Result<Verdict, ProducerError> {
        let Some((first, rest)) = batches.split_first() else {
            return Ok(Verdict::Append);
        };
        let entry = self.producers.get(&first.producer_id);
        let mixed = || ProducerError::InvalidRecord("a request mixes retried batches with new ones".into());
        match check(entry, first)? {
            Verdict::Duplicate(dup) => {
                let mut last = dup;
                for b in rest {
                    match check(entry, b)? {
                        Verdict::Duplicate(d) => last = d,
                        Verdict::Append => return Err(mixed()),
                    }
                }
                Ok(Verdict::Duplicate(BatchMetadata {
                    last_seq: last.last_seq,
                    last_offset: last.last_offset,
                    timestamp: last.timestamp,
                    ..dup
                }))
            }
            Verdict::Append if rest.is_empty() => Ok(Verdict::Append),
            Verdict::Append => {
                // Later batches must follow the earlier ones of the same request.
                let mut working = entry
                    .cloned()
                    .unwrap_or_else(|| ProducerEntry::new(first.producer_id, first.epoch));
                let placeholder = |b: &ProducerBatch| BatchMetadata {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    first_offset: 0,
                    last_offset: 0,
                    timestamp: b.max_timestamp,
                };
                working.push(first.epoch, placeholder(first));
                for b in rest {
                    match check(Some(&working), b)? {
                        Verdict::Append => working.push(b.epoch, placeholder(b)),
                        Verdict::Duplicate(_) => return Err(mixed()),
                    }
                }
                Ok(Verdict::Append)
            }
        }
    }

    /// Records a batch that is now in the log at `first_offset`.
    pub fn record(&mut self, batch: &ProducerBatch, first_offset: u64, timestamp: i64) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry::new(batch.producer_id, batch.epoch));
        entry.push(
            batch.epoch,
            BatchMetadata {
                first_seq: batch.first_seq,
                last_seq: batch.last_seq,
                first_offset,
                last_offset: first_offset + batch.offset_count - 1,
                timestamp,
            },
        );
    }

    /// Rebuilds from a batch already in the log: no checks, as Kafka's replay from the log.
    pub fn replay(&mut self, header: &BatchHeader) {
        if header.is_control() || header.base_offset < 0 {
            return;
        }
        if let Some(batch) = ProducerBatch::from_header(header) {
            self.record(&batch, header.base_offset as u64, header.max_timestamp);
        }
    }

    /// Forgets producers idle for `expiration_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The snapshot payload (see the module docs) for a table that covers offsets below `offset`.
    pub fn encode(&self, offset: u64) -> Vec<u8> {
        let batches: usize = self.producers.values().map(|e| e.batches.len()).sum();
        let mut out =
            Vec::with_capacity(SNAPSHOT_HEADER + self.producers.len() * PRODUCER_RECORD + batches * BATCH_RECORD);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for e in self.producers.values() {
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        out
    }

    /// Parses a snapshot payload into `(covered offset, table)`; `None` if it is malformed.
    pub fn decode(payload: &[u8]) -> Option<(u64, Self)> {
        let mut r = Reader(payload);
        let offset = r.u64()?;
        let count = r.u32()? as usize;
        if count > r.0.len() / PRODUCER_RECORD {
            return None;
        }
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let producer_id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = usize::from(r.u8()?);
            if n > NUM_BATCHES_TO_RETAIN || producer_id < 0 {
                return None;
            }
            let mut entry = ProducerEntry::new(producer_id, epoch);
            for _ in 0..n {
                let b = BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.u64()?,
                    last_offset: r.u64()?,
                    timestamp: r.i64()?,
                };
                if b.last_offset < b.first_offset || b.last_offset >= offset {
                    return None;
                }
                entry.batches.push_back(b);
            }
            entry.last_timestamp = last_timestamp;
            producers.insert(producer_id, entry);
        }
        r.0.is_empty().then_some((offset, ProducerStateTable { producers }))
    }
}

/// Big-endian reads that fail instead of panicking on a short buffer.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
}

/// The headers of a buffer of batches, with the structural checks the log's own validation makes
/// (minus the CRC, which the log checks when it appends). `None` means the log will refuse the
/// buffer anyway.
fn parse_headers(buf: &[u8]) -> Option<Vec<BatchHeader>> {
    let mut out = Vec::with_capacity(1);
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let header = BatchHeader::parse(rest).ok()?;
        header.check_structure().ok()?;
        let size = header.total_size();
        if size < HEADER_SIZE || size > rest.len() {
            return None;
        }
        out.push(header);
        at += size;
    }
    (!out.is_empty()).then_some(out)
}

/// A snapshot taken under the log's lock, to be written to disk outside it.
#[derive(Debug)]
pub struct SnapshotJob {
    offset: u64,
    payload: Vec<u8>,
}

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    /// For a duplicate: the offsets the batches got when they were first written.
    pub info: AppendInfo,
    pub duplicate: bool,
    /// A snapshot is due; write it with `ProducerStates::write_snapshot` once the lock is released.
    pub snapshot: Option<SnapshotJob>,
}

#[derive(Debug)]
struct Inner {
    table: ProducerStateTable,
    last_expiration_check_ms: i64,
    /// Log bytes appended since the last snapshot was taken; one is due every `segment.bytes`.
    bytes_since_snapshot: u64,
}

/// A partition's producer state table with its snapshots. Lock order: the log's lock first, then
/// this one.
#[derive(Debug)]
pub struct ProducerStates {
    dir: PathBuf,
    expiration_ms: i64,
    inner: Mutex<Inner>,
    /// Serializes snapshot writers; holds the offset of the newest snapshot on disk.
    newest_snapshot: Mutex<Option<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

/// Offsets of the snapshot files in `dir`, ascending.
fn list_snapshots(dir: &Path) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let ext = path.extension()?.to_str()?;
            let stem = path.file_stem()?.to_str()?;
            (ext == SNAPSHOT_SUFFIX && stem.len() == 20)
                .then(|| stem.parse().ok())
                .flatten()
        })
        .collect();
    out.sort_unstable();
    out
}

fn remove_snapshot(dir: &Path, offset: u64) {
    let path = snapshot_path(dir, offset);
    if let Err(e) = fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove a producer state snapshot");
    }
}

/// Replays the batch headers in `[from, to)` into `table`; returns the bytes read. A read error
/// stops the replay (logged): the producers it missed are then unknown (UNKNOWN_PRODUCER_ID,
/// after which clients start a new epoch).
fn replay(log: &Log, table: &mut ProducerStateTable, from: u64, to: u64) -> u64 {
    let mut pos = from;
    let mut bytes = 0u64;
    while pos < to {
        let buf = match log.read(pos, REPLAY_CHUNK_BYTES, to) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(dir = %log.dir().display(), offset = pos, error = %e, "producer state replay stopped early");
                break;
            }
        };
        let mut at = 0;
        let mut progressed = false;
        while buf.len() - at >= HEADER_SIZE {
            let Ok(h) = BatchHeader::parse(&buf[at..]) else { break };
            let size = h.total_size();
            if size < HEADER_SIZE || at + size > buf.len() {
                break;
            }
            if h.last_offset() >= pos as i64 {
                table.replay(&h);
                pos = h.last_offset() as u64 + 1;
                progressed = true;
            }
            at += size;
        }
        bytes += at as u64;
        if !progressed {
            break;
        }
    }
    bytes
}

impl ProducerStates {
    /// No producers yet, for the partition directory `dir` (a replica that does not lead keeps
    /// none; it rebuilds the table with `reload` when it becomes leader).
    pub fn empty(dir: &Path) -> Self {
        ProducerStates {
            dir: dir.to_path_buf(),
            expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            inner: Mutex::new(Inner {
                table: ProducerStateTable::default(),
                last_expiration_check_ms: 0,
                bytes_since_snapshot: 0,
            }),
            newest_snapshot: Mutex::new(None),
        }
    }

    /// Rebuilds the state of an opened log: the newest snapshot within
    /// `[log start, log end]`, then the batches after it. Snapshots past the log end describe
    /// batches recovery cut off and are deleted; one below the log start misses batches that
    /// retention deleted since, so it is not used (as Kafka). After a replay a fresh snapshot is
    /// written so the next open skips it.
    pub fn load(log: &Log, now_ms: i64) -> Self {
        Self::load_with(log, now_ms, PRODUCER_ID_EXPIRATION_MS_DEFAULT)
    }

    pub fn load_with(log: &Log, now_ms: i64, expiration_ms: i64) -> Self {
        let dir = log.dir().to_path_buf();
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let mut loaded: Option<(u64, ProducerStateTable)> = None;
        for offset in list_snapshots(&dir).into_iter().rev() {
            if offset > end {
                tracing::info!(dir = %dir.display(), offset, log_end = end, "deleting a producer state snapshot past the log end");
                remove_snapshot(&dir, offset);
                continue;
            }
            if offset < start {
                break;
            }
            let path = snapshot_path(&dir, offset);
            match checkpoint::read(&path)
                .ok()
                .flatten()
                .and_then(|p| ProducerStateTable::decode(&p))
            {
                Some((covered, table)) if covered == offset => {
                    loaded = Some((offset, table));
                    break;
                }
                _ => tracing::warn!(path = %path.display(), "ignoring an unreadable producer state snapshot"),
            }
        }
        let snapshot_offset = loaded.as_ref().map(|(o, _)| *o);
        let (from, mut table) = loaded.unwrap_or((start, ProducerStateTable::default()));
        let replayed = replay(log, &mut table, from, end);
        let expired = table.expire(now_ms, expiration_ms);
        if replayed > 0 || expired > 0 {
            tracing::info!(
                dir = %dir.display(),
                snapshot = ?snapshot_offset,
                replayed_from = from,
                replayed_bytes = replayed,
                producers = table.len(),
                expired,
                "producer state rebuilt"
            );
        }
        let states = ProducerStates {
            dir,
            expiration_ms,
            inner: Mutex::new(Inner {
                table,
                last_expiration_check_ms: now_ms,
                bytes_since_snapshot: 0,
            }),
            newest_snapshot: Mutex::new(snapshot_offset),
        };
        if replayed > 0 {
            states.write_snapshot(states.snapshot(log));
        }
        states
    }

    /// Appends a producer's batches to `log` (whose lock the caller holds), checking idempotent
    /// batches against the table first. A retry of a batch already written is not appended; its
    /// original offsets are returned with `duplicate` set.
    pub fn append(
        &self,
        log: &mut Log,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, ProducerError> {
        let Some(headers) = parse_headers(batches) else {
            // Malformed: the log refuses it with the precise error.
            let info = log.append(batches, leader_epoch, now_ms)?;
            return Ok(self.after_append(log, info, &[], now_ms));
        };
        let producer_batches = producer_batches(&headers)?;
        if !producer_batches.is_empty() {
            let mut inner = lock(&self.inner);
            inner.maybe_expire(now_ms, self.expiration_ms);
            if let Verdict::Duplicate(dup) = inner.table.plan(&producer_batches)? {
                tracing::debug!(
                    producer_id = producer_batches[0].producer_id,
                    first_seq = dup.first_seq,
                    offset = dup.first_offset,
                    "duplicate batch: answering with its original offset"
                );
                let log_append_time =
                    (log.config().message_timestamp_type == TimestampType::LogAppendTime).then_some(dup.timestamp);
                return Ok(Appended {
                    info: AppendInfo {
                        first_offset: dup.first_offset,
                        last_offset: dup.last_offset,
                        max_timestamp: dup.timestamp,
                        log_append_time,
                        record_count: 0,
                        bytes: 0,
                    },
                    duplicate: true,
                    snapshot: None,
                });
            }
        }
        let info = log.append(batches, leader_epoch, now_ms)?;
        Ok(self.after_append(log, info, &producer_batches, now_ms))
    }

    /// The leader's check of a replicated partition, whose offsets are assigned before the Raft
    /// append (see `partition.rs`): like `append`, but the batches are recorded at `first_offset`
    /// instead of being written. Returns the original offsets of a retry of a cached batch.
    pub fn admit(
        &self,
        headers: &[BatchHeader],
        first_offset: u64,
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<AppendInfo>, ProducerError> {
        let producer_batches = producer_batches(headers)?;
        if producer_batches.is_empty() {
            return Ok(None);
        }
        let mut inner = lock(&self.inner);
        inner.maybe_expire(now_ms, self.expiration_ms);
        if let Verdict::Duplicate(dup) = inner.table.plan(&producer_batches)? {
            return Ok(Some(AppendInfo {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
                max_timestamp: dup.timestamp,
                log_append_time: log_append_time.map(|_| dup.timestamp),
                record_count: 0,
                bytes: 0,
            }));
        }
        let mut first = first_offset;
        for b in &producer_batches {
            inner.table.record(b, first, log_append_time.unwrap_or(b.max_timestamp));
            first += b.offset_count;
        }
        Ok(None)
    }

    /// Rebuilds the table from `log` in place: a replica that becomes leader takes over the
    /// producers its predecessor tracked, as the log holds them.
    pub fn reload(&self, log: &Log, now_ms: i64) {
        let fresh = Self::load_with(log, now_ms, self.expiration_ms);
        let table = lock(&fresh.inner).table.clone();
        let mut inner = lock(&self.inner);
        inner.table = table;
        inner.last_expiration_check_ms = now_ms;
        inner.bytes_since_snapshot = 0;
    }

    fn after_append(&self, log: &Log, info: AppendInfo, batches: &[ProducerBatch], now_ms: i64) -> Appended {
        let mut inner = lock(&self.inner);
        // The log assigns offsets densely in request order, so each batch starts where the
        // previous one ended.
        let mut first = info.first_offset;
        for b in batches {
            inner
                .table
                .record(b, first, info.log_append_time.unwrap_or(b.max_timestamp));
            first += b.offset_count;
        }
        inner.maybe_expire(now_ms, self.expiration_ms);
        inner.bytes_since_snapshot += info.bytes as u64;
        let snapshot = (inner.bytes_since_snapshot >= log.config().segment_bytes).then(|| {
            inner.bytes_since_snapshot = 0;
            SnapshotJob {
                offset: log.log_end_offset(),
                payload: inner.table.encode(log.log_end_offset()),
            }
        });
        Appended {
            info,
            duplicate: false,
            snapshot,
        }
    }

    /// A snapshot of the table as of the log end; the caller holds the log's lock.
    pub fn snapshot(&self, log: &Log) -> SnapshotJob {
        let mut inner = lock(&self.inner);
        inner.bytes_since_snapshot = 0;
        let offset = log.log_end_offset();
        SnapshotJob {
            offset,
            payload: inner.table.encode(offset),
        }
    }

    /// Writes a snapshot unless a newer one is already on disk, and removes all but the newest
    /// few. Failures are logged, never fatal: the next open replays a little more.
    pub fn write_snapshot(&self, job: SnapshotJob) {
        let mut newest = lock(&self.newest_snapshot);
        if newest.is_some_and(|n| n >= job.offset) {
            return;
        }
        let path = snapshot_path(&self.dir, job.offset);
        if let Err(e) = checkpoint::write(&path, &job.payload) {
            tracing::warn!(path = %path.display(), error = %e, "could not write a producer state snapshot");
            return;
        }
        *newest = Some(job.offset);
        let all = list_snapshots(&self.dir);
        for &old in all.iter().take(all.len().saturating_sub(SNAPSHOTS_RETAINED)) {
            remove_snapshot(&self.dir, old);
        }
    }

    /// The producers this partition currently tracks (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ProducerEntry> {
        lock(&self.inner).table.entries().cloned().collect()
    }

    pub fn max_producer_id(&self) -> Option<i64> {
        lock(&self.inner).table.max_producer_id()
    }
}

impl Inner {
    /// The cheap expiration check appends make: a full pass at most once per check interval.
    fn maybe_expire(&mut self, now_ms: i64, expiration_ms: i64) {
        if now_ms.saturating_sub(self.last_expiration_check_ms) < PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT {
            return;
        }
        self.last_expiration_check_ms = now_ms;
        let expired = self.table.expire(now_ms, expiration_ms);
        if expired > 0 {
            tracing::debug!(expired, "expired idle producer ids");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;
    use skiff_storage::LogConfig;

    const PID: i64 = 7;

    fn pb(epoch: i16, first_seq: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: PID,
            epoch,
            first_seq,
            last_seq: increment_sequence(first_seq, count - 1),
            offset_count: count as u64,
            max_timestamp: 1_000,
        }
    }

    /// A table holding `PID` at `epoch` with batches of 2 records from sequence 0, written at
    /// offsets 0, 2, 4, …
    fn table_with(epoch: i16, batches: i32) -> ProducerStateTable {
        let mut t = ProducerStateTable::default();
        for i in 0..batches {
            t.record(&pb(epoch, 2 * i, 2), 2 * i as u64, 1_000);
        }
        t
    }

    #[test]
    fn duplicates_of_each_of_the_last_five_batches_get_their_original_offsets() {
        let t = table_with(0, 7);
        // Batches 2..=6 are cached (the last five); each retry maps to its own first write.
        for i in 2..7 {
            match t.plan(&[pb(0, 2 * i, 2)]).unwrap() {
                Verdict::Duplicate(d) => assert_eq!((d.first_offset, d.last_offset), (2 * i as u64, 2 * i as u64 + 1)),
                other => panic!("batch {i}: {other:?}"),
            }
        }
        // The sixth-newest is no longer cached: a retry of it is out of order, never re-appended.
        assert!(matches!(
            t.plan(&[pb(0, 2, 2)]),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        // Same first sequence but a different last one is not a duplicate.
        assert!(matches!(
            t.plan(&[pb(0, 12, 1)]),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        assert_eq!(t.get(PID).unwrap().batches.len(), NUM_BATCHES_TO_RETAIN);
    }

    #[test]
    fn the_next_sequence_is_appended_and_a_gap_is_out_of_order() {
        let t = table_with(0, 3); // last sequence 5
        assert_eq!(t.plan(&[pb(0, 6, 3)]).unwrap(), Verdict::Append);
        for bad in [7, 100, 5 - 3, -1 + 1] {
            assert!(
                matches!(t.plan(&[pb(0, bad, 1)]), Err(ProducerError::OutOfOrderSequence { .. })),
                "sequence {bad} must be refused"
            );
        }
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
        let mut t = ProducerStateTable::default();
        t.record(&pb(0, i32::MAX - 1, 2), 0, 1); // sequences MAX-1, MAX
        assert_eq!(t.plan(&[pb(0, 0, 2)]).unwrap(), Verdict::Append);
        assert!(t.plan(&[pb(0, i32::MAX, 1)]).is_err());
        // A batch that itself straddles the wrap.
        let straddling = pb(0, i32::MAX - 1, 4);
        assert_eq!(straddling.last_seq, 1);
        let mut t = ProducerStateTable::default();
        t.record(&straddling, 10, 1);
        assert!(matches!(t.plan(&[pb(0, i32::MAX - 1, 4)]).unwrap(), Verdict::Duplicate(d) if d.first_offset == 10));
        assert_eq!(t.plan(&[pb(0, 2, 1)]).unwrap(), Verdict::Append);
    }

    #[test]
    fn a_new_epoch_starts_at_sequence_zero_and_fences_the_old_one() {
        let mut t = table_with(3, 2);
        // KIP-360 bump: the new epoch must restart at 0.
        assert!(matches!(
            t.plan(&[pb(4, 4, 1)]),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        assert_eq!(t.plan(&[pb(4, 0, 1)]).unwrap(), Verdict::Append);
        t.record(&pb(4, 0, 1), 10, 2_000);
        let e = t.get(PID).unwrap();
        assert_eq!((e.epoch, e.batches.len(), e.last_seq()), (4, 1, 0));
        // The old epoch is fenced, even for what used to be a duplicate.
        assert!(matches!(
            t.plan(&[pb(3, 0, 2)]),
            Err(ProducerError::InvalidProducerEpoch { current: 4, .. })
        ));
        assert!(matches!(
            t.plan(&[pb(3, 4, 1)]),
            Err(ProducerError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn an_unknown_producer_starts_at_sequence_zero_or_is_told_it_is_unknown() {
        // Its state may have expired (the client then starts a new epoch at 0), or its first
        // batch never reached this replica: taking the next one would lose that batch.
        let t = ProducerStateTable::default();
        assert!(matches!(
            t.plan(&[pb(0, 4242, 1)]),
            Err(ProducerError::UnknownProducerId { first_seq: 4242, .. })
        ));
        assert_eq!(
            ApiError::from(t.plan(&[pb(0, 1, 1)]).unwrap_err()).code,
            ResponseError::UnknownProducerId
        );
        assert_eq!(t.plan(&[pb(0, 0, 1)]).unwrap(), Verdict::Append);
        assert_eq!(t.plan(&[pb(9, 0, 1)]).unwrap(), Verdict::Append);
    }

    #[test]
    fn multi_batch_requests_are_decided_as_a_whole() {
        let t = table_with(0, 2); // sequences 0..=3 at offsets 0..=3
        assert_eq!(t.plan(&[pb(0, 4, 2), pb(0, 6, 1)]).unwrap(), Verdict::Append);
        assert!(t.plan(&[pb(0, 4, 2), pb(0, 7, 1)]).is_err(), "gap inside the request");
        match t.plan(&[pb(0, 0, 2), pb(0, 2, 2)]).unwrap() {
            Verdict::Duplicate(d) => assert_eq!((d.first_offset, d.last_offset), (0, 3)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.plan(&[pb(0, 2, 2), pb(0, 4, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
        assert!(matches!(
            t.plan(&[pb(0, 4, 1), pb(0, 4, 1)]),
            Err(ProducerError::InvalidRecord(_))
        ));
    }

    #[test]
    fn expiration_forgets_idle_producers() {
        let mut t = ProducerStateTable::default();
        t.record(&pb(0, 0, 1), 0, 1_000);
        let mut other = pb(0, 0, 1);
        other.producer_id = 8;
        t.record(&other, 1, 5_000);
        assert_eq!(t.expire(4_000, 3_000), 1);
        assert!(t.get(PID).is_none() && t.get(8).is_some());
    }

    #[test]
    fn snapshot_payload_round_trips_and_rejects_garbage() {
        let mut t = table_with(2, 7);
        let mut other = pb(0, i32::MAX, 1);
        other.producer_id = 99;
        t.record(&other, 14, 3);
        let payload = t.encode(15);
        assert_eq!(ProducerStateTable::decode(&payload), Some((15, t.clone())));
        assert_eq!(ProducerStateTable::decode(&payload[..payload.len() - 1]), None);
        let mut longer = payload.clone();
        longer.push(0);
        assert_eq!(ProducerStateTable::decode(&longer), None);
        assert_eq!(ProducerStateTable::decode(&[]), None);
        // A snapshot may not claim batches at or past the offset it covers.
        assert_eq!(ProducerStateTable::decode(&t.encode(14)), None);
    }

    #[test]
    fn errors_carry_kafka_codes() {
        let code = |e: ProducerError| ApiError::from(e).code;
        assert_eq!(
            code(ProducerError::InvalidProducerEpoch {
                producer_id: 1,
                epoch: 0,
                current: 1
            }),
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            code(ProducerError::OutOfOrderSequence {
                producer_id: 1,
                epoch: 0,
                reason: String::new()
            }),
            ResponseError::OutOfOrderSequenceNumber
        );
        assert_eq!(
            code(ProducerError::InvalidRecord(String::new())),
            ResponseError::InvalidRecord
        );
        assert_eq!(
            code(ProducerError::Storage(StorageError::InvalidBatch {
                reason: String::new()
            })),
            ResponseError::InvalidRecord
        );
    }

    // ---- against a real log ----

    fn now() -> i64 {
        crate::clock::now_ms()
    }

    /// A batch of `records` records from `pid` (or a plain one for pid -1), as a client encodes it.
    fn batch(pid: i64, epoch: i16, seq: i32, records: usize) -> BytesMut {
        let mut buf = crate::test_batches::build_from(records, now(), Compression::None, |i| {
            format!("value-{seq}-{i}").into_bytes()
        });
        // Stamp the producer fields (inside the CRC) and recompute the CRC.
        buf[43..51].copy_from_slice(&pid.to_be_bytes());
        buf[51..53].copy_from_slice(&epoch.to_be_bytes());
        buf[53..57].copy_from_slice(&(if pid < 0 { -1 } else { seq }).to_be_bytes());
        let crc = skiff_storage::batch::compute_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    fn append(states: &ProducerStates, log: &mut Log, mut b: BytesMut) -> Result<Appended, ProducerError> {
        states.append(log, &mut b, 0, now())
    }

    #[test]
    fn retries_are_not_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let states = ProducerStates::load(&log, now());
        let a = append(&states, &mut log, batch(PID, 0, 0, 3)).unwrap();
        let b = append(&states, &mut log, batch(PID, 0, 3, 2)).unwrap();
        assert_eq!(
            (a.info.first_offset, b.info.first_offset, b.info.last_offset),
            (0, 3, 4)
        );
        let retry = append(&states, &mut log, batch(PID, 0, 0, 3)).unwrap();
        assert!(retry.duplicate);
        assert_eq!((retry.info.first_offset, retry.info.last_offset), (0, 2));
        assert_eq!(log.log_end_offset(), 5, "a duplicate must not be appended");
        assert!(matches!(
            append(&states, &mut log, batch(PID, 0, 9, 1)),
            Err(ProducerError::OutOfOrderSequence { .. })
        ));
        // Plain producers are not checked at all.
        append(&states, &mut log, batch(-1, -1, -1, 2)).unwrap();
        append(&states, &mut log, batch(-1, -1, -1, 2)).unwrap();
        assert_eq!(log.log_end_offset(), 9);
        // Mixed producers in one request are refused before anything is written.
        let mut mixed = batch(PID, 0, 5, 1);
        mixed.extend_from_slice(&batch(-1, -1, -1, 1));
        assert!(matches!(
            append(&states, &mut log, mixed),
            Err(ProducerError::InvalidRecord(_))
        ));
        // Several batches of one producer get their own offsets.
        let mut two = batch(PID, 0, 5, 2);
        two.extend_from_slice(&batch(PID, 0, 7, 1));
        let both = append(&states, &mut log, two).unwrap();
        assert_eq!((both.info.first_offset, both.info.last_offset), (9, 11));
        let again = append(&states, &mut log, batch(PID, 0, 7, 1)).unwrap();
        assert!(again.duplicate && again.info.first_offset == 11);
        assert_eq!(log.log_end_offset(), 12);
        let bad_seq = batch(PID + 1, 0, -5, 1);
        assert!(matches!(
            append(&states, &mut log, bad_seq),
            Err(ProducerError::InvalidRecord(_))
        ));
    }

    #[test]
    fn state_is_rebuilt_from_the_log_with_and_without_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let states = ProducerStates::load(&log, now());
        for i in 0..4 {
            append(&states, &mut log, batch(PID, 0, 2 * i, 2)).unwrap();
        }
        let mut p2 = batch(PID + 1, 3, 0, 1);
        append(&states, &mut log, p2.split()).unwrap();
        let expected = lock(&states.inner).table.clone();
        drop(states);
        log.close(now()).unwrap();

        // No snapshot at all: a full replay rebuilds the same table, and writes a snapshot.
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let states = ProducerStates::load(&log, now());
        assert_eq!(lock(&states.inner).table, expected);
        assert_eq!(list_snapshots(dir.path()), vec![9]);
        let retry = append(&states, &mut log, batch(PID, 0, 6, 2)).unwrap();
        assert!(retry.duplicate && retry.info.first_offset == 6);

        // Batches after the snapshot are replayed on top of it.
        append(&states, &mut log, batch(PID, 0, 8, 1)).unwrap();
        let expected = lock(&states.inner).table.clone();
        drop(states);
        log.close(now()).unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let states = ProducerStates::load(&log, now());
        assert_eq!(lock(&states.inner).table, expected);
        assert_eq!(list_snapshots(dir.path()), vec![9, 10]);

        // A clean shutdown's snapshot covers everything; a corrupt one falls back to the older.
        states.write_snapshot(states.snapshot(&log));
        assert_eq!(list_snapshots(dir.path()), vec![9, 10]);
        drop(states);
        let newest = snapshot_path(dir.path(), 10);
        let mut raw = fs::read(&newest).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        fs::write(&newest, raw).unwrap();
        let states = ProducerStates::load(&log, now());
        assert_eq!(lock(&states.inner).table, expected);
    }

    #[test]
    fn snapshots_past_the_log_end_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let states = ProducerStates::load(&log, now());
        append(&states, &mut log, batch(PID, 0, 0, 2)).unwrap();
        // A snapshot that claims offsets the log no longer has (as after recovery cut a tail).
        let mut fake = ProducerStateTable::default();
        fake.record(&pb(0, 0, 50), 0, now());
        checkpoint::write(&snapshot_path(dir.path(), 50), &fake.encode(50)).unwrap();
        drop(states);
        let states = ProducerStates::load(&log, now());
        assert!(!snapshot_path(dir.path(), 50).exists());
        assert_eq!(lock(&states.inner).table.get(PID).unwrap().last_seq(), 1);
    }

    #[test]
    fn a_snapshot_is_taken_every_segment_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 500,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config).unwrap();
        let states = ProducerStates::load(&log, now());
        let mut jobs = 0;
        for i in 0..20 {
            if let Some(job) = append(&states, &mut log, batch(PID, 0, i, 1)).unwrap().snapshot {
                states.write_snapshot(job);
                jobs += 1;
            }
        }
        assert!(jobs >= 2, "only {jobs} snapshots");
        assert!(list_snapshots(dir.path()).len() <= SNAPSHOTS_RETAINED);
    }
}
