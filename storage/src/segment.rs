//! One segment of a partition log: `<base offset, 20 digits>.log` holding whole record batches back
//! to back (see `batch.rs` for their layout), with its `.index` and `.timeindex` beside it. The log
//! file is the truth; the indexes are caches rebuilt from it whenever they look wrong.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::config::LogConfig;
use crate::error::{IoContext, Result, StorageError};
use crate::offset_index::OffsetIndex;
use crate::time_index::TimeIndex;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Positions in a segment are stored as u32 in the offset index, so no segment may outgrow it.
const MAX_SEGMENT_POSITION: u64 = u32::MAX as u64;
/// Buffer for the sequential scans of recovery.
const RECOVERY_READ_BUFFER: usize = 1 << 20;

pub(crate) fn file_path(dir: &Path, base_offset: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// What a recovery scan of one segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SegmentRecovery {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    /// Why the scan stopped early, if it did.
    pub reason: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    log_path: PathBuf,
    /// Shared so that a group commit can fsync it without holding the log's lock.
    file: Arc<File>,
    size: u64,
    next_offset: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_last_index: u64,
    /// Largest batch max-timestamp in the segment, -1 when empty (Kafka's "no timestamp").
    max_timestamp: i64,
    /// Base offset of the batch that carried `max_timestamp`.
    offset_of_max_timestamp: u64,
    /// What `segment.ms` is measured from: when the first batch arrived (or its timestamp, after
    /// a reopen).
    rolling_timestamp: Option<i64>,
}

impl Segment {
    /// A new, empty, active segment.
    pub fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Self> {
        let log_path = file_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .io_context("create segment", &log_path)?;
        let (mut offset_index, _) = OffsetIndex::open(&file_path(dir, base_offset, INDEX_SUFFIX), base_offset, 0)?;
        let (mut time_index, _) = TimeIndex::open(
            &file_path(dir, base_offset, TIME_INDEX_SUFFIX),
            base_offset,
            base_offset,
        )?;
        offset_index.clear();
        time_index.clear();
        let mut seg = Segment {
            base_offset,
            log_path,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_last_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
        };
        seg.make_active(config)?;
        Ok(seg)
    }

    /// Opens an existing segment. With `recover`, every batch is read and checked and the indexes
    /// are rebuilt; without it the indexes are trusted after a sanity check (and rebuilt if they
    /// fail it). `on_batch` sees every valid batch a recovery scan passes.
    pub fn open(
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        recover: bool,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(Self, SegmentRecovery)> {
        let log_path = file_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .io_context("open segment", &log_path)?;
        let size = file.metadata().io_context("stat segment", &log_path)?.len();
        let index_path = file_path(dir, base_offset, INDEX_SUFFIX);
        let time_path = file_path(dir, base_offset, TIME_INDEX_SUFFIX);
        let indexes_existed = index_path.exists() && time_path.exists();
        let (offset_index, offset_cut) = OffsetIndex::open(&index_path, base_offset, size)?;
        let (time_index, time_cut) = TimeIndex::open(&time_path, base_offset, u64::MAX)?;
        let mut seg = Segment {
            base_offset,
            log_path,
            file: Arc::new(file),
            size,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_last_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
        };
        let trusted = !recover && indexes_existed && !offset_cut && !time_cut && seg.load_tail_state().is_ok();
        let report = if trusted {
            SegmentRecovery {
                valid_bytes: size,
                ..Default::default()
            }
        } else {
            if !recover {
                tracing::info!(segment = %seg.log_path.display(), "indexes missing or inconsistent; rebuilding");
            }
            seg.recover(config, on_batch)?
        };
        seg.rolling_timestamp = seg.first_batch_timestamp();
        Ok((seg, report))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> (i64, u64) {
        (self.max_timestamp, self.offset_of_max_timestamp)
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Whether a write of `bytes` covering offsets up to `last_offset` must go to a new segment.
    pub fn should_roll(&self, bytes: u64, last_offset: u64, now_ms: i64, config: &LogConfig) -> bool {
        if self.is_empty() {
            return false;
        }
        let limit = config.segment_bytes.min(MAX_SEGMENT_POSITION);
        self.size + bytes > limit
            || self
                .rolling_timestamp
                .is_some_and(|t| now_ms.saturating_sub(t) > config.segment_ms)
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || last_offset - self.base_offset > u64::from(u32::MAX)
    }

    /// Writes already-validated, offset-stamped batches at the end of the segment. A failed write
    /// is cut back off so the file never keeps half a batch.
    pub fn append(
        &mut self,
        data: &[u8],
        batches: &[(usize, BatchHeader)],
        now_ms: i64,
        config: &LogConfig,
    ) -> Result<()> {
        let start = self.size;
        if let Err(e) = self.file.write_all_at(data, start) {
            if let Err(cut) = self.file.set_len(start) {
                return Err(StorageError::Offline {
                    dir: self.log_path.clone(),
                    reason: format!("write failed ({e}) and cutting it back failed too ({cut})"),
                });
            }
            return Err(e).io_context("append to segment", &self.log_path);
        }
        for (at, header) in batches {
            self.index_batch(start + *at as u64, header, config.index_interval_bytes);
        }
        self.size += data.len() as u64;
        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = Some(now_ms);
        }
        Ok(())
    }

    fn index_batch(&mut self, position: u64, header: &BatchHeader, interval: u64) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset as u64;
        }
        if self.bytes_since_last_index > interval {
            self.offset_index.append(header.base_offset as u64, position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index = 0;
        }
        self.bytes_since_last_index += header.total_size() as u64;
        self.next_offset = header.last_offset() as u64 + 1;
    }

    fn read_header_at(&self, position: u64) -> Result<BatchHeader> {
        let mut buf = [0u8; HEADER_SIZE];
        self.file
            .read_exact_at(&mut buf, position)
            .io_context("read batch header", &self.log_path)?;
        let header = BatchHeader::parse(&buf)?;
        header.check_structure()?;
        if position + header.total_size() as u64 > self.size {
            return Err(StorageError::corrupt(format!(
                "batch at position {position} runs past the segment end"
            )));
        }
        Ok(header)
    }

    /// Reads `len` bytes from `position` (clamped to the segment end).
    pub fn read(&self, position: u64, len: usize) -> Result<BytesMut> {
        let len = len.min(self.size.saturating_sub(position) as usize);
        let mut buf = BytesMut::zeroed(len);
        self.file
            .read_exact_at(&mut buf, position)
            .io_context("read segment", &self.log_path)?;
        Ok(buf)
    }

    /// The position and header of the first batch whose last offset is `>= offset`, if any.
    /// Batches in a segment are dense (each starts right after the one before), so every header
    /// passed is checked against the offset it must start at: a flipped bit in the base offset,
    /// which the CRC does not cover, is caught here. A stale index entry falls back to a scan
    /// from the segment start.
    pub fn find_batch(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>> {
        let (indexed_offset, position) = self.offset_index.lookup(offset);
        if position > 0 {
            match self.scan_from(position, indexed_offset, offset) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    tracing::warn!(segment = %self.log_path.display(), error = %e, "offset index entry does not match the log")
                }
            }
        }
        self.scan_from(0, self.base_offset, offset)
    }

