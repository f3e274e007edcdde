//! The partition log as its callers use it: appends, reads, lookups, truncation, log start,
//! retention, reopening and group commit, on real files.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::batches::{build, build_from, decompress};
use kafka_protocol::records::Compression;
use skiff_storage::batch::{self, BatchHeader};
use skiff_storage::error::kafka_code;
use skiff_storage::{Log, LogConfig, SharedLog, StorageError, TimestampType};

const NOW: i64 = 1_700_000_000_000;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

/// Appends `batches` batches of `per` records, each record's value naming its batch; returns
/// the bytes as stored (offsets stamped).
fn fill(log: &mut Log, batches: usize, per: usize, epoch: i32) -> Vec<Vec<u8>> {
    (0..batches)
        .map(|b| {
            let mut buf = build_from(per, NOW + b as i64 * 10, Compression::None, |i| {
                format!("b{b}r{i}:{:>60}", "").into_bytes()
            });
            log.append(&mut buf, epoch, NOW).unwrap();
            buf.to_vec()
        })
        .collect()
}

fn read_all(log: &Log) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 64 * 1024, u64::MAX).unwrap();
        assert!(!chunk.is_empty(), "read at {next} returned nothing before the log end");
        for (at, h) in batch::split_batches(&chunk).unwrap() {
            out.push((h, chunk[at..at + h.total_size()].to_vec()));
            next = h.last_offset() as u64 + 1;
        }
    }
    out
}

#[test]
fn appends_get_dense_offsets_and_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    let written = fill(&mut log, 200, 5, 1);
    assert_eq!(log.log_end_offset(), 1000);
    assert!(log.segment_count() > 3, "16 KiB segments must have rolled");
    let back = read_all(&log);
    assert_eq!(back.len(), 200);
    for (i, ((h, bytes), w)) in back.iter().zip(&written).enumerate() {
        assert_eq!(h.base_offset, i as i64 * 5);
        assert_eq!(h.partition_leader_epoch, 1);
        assert_eq!(bytes, w);
    }
    // Segment files are named by their zero-padded base offsets.
    for base in log.segment_base_offsets() {
        assert!(dir.path().join(format!("{base:020}.log")).exists());
        assert!(dir.path().join(format!("{base:020}.index")).exists());
        assert!(dir.path().join(format!("{base:020}.timeindex")).exists());
    }
}

#[test]
fn read_from_any_offset_starts_at_the_batch_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    fill(&mut log, 300, 4, 0);
    for offset in (0..1200).step_by(7) {
        let chunk = log.read(offset, 1, u64::MAX).unwrap();
        let h = BatchHeader::parse(&chunk).unwrap();
        assert!(
            h.base_offset as u64 <= offset && offset <= h.last_offset() as u64,
            "offset {offset}: {h:?}"
        );
        assert_eq!(chunk.len(), h.total_size(), "max_bytes 1 still returns one whole batch");
    }
}

#[test]
fn reads_stop_at_the_high_watermark_and_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    fill(&mut log, 10, 10, 0);
    let size = read_all(&log)[0].1.len();
    let chunk = log.read(0, 1 << 20, 50).unwrap();
    assert_eq!(
        batch::split_batches(&chunk).unwrap().len(),
        5,
        "only batches below offset 50"
    );
    assert!(log.read(50, 1 << 20, 50).unwrap().is_empty());
    assert!(
        log.read(55, 1 << 20, 50).unwrap().is_empty(),
        "between HW and LEO: empty, not an error"
    );
    let chunk = log.read(0, size * 3 + 1, u64::MAX).unwrap();
    assert_eq!(batch::split_batches(&chunk).unwrap().len(), 3);
    assert!(
        log.read(100, 1 << 20, u64::MAX).unwrap().is_empty(),
        "at the log end: empty"
    );
    let err = log.read(101, 1 << 20, u64::MAX).unwrap_err();
    assert_eq!(err.kafka_code(), kafka_code::OFFSET_OUT_OF_RANGE);
}

