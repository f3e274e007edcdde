//! Producer id allocation for InitProducerId. A producer id must never be handed out twice, not
//! even across restarts: two producers sharing one would see each other's sequence numbers and be
//! refused or, worse, deduplicated against each other. Ids are reserved in blocks of
//! `PRODUCER_ID_BLOCK_SIZE` and the end of the reserved block is persisted before any id from it
//! is handed out, so only one init in a thousand costs an fsync and a restart resumes above every
//! id that may have been used (skipping the unused rest of the block, as Kafka does).
//!
//! File `<data_dir>/meta/producer-ids`, written with `skiff_storage::checkpoint` (CRC32, atomic
//! rename). Payload, big-endian:
//! ```text
//! offset  size  field
//!      0     8  i64: the end of the reserved block; every id ever handed out is below it
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use skiff_storage::{StorageError, checkpoint};

/// Ids reserved per persisted block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
const FILE: &str = "producer-ids";

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("could not reserve producer ids: {0}")]
    Storage(#[from] StorageError),
    #[error("producer ids are exhausted")]
    Exhausted,
}

#[derive(Debug)]
struct State {
    /// The next id to hand out.
    next: i64,
    /// End of the reserved (persisted) block; `next == block_end` means reserve another first.
    block_end: i64,
}

#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    state: Mutex<State>,
}

impl ProducerIdManager {
    /// Reads the persisted mark in `meta_dir`. A missing file means a new broker (ids from 0);
    /// an unreadable one is logged, and the broker should then raise the start with
    /// `ensure_above` past the ids its partitions still know.
    pub fn open(meta_dir: &Path) -> Result<Self, StorageError> {
        let path = meta_dir.join(FILE);
        let mark = match checkpoint::read(&path)? {
            Some(payload) => match <[u8; 8]>::try_from(payload.as_slice()) {
                Ok(bytes) => i64::from_be_bytes(bytes).max(0),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "producer id mark has the wrong size; ignoring it");
                    0
                }
            },
            None => {
                if path.exists() {
                    tracing::warn!(path = %path.display(), "producer id mark is unreadable; restarting above the ids the partitions know");
                }
                0
            }
        };
        Ok(ProducerIdManager {
            path,
            state: Mutex::new(State {
                next: mark,
                block_end: mark,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure no id up to `id` is handed out again (ids found in partition state on start,
    /// in case the persisted mark was lost).
    pub fn ensure_above(&self, id: i64) {
        let mut st = self.lock();
        if id >= st.next {
            st.next = id.saturating_add(1);
            st.block_end = st.next;
        }
    }

    /// A producer id never handed out before.
    pub fn next_id(&self) -> Result<i64, ProducerIdError> {
        let mut st = self.lock();
        if st.next >= st.block_end {
            let end = st
                .next
                .checked_add(PRODUCER_ID_BLOCK_SIZE)
                .ok_or(ProducerIdError::Exhausted)?;
            checkpoint::write(&self.path, &end.to_be_bytes())?;
            st.block_end = end;
        }
        let id = st.next;
        st.next += 1;
        Ok(id)
    }

    /// Whether `id` may have been handed out by this broker (now or before a restart).
    pub fn was_issued(&self, id: i64) -> bool {
        id >= 0 && id < self.lock().next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..5).map(|_| ids.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        assert!(ids.was_issued(4) && !ids.was_issued(5) && !ids.was_issued(-1));
        drop(ids);
        // A restart (clean or not) resumes above the persisted block.
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(ids.next_id().unwrap(), PRODUCER_ID_BLOCK_SIZE);
        assert!(ids.was_issued(3));
    }

    #[test]
    fn one_fsync_per_block() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        for expected in 0..(PRODUCER_ID_BLOCK_SIZE + 2) {
            assert_eq!(ids.next_id().unwrap(), expected);
        }
        let payload = checkpoint::read(&dir.path().join(FILE)).unwrap().unwrap();
        assert_eq!(payload, (2 * PRODUCER_ID_BLOCK_SIZE).to_be_bytes());
    }

    #[test]
    fn a_lost_mark_restarts_above_known_ids() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        ids.next_id().unwrap();
        drop(ids);
        std::fs::write(dir.path().join(FILE), b"garbage-garbage").unwrap();
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        ids.ensure_above(41);
        assert_eq!(ids.next_id().unwrap(), 42);
        ids.ensure_above(10);
        assert_eq!(ids.next_id().unwrap(), 43);
    }
}
