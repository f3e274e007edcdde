//! The time index of a segment: the largest timestamp seen so far and the offset of the batch that
//! carried it, appended alongside offset index entries whenever that maximum grows. It answers
//! "which offset holds the first record at or after time t" without reading the log.
//!
//! ```text
//! entry (12 bytes, big-endian), timestamps strictly increasing:
//!   0  8  max timestamp so far (ms)                                 i64
//!   8  4  relative offset of the batch that carried it              u32
//! ```

use std::path::Path;

use crate::error::Result;
use crate::index_file::IndexFile;

pub(crate) const ENTRY_SIZE: usize = 12;

#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: IndexFile,
    base_offset: u64,
}

fn decode(e: &[u8]) -> (i64, u32) {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&e[..8]);
    (i64::from_be_bytes(ts), u32::from_be_bytes([e[8], e[9], e[10], e[11]]))
}

impl TimeIndex {
    /// Opens the index and keeps its valid prefix (increasing timestamps, non-decreasing offsets
    /// below `next_offset`). Returns whether anything had to be cut.
    pub fn open(path: &Path, base_offset: u64, next_offset: u64) -> Result<(Self, bool)> {
        let mut index = TimeIndex {
            file: IndexFile::open(path, ENTRY_SIZE)?,
            base_offset,
        };
        let (mut prev, mut valid) = (None::<(i64, u32)>, 0usize);
        for i in 0..index.file.len() {
            let (ts, rel) = decode(index.file.entry(i));
            let zero = ts == 0 && rel == 0;
            let ordered = prev.is_none_or(|(pts, prel)| ts > pts && rel >= prel);
            if zero || !ordered || base_offset + u64::from(rel) >= next_offset {
                break;
            }
            (prev, valid) = (Some((ts, rel)), i + 1);
        }
        let cut = valid < index.file.len();
        index.file.truncate_entries(valid);
        Ok((index, cut))
    }

    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Appends `(timestamp, offset)` if the timestamp is larger than the last entry's.
    pub fn maybe_append(&mut self, timestamp: i64, offset: u64) {
        if self.last().is_some_and(|(ts, _)| timestamp <= ts) {
            return;
        }
        let mut e = [0u8; ENTRY_SIZE];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        self.file.push(&e);
    }

    /// Where to start scanning for the first record with timestamp `>= timestamp`: the last entry
    /// whose timestamp is `<= timestamp`, as `(its timestamp, its offset)`; `None` means the
    /// segment start.
    pub fn lookup(&self, timestamp: i64) -> Option<(i64, u64)> {
        let i = self.file.floor_by(timestamp, |e| decode(e).0)?;
        let (ts, rel) = decode(self.file.entry(i));
        Some((ts, self.base_offset + u64::from(rel)))
    }

    pub fn last(&self) -> Option<(i64, u64)> {
        let i = self.file.len().checked_sub(1)?;
        let (ts, rel) = decode(self.file.entry(i));
        Some((ts, self.base_offset + u64::from(rel)))
    }

    /// Drops the entries for offsets at or beyond `offset`.
    pub fn truncate_to_offset(&mut self, offset: u64) {
        let Some(rel) = offset.checked_sub(self.base_offset) else {
            self.file.truncate_entries(0);
            return;
        };
        let keep = match rel.checked_sub(1) {
            None => 0,
            Some(r) => {
                let r = r.min(u64::from(u32::MAX)) as u32;
                let mut n = self.file.len();
                while n > 0 && decode(self.file.entry(n - 1)).1 > r {
                    n -= 1;
                }
                n
            }
        };
        self.file.truncate_entries(keep);
    }

    pub fn clear(&mut self) {
        self.file.truncate_entries(0);
    }

    pub fn resize(&mut self, max_bytes: u64) -> Result<()> {
        self.file.resize(max_bytes)
    }

    pub fn trim(&mut self) -> Result<()> {
        self.file.trim()
    }

    pub fn flush(&self) -> Result<()> {
        self.file.flush()
    }

    pub fn delete(self) -> Result<()> {
        self.file.delete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_layout_lookup_and_monotonicity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("00000000000000000050.timeindex");
        let (mut idx, _) = TimeIndex::open(&p, 50, 1000).unwrap();
        idx.resize(120).unwrap();
        idx.maybe_append(1000, 50);
        idx.maybe_append(900, 60); // older timestamp: skipped
        idx.maybe_append(2000, 70);
        assert_eq!(idx.lookup(999), None);
        assert_eq!(idx.lookup(1000), Some((1000, 50)));
        assert_eq!(idx.lookup(1999), Some((1000, 50)));
        assert_eq!(idx.lookup(5000), Some((2000, 70)));
        assert_eq!(idx.last(), Some((2000, 70)));
        idx.trim().unwrap();
        drop(idx);
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len(), 24);
        assert_eq!(&raw[..12], &[0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0]);
        assert_eq!(&raw[12..], &[0, 0, 0, 0, 0, 0, 0x07, 0xd0, 0, 0, 0, 20]);
        let (mut idx, cut) = TimeIndex::open(&p, 50, 1000).unwrap();
        assert!(!cut);
        idx.truncate_to_offset(70);
        assert_eq!(idx.last(), Some((1000, 50)));
        idx.truncate_to_offset(50);
        assert_eq!(idx.last(), None);
    }
}