#[test]
fn bad_batches_are_refused_with_kafka_codes_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let mut corrupt = build(3, 10, NOW, Compression::None);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        log.append(&mut corrupt, 0, NOW).unwrap_err().kafka_code(),
        kafka_code::CORRUPT_MESSAGE
    );
    let mut big = build(3, 1000, NOW, Compression::None);
    assert_eq!(
        log.append(&mut big, 0, NOW).unwrap_err().kafka_code(),
        kafka_code::MESSAGE_TOO_LARGE
    );
    let mut torn = build(3, 10, NOW, Compression::None);
    torn.truncate(torn.len() - 5);
    assert_eq!(
        log.append(&mut torn, 0, NOW).unwrap_err().kafka_code(),
        kafka_code::CORRUPT_MESSAGE
    );
    let mut old_magic = build(1, 10, NOW, Compression::None);
    old_magic[16] = 1;
    assert_eq!(
        log.append(&mut old_magic, 0, NOW).unwrap_err().kafka_code(),
        kafka_code::INVALID_RECORD
    );
    assert_eq!(
        log.append(&mut [0u8; 0], 0, NOW).unwrap_err().kafka_code(),
        kafka_code::CORRUPT_MESSAGE
    );
    // A good batch followed by a bad one: neither is written.
    let mut pair = build(2, 10, NOW, Compression::None);
    pair.extend_from_slice(&corrupt);
    assert!(log.append(&mut pair, 0, NOW).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn every_compression_is_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut sent = Vec::new();
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = build(20, 100, NOW, c);
        log.append(&mut b, 0, NOW).unwrap();
        sent.push(b.to_vec());
    }
    let back: Vec<Vec<u8>> = read_all(&log).into_iter().map(|(_, b)| b).collect();
    assert_eq!(back, sent);
    assert_eq!(log.log_end_offset(), 100);
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut b = build(3, 10, 5, Compression::None);
    let info = log.append(&mut b, 0, NOW).unwrap();
    assert_eq!(info.log_append_time, Some(NOW));
    let (h, _) = &read_all(&log)[0];
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, NOW);
    assert_eq!(log.offset_for_timestamp(NOW, &decompress).unwrap(), Some((0, NOW)));
}

#[test]
fn timestamp_lookups_find_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    // Batch b holds 5 records with timestamps NOW + 10b .. NOW + 10b + 4.
    fill(&mut log, 300, 5, 0);
    assert_eq!(log.offset_for_timestamp(0, &decompress).unwrap(), Some((0, NOW)));
    assert_eq!(
        log.offset_for_timestamp(NOW + 1003, &decompress).unwrap(),
        Some((503, NOW + 1003))
    );
    assert_eq!(
        log.offset_for_timestamp(NOW + 1005, &decompress).unwrap(),
        Some((505, NOW + 1010)),
        "gap: next record"
    );
    assert_eq!(
        log.offset_for_timestamp(NOW + 2994, &decompress).unwrap(),
        Some((1499, NOW + 2994))
    );
    assert_eq!(log.offset_for_timestamp(NOW + 2995, &decompress).unwrap(), None);
    assert_eq!(log.max_timestamp(&decompress).unwrap(), Some((1499, NOW + 2994)));
    // A compressed batch is opened with the caller's codec and answered to the record.
    let mut z = build(5, 10, NOW + 5000, Compression::Gzip);
    log.append(&mut z, 0, NOW).unwrap();
    assert_eq!(
        log.offset_for_timestamp(NOW + 5002, &decompress).unwrap(),
        Some((1502, NOW + 5002))
    );
    assert_eq!(log.max_timestamp(&decompress).unwrap(), Some((1504, NOW + 5004)));
}

