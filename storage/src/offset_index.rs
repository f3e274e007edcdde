//! The sparse offset index of a segment: every `index.interval.bytes` of log, the offset of a batch
//! and where it starts, so a read binary-searches here and then scans only a few batches.
//!
//! ```text
//! entry (8 bytes, big-endian), one per indexed batch, offsets strictly increasing:
//!   0  4  relative offset (batch base offset - segment base offset)   u32
//!   4  4  byte position of the batch in the .log file                 u32
//! ```
//! The file is preallocated to `segment.index.bytes`; an all-zero entry ends the valid prefix
//! (position 0 is never indexed, the segment's first batch needs no entry).

use std::path::Path;

use crate::error::Result;
use crate::index_file::IndexFile;

pub(crate) const ENTRY_SIZE: usize = 8;

#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: IndexFile,
    base_offset: u64,
}

fn decode(e: &[u8]) -> (u32, u32) {
    (
        u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
        u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
    )
}

impl OffsetIndex {
    /// Opens the index and keeps only its valid prefix (increasing offsets and positions, below
    /// `log_size`). Returns whether anything had to be cut, which tells the caller to rebuild.
    pub fn open(path: &Path, base_offset: u64, log_size: u64) -> Result<(Self, bool)> {
        let mut index = OffsetIndex {
            file: IndexFile::open(path, ENTRY_SIZE)?,
            base_offset,
        };
        let (mut prev_rel, mut prev_pos, mut valid) = (None::<u32>, 0u32, 0usize);
        for i in 0..index.file.len() {
            let (rel, pos) = decode(index.file.entry(i));
            let increasing = prev_rel.is_none_or(|p| rel > p) && pos > prev_pos;
            if !increasing || u64::from(pos) >= log_size {
                break;
            }
            (prev_rel, prev_pos, valid) = (Some(rel), pos, i + 1);
        }
        let cut = valid < index.file.len();
        index.file.truncate_entries(valid);
        Ok((index, cut))
    }

    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.file.len()
    }

    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub fn append(&mut self, offset: u64, position: u64) {
        let mut e = [0u8; ENTRY_SIZE];
        e[..4].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        e[4..].copy_from_slice(&(position as u32).to_be_bytes());
        self.file.push(&e);
    }

    /// The last indexed `(offset, position)` at or below `offset`, or the segment start.
    pub fn lookup(&self, offset: u64) -> (u64, u64) {
        let Some(rel) = offset.checked_sub(self.base_offset) else {
            return (self.base_offset, 0);
        };
        let rel = rel.min(u64::from(u32::MAX)) as u32;
        match self.file.floor_by(rel, |e| decode(e).0) {
            Some(i) => self.entry(i),
            None => (self.base_offset, 0),
        }
    }

    pub fn last(&self) -> Option<(u64, u64)> {
        self.file.len().checked_sub(1).map(|i| self.entry(i))
    }

    fn entry(&self, i: usize) -> (u64, u64) {
        let (rel, pos) = decode(self.file.entry(i));
        (self.base_offset + u64::from(rel), u64::from(pos))
    }

    /// Drops the entries at or beyond byte `position` of the log (after a truncation).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .file
            .floor_by(position.saturating_sub(1), |e| u64::from(decode(e).1))
            .map_or(0, |i| i + 1);
        self.file.truncate_entries(if position == 0 { 0 } else { keep });
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
    fn byte_layout_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("00000000000000000100.index");
        let (mut idx, cut) = OffsetIndex::open(&p, 100, 1 << 20).unwrap();
        assert!(!cut);
        idx.resize(80).unwrap();
        idx.append(110, 4096);
        idx.append(130, 8200);
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 4096));
        assert_eq!(idx.lookup(129), (110, 4096));
        assert_eq!(idx.lookup(1_000_000), (130, 8200));
        idx.trim().unwrap();
        drop(idx);
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw, [0, 0, 0, 10, 0, 0, 16, 0, 0, 0, 0, 30, 0, 0, 0x20, 0x08]);
    }

    #[test]
    fn reopen_keeps_only_the_valid_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.index");
        let (mut idx, _) = OffsetIndex::open(&p, 0, 1 << 20).unwrap();
        idx.resize(800).unwrap();
        for i in 1..=5u64 {
            idx.append(i * 10, i * 1000);
        }
        idx.flush().unwrap();
        drop(idx); // not trimmed: a crash leaves the zeroed preallocation behind
        let (idx, cut) = OffsetIndex::open(&p, 0, 1 << 20).unwrap();
        assert!(cut);
        assert_eq!(idx.entries(), 5);
        // Entries pointing past the end of the log are dropped too.
        let (idx, _) = OffsetIndex::open(&p, 0, 3500).unwrap();
        assert_eq!(idx.last(), Some((30, 3000)));
    }

    #[test]
    fn truncate_to_position_drops_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut idx, _) = OffsetIndex::open(&dir.path().join("i.index"), 0, 1 << 20).unwrap();
        idx.resize(800).unwrap();
        for i in 1..=5u64 {
            idx.append(i * 10, i * 1000);
        }
        idx.truncate_to_position(3000);
        assert_eq!(idx.last(), Some((20, 2000)));
        idx.truncate_to_position(3001);
        assert_eq!(idx.last(), Some((20, 2000)));
        idx.truncate_to_position(0);
        assert_eq!(idx.entries(), 0);
    }
}
