//! Raft replication of partitions (issue 4): the foundation of "one Raft group per partition, the
//! partition log being the Raft log", with tikv's `raft` crate (0.7, prost codec).
//!
//! # What is built
//! - [`offset_translator`]: the one authoritative Raft index ⇄ Kafka offset mapping. A data
//!   entry holds exactly one Kafka record batch and covers `lastOffsetDelta + 1` offsets; a
//!   non-data entry (a new leader's empty entry, a configuration change) covers none and can
//!   never be returned as an offset. Kept as "Kafka offset after each entry" (8 bytes per entry),
//!   property-tested for density and for both directions being inverse.
//! - [`raft_log::LogStorage`]: a `raft::Storage` over a `skiff_storage::Log`. Data entries are
//!   not copied anywhere else: their batch *is* the entry payload, stamped with baseOffset (from
//!   the translator) and partitionLeaderEpoch = Raft term, and served back to Raft from the log.
//!   Non-data entries, the hard state and the conf state live in two small CRC-protected
//!   checkpoint files (`raft-entries`, `raft-state`) in the partition directory; the translator
//!   and the term index are rebuilt at open by walking those plus the log's batch headers. See
//!   raft_log.rs for the layout and the crash ordering. High watermark = translator offset after
//!   the commit index.
//! - tests/raft_group.rs: a 3-replica group stepped by hand (no clock, no threads) through an
//!   in-memory network with isolation: election, replication, high watermark vs. commit, a
//!   partitioned old leader's uncommitted suffix truncated, crash-restart rebuild.
//!
//! # Rules a driver must keep
//! - Propose data as exactly one Kafka v2 batch per entry with an empty context (validate and
//!   split producer requests first); `LogStorage::append` refuses anything else.
//! - Handle `Ready` in raft-rs order: send `messages`, apply committed entries, `append`
//!   entries (durable on return: it fsyncs), persist `hs`, then send `persisted_messages`,
//!   `advance`, persist `commit_index`, send and apply the light ready, `advance_apply`.
//! - Consumers read below `high_watermark()` only; acks=all answers once the entry's index is
//!   committed; the term of a committed data entry is its Kafka leader epoch.
//! - On a storage error the replica must stop (its in-memory state may be ahead of the disk).
//!
//! # What remains for issue 4
//! - Group commit: `append` fsyncs per `Ready`; batch the fsyncs of many groups (storage's
//!   `GroupCommit`/`FlushJob`) and honour `flush.messages`/`flush.ms` relaxation.
//! - Snapshots and compaction: `snapshot()` answers `SnapshotTemporarilyUnavailable` and nothing
//!   is compacted, so retention (`set_log_start_offset`) must not run on replicated logs yet. A
//!   snapshot = (index, term, conf state, Kafka log start offset, producer state); the translator
//!   then starts at `snapshot_index + 1` with `base_offset` = the log start. Needed for followers
//!   far behind retention and for replicas whose data dir was lost (today they refuse to open if
//!   a side file is damaged and must be rebuilt from the leader).
//! - Open walks every batch header of the log; persist the translator (`encode`) in a checkpoint
//!   at clean shutdown to skip that.
//! - Configuration changes (reassignment, add/decommission broker): apply `ConfChange(V2)`
//!   entries with `apply_conf_change` and `set_conf_state` (tests panic on them today).
//! - ISR from `raft.prs()` progress + `replica.lag.time.max.ms`; `min.insync.replicas` checks;
//!   leader epoch ⇄ KIP-320 fencing and `OffsetForLeaderEpoch` from the log's epoch cache.
//! - The controller group (cluster metadata log), the broker-to-broker transport (prost frames,
//!   per-peer batching, coalesced heartbeats, one ticker for all groups), the driving loop of many
//!   groups per broker, broker wiring (produce/fetch/metadata), and the multi-process tests.

pub mod offset_translator;
pub mod raft_log;
