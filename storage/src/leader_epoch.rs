//! Which leader epoch started at which offset: what OffsetForLeaderEpoch answers and what a
//! follower uses to find where its log diverges from the leader's (KIP-101, KIP-279).
//!
//! Persisted as the checkpoint `leader-epoch-checkpoint` (see `checkpoint.rs`) whose payload is:
//! ```text
//!   0  4  entry count                      u32
//!   then per entry (12 bytes):
//!   0  4  leader epoch                     i32
//!   4  8  first offset written in it       u64
//! ```

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::Result;

pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";

#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    /// `(epoch, start offset)`, both strictly increasing.
    entries: Vec<(i32, u64)>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint; `None` when it is missing or unreadable (the caller rebuilds it).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE_NAME);
        let Some(payload) = checkpoint::read(&path)? else {
            return Ok(None);
        };
        let Some(entries) = decode(&payload) else {
            tracing::warn!(path = %path.display(), "leader epoch checkpoint is malformed; rebuilding");
            return Ok(None);
        };
        Ok(Some(LeaderEpochCache { path, entries }))
    }

    pub fn empty(dir: &Path) -> Self {
        LeaderEpochCache {
            path: dir.join(FILE_NAME),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `offset`, if it is newer than every known epoch. Returns
    /// whether the cache changed (and so needs saving).
    pub fn assign(&mut self, epoch: i32, offset: u64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|e| epoch <= e) {
            return false;
        }
        self.entries.push((epoch, offset));
        true
    }

    /// Forgets epochs that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// The log now starts at `start_offset`: earlier epochs go, and the one covering the new start
    /// is moved to begin there.
    pub fn truncate_from_start(&mut self, start_offset: u64) -> bool {
        let covering = self.entries.iter().rposition(|&(_, s)| s <= start_offset);
        match covering {
            Some(i) if i > 0 || self.entries[0].1 < start_offset => {
                self.entries.drain(..i);
                self.entries[0].1 = start_offset;
                true
            }
            _ => false,
        }
    }

    /// Kafka's answer to OffsetForLeaderEpoch: the largest epoch `<= requested` and the offset where
    /// the next higher epoch starts (the log end for the latest epoch). `None` is UNDEFINED.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: u64) -> Option<(i32, u64)> {
        if requested < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().position(|&(e, _)| e > requested)?;
        let start_of_higher = self.entries[higher].1;
        match higher.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].0, start_of_higher)),
            None => Some((requested, start_of_higher)),
        }
    }

    /// The epoch in force at `offset`, by this history.
    pub fn epoch_for(&self, offset: u64) -> Option<i32> {
        self.entries.iter().rev().find(|&&(_, s)| s <= offset).map(|e| e.0)
    }

    pub fn save(&self) -> Result<()> {
        let mut payload = Vec::with_capacity(4 + 12 * self.entries.len());
        payload.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for &(epoch, start) in &self.entries {
            payload.extend_from_slice(&epoch.to_be_bytes());
            payload.extend_from_slice(&start.to_be_bytes());
        }
        checkpoint::write(&self.path, &payload)
    }
}

fn decode(payload: &[u8]) -> Option<Vec<(i32, u64)>> {
    let count = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let body = payload.get(4..)?;
    if body.len() != count.checked_mul(12)? {
        return None;
    }
    let entries: Vec<(i32, u64)> = body
        .chunks_exact(12)
        .map(|c| {
            let epoch = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let mut start = [0u8; 8];
            start.copy_from_slice(&c[4..]);
            (epoch, u64::from_be_bytes(start))
        })
        .collect();
    let increasing = entries.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
    increasing.then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            path: PathBuf::from("/nonexistent"),
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        // Epoch 1 wrote offsets 0..10, epoch 3 wrote 10..25, epoch 4 from 25 to the end (40).
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(
            c.end_offset_for(4, 40),
            Some((4, 40)),
            "latest epoch ends at the log end"
        );
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        assert_eq!(
            c.end_offset_for(2, 40),
            Some((1, 10)),
            "unknown epoch answers with the one below it"
        );
        assert_eq!(
            c.end_offset_for(0, 40),
            Some((0, 0)),
            "older than all: the first epoch's start"
        );
        assert_eq!(c.end_offset_for(5, 40), None, "newer than all: undefined");
        assert_eq!(c.end_offset_for(-1, 40), None);
        assert_eq!(cache(&[]).end_offset_for(1, 0), None);
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = cache(&[]);
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5), "same epoch again is no change");
        assert!(!c.assign(0, 6), "older epoch is ignored");
        assert!(c.assign(3, 10));
        assert!(c.assign(4, 25));
        assert_eq!(c.epoch_for(12), Some(3));
        assert!(c.truncate_from_end(25));
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(3, 12)]);
        assert!(!c.truncate_from_start(12));
    }

    #[test]
    fn persists_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::empty(dir.path());
        c.assign(2, 0);
        c.assign(5, 100);
        c.save().unwrap();
        let back = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.entries(), &[(2, 0), (5, 100)]);
        assert_eq!(decode(&[0, 0, 0, 2, 1]), None);
        assert_eq!(decode(&[0, 0, 0, 0]), Some(vec![]));
    }
}