#[test]
fn segment_ms_rolls_by_the_callers_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let mut b = build(1, 10, NOW, Compression::None);
    log.append(&mut b.clone(), 0, NOW).unwrap();
    log.append(&mut b.clone(), 0, NOW + 1000).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut b, 0, NOW + 1001).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn leader_epochs_answer_offset_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    fill(&mut log, 10, 2, 1); // offsets 0..20 in epoch 1
    fill(&mut log, 10, 2, 3); // 20..40 in epoch 3
    fill(&mut log, 5, 2, 4); // 40..50 in epoch 4
    assert_eq!(log.leader_epochs(), &[(1, 0), (3, 20), (4, 40)]);
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 50)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 40)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 20)));
    assert_eq!(log.end_offset_for_epoch(9), None);
    assert_eq!(log.epoch_at(25).unwrap(), Some(3));
    assert_eq!(log.epoch_at(49).unwrap(), Some(4));
    assert_eq!(log.epoch_at(50).unwrap(), None);
    // Epochs survive an unclean reopen (rebuilt from the checkpoint) and a clean one.
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.leader_epochs(), &[(1, 0), (3, 20), (4, 40)]);
    log.close(NOW).unwrap();
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        log.leader_epochs(),
        &[(1, 0), (3, 20), (4, 40)],
        "rebuilt from the batches"
    );
}

#[test]
fn truncate_removes_a_divergent_suffix_at_batch_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    let written = fill(&mut log, 100, 5, 1);
    fill(&mut log, 100, 5, 2);
    let segments_before = log.segment_count();
    // Inside batch 60 (offsets 300..305): the whole batch goes.
    assert_eq!(log.truncate_to(302).unwrap(), 300);
    assert_eq!(log.log_end_offset(), 300);
    assert!(log.segment_count() < segments_before);
    assert_eq!(log.leader_epochs(), &[(1, 0)]);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 300)));
    let back = read_all(&log);
    assert_eq!(back.len(), 60);
    assert!(back.iter().zip(&written).all(|((_, b), w)| b == w));
    // New appends continue densely, in a new epoch, and the log reopens to the same state.
    let info = log.append(&mut build(5, 10, NOW, Compression::None), 5, NOW).unwrap();
    assert_eq!(info.first_offset, 300);
    assert_eq!(log.leader_epochs(), &[(1, 0), (5, 300)]);
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 305);
    assert_eq!(read_all(&log).len(), 61);
}

#[test]
fn truncate_below_everything_starts_over_at_that_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    fill(&mut log, 50, 5, 1);
    assert_eq!(log.truncate_to(0).unwrap(), 0);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.segment_count()),
        (0, 0, 1)
    );
    assert!(log.leader_epochs().is_empty());
    fill(&mut log, 3, 5, 2);
    assert_eq!(log.log_end_offset(), 15);
}

#[test]
fn restart_at_discards_everything_and_continues_from_the_new_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    fill(&mut log, 50, 5, 3);
    log.restart_at(1234).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.segment_count()),
        (1234, 1234, 1)
    );
    assert!(log.leader_epochs().is_empty());
    assert_eq!(
        log.read(0, 100, u64::MAX).unwrap_err().kafka_code(),
        kafka_code::OFFSET_OUT_OF_RANGE
    );
    fill(&mut log, 2, 5, 2);
    assert_eq!(log.leader_epochs(), &[(2, 1234)]);
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1234, 1244));
    assert_eq!(read_all(&log).len(), 2);
}

#[test]
fn delete_records_moves_the_log_start_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    fill(&mut log, 200, 5, 0);
    let before = log.segment_count();
    assert!(log.set_log_start_offset(503).unwrap());
    assert_eq!(log.log_start_offset(), 503);
    assert!(log.segment_count() < before, "segments wholly below 503 are deleted");
    assert!(log.segment_base_offsets()[0] <= 503);
    assert_eq!(
        log.read(502, 100, u64::MAX).unwrap_err().kafka_code(),
        kafka_code::OFFSET_OUT_OF_RANGE
    );
    let first = BatchHeader::parse(&log.read(503, 1, u64::MAX).unwrap()).unwrap();
    assert_eq!(
        first.base_offset, 500,
        "the batch holding 503 is returned whole; the client skips"
    );
    assert!(!log.set_log_start_offset(100).unwrap(), "never moves backwards");
    assert!(log.set_log_start_offset(1001).is_err(), "never past the log end");
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 503);
    assert_eq!(log.log_end_offset(), 1000);
}