    fn scan_from(&self, mut position: u64, mut expected_base: u64, offset: u64) -> Result<Option<(u64, BatchHeader)>> {
        while position < self.size {
            let header = self.read_header_at(position)?;
            if header.base_offset != expected_base as i64 || header.last_offset() as u64 >= self.next_offset {
                return Err(StorageError::corrupt(format!(
                    "batch at position {position} of {} claims base offset {} where {expected_base} belongs",
                    self.log_path.display(),
                    header.base_offset
                )));
            }
            if header.last_offset() as u64 >= offset {
                return Ok(Some((position, header)));
            }
            expected_base = header.last_offset() as u64 + 1;
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Finds the first batch whose max timestamp is `>= timestamp`. The time index entry used is
    /// checked against the batch it names before it is trusted.
    pub fn find_batch_by_time(&self, timestamp: i64) -> Result<Option<(u64, BatchHeader)>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start_offset = match self.time_index.lookup(timestamp) {
            Some((entry_ts, offset)) => match self.find_batch(offset)? {
                Some((_, h)) if h.base_offset as u64 == offset && h.max_timestamp == entry_ts => offset,
                _ => {
                    tracing::warn!(segment = %self.log_path.display(), "time index entry does not match the log");
                    self.base_offset
                }
            },
            None => self.base_offset,
        };
        let mut next = self.find_batch(start_offset)?;
        while let Some((pos, header)) = next {
            if header.max_timestamp >= timestamp {
                return Ok(Some((pos, header)));
            }
            let after = pos + header.total_size() as u64;
            next = if after < self.size {
                Some((after, self.read_header_at(after)?))
            } else {
                None
            };
        }
        Ok(None)
    }

    /// Sets `next_offset`, the max timestamp and the index spacing from the indexes' last entries
    /// plus a header scan of the batches after them. Fails if that tail does not parse.
    fn load_tail_state(&mut self) -> Result<()> {
        let (mut offset, mut position) = self.offset_index.last().unwrap_or((self.base_offset, 0));
        if let Some((ts, off)) = self.time_index.last() {
            (self.max_timestamp, self.offset_of_max_timestamp) = (ts, off);
        }
        let indexed_position = position;
        let mut first = true;
        while position < self.size {
            let header = self.read_header_at(position)?;
            if first && position > 0 && header.base_offset as u64 != offset {
                return Err(StorageError::corrupt("last index entry does not point at its batch"));
            }
            first = false;
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.base_offset as u64;
            }
            offset = header.last_offset() as u64 + 1;
            position += header.total_size() as u64;
        }
        self.next_offset = if self.size == 0 { self.base_offset } else { offset };
        if self.time_index.last().is_some_and(|(_, off)| off >= self.next_offset) {
            return Err(StorageError::corrupt("time index points past the end of the segment"));
        }
        self.bytes_since_last_index = self.size - indexed_position;
        Ok(())
    }

