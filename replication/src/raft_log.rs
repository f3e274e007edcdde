//! A `raft::Storage` whose log *is* the partition log: every data byte is written once, into the
//! `skiff_storage::Log` that fetches are served from.
//!
//! Layout of a partition directory (beside the files of `skiff_storage::log`):
//! ```text
//! 000….log / .index / .timeindex  data entries: one Kafka batch per Raft data entry, in Raft
//!                                 order, baseOffset = the Kafka offset the offset translator
//!                                 assigns, partitionLeaderEpoch = the entry's Raft term
//! raft-state                      checkpoint: hard state, conf state, snapshot index and term,
//!                                 the index of the last conf change the conf state includes,
//!                                 and the Kafka offset where the entry after the snapshot starts
//! raft-entries                    checkpoint: every non-data entry (index, term, type, data,
//!                                 context) above the snapshot
//! ```
//! Nothing else is persisted: at open the entries are re-walked from the snapshot index on — an
//! index listed in `raft-entries` is that non-data entry, any other index is the next batch of the
//! partition log (term = its leader epoch) — which rebuilds the offset translator and the term
//! index. The walk stops at the first index that is neither, so whatever a crash left is a prefix.
//!
//! Crash ordering (each step is fsync'd before the next): truncation cuts the partition log first,
//! then rewrites `raft-entries`; an append writes `raft-entries` (only when it holds non-data
//! entries or followed a truncation) before the batches. A crash between steps thus leaves either
//! the old log's prefix or the new log's prefix, never batches at shifted indexes. Data batches
//! are fsync'd before `append` returns.
//!
//! Group commit: `append_unsynced` leaves the batches in the page cache and `sync` fsyncs them,
//! so a driver of many groups can write every group's entries, then fsync each touched log once.
//! Until `sync`, only `raft-entries` may mention the unsynced suffix, and that is safe: a crash
//! loses a suffix of the batches, the walk at open stops at the first missing one and drops the
//! non-data entries past it. `raft-state` (whose commit index could point into that suffix) is
//! never written while batches are unsynced: every write of it syncs them first.
//!
//! The commit index is volatile in Raft (Figure 2): `note_commit` keeps it in memory only (the
//! high watermark follows it at once) and it reaches `raft-state` with the next write of that file
//! (`set_hard_state` on a term or vote change, `set_commit`, or `persist_commit` on Kafka's
//! `replica.high.watermark.checkpoint.interval.ms`). After a crash the replica restarts from an
//! older commit index and learns the rest from its leader.
//!
//! Snapshots (retention, DeleteRecords): the partition log is the Raft log, so compacting it is
//! moving its log start. `advance_log_start` records a snapshot at the last applied entry wholly
//! below the new start (index, term, the Kafka offset where the next entry starts) in
//! `raft-state` first, then moves the partition log's start (deleting whole segments); a crash in
//! between is finished at open. A snapshot carries no data: everything below it is deleted, so a
//! replica that installs one (`install_snapshot`: far behind the leader's log start, or an empty
//! data dir) starts its log over, empty, at that offset, and the entries after it follow.
//!
//! Configuration changes (reassignment): the conf state in `raft-state` must be the one every
//! committed conf-change entry up to its commit index produced, because raft-rs restarts with
//! `applied` = that commit index and never re-applies below it. A conf change is applied (and
//! `set_conf_state` writes it) only after its entry is committed, so a commit index written in
//! between could cover a change the conf state lacks: every write of `raft-state` therefore
//! keeps its commit index below the first committed conf change not applied yet, and the
//! restarted replica is handed that change again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage};
use skiff_storage::batch::{self, BatchHeader};
use skiff_storage::{Log, LogConfig, StorageError, checkpoint};

use crate::offset_translator::{OffsetTranslator, TranslatorError};

const RAFT_STATE: &str = "raft-state";
const RAFT_ENTRIES: &str = "raft-entries";
/// How much of the partition log one read pulls while serving `entries`.
const READ_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Translator(#[from] TranslatorError),
    #[error("raft log in {dir} is corrupt: {reason}")]
    Corrupt { dir: PathBuf, reason: String },
    #[error("invalid raft entry {index}: {reason}")]
    InvalidEntry { index: u64, reason: String },
}

impl From<RaftLogError> for raft::Error {
    fn from(e: RaftLogError) -> Self {
        raft::Error::Store(raft::StorageError::Other(Box::new(e)))
    }
}

/// Whether an entry carries a Kafka batch (as opposed to an entry consumers must never see).
pub fn is_data_entry(e: &Entry) -> bool {
    e.entry_type == EntryType::EntryNormal as i32 && !e.data.is_empty()
}

