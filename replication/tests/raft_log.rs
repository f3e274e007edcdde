//! `LogStorage` on its own: entries round-trip through the partition log, offsets and epochs are
//! stamped, suffixes truncate, state survives a reopen, and damaged side files are refused.

#![allow(clippy::unwrap_used)]

mod common;

use common::{all_batches, kafka_batch, raft_entries};
use raft::prelude::{ConfState, Entry, EntryType, HardState};
use raft::{GetEntriesContext, Storage};
use skiff_replication::raft_log::LogStorage;
use skiff_storage::LogConfig;

fn voters() -> ConfState {
    ConfState::from((vec![1, 2, 3], vec![]))
}

fn data(index: u64, term: u64, records: i32) -> Entry {
    Entry {
        entry_type: EntryType::EntryNormal as i32,
        term,
        index,
        data: kafka_batch(records, format!("{index}/{term}").as_bytes()),
        ..Default::default()
    }
}

fn empty(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        ..Default::default()
    }
}

fn conf_change(index: u64, term: u64) -> Entry {
    Entry {
        entry_type: EntryType::EntryConfChange as i32,
        term,
        index,
        data: vec![8, 1, 16, 4],
        context: vec![7],
        ..Default::default()
    }
}

fn open(dir: &std::path::Path) -> LogStorage {
    LogStorage::open(dir, LogConfig::default(), voters()).unwrap()
}

#[test]
fn entries_round_trip_with_offsets_and_epochs_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.initial_state().unwrap().conf_state, voters());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    let written = vec![
        empty(1, 1),
        data(2, 1, 3),
        data(3, 1, 2),
        conf_change(4, 1),
        empty(5, 2),
        data(6, 2, 1),
    ];
    s.append(&written, 0).unwrap();
    assert_eq!(s.last_index().unwrap(), 6);
    let read = s.entries(1, 7, None, GetEntriesContext::empty(false)).unwrap();
    assert_eq!(read.len(), 6);
    for (r, w) in read.iter().zip(&written) {
        assert_eq!((r.index, r.term, r.entry_type), (w.index, w.term, w.entry_type));
        if r.entry_type != EntryType::EntryNormal as i32 || r.data.is_empty() {
            assert_eq!(r, w, "non-data entries come back verbatim");
        } else {
            // Same batch, only baseOffset and partitionLeaderEpoch (outside the CRC) stamped.
            assert_eq!(r.data[8..12], w.data[8..12]);
            assert_eq!(r.data[16..], w.data[16..]);
        }
    }
    let batches = all_batches(&s);
    let placed: Vec<(i64, i32, i32)> = batches
        .iter()
        .map(|(h, _)| (h.base_offset, h.partition_leader_epoch, h.record_count))
        .collect();
    assert_eq!(placed, vec![(0, 1, 3), (3, 1, 2), (5, 2, 1)]);
    assert_eq!(s.term(4).unwrap(), 1);
    assert_eq!(s.term(5).unwrap(), 2);
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(s.term(7).is_err());
    assert_eq!(s.index_of_offset(4), Some(3));
    assert_eq!(s.offsets_of_index(4), Some(5..5));

    // High watermark = the offset after the last committed data entry.
    for (commit, hw) in [(0, 0), (1, 0), (2, 3), (3, 5), (4, 5), (5, 5), (6, 6)] {
        s.set_commit(commit).unwrap();
        assert_eq!(s.high_watermark(), hw, "commit {commit}");
    }
    // A size limit still returns at least one entry.
    assert_eq!(s.entries(2, 7, 1, GetEntriesContext::empty(false)).unwrap().len(), 1);
    assert!(s.entries(0, 2, None, GetEntriesContext::empty(false)).is_err());
    assert!(s.entries(2, 8, None, GetEntriesContext::empty(false)).is_err());
}

