//! The one authoritative mapping between Raft entry indexes and Kafka offsets of a partition.
//!
//! Raft numbers every entry it writes; Kafka numbers records. A data entry holds exactly one
//! Kafka record batch (so it covers `record count` consecutive offsets); a non-data entry (the
//! empty entry a new leader appends, a configuration change) covers no offset at all and must never
//! be visible to a consumer. Redpanda calls this component the offset translator.
//!
//! Representation: Raft indexes are dense, so the translator keeps, for every entry from
//! `first_index` on, the Kafka offset just after it (`ends[i]` for entry `first_index + i`). An
//! entry's offsets are `ends[i - 1]..ends[i]` (empty for a non-data entry), so both directions
//! are O(1) / O(log n) and offsets are dense by construction: each entry starts where the one
//! before it ended. 8 bytes per entry; a later compaction (snapshots) drops the prefix.
//!
//! Persistence: `encode`/`decode` give a compact byte form (varint record counts), but the Raft
//! log rebuilds the translator at open from the partition log (one batch per data entry, in order)
//! and its side store of non-data entries, which is always consistent with what is on disk.

use std::ops::Range;

/// Errors of the translator: all of them are caller bugs or corrupt persisted state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslatorError {
    #[error("raft entry {got} appended where {expected} is next")]
    NotNext { expected: u64, got: u64 },
    #[error("data entry {index} holds no record")]
    EmptyData { index: u64 },
    #[error("raft index {index} is below the first tracked index {first}")]
    Compacted { index: u64, first: u64 },
    #[error("offset translator state is corrupt: {0}")]
    Corrupt(&'static str),
}

/// Raft index ⇄ Kafka offset for one partition's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetTranslator {
    /// Raft index of the first tracked entry (the snapshot index + 1).
    first_index: u64,
    /// Kafka offset of the first record at or after `first_index`.
    base_offset: u64,
    /// `ends[i]`: the Kafka offset after entry `first_index + i`.
    ends: Vec<u64>,
}

impl OffsetTranslator {
    /// An empty translator whose next entry is `first_index` and next Kafka offset `base_offset`.
    pub fn new(first_index: u64, base_offset: u64) -> Self {
        Self {
            first_index,
            base_offset,
            ends: Vec::new(),
        }
    }

    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The Raft index the next appended entry must have.
    pub fn next_index(&self) -> u64 {
        self.first_index + self.ends.len() as u64
    }

    /// The last tracked Raft index (`first_index - 1` when empty).
    pub fn last_index(&self) -> u64 {
        self.next_index().saturating_sub(1)
    }

    /// The Kafka offset the next data record gets: the partition log's end offset.
    pub fn next_offset(&self) -> u64 {
        self.ends.last().copied().unwrap_or(self.base_offset)
    }

    fn check_next(&self, index: u64) -> Result<(), TranslatorError> {
        let expected = self.next_index();
        if index != expected {
            return Err(TranslatorError::NotNext { expected, got: index });
        }
        Ok(())
    }

    /// Appends a data entry holding `records` records; returns the Kafka offsets it covers.
    pub fn append_data(&mut self, index: u64, records: u64) -> Result<Range<u64>, TranslatorError> {
        self.check_next(index)?;
        if records == 0 {
            return Err(TranslatorError::EmptyData { index });
        }
        let start = self.next_offset();
        self.ends.push(start + records);
        Ok(start..start + records)
    }

    /// Appends an entry consumers must never see.
    pub fn append_non_data(&mut self, index: u64) -> Result<(), TranslatorError> {
        self.check_next(index)?;
        let end = self.next_offset();
        self.ends.push(end);
        Ok(())
    }

    /// The Kafka offset after every entry up to and including `index` (`index` may be
    /// `first_index - 1`). With `index` = the Raft commit index this is the high watermark.
    pub fn end_offset_at(&self, index: u64) -> Option<u64> {
        if index + 1 == self.first_index {
            return Some(self.base_offset);
        }
        let i = index.checked_sub(self.first_index)?;
        self.ends.get(usize::try_from(i).ok()?).copied()
    }