/// Whether an entry changes the group's configuration.
pub fn is_conf_change(e: &Entry) -> bool {
    e.entry_type == EntryType::EntryConfChange as i32 || e.entry_type == EntryType::EntryConfChangeV2 as i32
}

/// The Raft log of one partition replica. Cheap to clone; clones share state (as `MemStorage`).
#[derive(Debug, Clone)]
pub struct LogStorage {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    log: Log,
    hard_state: HardState,
    /// The commit index `raft-state` holds.
    persisted_commit: u64,
    conf_state: ConfState,
    /// The index of the last conf-change entry `conf_state` includes.
    conf_index: u64,
    snapshot_index: u64,
    snapshot_term: u64,
    /// The Kafka offset where entry `snapshot_index + 1` starts.
    snapshot_offset: u64,
    /// A log start a just-installed snapshot asked for, applied once the log reaches it.
    pending_log_start: Option<u64>,
    translator: OffsetTranslator,
    non_data: BTreeMap<u64, Entry>,
    /// `(first index, term)` of every run of entries with the same term, sorted.
    terms: Vec<(u64, u64)>,
    /// Appends of batches so far; `synced` is the count the last completed fsync covered, so
    /// batches wait for an fsync while they differ.
    appended: u64,
    synced: u64,
    /// Truncations and snapshot installs so far: an fsync run outside the lock must not move the
    /// recovery point over a suffix cut (and perhaps rewritten) while it ran.
    cuts: u64,
    /// Reads of data entries' batches for raft-rs (see [`payload_wanted`]).
    payload_reads: AtomicU64,
}

impl LogStorage {
    /// Opens the replica's Raft log in `dir`; a new one starts with `initial` as its configuration
    /// (every replica of a new group must be given the same).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig, initial: ConfState) -> Result<Self, RaftLogError> {
        let dir = dir.as_ref().to_path_buf();
        let mut log = Log::open(&dir, config)?;
        let corrupt = |reason: &str| RaftLogError::Corrupt {
            dir: dir.clone(),
            reason: reason.to_string(),
        };
        // Both side files are trusted or the replica refuses to open: a lost hard state could
        // vote twice in a term, a lost entries file would shift batches to other Raft indexes.
        // Such a replica must be rebuilt from its leader (an emptied data dir does that).
        let state = checkpoint::read(&dir.join(RAFT_STATE))?;
        let entries = checkpoint::read(&dir.join(RAFT_ENTRIES))?;
        let log_empty = log.log_end_offset() == log.log_start_offset();
        let (saved, mut non_data) = match (state, entries) {
            (Some(state), Some(entries)) => (
                decode_state(&state).ok_or_else(|| corrupt("unreadable raft-state"))?,
                decode_entries(&entries).ok_or_else(|| corrupt("unreadable raft-entries"))?,
            ),
            // A new replica (or a crash while creating one: raft-entries is written first).
            (None, entries)
                if log_empty && entries.as_deref().is_none_or(|e| e == encode_entries(&BTreeMap::new())) =>
            {
                let non_data = BTreeMap::new();
                checkpoint::write(&dir.join(RAFT_ENTRIES), &encode_entries(&non_data))?;
                let saved = SavedState {
                    hard_state: HardState::default(),
                    conf_state: initial,
                    snapshot_index: 0,
                    snapshot_term: 0,
                    conf_index: Some(0),
                    snapshot_offset: Some(log.log_start_offset()),
                };
                checkpoint::write(&dir.join(RAFT_STATE), &encode_state(&saved))?;
                (saved, non_data)
            }
            (None, _) => return Err(corrupt("raft-state is missing or fails its CRC")),
            (Some(_), None) => return Err(corrupt("raft-entries is missing or fails its CRC")),
        };
        let SavedState {
            hard_state,
            conf_state,
            snapshot_index,
            snapshot_term,
            conf_index: saved_conf_index,
            snapshot_offset,
        } = saved;
        non_data = non_data.split_off(&(snapshot_index + 1));
        // A snapshot recorded before the crash that kept the log start from moving with it
        // (or from installing it): finish that now.
        let snapshot_offset = snapshot_offset.unwrap_or_else(|| log.log_start_offset());
        if log.log_start_offset() < snapshot_offset {
            if log.log_end_offset() <= snapshot_offset {
                log.restart_at(snapshot_offset)?;
            } else {
                log.set_log_start_offset(snapshot_offset)?;
            }
        }