#[test]
fn conflicting_suffix_is_truncated_and_everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&[empty(1, 1), data(2, 1, 3), conf_change(3, 1), data(4, 1, 2)], 0)
        .unwrap();
    // A new leader of term 2 overwrites from index 3.
    s.append(&[data(3, 2, 4), empty(4, 2)], 0).unwrap();
    assert_eq!(s.last_index().unwrap(), 4);
    assert_eq!(s.non_data_indexes(), vec![1, 4]);
    assert_eq!(s.log_end_offset(), 7);
    let hs = HardState {
        term: 2,
        vote: 3,
        commit: 3,
    };
    s.set_hard_state(hs.clone()).unwrap();
    let before = raft_entries(&s);
    assert_eq!(before, vec![(1, 1, false), (2, 1, true), (3, 2, true), (4, 2, false)]);
    let batches = all_batches(&s);
    drop(s);

    let s = open(dir.path());
    assert_eq!(s.initial_state().unwrap().hard_state, hs);
    assert_eq!(raft_entries(&s), before);
    assert_eq!(all_batches(&s), batches);
    assert_eq!(s.high_watermark(), 7);
    assert_eq!(s.non_data_indexes(), vec![1, 4]);
    // Appending continues densely after the reopen.
    s.append(&[data(5, 2, 1)], 0).unwrap();
    assert_eq!(s.offsets_of_index(5), Some(7..8));
}

#[test]
fn invalid_entries_are_refused_without_changing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&[empty(1, 1), data(2, 1, 2)], 0).unwrap();
    let mut garbage = data(3, 1, 1);
    garbage.data = vec![1, 2, 3];
    assert!(s.append(&[garbage], 0).is_err());
    let mut bad_crc = data(3, 1, 1);
    let last = bad_crc.data.len() - 1;
    bad_crc.data[last] ^= 1;
    assert!(s.append(&[bad_crc], 0).is_err());
    assert!(s.append(&[data(5, 1, 1)], 0).is_err(), "gap");
    assert!(s.append(&[data(3, 1, 1), data(5, 1, 1)], 0).is_err(), "not consecutive");
    assert_eq!(raft_entries(&s), vec![(1, 1, false), (2, 1, true)]);
    assert_eq!(s.log_end_offset(), 2);
}

#[test]
fn a_damaged_side_file_is_refused_rather_than_trusted() {
    for name in ["raft-entries", "raft-state"] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        s.append(&[empty(1, 1), data(2, 1, 2)], 0).unwrap();
        drop(s);
        let path = dir.path().join(name);
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        std::fs::write(&path, raw).unwrap();
        assert!(
            LogStorage::open(dir.path(), LogConfig::default(), voters()).is_err(),
            "{name}"
        );
    }
}

/// Entries are served, truncated and rebuilt across segment boundaries of the partition log.
#[test]
fn entries_span_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let s = LogStorage::open(dir.path(), config.clone(), voters()).unwrap();
    let mut written = Vec::new();
    for index in 1..=40u64 {
        let e = if index % 7 == 1 {
            empty(index, index / 7 + 1)
        } else {
            data(index, index / 7 + 1, (index % 3 + 1) as i32)
        };
        written.push(e);
    }
    for chunk in written.chunks(5) {
        s.append(chunk, 0).unwrap();
    }
    let read = s.entries(1, 41, None, GetEntriesContext::empty(false)).unwrap();
    let shape =
        |es: &[Entry]| -> Vec<(u64, u64, bool)> { es.iter().map(|e| (e.index, e.term, e.data.is_empty())).collect() };
    assert_eq!(shape(&read), shape(&written));
    let end: u64 = (1..=40u64).filter(|i| i % 7 != 1).map(|i| i % 3 + 1).sum();
    assert_eq!(s.log_end_offset(), end);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!(segments > 3, "only {segments} segments");

    // Cut back into an earlier segment, then reopen.
    s.append(&[data(12, 9, 2)], 0).unwrap();
    let expected = s.entries(1, 13, None, GetEntriesContext::empty(false)).unwrap();
    drop(s);
    let s = LogStorage::open(dir.path(), config, voters()).unwrap();
    assert_eq!(s.last_index().unwrap(), 12);
    assert_eq!(
        s.entries(1, 13, None, GetEntriesContext::empty(false)).unwrap(),
        expected
    );
    assert_eq!(s.term(12).unwrap(), 9);
    let mut next = 0;
    for e in &expected {
        let r = s.offsets_of_index(e.index).unwrap();
        assert_eq!(r.start, next);
        assert_eq!(r.is_empty(), e.data.is_empty());
        next = r.end;
    }
    assert_eq!(s.log_end_offset(), next);
}