    /// The Kafka offsets entry `index` covers: empty for a non-data entry, `None` if untracked.
    pub fn offsets_of(&self, index: u64) -> Option<Range<u64>> {
        if index < self.first_index {
            return None;
        }
        let end = self.end_offset_at(index)?;
        let start = self.end_offset_at(index - 1)?;
        Some(start..end)
    }

    /// Whether entry `index` is a tracked data entry.
    pub fn is_data(&self, index: u64) -> bool {
        self.offsets_of(index).is_some_and(|r| !r.is_empty())
    }

    /// The Raft index of the data entry holding Kafka offset `offset`, if tracked. Never a
    /// non-data entry (those hold no offset).
    pub fn index_of(&self, offset: u64) -> Option<u64> {
        if offset < self.base_offset || offset >= self.next_offset() {
            return None;
        }
        // The first entry ending after `offset`: it starts at or before it, so it is data.
        let i = self.ends.partition_point(|&end| end <= offset);
        Some(self.first_index + i as u64)
    }

    /// Forgets every entry after `index` (a divergent Raft suffix). Returns the Kafka offset the
    /// partition log must be truncated to.
    pub fn truncate_after(&mut self, index: u64) -> Result<u64, TranslatorError> {
        if index + 1 < self.first_index {
            return Err(TranslatorError::Compacted {
                index,
                first: self.first_index,
            });
        }
        let keep = usize::try_from(index + 1 - self.first_index).unwrap_or(usize::MAX);
        self.ends.truncate(keep);
        Ok(self.next_offset())
    }

    /// Forgets every entry up to and including `index` (a Raft snapshot covers them): the next
    /// tracked entry is `index + 1`, starting at the Kafka offset after `index`.
    pub fn compact_through(&mut self, index: u64) -> Result<(), TranslatorError> {
        if index < self.first_index {
            return Ok(());
        }
        let base = self.end_offset_at(index).ok_or(TranslatorError::Compacted {
            index,
            first: self.first_index,
        })?;
        let drop = usize::try_from(index + 1 - self.first_index).unwrap_or(usize::MAX);
        self.ends.drain(..drop);
        self.first_index = index + 1;
        self.base_offset = base;
        Ok(())
    }