        let headers = read_headers(&log)?;
        let mut translator = OffsetTranslator::new(snapshot_index + 1, snapshot_offset);
        let mut terms: Vec<(u64, u64)> = Vec::new();
        let mut batches = headers.iter();
        let mut index = snapshot_index + 1;
        loop {
            let term = if let Some(e) = non_data.get(&index) {
                translator.append_non_data(index)?;
                e.term
            } else if let Some(h) = batches.next() {
                if h.base_offset < 0 || h.base_offset as u64 != translator.next_offset() {
                    return Err(corrupt("a batch does not start where the previous entry ended"));
                }
                translator.append_data(index, record_span(h))?;
                u64::try_from(h.partition_leader_epoch).map_err(|_| corrupt("batch without a leader epoch"))?
            } else {
                break;
            };
            push_term(&mut terms, index, term);
            index += 1;
        }
        // Every conf change at or below the written commit index is in the written conf state
        // (see the module doc).
        let derived = non_data
            .range(..=hard_state.commit)
            .rev()
            .find(|(_, e)| is_conf_change(e))
            .map_or(snapshot_index, |(&i, _)| i);
        let conf_index = saved_conf_index.unwrap_or(derived).max(derived);
        let mut inner = Inner {
            dir,
            conf_index,
            persisted_commit: hard_state.commit,
            hard_state,
            conf_state,
            snapshot_index,
            snapshot_term,
            snapshot_offset,
            pending_log_start: None,
            non_data,
            terms,
            translator,
            log,
            appended: 0,
            synced: 0,
            cuts: 0,
            payload_reads: AtomicU64::new(0),
        };
        // A crash can leave batches past the walk (appended after an entries file that did not
        // survive): they are not part of the Raft log, drop them.
        let end = inner.translator.next_offset();
        if inner.log.log_end_offset() > end {
            tracing::warn!(dir = %inner.dir.display(), end, "dropping partition-log batches past the raft log");
            inner.log.truncate_to(end)?;
        }
        let stale = inner.non_data.split_off(&inner.translator.next_index());
        if !stale.is_empty() {
            inner.save_entries()?;
        }
        tracing::debug!(
            dir = %inner.dir.display(),
            first = inner.translator.first_index(),
            last = inner.translator.last_index(),
            "opened raft log"
        );
        Ok(Self {
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    fn rl(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn wl(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Persists entries from a `Ready` (truncating a conflicting suffix first, as Raft requires).
    /// Data entries must each hold exactly one Kafka batch; it is stamped with its Kafka base
    /// offset and with the entry's term as its leader epoch. Durable when this returns.
    pub fn append(&self, entries: &[Entry], now_ms: i64) -> Result<(), RaftLogError> {
        let mut inner = self.wl();
        inner.append(entries, now_ms)?;
        inner.sync(now_ms).map(drop)
    }

    /// `append` without the fsync of the batches (group commit): they are durable once `sync`
    /// returns. Raft must not be told they are persisted (`advance`) before that.
    pub fn append_unsynced(&self, entries: &[Entry], now_ms: i64) -> Result<(), RaftLogError> {
        self.wl().append(entries, now_ms)
    }

    /// fsyncs the batches of earlier `append_unsynced` calls; returns whether there were any
    /// (whether an fsync of the partition log ran). The fsync runs outside the lock, so appends,
    /// reads and other logs' syncs go on meanwhile (group commit of the Raft loop).
    pub fn sync(&self, now_ms: i64) -> Result<bool, RaftLogError> {
        let (job, appended, cuts) = {
            let inner = self.rl();
            if inner.appended == inner.synced {
                return Ok(false);
            }
            inner.log.check_online()?;
            (inner.log.flush_job(), inner.appended, inner.cuts)
        };
        let result = job.run();
        let mut inner = self.wl();
        if let Err(e) = result {
            return Err(inner.log.fail_flush(e).into());
        }
        if inner.cuts == cuts {
            inner.log.complete_flush(job.upto, now_ms);
            inner.synced = inner.synced.max(appended);
        }
        Ok(true)
    }

    pub fn hard_state(&self) -> HardState {
        self.rl().hard_state.clone()
    }

    pub fn set_hard_state(&self, hs: HardState) -> Result<(), RaftLogError> {
        let mut inner = self.wl();
        inner.hard_state = hs;
        inner.save_state()
    }

    /// Raises the commit index in memory only (see the module doc); never lowers it. The
    /// entries it covers must be durable (appended and synced) already.
    pub fn note_commit(&self, commit: u64) {
        let mut inner = self.wl();
        inner.hard_state.commit = inner.hard_state.commit.max(commit);
    }

    /// Writes `raft-state` if its commit index lags the one in memory; returns whether it did.
    pub fn persist_commit(&self) -> Result<bool, RaftLogError> {
        let mut inner = self.wl();
        if inner.persisted_commit == inner.writable_commit() {
            return Ok(false);
        }
        inner.save_state()?;
        Ok(true)
    }

    /// The commit index `raft-state` holds (what a restart begins from).
    pub fn persisted_commit(&self) -> u64 {
        self.rl().persisted_commit
    }

    pub fn set_commit(&self, commit: u64) -> Result<(), RaftLogError> {
        let mut inner = self.wl();
        inner.hard_state.commit = commit;
        inner.save_state()
    }

    /// Records the configuration produced by applying the committed (and durable) conf-change
    /// entry at `index`. The commit index written with it covers `index`: a restart must not
    /// hand raft-rs that entry to apply a second time.
    pub fn set_conf_state(&self, cs: ConfState, index: u64) -> Result<(), RaftLogError> {
        let mut inner = self.wl();
        inner.conf_state = cs;
        inner.conf_index = inner.conf_index.max(index);
        inner.hard_state.commit = inner.hard_state.commit.max(index);
        inner.save_state()
    }

    /// Moves the log start to `offset` (DeleteRecords, retention), never past the entries
    /// applied (`applied`, the driver's applied index): records a snapshot at the last entry
    /// wholly below it first (see the module doc). Returns the log start afterwards.
    pub fn advance_log_start(&self, offset: u64, applied: u64) -> Result<u64, RaftLogError> {
        let mut inner = self.wl();
        let applied = applied.min(inner.hard_state.commit).min(inner.translator.last_index());
        let limit = inner
            .translator
            .end_offset_at(applied)
            .unwrap_or_else(|| inner.log.log_start_offset());
        let offset = offset.min(limit);
        if offset <= inner.log.log_start_offset() {
            return Ok(inner.log.log_start_offset());
        }
        let through = match inner.translator.index_of(offset) {
            Some(holding) => holding - 1,
            None => applied,
        }
        .min(applied);
        let compact = through > inner.snapshot_index;
        if compact {
            let term = inner.term(through).ok_or_else(|| RaftLogError::InvalidEntry {
                index: through,
                reason: "no term for the snapshot index".into(),
            })?;
            let at = inner
                .translator
                .end_offset_at(through)
                .ok_or_else(|| RaftLogError::InvalidEntry {
                    index: through,
                    reason: "no offset for the snapshot index".into(),
                })?;
            inner.snapshot_index = through;
            inner.snapshot_term = term;
            inner.snapshot_offset = at;
            inner.save_state()?;
        }
        inner.log.set_log_start_offset(offset)?;
        if compact {
            inner.translator.compact_through(through)?;
            inner.non_data = inner.non_data.split_off(&(through + 1));
            let next_term = inner.term(through + 1);
            inner.terms.retain(|&(first, _)| first > through + 1);
            if let Some(t) = next_term {
                inner.terms.insert(0, (through + 1, t));
            }
            inner.save_entries()?;
            tracing::debug!(dir = %inner.dir.display(), snapshot_index = through, log_start = offset, "raft log compacted");
        }
        Ok(inner.log.log_start_offset())
    }

    /// Installs a snapshot from the leader (this replica is behind its log start): everything
    /// this replica had is dropped and its log starts over, empty, where the leader's next
    /// entry starts (see the module doc for the crash ordering).
    pub fn install_snapshot(&self, snapshot: &Snapshot) -> Result<(), RaftLogError> {
        let meta = snapshot.get_metadata();
        let (offset, log_start, conf_index) =
            decode_snapshot_data(&snapshot.data).ok_or_else(|| RaftLogError::InvalidEntry {
                index: meta.index,
                reason: "unreadable snapshot data".into(),
            })?;
        let mut inner = self.wl();
        if meta.index <= inner.snapshot_index {
            return Ok(());
        }
        inner.snapshot_index = meta.index;
        inner.snapshot_term = meta.term;
        inner.snapshot_offset = offset;
        inner.conf_state = meta.get_conf_state().clone();
        inner.conf_index = conf_index.max(meta.index);
        inner.hard_state.commit = inner.hard_state.commit.max(meta.index);
        inner.translator = OffsetTranslator::new(meta.index + 1, offset);
        inner.terms.clear();
        inner.non_data.clear();
        inner.save_state()?;
        inner.log.restart_at(offset)?;
        inner.cuts += 1;
        inner.save_entries()?;
        inner.pending_log_start = (log_start > offset).then_some(log_start);
        tracing::info!(
            dir = %inner.dir.display(),
            index = meta.index,
            term = meta.term,
            offset,
            "installed a snapshot from the leader: the log starts over"
        );
        Ok(())
    }

    /// The snapshot this log starts after: (index, term, Kafka offset of the next entry).
    pub fn snapshot_point(&self) -> (u64, u64, u64) {
        let inner = self.rl();
        (inner.snapshot_index, inner.snapshot_term, inner.snapshot_offset)
    }

    /// The index of the last conf change the configuration includes.
    pub fn conf_index(&self) -> u64 {
        self.rl().conf_index
    }

    /// The configuration as last applied (what a restart begins from).
    pub fn conf_state(&self) -> ConfState {
        self.rl().conf_state.clone()
    }

    /// The Kafka offset after the last committed data entry: consumers never read past it.
    pub fn high_watermark(&self) -> u64 {
        let inner = self.rl();
        let commit = inner.hard_state.commit.min(inner.translator.last_index());
        inner
            .translator
            .end_offset_at(commit)
            .unwrap_or_else(|| inner.log.log_start_offset())
    }

    pub fn log_end_offset(&self) -> u64 {
        self.rl().log.log_end_offset()
    }

    /// Kafka batches from `start` below `max_offset`, as a fetch would serve them.
    pub fn read(&self, start: u64, max_bytes: usize, max_offset: u64) -> Result<Bytes, RaftLogError> {
        Ok(self.rl().log.read(start, max_bytes, max_offset)?)
    }

    /// Runs `f` on the partition log for lookups (offsets by time, epochs, sizes) and config
    /// changes. It must not append, truncate or move the log start: Raft owns those.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> R {
        f(&mut self.wl().log)
    }

    /// The term of the entry at `index`, if the log holds it.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        let inner = self.rl();
        if index < inner.translator.first_index() || index > inner.translator.last_index() {
            return None;
        }
        inner.term(index)
    }

    /// The Raft index of the data entry holding Kafka offset `offset`.
    pub fn index_of_offset(&self, offset: u64) -> Option<u64> {
        self.rl().translator.index_of(offset)
    }

    /// The Kafka offsets a Raft entry covers (empty for a non-data entry).
    pub fn offsets_of_index(&self, index: u64) -> Option<std::ops::Range<u64>> {
        self.rl().translator.offsets_of(index)
    }

    /// Whether entry `index` is a data entry (a Kafka batch) of this log.
    pub fn is_data_index(&self, index: u64) -> bool {
        self.rl().translator.is_data(index)
    }

    /// How often raft-rs had data entries read back from the partition log with their batches
    /// (to send them to a follower, see [`payload_wanted`]).
    pub fn payload_reads(&self) -> u64 {
        self.rl().payload_reads.load(Ordering::Relaxed)
    }

    /// Indexes of the non-data entries currently in the log.
    pub fn non_data_indexes(&self) -> Vec<u64> {
        self.rl().non_data.keys().copied().collect()
    }

    /// Flushes and closes the partition log (clean shutdown).
    pub fn shutdown(&self, now_ms: i64) -> Result<(), RaftLogError> {
        Ok(self.wl().log.shutdown(now_ms)?)
    }
}

/// Offsets a batch spans: the log assigns `lastOffsetDelta + 1` of them.
fn record_span(h: &BatchHeader) -> u64 {
    u64::try_from(h.last_offset_delta).unwrap_or(0) + 1
}

fn push_term(terms: &mut Vec<(u64, u64)>, index: u64, term: u64) {
    if terms.last().is_none_or(|&(_, t)| t != term) {
        terms.push((index, term));
    }
}

/// Headers of every batch of the log, in order.
fn read_headers(log: &Log) -> Result<Vec<BatchHeader>, RaftLogError> {
    let mut out = Vec::new();
    let mut pos = log.log_start_offset();
    while pos < log.log_end_offset() {
        let buf = log.read(pos, READ_CHUNK_BYTES, u64::MAX)?;
        let split = batch::split_batches(&buf)?;
        let Some((_, last)) = split.last() else { break };
        pos = last.last_offset() as u64 + 1;
        out.extend(split.into_iter().map(|(_, h)| h));
    }
    Ok(out)
}

impl Inner {
    fn sync(&mut self, now_ms: i64) -> Result<bool, RaftLogError> {
        if self.appended == self.synced {
            return Ok(false);
        }
        self.log.flush(now_ms)?;
        self.synced = self.appended;
        Ok(true)
    }

    /// Writes `raft-state`, first fsyncing any unsynced batches: its commit index may point into
    /// them, and a durable commit index past the durable log would not reopen.
    /// The commit index `raft-state` may hold: below the first conf change not applied yet.
    fn writable_commit(&self) -> u64 {
        let unapplied = self
            .non_data
            .range(self.conf_index + 1..)
            .find(|(_, e)| is_conf_change(e))
            .map(|(&i, _)| i);
        match unapplied {
            Some(i) => self.hard_state.commit.min(i - 1),
            None => self.hard_state.commit,
        }
    }

    fn save_state(&mut self) -> Result<(), RaftLogError> {
        self.sync(0)?;
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = self.writable_commit();
        let payload = encode_state(&SavedState {
            hard_state: hard_state.clone(),
            conf_state: self.conf_state.clone(),
            snapshot_index: self.snapshot_index,
            snapshot_term: self.snapshot_term,
            conf_index: Some(self.conf_index),
            snapshot_offset: Some(self.snapshot_offset),
        });
        checkpoint::write(&self.dir.join(RAFT_STATE), &payload)?;
        self.persisted_commit = hard_state.commit;
        Ok(())
    }

    fn save_entries(&self) -> Result<(), RaftLogError> {
        Ok(checkpoint::write(
            &self.dir.join(RAFT_ENTRIES),
            &encode_entries(&self.non_data),
        )?)
    }

    fn term(&self, index: u64) -> Option<u64> {
        let i = self.terms.partition_point(|&(first, _)| first <= index);
        i.checked_sub(1).map(|i| self.terms[i].1)
    }

    fn append(&mut self, entries: &[Entry], now_ms: i64) -> Result<(), RaftLogError> {
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        if first < self.translator.first_index() || first > self.translator.next_index() {
            return Err(RaftLogError::InvalidEntry {
                index: first,
                reason: format!(
                    "outside the log [{}, {}]",
                    self.translator.first_index(),
                    self.translator.next_index()
                ),
            });
        }
        // Validate everything before changing anything.
        let mut prepared: Vec<Option<(Vec<u8>, u64)>> = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let invalid = |reason: String| RaftLogError::InvalidEntry { index: e.index, reason };
            if e.index != first + i as u64 {
                return Err(invalid("entries are not consecutive".into()));
            }
            if !is_data_entry(e) {
                prepared.push(None);
                continue;
            }
            if !e.context.is_empty() {
                return Err(invalid("a data entry carries a context".into()));
            }
            let epoch =
                i32::try_from(e.term).map_err(|_| invalid(format!("term {} exceeds a leader epoch", e.term)))?;
            let header = batch::validate(&e.data).map_err(|err| invalid(err.to_string()))?;
            let mut data = e.data.clone();
            batch::set_leader_epoch(&mut data, epoch);
            prepared.push(Some((data, record_span(&header))));
        }

        let mut entries_changed = false;
        if first < self.translator.next_index() {
            let end = self.translator.truncate_after(first - 1)?;
            self.log.truncate_to(end)?;
            self.cuts += 1;
            self.non_data.split_off(&first);
            let keep = self.terms.partition_point(|&(i, _)| i < first);
            self.terms.truncate(keep);
            entries_changed = true;
            tracing::info!(dir = %self.dir.display(), from_index = first, to_offset = end, "truncated raft log suffix");
        }
        let mut batches = Vec::new();
        for (e, prepared) in entries.iter().zip(prepared) {
            match prepared {
                Some((mut data, span)) => {
                    let range = self.translator.append_data(e.index, span)?;
                    batch::set_base_offset(&mut data, range.start);
                    batches.extend_from_slice(&data);
                }
                None => {
                    self.translator.append_non_data(e.index)?;
                    self.non_data.insert(e.index, e.clone());
                    entries_changed = true;
                }
            }
            push_term(&mut self.terms, e.index, e.term);
        }
        if entries_changed {
            self.save_entries()?;
        }
        if !batches.is_empty() {
            self.log.append_replicated(&batches, now_ms)?;
            self.appended += 1;
        }
        if let Some(start) = self.pending_log_start
            && self.log.log_end_offset() >= start
        {
            self.log.set_log_start_offset(start)?;
            self.pending_log_start = None;
        }
        Ok(())
    }

    /// Entries `low..high`; data entries without their batch unless `payload` (see
    /// [`payload_wanted`]).
    fn entries(&self, low: u64, high: u64, max_size: Option<u64>, payload: bool) -> raft::Result<Vec<Entry>> {
        if low < self.translator.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.translator.next_index() || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        if low == high {
            return Ok(Vec::new());
        }
        let unavailable = || raft::Error::Store(raft::StorageError::Unavailable);
        if !payload {
            return (low..high)
                .map(|index| match self.non_data.get(&index) {
                    Some(e) => Ok(e.clone()),
                    None => Ok(Entry {
                        entry_type: EntryType::EntryNormal as i32,
                        term: self.term(index).ok_or_else(unavailable)?,
                        index,
                        ..Default::default()
                    }),
                })
                .collect();
        }
        self.payload_reads.fetch_add(1, Ordering::Relaxed);
        // The first entry may start below the log start (DeleteRecords cut inside its batch): the
        // read from the log start returns that batch whole.
        let from = self
            .translator
            .offsets_of(low)
            .ok_or_else(unavailable)?
            .start
            .max(self.log.log_start_offset());
        let to = self.translator.end_offset_at(high - 1).ok_or_else(unavailable)?;
        let budget = max_size.unwrap_or(u64::MAX);

        // Pull the batches of the range, stopping once the size budget is spent.
        let mut batches: std::collections::VecDeque<Bytes> = Default::default();
        let mut pos = from;
        let mut size = 0u64;
        while pos < to && (batches.is_empty() || size <= budget) {
            let chunk = usize::try_from(budget.min(READ_CHUNK_BYTES as u64)).unwrap_or(READ_CHUNK_BYTES);
            let buf = self.log.read(pos, chunk, to).map_err(RaftLogError::from)?;
            let split = batch::split_batches(&buf).map_err(RaftLogError::from)?;
            let Some((_, last)) = split.last() else { break };
            pos = last.last_offset() as u64 + 1;
            for (at, h) in split {
                size += h.total_size() as u64;
                batches.push_back(buf.slice(at..at + h.total_size()));
            }
        }

        let mut out = Vec::new();
        for index in low..high {
            let entry = match self.non_data.get(&index) {
                Some(e) => e.clone(),
                None => {
                    let Some(data) = batches.pop_front() else { break };
                    Entry {
                        entry_type: EntryType::EntryNormal as i32,
                        term: self.term(index).ok_or_else(unavailable)?,
                        index,
                        data: data.to_vec(),
                        ..Default::default()
                    }
                }
            };
            out.push(entry);
        }
        raft::util::limit_size(&mut out, max_size);
        Ok(out)
    }
}

impl Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let inner = self.rl();
        Ok(RaftState {
            hard_state: inner.hard_state.clone(),
            conf_state: inner.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.rl().entries(low, high, max_size.into(), payload_wanted(&context))
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let inner = self.rl();
        if idx == inner.snapshot_index {
            return Ok(inner.snapshot_term);
        }
        if idx < inner.translator.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if idx > inner.translator.last_index() {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        inner
            .term(idx)
            .ok_or(raft::Error::Store(raft::StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().translator.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().translator.last_index())
    }

    /// The last snapshot `advance_log_start` recorded: what a follower behind the log start
    /// installs (see the module doc). Its configuration is the latest applied one, which may be
    /// newer than the snapshot index: the data says up to which conf change it goes.
    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let inner = self.rl();
        if inner.snapshot_index == 0 {
            return Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(Snapshot {
            data: encode_snapshot_data(inner.snapshot_offset, inner.log.log_start_offset(), inner.conf_index),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(inner.conf_state.clone()),
                index: inner.snapshot_index,
                term: inner.snapshot_term,
            }),
        })
    }
}

/// Whether raft-rs reads entries for their data. Besides sending entries to a follower it reads
/// them for the committed entries of a `Ready` and to look for a pending configuration change
/// (before a leader transfer, or when a vote moved the commit index). None of those looks into a
/// data entry: the partition log is the state machine, applied by offset (`group_driver::apply`),
/// so they skip the log read, and its copy and CRC check, which cost every replica a read of
/// each batch it had just written. Non-data entries always come whole. raft-rs shows the reason
/// only through `Debug` (`GetEntriesContext(GenReady)`).
fn payload_wanted(context: &GetEntriesContext) -> bool {
    let reason = format!("{context:?}");
    !["GenReady", "TransferLeader", "CommitByVote"]
        .iter()
        .any(|r| reason.contains(r))
}

// --- side-store encodings (big-endian, inside a `checkpoint` file) ---

fn put_ids(out: &mut Vec<u8>, ids: &[u64]) {
    out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// What `raft-state` holds. The two last fields were added with snapshots; a file written
/// before them has neither (no snapshot: the log start is the snapshot offset).
#[derive(Debug, Clone, PartialEq)]
struct SavedState {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_index: u64,
    snapshot_term: u64,
    conf_index: Option<u64>,
    snapshot_offset: Option<u64>,
}

fn encode_state(s: &SavedState) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    let hs = &s.hard_state;
    for v in [hs.term, hs.vote, hs.commit, s.snapshot_index, s.snapshot_term] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let cs = &s.conf_state;
    put_ids(&mut out, &cs.voters);
    put_ids(&mut out, &cs.learners);
    put_ids(&mut out, &cs.voters_outgoing);
    put_ids(&mut out, &cs.learners_next);
    out.push(u8::from(cs.auto_leave));
    if let (Some(c), Some(o)) = (s.conf_index, s.snapshot_offset) {
        out.extend_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&o.to_be_bytes());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn ids(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()?;
        (0..n).map(|_| self.u64()).collect()
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u32()?).ok()?;
        Some(self.take(n)?.to_vec())
    }
}