    /// The first batch's timestamp, for `segment.ms`. A damaged header only costs an early roll
    /// (reads of that batch are refused by their own checks), so it must not stop the open.
    fn first_batch_timestamp(&self) -> Option<i64> {
        if self.size == 0 {
            return None;
        }
        match self.read_header_at(0) {
            Ok(h) => Some(h.max_timestamp),
            Err(e) => {
                tracing::warn!(segment = %self.log_path.display(), error = %e, "first batch header is unreadable");
                None
            }
        }
    }

    /// Reads every batch from the start, checking structure, CRC32C and offset order; rebuilds both
    /// indexes; cuts the file at the first bad byte.
    pub fn recover(&mut self, config: &LogConfig, on_batch: &mut dyn FnMut(&BatchHeader)) -> Result<SegmentRecovery> {
        self.offset_index.clear();
        self.time_index.clear();
        self.offset_index.resize(config.segment_index_bytes)?;
        self.time_index.resize(config.segment_index_bytes)?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index = 0;

        let file = Arc::clone(&self.file);
        let mut reader = BufReader::with_capacity(RECOVERY_READ_BUFFER, &*file);
        let mut position = 0u64;
        let mut batch = Vec::new();
        let reason = loop {
            if position == self.size {
                break None;
            }
            let remaining = self.size - position;
            if remaining < HEADER_SIZE as u64 {
                break Some(format!("{remaining} trailing bytes are a torn batch"));
            }
            batch.resize(LOG_OVERHEAD, 0);
            reader
                .read_exact(&mut batch)
                .io_context("read segment for recovery", &self.log_path)?;
            let length = i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]);
            let total = LOG_OVERHEAD as i64 + i64::from(length);
            if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 || total as u64 > remaining {
                break Some(format!("batch length {length} does not fit the {remaining} bytes left"));
            }
            batch.resize(total as usize, 0);
            reader
                .read_exact(&mut batch[LOG_OVERHEAD..])
                .io_context("read segment for recovery", &self.log_path)?;
            let header = match batch::validate(&batch) {
                Ok(h) => h,
                Err(e) => break Some(e.to_string()),
            };
            if header.base_offset < 0 || (header.base_offset as u64) < self.next_offset {
                break Some(format!(
                    "batch base offset {} is below the expected {}",
                    header.base_offset, self.next_offset
                ));
            }
            if header.last_offset() as u64 - self.base_offset > u64::from(u32::MAX) {
                break Some(format!(
                    "batch offset {} is beyond this segment's range",
                    header.last_offset()
                ));
            }
            on_batch(&header);
            self.index_batch(position, &header, config.index_interval_bytes);
            position += total as u64;
        };
        drop(reader);
        let truncated = self.size - position;
        if truncated > 0 {
            self.file
                .set_len(position)
                .io_context("truncate segment", &self.log_path)?;
            self.size = position;
        }
        Ok(SegmentRecovery {
            valid_bytes: position,
            truncated_bytes: truncated,
            reason,
        })
    }

    /// Removes every batch whose last offset is `>= offset` and returns the new next offset: the
    /// start of the first removed batch, so the log stays at batch boundaries.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(self.next_offset);
        };
        self.file
            .set_len(position)
            .io_context("truncate segment", &self.log_path)?;
        self.size = position;
        self.offset_index.truncate_to_position(position);
        self.time_index.truncate_to_offset(header.base_offset as u64);
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.load_tail_state()?;
        if self.size == 0 {
            self.rolling_timestamp = None;
        }
        Ok(self.next_offset)
    }

    /// fdatasync of the log file: what makes appended batches durable.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().io_context("fsync segment", &self.log_path)
    }

    /// Full flush at roll or close: log data and both indexes.
    pub fn flush_all(&self) -> Result<()> {
        self.sync()?;
        self.offset_index.flush()?;
        self.time_index.flush()
    }

    /// Preallocates the indexes so that appends are memory writes.
    pub fn make_active(&mut self, config: &LogConfig) -> Result<()> {
        self.offset_index.resize(config.segment_index_bytes)?;
        self.time_index.resize(config.segment_index_bytes)
    }

    /// Cuts the index files to their entries once the segment is no longer written to.
    pub fn make_inactive(&mut self) -> Result<()> {
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    pub fn delete(self) -> Result<()> {
        let Segment {
            log_path,
            offset_index,
            time_index,
            ..
        } = self;
        offset_index.delete()?;
        time_index.delete()?;
        match fs::remove_file(&log_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).io_context("delete segment", &log_path),
            _ => Ok(()),
        }
    }
}
