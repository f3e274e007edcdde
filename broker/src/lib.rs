//! The `skiff` broker: listeners, request dispatch, the partitions it hosts and the state behind
//! the Kafka APIs. The binary in `main.rs` only parses flags and wires this together.

pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod group;
pub mod group_coordinator;
pub mod handlers;
pub mod listener;
pub mod offset_store;
pub mod partition;
pub mod producer_ids;
pub mod producer_state;
pub mod server;
pub mod topic_config;
pub mod topics;

/// Record batches built the way clients build them, shared with the storage tests.
#[cfg(test)]
#[path = "../../storage/tests/common/batches.rs"]
mod test_batches;
