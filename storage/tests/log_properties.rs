//! Property test: any sequence of appends, rolls, truncations, log-start moves, flushes and
//! (clean or unclean) reopens leaves a log whose offsets are dense and monotonic and whose every
//! read returns exactly the batches a simple in-memory model says were appended.
#![allow(clippy::unwrap_used)]

mod common;

use common::batches::build_from;
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use skiff_storage::batch::{self, BatchHeader};
use skiff_storage::{Log, LogConfig};

const NOW: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
        epoch_bump: bool,
    },
    Roll,
    /// Truncate at this fraction (per mille) of the log end.
    Truncate(u64),
    /// Move the log start to this fraction (per mille) of the way to the log end.
    DeleteRecords(u64),
    Flush,
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..40, 0usize..300, prop::bool::weighted(0.1))
            .prop_map(|(records, value_len, epoch_bump)| Op::Append { records, value_len, epoch_bump }),
        1 => Just(Op::Roll),
        1 => (0u64..=1000).prop_map(Op::Truncate),
        1 => (0u64..=1000).prop_map(Op::DeleteRecords),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        ..LogConfig::default()
    }
}

/// What the log must hold: stored batches (offsets stamped) and the log start.
#[derive(Default)]
struct Model {
    batches: Vec<Vec<u8>>,
    log_start: u64,
    log_end: u64,
    epoch: i32,
}

impl Model {
    fn visible(&self) -> Vec<&Vec<u8>> {
        let start = self.log_start;
        self.batches
            .iter()
            .filter(|b| BatchHeader::parse(b).unwrap().last_offset() as u64 >= start)
            .collect()
    }
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    prop_assert_eq!(log.log_end_offset(), model.log_end);
    let mut served = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let chunk = log.read(next, 2048, u64::MAX).unwrap();
        prop_assert!(!chunk.is_empty(), "empty read at {} below the log end", next);
        for (at, h) in batch::split_batches(&chunk).unwrap() {
            prop_assert!(h.last_offset() as u64 >= next, "offsets went backwards");
            served.push(chunk[at..at + h.total_size()].to_vec());
            next = h.last_offset() as u64 + 1;
        }
    }
    let expected: Vec<Vec<u8>> = model.visible().into_iter().cloned().collect();
    prop_assert_eq!(served, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_operation_sequence_keeps_the_log_equal_to_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(Log::open(dir.path(), config()).unwrap());
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            let l = log.as_mut().unwrap();
            match *op {
                Op::Append { records, value_len, epoch_bump } => {
                    model.epoch += i32::from(epoch_bump);
                    let mut b = build_from(records, NOW + step as i64, Compression::None, |i| vec![(step + i) as u8; value_len]);
                    let info = l.append(&mut b, model.epoch, NOW).unwrap();
                    prop_assert_eq!(info.first_offset, model.log_end);
                    prop_assert_eq!(info.last_offset, model.log_end + records as u64 - 1);
                    model.log_end += records as u64;
                    model.batches.push(b.to_vec());
                }
                Op::Roll => l.roll().unwrap(),
                Op::Truncate(per_mille) => {
                    let target = model.log_end * per_mille / 1000;
                    let end = l.truncate_to(target).unwrap();
                    if target <= model.log_start {
                        model.batches.clear();
                        model.log_start = target;
                        model.log_end = target;
                    } else if target < model.log_end {
                        model.batches.retain(|b| (BatchHeader::parse(b).unwrap().last_offset() as u64) < target);
                        model.log_end = model.batches.last().map_or(0, |b| BatchHeader::parse(b).unwrap().last_offset() as u64 + 1);
                        if model.log_end <= model.log_start {
                            // The cut fell at or below the log start: the log restarts empty there.
                            model.batches.clear();
                            model.log_end = model.log_start;
                        }
                    }
                    prop_assert_eq!(end, model.log_end);
                }
                Op::DeleteRecords(per_mille) => {
                    let target = model.log_start + (model.log_end - model.log_start) * per_mille / 1000;
                    l.set_log_start_offset(target).unwrap();
                    model.log_start = model.log_start.max(target);
                }
                Op::Flush => {
                    l.flush(NOW).unwrap();
                    prop_assert_eq!(l.recovery_point(), model.log_end);
                }
                Op::Reopen { clean } => {
                    let old = log.take().unwrap();
                    if clean { old.close(NOW).unwrap() } else { drop(old) }
                    log = Some(Log::open(dir.path(), config()).unwrap());
                }
            }
            check(log.as_ref().unwrap(), &model)?;
        }
    }
}