    /// Compact byte form: first index, base offset, entry count, then each entry's record count
    /// as a LEB128 varint (0 for a non-data entry).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.ends.len());
        out.extend_from_slice(&self.first_index.to_be_bytes());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&(self.ends.len() as u64).to_be_bytes());
        let mut prev = self.base_offset;
        for &end in &self.ends {
            put_varint(&mut out, end - prev);
            prev = end;
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Self, TranslatorError> {
        let mut at = 0;
        let mut fixed = || -> Result<u64, TranslatorError> {
            let bytes = buf
                .get(at..at + 8)
                .ok_or(TranslatorError::Corrupt("truncated header"))?;
            at += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(bytes);
            Ok(u64::from_be_bytes(a))
        };
        let first_index = fixed()?;
        let base_offset = fixed()?;
        let count = fixed()?;
        let mut t = Self::new(first_index, base_offset);
        let mut rest = buf.get(24..).ok_or(TranslatorError::Corrupt("truncated header"))?;
        for _ in 0..count {
            let (records, used) = get_varint(rest).ok_or(TranslatorError::Corrupt("truncated entry"))?;
            rest = &rest[used..];
            let end = t
                .next_offset()
                .checked_add(records)
                .ok_or(TranslatorError::Corrupt("offset overflow"))?;
            t.ends.push(end);
        }
        if !rest.is_empty() {
            return Err(TranslatorError::Corrupt("trailing bytes"));
        }
        Ok(t)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn leader_entries_and_conf_changes_take_no_offset() {
        let mut t = OffsetTranslator::new(1, 0);
        t.append_non_data(1).unwrap(); // empty entry of the first leader
        assert_eq!(t.append_data(2, 3).unwrap(), 0..3);
        t.append_non_data(3).unwrap(); // conf change
        assert_eq!(t.append_data(4, 2).unwrap(), 3..5);
        assert_eq!(t.offsets_of(1), Some(0..0));
        assert_eq!(t.offsets_of(3), Some(3..3));
        assert_eq!(t.index_of(2), Some(2));
        assert_eq!(t.index_of(3), Some(4));
        assert_eq!(t.index_of(5), None);
        assert_eq!(t.end_offset_at(0), Some(0));
        assert_eq!(t.end_offset_at(3), Some(3));
        assert_eq!(t.truncate_after(2).unwrap(), 3);
        assert_eq!(t.append_data(3, 1).unwrap(), 3..4);
        assert!(matches!(t.append_data(9, 1), Err(TranslatorError::NotNext { .. })));
        assert!(matches!(t.append_data(4, 0), Err(TranslatorError::EmptyData { .. })));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Data(u64),
        NonData,
        /// Truncate after `last_index - n` (clamped).
        Truncate(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..200).prop_map(Op::Data),
            2 => Just(Op::NonData),
            1 => (0u64..6).prop_map(Op::Truncate),
        ]
    }

    proptest! {
        #[test]
        fn offsets_stay_dense_and_both_directions_are_inverse(
            first in 1u64..50,
            base in 0u64..1000,
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let mut t = OffsetTranslator::new(first, base);
            // Model: the record count of every live entry (0 = non-data).
            let mut model: Vec<u64> = Vec::new();
            for op in ops {
                let next = first + model.len() as u64;
                match op {
                    Op::Data(n) => {
                        let r = t.append_data(next, n).unwrap();
                        prop_assert_eq!(r.end - r.start, n);
                        model.push(n);
                    }
                    Op::NonData => {
                        t.append_non_data(next).unwrap();
                        model.push(0);
                    }
                    Op::Truncate(n) => {
                        let keep = model.len().saturating_sub(n as usize);
                        model.truncate(keep);
                        let end = t.truncate_after(first + keep as u64 - 1).unwrap();
                        prop_assert_eq!(end, base + model.iter().sum::<u64>());
                    }
                }
                prop_assert_eq!(t.next_index(), first + model.len() as u64);
            }
            // Dense: entries tile [base, next_offset) in Raft order, no gap, no overlap.
            let mut expected = base;
            for (i, &n) in model.iter().enumerate() {
                let index = first + i as u64;
                let r = t.offsets_of(index).unwrap();
                prop_assert_eq!(r.clone(), expected..expected + n);
                prop_assert_eq!(t.is_data(index), n > 0);
                for o in r.clone() {
                    // Inverse: the offset maps back to this (data) entry only.
                    prop_assert_eq!(t.index_of(o), Some(index));
                }
                expected = r.end;
            }
            prop_assert_eq!(t.next_offset(), expected);
            prop_assert_eq!(t.index_of(expected), None);
            if base > 0 {
                prop_assert_eq!(t.index_of(base - 1), None);
            }
            // Every offset maps to a data entry that covers it.
            for o in base..expected {
                let index = t.index_of(o).unwrap();
                prop_assert!(t.offsets_of(index).unwrap().contains(&o));
            }
            prop_assert_eq!(OffsetTranslator::decode(&t.encode()).unwrap(), t);
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(OffsetTranslator::decode(&[1, 2, 3]).is_err());
        let mut t = OffsetTranslator::new(1, 0);
        t.append_data(1, 300).unwrap();
        let mut b = t.encode();
        b.push(0);
        assert!(OffsetTranslator::decode(&b).is_err());
        b.truncate(b.len() - 2);
        assert!(OffsetTranslator::decode(&b).is_err());
    }
}
