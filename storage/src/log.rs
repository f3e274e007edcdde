//! A partition's log: an ordered set of segments in one directory, the offsets they hold, and the
//! checkpoints that make reopening after a crash fast and safe.
//!
//! Files in a log directory:
//! ```text
//! 00000000000000000000.log        batches (batch.rs)          one set per segment, named by
//! 00000000000000000000.index      offset index (offset_index.rs)      the segment's base offset
//! 00000000000000000000.timeindex  time index (time_index.rs)
//! log-checkpoint                  checkpoint.rs payload: recovery point u64, log start offset u64
//! leader-epoch-checkpoint         leader_epoch.rs
//! clean-shutdown                  empty marker: present only between `close` and the next `open`
//! ```
//! Everything below the recovery point has been fsync'd, so recovery rescans only the segments from
//! the one holding the recovery point onward (all of them when the checkpoint is missing).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::checkpoint;
use crate::config::{LogConfig, TimestampType};
use crate::error::{IoContext, Result, StorageError};
use crate::leader_epoch::LeaderEpochCache;
use crate::segment::{self, Segment};

const LOG_CHECKPOINT: &str = "log-checkpoint";
const CLEAN_SHUTDOWN: &str = "clean-shutdown";

/// Lists `(offset, timestamp)` of every record of one compressed batch (given whole), or `None`
/// if it cannot. Storage keeps batches opaque and has no codecs, so whoever needs record-precise
/// answers from compressed batches supplies this.
pub type Decompress<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<(u64, i64)>>;

/// What one append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
    /// Set when the log stamped `LogAppendTime`; the producer is told this time.
    pub log_append_time: Option<i64>,
    pub record_count: u64,
    pub bytes: usize,
}

/// What `open` found and did, for the broker's log and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments_scanned: usize,
    pub bytes_truncated: u64,
    /// Base offsets of segments deleted because they followed a corrupt one.
    pub segments_deleted: Vec<u64>,
}

/// The fsyncs a group commit must run, taken under the log's lock and run outside it.
#[derive(Debug)]
pub struct FlushJob {
    files: Vec<(Arc<fs::File>, PathBuf)>,
    /// Everything below this offset is durable once the job has run.
    pub upto: u64,
}

impl FlushJob {
    pub fn run(&self) -> Result<()> {
        for (file, path) in &self.files {
            file.sync_data().io_context("fsync segment", path)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<u64, Segment>,
    log_start_offset: u64,
    /// Every batch below this offset has been fsync'd.
    recovery_point: u64,
    epochs: LeaderEpochCache,
    unflushed_records: u64,
    last_flush_ms: Option<i64>,
    /// Set after a failure that leaves the on-disk state unknown; the log then refuses writes.
    offline: Option<String>,
    report: RecoveryReport,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it if it was not closed cleanly.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).io_context("create log directory", &dir)?;
        let bases = scan_directory(&dir)?;

        let marker = dir.join(CLEAN_SHUTDOWN);
        let clean = marker.exists();
        if clean {
            fs::remove_file(&marker).io_context("remove clean-shutdown marker", &marker)?;
            checkpoint::sync_dir(&dir)?;
        }
        let (mut recovery_point, mut log_start_offset) = read_log_checkpoint(&dir)?.unwrap_or((0, 0));
        let loaded_epochs = LeaderEpochCache::load(&dir)?;
        let rebuild_epochs = loaded_epochs.is_none() && !bases.is_empty();
        let mut epochs = loaded_epochs.unwrap_or_else(|| LeaderEpochCache::empty(&dir));
        let mut epochs_changed = rebuild_epochs;

        let mut report = RecoveryReport {
            clean_shutdown: clean,
            ..Default::default()
        };
        let mut segments = BTreeMap::new();
        let mut expected_next: Option<u64> = None;
        let mut cut = false;
        for (i, &base) in bases.iter().enumerate() {
            let overlaps = expected_next.is_some_and(|next| base < next);
            if cut || overlaps {
                if overlaps {
                    tracing::warn!(dir = %dir.display(), base, "segment overlaps the one before it; deleting it");
                }
                delete_segment_files(&dir, base)?;
                report.segments_deleted.push(base);
                cut = true;
                continue;
            }
            let contains_unflushed = bases.get(i + 1).is_none_or(|&next| next > recovery_point);
            let recover = rebuild_epochs || (!clean && contains_unflushed);
            let mut on_batch =
                |h: &BatchHeader| epochs_changed |= epochs.assign(h.partition_leader_epoch, h.base_offset as u64);
            let (seg, rec) = Segment::open(&dir, base, &config, recover, &mut on_batch)?;
            if recover {
                report.segments_scanned += 1;
            }
            if rec.truncated_bytes > 0 || rec.reason.is_some() {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = base,
                    kept_bytes = rec.valid_bytes,
                    cut_bytes = rec.truncated_bytes,
                    reason = rec.reason.as_deref().unwrap_or(""),
                    "recovery cut a torn or corrupt tail; later segments are dropped"
                );
                report.bytes_truncated += rec.truncated_bytes;
                cut = true;
            }
            expected_next = Some(seg.next_offset());
            segments.insert(base, seg);
        }

