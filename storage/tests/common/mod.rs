//! Helpers shared by the storage integration tests.
pub mod batches;
