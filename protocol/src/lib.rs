//! The Kafka wire protocol for Skiff: framing, version negotiation and error codes on top of the
//! `kafka-protocol` crate. Filled in by the single-node broker work (issue 3); empty until then.