        let mut log = Log {
            dir,
            config,
            segments,
            log_start_offset,
            recovery_point,
            epochs,
            unflushed_records: 0,
            last_flush_ms: None,
            offline: None,
            report,
        };
        if let Some(&first) = log.segments.keys().next() {
            log_start_offset = log_start_offset.max(first);
        }
        if log.segments.is_empty() || log_start_offset > log.log_end_offset() {
            for (_, seg) in std::mem::take(&mut log.segments) {
                seg.delete()?;
            }
            let seg = Segment::create(&log.dir, log_start_offset, &log.config)?;
            log.segments.insert(log_start_offset, seg);
        }
        log.log_start_offset = log_start_offset;
        let leo = log.log_end_offset();
        epochs_changed |= log.epochs.truncate_from_end(leo);
        epochs_changed |= log.epochs.truncate_from_start(log_start_offset);
        let last = log.active_base();
        for (&base, seg) in log.segments.iter_mut() {
            if base == last {
                seg.make_active(&log.config)?
            } else {
                seg.make_inactive()?
            }
        }
        if !clean {
            // What recovery kept must itself be durable before the checkpoint vouches for it.
            for seg in log.segments.values() {
                seg.flush_all()?;
            }
        }
        recovery_point = leo;
        log.recovery_point = recovery_point;
        if epochs_changed {
            log.epochs.save()?;
        }
        log.write_checkpoint()?;
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the config (AlterConfigs); takes effect from the next append or retention pass.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        let base = self.active_base();
        self.active_mut(base).make_active(&config)?;
        self.config = config;
        Ok(())
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> u64 {
        self.segments
            .values()
            .next_back()
            .map_or(self.log_start_offset, Segment::next_offset)
    }

    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    pub fn leader_epochs(&self) -> &[(i32, u64)] {
        self.epochs.entries()
    }

    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    fn active_base(&self) -> u64 {
        self.segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.log_start_offset)
    }

    fn active_mut(&mut self, base: u64) -> &mut Segment {
        match self.segments.get_mut(&base) {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Refuses with `Offline` once a failure left the files in an unknown state (a caller about
    /// to run a `flush_job` outside the lock checks first).
    pub fn check_online(&self) -> Result<()> {
        match &self.offline {
            Some(reason) => Err(StorageError::Offline {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Notes failures that leave the files in an unknown state.
    fn note_failure(&mut self, err: StorageError) -> StorageError {
        if let StorageError::Offline { reason, .. } = &err {
            tracing::error!(dir = %self.dir.display(), %reason, "log goes offline");
            self.offline = Some(reason.clone());
        }
        err
    }

    /// Appends batches from a producer: validates them (structure, CRC32C, `max.message.bytes`),
    /// assigns offsets from the log end, stamps the leader epoch (and `LogAppendTime` if the topic
    /// uses it), and writes them in one go.
    pub fn append(&mut self, batches: &mut [u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        self.check_online()?;
        if leader_epoch < 0 {
            return Err(StorageError::InvalidBatch {
                reason: format!("leader epoch {leader_epoch} is negative"),
            });
        }
        let mut headers = batch::split_batches(batches)?;
        let log_append_time = (self.config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let mut next = self.log_end_offset();
        for (at, header) in headers.iter_mut() {
            if header.total_size() > self.config.max_message_bytes as usize {
                return Err(StorageError::BatchTooLarge {
                    size: header.total_size(),
                    max: self.config.max_message_bytes,
                });
            }
            if header.record_count < 1 || header.record_count != header.last_offset_delta + 1 {
                return Err(StorageError::InvalidBatch {
                    reason: format!(
                        "recordCount {} does not match lastOffsetDelta {}",
                        header.record_count, header.last_offset_delta
                    ),
                });
            }
            let bytes = &mut batches[*at..*at + header.total_size()];
            batch::set_base_offset(bytes, next);
            batch::set_leader_epoch(bytes, leader_epoch);
            header.base_offset = next as i64;
            header.partition_leader_epoch = leader_epoch;
            if let Some(now) = log_append_time {
                batch::set_log_append_time(bytes, now);
                header.max_timestamp = now;
            }
            next = header.last_offset() as u64 + 1;
        }
        let mut info = self.write(batches, &headers, now_ms)?;
        info.log_append_time = log_append_time;
        Ok(info)
    }

    /// Appends batches that already carry their offsets and epochs (a follower copying its leader):
    /// they must continue the log densely.
    pub fn append_replicated(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_online()?;
        let headers = batch::split_batches(batches)?;
        let mut expected = self.log_end_offset();
        for (_, header) in &headers {
            if header.base_offset < 0 || header.base_offset as u64 != expected {
                return Err(StorageError::NonContiguousOffset {
                    expected,
                    got: header.base_offset.max(0) as u64,
                });
            }
            if header.partition_leader_epoch < 0 {
                return Err(StorageError::InvalidBatch {
                    reason: "replicated batch without a leader epoch".into(),
                });
            }
            expected = header.last_offset() as u64 + 1;
        }
        self.write(batches, &headers, now_ms)
    }

    fn write(&mut self, data: &[u8], headers: &[(usize, BatchHeader)], now_ms: i64) -> Result<AppendInfo> {
        let (Some((_, first)), Some((_, last))) = (headers.first(), headers.last()) else {
            return Err(StorageError::corrupt("no record batch to append"));
        };
        let info = AppendInfo {
            first_offset: first.base_offset as u64,
            last_offset: last.last_offset() as u64,
            max_timestamp: headers.iter().map(|(_, h)| h.max_timestamp).max().unwrap_or(-1),
            log_append_time: None,
            record_count: headers.iter().map(|(_, h)| h.record_count.max(0) as u64).sum(),
            bytes: data.len(),
        };
        let base = self.active_base();
        if self.segments[&base].should_roll(data.len() as u64, info.last_offset, now_ms, &self.config) {
            self.roll()?;
        }
        let base = self.active_base();
        let config = self.config.clone();
        if let Err(e) = self.active_mut(base).append(data, headers, now_ms, &config) {
            return Err(self.note_failure(e));
        }
        let mut epochs_changed = false;
        for (_, h) in headers {
            epochs_changed |= self.epochs.assign(h.partition_leader_epoch, h.base_offset as u64);
        }
        if epochs_changed {
            self.epochs.save()?;
        }
        self.unflushed_records += info.record_count;
        if self.unflushed_records >= self.config.flush_messages.max(1) as u64 {
            self.flush(now_ms)?;
        }
        Ok(info)
    }

    /// Starts a new active segment at the log end. The old one is fsync'd and its indexes trimmed,
    /// so the recovery point can move past it.
    pub fn roll(&mut self) -> Result<()> {
        let old = self.active_base();
        let leo = self.log_end_offset();
        if self.segments[&old].is_empty() {
            return Ok(());
        }
        let seg = Segment::create(&self.dir, leo, &self.config)?;
        let old_seg = self.active_mut(old);
        if let Err(e) = old_seg.flush_all() {
            return Err(self.go_offline(e));
        }
        old_seg.make_inactive()?;
        self.segments.insert(leo, seg);
        checkpoint::sync_dir(&self.dir)?;
        self.recovery_point = self.recovery_point.max(leo);
        self.write_checkpoint()
    }

    fn go_offline(&mut self, err: StorageError) -> StorageError {
        let reason = err.to_string();
        self.note_failure(StorageError::Offline {
            dir: self.dir.clone(),
            reason,
        })
    }

    /// Whole batches from the one holding `start`, up to about `max_bytes` (the first batch is
    /// always whole, however large, so a consumer can make progress) and only batches that end
    /// below `max_offset` (the high watermark). Every batch served passes its CRC32C.
    pub fn read(&self, start: u64, max_bytes: usize, max_offset: u64) -> Result<Bytes> {
        let leo = self.log_end_offset();
        if start < self.log_start_offset || start > leo {
            return Err(StorageError::OffsetOutOfRange {
                offset: start,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        let upper = max_offset.min(leo);
        if start >= upper {
            return Ok(Bytes::new());
        }
        let floor = self.segments.range(..=start).next_back().map_or(start, |(&b, _)| b);
        for seg in self.segments.range(floor..).map(|(_, s)| s) {
            let Some((position, first)) = seg.find_batch(start)? else {
                continue;
            };
            if first.last_offset() as u64 >= upper {
                return Ok(Bytes::new());
            }
            let mut buf = seg.read(position, max_bytes.max(first.total_size()))?;
            let mut at = 0;
            let mut expected_base = first.base_offset;
            while buf.len() - at >= HEADER_SIZE {
                let header = BatchHeader::parse(&buf[at..])?;
                let end = at + header.total_size();
                if end > buf.len() || header.last_offset() as u64 >= upper {
                    break;
                }
                if let Err(e) = batch::validate(&buf[at..end]).and_then(|h| self.check_placement(&h, expected_base)) {
                    tracing::error!(dir = %self.dir.display(), offset = header.base_offset, error = %e, "refusing to serve a corrupt batch");
                    if at == 0 {
                        return Err(e);
                    }
                    break;
                }
                at = end;
                expected_base = header.last_offset() + 1;
            }
            buf.truncate(at);
            return Ok(buf.freeze());
        }
        Ok(Bytes::new())
    }

    /// The checks the CRC cannot make: a batch must start where the previous one ended and carry
    /// the leader epoch that the epoch history says was in force at its offset.
    fn check_placement(&self, header: &BatchHeader, expected_base: i64) -> Result<()> {
        if header.base_offset != expected_base {
            return Err(StorageError::corrupt(format!(
                "batch claims base offset {} where {expected_base} belongs",
                header.base_offset
            )));
        }
        let epoch = self.epochs.epoch_for(header.base_offset as u64);
        if epoch.is_some_and(|e| e != header.partition_leader_epoch) {
            return Err(StorageError::corrupt(format!(
                "batch at offset {} carries leader epoch {} but epoch {epoch:?} was in force",
                header.base_offset, header.partition_leader_epoch
            )));
        }
        Ok(())
    }

    fn segment_for(&self, offset: u64) -> Option<&Segment> {
        self.segments.range(..=offset).next_back().map(|(_, s)| s)
    }

    /// The leader epoch stamped on the batch holding `offset`.
    pub fn epoch_at(&self, offset: u64) -> Result<Option<i32>> {
        if offset < self.log_start_offset {
            return Ok(None);
        }
        let Some(seg) = self.segment_for(offset) else {
            return Ok(None);
        };
        Ok(seg
            .find_batch(offset)?
            .filter(|(_, h)| h.base_offset as u64 <= offset)
            .map(|(_, h)| h.partition_leader_epoch))
    }

    /// OffsetForLeaderEpoch: the largest epoch `<= epoch` and where it ends; `None` is UNDEFINED.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// ListOffsets by time: the first record whose timestamp is `>= timestamp`, as
    /// `(offset, its timestamp)`, precise to the record. Compressed batches are opened with
    /// `decompress` (compression codecs belong to the protocol layer, not to storage).
    pub fn offset_for_timestamp(&self, timestamp: i64, decompress: Decompress<'_>) -> Result<Option<(u64, i64)>> {
        for seg in self.segments.values() {
            if let Some((position, header)) = seg.find_batch_by_time(timestamp)? {
                let found = self.locate_record(seg, position, &header, decompress, |ts| ts >= timestamp)?;
                return Ok(Some((found.0.max(self.log_start_offset), found.1)));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the first record with the largest timestamp.
    pub fn max_timestamp(&self, decompress: Decompress<'_>) -> Result<Option<(u64, i64)>> {
        let mut best: Option<(&Segment, i64, u64)> = None;
        for seg in self.segments.values() {
            let (ts, offset) = seg.max_timestamp();
            if !seg.is_empty() && best.is_none_or(|(_, bts, _)| ts > bts) {
                best = Some((seg, ts, offset));
            }
        }
        let Some((seg, ts, offset)) = best else { return Ok(None) };
        match seg.find_batch(offset)? {
            Some((position, header)) => Ok(Some(
                self.locate_record(seg, position, &header, decompress, |t| t >= ts)?,
            )),
            None => Ok(None),
        }
    }

    /// The first record of a batch whose timestamp satisfies `want`.
    fn locate_record(
        &self,
        seg: &Segment,
        position: u64,
        header: &BatchHeader,
        decompress: Decompress<'_>,
        want: impl Fn(i64) -> bool,
    ) -> Result<(u64, i64)> {
        let base = header.base_offset as u64;
        if header.is_log_append_time() {
            // Every record carries the batch's timestamp.
            return Ok((base, header.max_timestamp));
        }
        let bytes = seg.read(position, header.total_size())?;
        let records = if header.compression() == 0 {
            batch::record_timestamps(&bytes, header).map(|recs| {
                recs.into_iter()
                    .map(|(delta, ts)| (base + delta.max(0) as u64, ts))
                    .collect()
            })
        } else {
            decompress(&bytes)
        };
        let found = records.and_then(|recs| recs.into_iter().find(|&(_, ts)| want(ts)));
        if found.is_none() {
            tracing::warn!(dir = %self.dir.display(), offset = base, "cannot read the records of a batch; answering its base offset");
        }
        Ok(found.unwrap_or((base, header.max_timestamp)))
    }

    /// Removes every batch at or after `offset` (a follower's divergent suffix). The log ends at a
    /// batch boundary afterwards; the new log end offset is returned.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64> {
        let leo = self.log_end_offset();
        if offset >= leo {
            return Ok(leo);
        }
        let floor_exists = self.segments.range(..offset).next_back().is_some();
        // Truncation cuts whole batches, so the cut lands at the start of the batch holding
        // `offset`; if that is below the log start, nothing visible survives.
        let cut_at = self
            .segment_for(offset)
            .map(|s| s.find_batch(offset))
            .transpose()?
            .flatten();
        let below_start = cut_at.is_some_and(|(_, h)| (h.base_offset as u64) < self.log_start_offset);
        let restart = offset <= self.log_start_offset || !floor_exists || below_start;
        let doomed: Vec<u64> = if restart {
            self.segments.keys().copied().collect()
        } else {
            self.segments.range(offset..).map(|(&b, _)| b).collect()
        };
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
            }
        }
        let new_end = if restart {
            // Nothing below `offset` survives: start over there, as Kafka's truncateFullyAndStartAt.
            // Below the log start Kafka starts over at the target; a cut that only reaches below
            // it (from inside the batch holding the log start) keeps the log start.
            let start = if offset > self.log_start_offset && floor_exists {
                self.log_start_offset
            } else {
                offset
            };
            let seg = Segment::create(&self.dir, start, &self.config)?;
            self.segments.insert(start, seg);
            self.log_start_offset = start;
            start
        } else {
            let base = self.active_base();
            let config = self.config.clone();
            let seg = self.active_mut(base);
            let end = seg.truncate_to(offset).and_then(|end| seg.sync().map(|()| end));
            match end {
                Ok(end) => {
                    seg.make_active(&config)?;
                    end
                }
                Err(e) => return Err(self.go_offline(e)),
            }
        };
        checkpoint::sync_dir(&self.dir)?;
        self.recovery_point = self.recovery_point.min(new_end);
        let mut epochs_changed = self.epochs.truncate_from_end(new_end);
        epochs_changed |= restart && self.epochs.truncate_from_start(new_end);
        if epochs_changed {
            self.epochs.save()?;
        }
        self.write_checkpoint()?;
        tracing::info!(dir = %self.dir.display(), from = leo, to = new_end, "truncated log suffix");
        Ok(new_end)
    }

    /// Deletes every batch and starts the log over, empty, at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a replica that installs a snapshot from its leader discards
    /// whatever it had, below and above.
    pub fn restart_at(&mut self, offset: u64) -> Result<()> {
        self.check_online()?;
        let doomed: Vec<u64> = self.segments.keys().copied().collect();
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
            }
        }
        let seg = Segment::create(&self.dir, offset, &self.config)?;
        self.segments.insert(offset, seg);
        self.log_start_offset = offset;
        checkpoint::sync_dir(&self.dir)?;
        self.recovery_point = offset;
        // No batch is left to carry an epoch: the next appended ones bring theirs.
        if self.epochs.truncate_from_end(0) {
            self.epochs.save()?;
        }
        self.write_checkpoint()?;
        tracing::info!(dir = %self.dir.display(), offset, "log restarted empty");
        Ok(())
    }

    /// DeleteRecords: moves the log start offset forward (never past the log end) and deletes the
    /// segments wholly below it. Returns whether it moved.
    pub fn set_log_start_offset(&mut self, offset: u64) -> Result<bool> {
        let leo = self.log_end_offset();
        if offset > leo {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.log_start_offset = offset;
        self.delete_segments_below(offset)?;
        if self.epochs.truncate_from_start(offset) {
            self.epochs.save()?;
        }
        self.write_checkpoint()?;
        Ok(true)
    }

    /// Deletes segments whose every offset is below `offset` (never the active segment).
    pub(crate) fn delete_segments_below(&mut self, offset: u64) -> Result<usize> {
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        let mut deleted = 0;
        for pair in bases.windows(2) {
            if pair[1] > offset {
                break;
            }
            if let Some(seg) = self.segments.remove(&pair[0]) {
                tracing::info!(dir = %self.dir.display(), base = pair[0], "deleting segment below the log start");
                seg.delete()?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    pub(crate) fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.values()
    }

    /// fsyncs every segment holding unflushed data and moves the recovery point to the log end.
    pub fn flush(&mut self, now_ms: i64) -> Result<()> {
        self.check_online()?;
        let job = self.flush_job();
        if let Err(e) = job.run() {
            return Err(self.go_offline(e));
        }
        self.complete_flush(job.upto, now_ms);
        Ok(())
    }

    /// `flush.ms`: flushes when the last flush is older than the policy allows.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool> {
        let last = *self.last_flush_ms.get_or_insert(now_ms);
        if self.recovery_point < self.log_end_offset() && now_ms.saturating_sub(last) >= self.config.flush_ms {
            self.flush(now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The fsyncs that would make the current log end durable; run them without holding the lock,
    /// then report back with `complete_flush`.
    pub fn flush_job(&self) -> FlushJob {
        let rp = self.recovery_point;
        let files = self
            .segments
            .values()
            .filter(|s| s.next_offset() > rp)
            .map(|s| {
                (
                    Arc::clone(s.file()),
                    segment::file_path(&self.dir, s.base_offset, segment::LOG_SUFFIX),
                )
            })
            .collect();
        FlushJob {
            files,
            upto: self.log_end_offset(),
        }
    }

    pub fn complete_flush(&mut self, upto: u64, now_ms: i64) {
        if upto > self.recovery_point {
            self.recovery_point = upto.min(self.log_end_offset());
        }
        self.unflushed_records = 0;
        self.last_flush_ms = Some(now_ms);
    }

    /// Records a failed group-commit fsync: the log goes offline.
    pub fn fail_flush(&mut self, err: StorageError) -> StorageError {
        self.go_offline(err)
    }

    /// Persists the recovery point and log start offset.
    pub fn write_checkpoint(&self) -> Result<()> {
        let mut payload = Vec::with_capacity(16);
        payload.extend_from_slice(&self.recovery_point.to_be_bytes());
        payload.extend_from_slice(&self.log_start_offset.to_be_bytes());
        checkpoint::write(&self.dir.join(LOG_CHECKPOINT), &payload)
    }

    /// Clean shutdown: flush, trim the active indexes, checkpoint, and leave the marker that lets
    /// the next open skip recovery.
    pub fn close(mut self, now_ms: i64) -> Result<()> {
        self.shutdown(now_ms)
    }

    /// `close` for a log that others still hold: afterwards it refuses writes, so nothing can
    /// land behind the clean-shutdown marker.
    pub fn shutdown(&mut self, now_ms: i64) -> Result<()> {
        self.flush(now_ms)?;
        for seg in self.segments.values_mut() {
            seg.flush_all()?;
            seg.make_inactive()?;
        }
        self.write_checkpoint()?;
        if self.epochs.latest_epoch().is_some() {
            self.epochs.save()?;
        }
        let marker = self.dir.join(CLEAN_SHUTDOWN);
        fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .io_context("write clean-shutdown marker", &marker)?;
        checkpoint::sync_dir(&self.dir)?;
        self.offline = Some("the log was shut down".to_string());
        Ok(())
    }

    /// Deletes the log and its directory (topic deletion).
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).io_context("delete log directory", &dir)
    }
}

fn read_log_checkpoint(dir: &Path) -> Result<Option<(u64, u64)>> {
    let Some(payload) = checkpoint::read(&dir.join(LOG_CHECKPOINT))? else {
        return Ok(None);
    };
    if payload.len() != 16 {
        return Ok(None);
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&payload[..8]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&payload[8..]);
    Ok(Some((u64::from_be_bytes(a), u64::from_be_bytes(b))))
}

/// Lists segment base offsets and removes leftovers: temp files and indexes without a log.
fn scan_directory(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).io_context("list log directory", dir)? {
        let path = entry.io_context("list log directory", dir)?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let base = (stem.len() == 20).then(|| stem.parse::<u64>().ok()).flatten();
        match (base, ext) {
            (_, "tmp") => fs::remove_file(&path).io_context("remove temp file", &path)?,
            (Some(b), segment::LOG_SUFFIX) => bases.push(b),
            (Some(b), segment::INDEX_SUFFIX | segment::TIME_INDEX_SUFFIX) => indexes.push((b, path)),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in indexes {
        if bases.binary_search(&base).is_err() {
            fs::remove_file(&path).io_context("remove orphan index", &path)?;
        }
    }
    Ok(bases)
}

fn delete_segment_files(dir: &Path, base: u64) -> Result<()> {
    for suffix in [segment::LOG_SUFFIX, segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX] {
        let path = segment::file_path(dir, base, suffix);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).io_context("delete segment", &path),
            _ => {}
        }
    }
    Ok(())
}
