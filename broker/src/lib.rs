//! The `skiff` broker: listeners, request dispatch, the partitions it hosts and the state behind
//! the Kafka APIs. The binary in `main.rs` only parses flags and wires this together.

pub mod broker;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod handlers;
pub mod partition;
pub mod server;
pub mod topic_config;
pub mod topics;