fn decode_state(buf: &[u8]) -> Option<SavedState> {
    let mut r = Reader(buf);
    let hard_state = HardState {
        term: r.u64()?,
        vote: r.u64()?,
        commit: r.u64()?,
    };
    let (snapshot_index, snapshot_term) = (r.u64()?, r.u64()?);
    let conf_state = ConfState {
        voters: r.ids()?,
        learners: r.ids()?,
        voters_outgoing: r.ids()?,
        learners_next: r.ids()?,
        auto_leave: r.take(1)?[0] != 0,
    };
    let (conf_index, snapshot_offset) = if r.0.is_empty() {
        (None, None)
    } else {
        (Some(r.u64()?), Some(r.u64()?))
    };
    r.0.is_empty().then_some(SavedState {
        hard_state,
        conf_state,
        snapshot_index,
        snapshot_term,
        conf_index,
        snapshot_offset,
    })
}

/// A snapshot's data: the Kafka offset where the entry after it starts, the leader's log start
/// (at or above it: DeleteRecords may cut inside a batch) and the last conf change its
/// configuration includes.
fn encode_snapshot_data(offset: u64, log_start: u64, conf_index: u64) -> Vec<u8> {
    [offset, log_start, conf_index]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn decode_snapshot_data(buf: &[u8]) -> Option<(u64, u64, u64)> {
    let mut r = Reader(buf);
    let v = (r.u64()?, r.u64()?, r.u64()?);
    r.0.is_empty().then_some(v)
}

fn encode_entries(entries: &BTreeMap<u64, Entry>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries.values() {
        out.extend_from_slice(&e.index.to_be_bytes());
        out.extend_from_slice(&e.term.to_be_bytes());
        out.extend_from_slice(&e.entry_type.to_be_bytes());
        put_bytes(&mut out, &e.data);
        put_bytes(&mut out, &e.context);
    }
    out
}

fn decode_entries(buf: &[u8]) -> Option<BTreeMap<u64, Entry>> {
    let mut r = Reader(buf);
    let n = r.u32()?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let index = r.u64()?;
        let term = r.u64()?;
        let entry_type = i32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let e = Entry {
            entry_type,
            term,
            index,
            data: r.bytes()?,
            context: r.bytes()?,
            ..Default::default()
        };
        out.insert(index, e);
    }
    r.0.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_store_encodings_round_trip() {
        let hs = HardState {
            term: 7,
            vote: 2,
            commit: 40,
        };
        let cs = ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            ..Default::default()
        };
        let saved = SavedState {
            hard_state: hs,
            conf_state: cs,
            snapshot_index: 5,
            snapshot_term: 3,
            conf_index: Some(4),
            snapshot_offset: Some(1234),
        };
        let enc = encode_state(&saved);
        assert_eq!(decode_state(&enc), Some(saved.clone()));
        assert_eq!(decode_state(&enc[..enc.len() - 1]), None);
        // Written before snapshots existed: no conf index, no snapshot offset.
        let old = SavedState {
            conf_index: None,
            snapshot_offset: None,
            ..saved
        };
        let enc = encode_state(&old);
        assert_eq!(
            enc.len(),
            encode_state(&SavedState {
                conf_index: Some(0),
                snapshot_offset: Some(0),
                ..old.clone()
            })
            .len()
                - 16
        );
        assert_eq!(decode_state(&enc), Some(old));
        assert_eq!(
            decode_snapshot_data(&encode_snapshot_data(30, 31, 9)),
            Some((30, 31, 9))
        );
        assert_eq!(decode_snapshot_data(&[0; 23]), None);

        let mut m = BTreeMap::new();
        m.insert(
            3,
            Entry {
                entry_type: EntryType::EntryConfChange as i32,
                term: 2,
                index: 3,
                data: vec![1, 2],
                context: vec![9],
                ..Default::default()
            },
        );
        m.insert(
            4,
            Entry {
                term: 3,
                index: 4,
                ..Default::default()
            },
        );
        assert_eq!(decode_entries(&encode_entries(&m)), Some(m));
    }
}