/// Group commit: `append_unsynced` leaves the batches unsynced until `sync` (one fsync however
/// many batches), and `raft-state` is never written ahead of the batches its commit index may
/// cover. A crash before `sync` can lose those batches while `raft-entries` already lists a
/// non-data entry past them: the reopen walk stops at the first missing batch, so the replica
/// reopens with a prefix of its log and drops that entry.
#[test]
fn unsynced_batches_sync_once_and_their_loss_reopens_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append(&[empty(1, 1), data(2, 1, 2)], 0).unwrap();
    assert!(!s.sync(0).unwrap(), "append is already durable");
    s.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: 2,
    })
    .unwrap();
    let durable = all_batches(&s);

    s.append_unsynced(&[data(3, 1, 3), data(4, 1, 1)], 0).unwrap();
    s.append_unsynced(&[empty(5, 2), data(6, 2, 1)], 0).unwrap();
    assert!(s.sync(0).unwrap(), "one fsync for both appends");
    assert!(!s.sync(0).unwrap());
    s.append_unsynced(&[data(7, 2, 1)], 0).unwrap();
    s.set_commit(7).unwrap();
    assert!(
        !s.sync(0).unwrap(),
        "raft-state synced the batches before claiming them"
    );

    // The commit index is volatile: `note_commit` moves the high watermark, not `raft-state`.
    s.append(&[data(8, 2, 1)], 0).unwrap();
    s.note_commit(8);
    s.note_commit(6);
    assert_eq!(
        (s.hard_state().commit, s.persisted_commit(), s.high_watermark()),
        (8, 7, 9)
    );
    drop(s);
    let s = open(dir.path());
    assert_eq!(
        (s.hard_state().commit, s.high_watermark()),
        (7, 8),
        "restarts from the persisted one"
    );
    s.note_commit(8);
    assert!(s.persist_commit().unwrap());
    assert!(!s.persist_commit().unwrap());
    drop(s);
    assert_eq!(open(dir.path()).high_watermark(), 9);

    // A replica whose last appends never reached the disk: batches after index 2 are lost, but
    // `raft-entries` (fsync'd during the append) lists the empty entry at index 5.
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = open(dir2.path());
    s2.append(&[empty(1, 1), data(2, 1, 2)], 0).unwrap();
    s2.set_hard_state(HardState {
        term: 2,
        vote: 1,
        commit: 2,
    })
    .unwrap();
    s2.append_unsynced(&[data(3, 1, 3), data(4, 1, 1), empty(5, 2)], 0)
        .unwrap();
    assert_eq!(s2.non_data_indexes(), vec![1, 5]);
    drop(s2);
    let keep = durable.iter().map(|(_, b)| b.len()).sum::<usize>() as u64;
    for entry in std::fs::read_dir(dir2.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(keep)
                .unwrap();
        }
    }
    let s2 = open(dir2.path());
    assert_eq!(raft_entries(&s2), vec![(1, 1, false), (2, 1, true)]);
    assert_eq!(s2.non_data_indexes(), vec![1], "the entry past the gap is dropped");
    assert_eq!(s2.hard_state().commit, 2);
    assert_eq!((s2.log_end_offset(), s2.high_watermark()), (2, 2));
    // Raft re-sends the lost suffix and it lands at the same offsets.
    s2.append(&[data(3, 2, 3)], 0).unwrap();
    assert_eq!(s2.offsets_of_index(3), Some(2..5));
}