#[test]
fn retention_by_time_and_by_size_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 60_000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    fill(&mut log, 100, 5, 0); // timestamps NOW .. NOW + 994
    assert_eq!(log.enforce_retention(NOW + 30_000).unwrap(), 0);
    let segments = log.segment_count();
    assert_eq!(
        log.enforce_retention(NOW + 61_000).unwrap(),
        segments,
        "all expired, the active one too"
    );
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.segment_count()),
        (500, 500, 1)
    );
    assert!(log.read(500, 100, u64::MAX).unwrap().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 40 * 1024,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    fill(&mut log, 400, 5, 0);
    let deleted = log.enforce_retention(NOW).unwrap();
    assert!(deleted > 0);
    assert!(
        log.size_bytes() <= 40 * 1024 + 16 * 1024,
        "within one segment of retention.bytes"
    );
    assert!(log.size_bytes() >= 40 * 1024 - 16 * 1024);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(log.log_end_offset(), 2000);
}

#[test]
fn clean_close_skips_recovery_and_unclean_stop_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    let written = fill(&mut log, 100, 5, 0);
    log.close(NOW).unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().segments_scanned, 0);
    assert_eq!(read_all(&log).into_iter().map(|(_, b)| b).collect::<Vec<_>>(), written);
    drop(log); // unclean: the marker was consumed by the open above
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    assert_eq!(read_all(&log).into_iter().map(|(_, b)| b).collect::<Vec<_>>(), written);
    let more = fill(&mut log, 1, 5, 0);
    assert_eq!(BatchHeader::parse(&more[0]).unwrap().base_offset, 500);
}

#[test]
fn flush_messages_policy_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            flush_messages: 10,
            ..LogConfig::default()
        },
    )
    .unwrap();
    fill(&mut log, 1, 5, 0);
    assert_eq!(log.recovery_point(), 0);
    fill(&mut log, 1, 5, 0);
    assert_eq!(log.recovery_point(), 10, "ten records reached flush.messages");
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        LogConfig {
            flush_ms: 100,
            ..LogConfig::default()
        },
    )
    .unwrap();
    fill(&mut log, 1, 5, 0);
    assert!(!log.maybe_flush(NOW).unwrap());
    assert!(log.maybe_flush(NOW + 100).unwrap());
    assert_eq!(log.recovery_point(), 5);
}

#[test]
fn group_commit_shares_fsyncs_between_concurrent_flushers() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(SharedLog::new(Log::open(dir.path(), LogConfig::default()).unwrap()));
    let threads = 8;
    let per_thread = 40;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    let mut b = build(10, 100, NOW, Compression::None);
                    let info = shared.lock().append(&mut b, 0, NOW).unwrap();
                    shared.flush_to(info.last_offset + 1, NOW).unwrap();
                    assert!(shared.commit().durable_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let flushes = (threads * per_thread) as u64;
    let fsyncs = shared.commit().fsync_count();
    assert!(
        fsyncs < flushes,
        "{fsyncs} fsyncs for {flushes} flush calls: nothing was shared"
    );
    assert!(fsyncs > 0);
    let log = Arc::into_inner(shared).unwrap().into_inner();
    assert_eq!(log.log_end_offset(), flushes * 10);
    assert_eq!(log.recovery_point(), flushes * 10);
}

#[test]
fn replicated_appends_must_continue_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(dir.path().join("leader"), small_config()).unwrap();
    let mut follower = Log::open(dir.path().join("follower"), small_config()).unwrap();
    fill(&mut leader, 20, 5, 3);
    let chunk = leader.read(0, 1 << 20, u64::MAX).unwrap();
    follower.append_replicated(&chunk, NOW).unwrap();
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.leader_epochs(), &[(3, 0)]);
    let again = follower.append_replicated(&chunk, NOW).unwrap_err();
    assert!(matches!(
        again,
        StorageError::NonContiguousOffset { expected: 100, got: 0 }
    ));
}
