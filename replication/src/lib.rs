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
//! - [`group_driver::GroupDriver`]: the driving loop for many groups on one broker, with no clock
//!   and no I/O besides storage: one `tick()` for all groups, `step`, `propose` (leader only;
//!   otherwise `NotLeader` with the leader's id), and `process_ready()`, which handles every
//!   group's `Ready` in raft-rs order with one group commit across groups: all entries are
//!   written unsynced, then each touched log is fsync'd once. The commit index is volatile (Raft
//!   Figure 2) and persisted by `persist_commits()` on Kafka's
//!   `replica.high.watermark.checkpoint.interval.ms`; hard state (term, vote) is written before
//!   any message that depends on it. `Output` says what the broker needs: messages per peer,
//!   committed data entries with their Kafka offsets, moved high watermarks, leader changes.
//! - [`transport::Transport`]: broker-to-broker frames over tokio TCP (byte layout in
//!   transport/wire.rs): one connection per peer and direction, a bounded per-peer queue that
//!   drops rather than blocks (Raft retransmits), everything queued for a peer sent as one
//!   envelope across all groups, identical consecutive heartbeats of a group coalesced. Raft
//!   messages keep raft's own prost 0.11 encoding inside our prost 0.14 envelope; unknown
//!   message types are refused before they reach raft-rs (which panics on them).
//! - [`metadata_records`] and [`cluster_metadata`]: the controller group's state machine, not yet
//!   wired into the broker. The metadata log (Raft group [`cluster_metadata::CONTROLLER_GROUP`])
//!   holds KRaft-like records (RegisterBroker, Fence/UnfenceBroker, CreateTopic with each
//!   partition's replicas and Raft group, DeleteTopic, Set/DeleteTopicConfig,
//!   ChangePartitionReplicas), prost 0.14 messages carried as the record values of one Kafka v2
//!   batch per entry (kafka-protocol's codec). `ClusterMetadata::apply` is deterministic and
//!   refuses records that do not fit the state (duplicate topic name or id, unknown broker,
//!   stale incarnation, a reused Raft group) without changing it, identically on every broker.
//!   `plan_create_topic` answers Kafka's errors (INVALID_REPLICATION_FACTOR when RF exceeds the
//!   live unfenced brokers, TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_TOPIC_EXCEPTION)
//!   and assigns replicas with `assign_replicas`: leaders round-robin, replica counts per broker
//!   within one (offsets that tile the broker ring), rack-alternating with distinct racks per
//!   partition when every live broker has a `broker.rack`; Raft group ids are allocated
//!   monotonically and never reused. tests/controller.rs runs the group on three drivers and
//!   checks identical applied states across a controller failover.
//! - Tests, stepped by hand: tests/raft_group.rs (3 and 5 replicas: election, log matching,
//!   HW vs commit, a partitioned old leader's suffix truncated, crash-restart), tests/raft_log.rs,
//!   tests/group_driver.rs (3 brokers x 50 groups: elections with one ticker, one fsync per log
//!   per pass, a broker killed and restarted), tests/transport.rs (loopback: batching, reconnect,
//!   malformed frames, dead and stuck peers).
//!
//! # Rules a driver must keep
//! - Propose data as exactly one Kafka v2 batch per entry with an empty context (validate and
//!   split producer requests first); `LogStorage::append` refuses anything else.
//! - Consumers read below `high_watermark()` only; acks=all answers once the entry's index is
//!   committed; the term of a committed data entry is its Kafka leader epoch.
//! - On a storage error the replica must stop (its in-memory state may be ahead of the disk);
//!   `GroupDriver` stops and reports that group alone.
//! - Messages from the network go through `transport::wire::decode_raft`, never straight to
//!   raft-rs.
//!
//! - [`reassignment`]: the steps a partition leader takes to move its group to another replica
//!   set (learners first, one joint change, leadership handed over), as a pure function; the
//!   driver applies `ConfChangeV2` entries and persists the configuration they produce (the
//!   commit index written never covers a conf change not yet applied).
//! - [`log_command`] and snapshots: DeleteRecords is a command entry every replica applies at
//!   its place in the log; moving a log's start records a Raft snapshot (index, term, the Kafka
//!   offset of the next entry) and a replica behind it installs the leader's and starts over.
//!
//! # What remains
//! - Open walks every batch header of the log; persist the translator (`encode`) in a checkpoint
//!   at clean shutdown to skip that.
//! - A snapshot carries no producer state: a replica that installed one rebuilds its producer
//!   table from the records it has when it leads (producers whose batches were all deleted are
//!   unknown to it, as after retention in Kafka).
//! - The metadata log itself is never compacted (KRaft snapshots of the controller's state).

pub mod cluster_metadata;
pub mod group_driver;
pub mod group_id;
pub mod log_command;
pub mod lost_log;
pub mod metadata_records;
pub mod offset_translator;
pub mod raft_log;
pub mod reassignment;
mod sync_pool;
pub mod transport;
