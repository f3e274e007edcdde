//! The Kafka wire protocol for Skiff: length-prefixed framing with a hard size limit, request
//! header and body decoding, and response encoding, all through the `kafka-protocol` crate. It knows
//! nothing of topics or logs; the broker decides which APIs and versions it serves.

pub mod frame;
#[cfg(unix)]
pub mod huge_alloc;
pub mod malloc_tuning;
pub mod request;
pub mod response;

pub use frame::{FrameDecoder, FrameError, SOCKET_REQUEST_MAX_BYTES_DEFAULT};
#[cfg(unix)]
pub use huge_alloc::HugeAlloc;
pub use kafka_protocol;
pub use request::{DecodeError, Request, RequestPrefix};
pub use response::{EncodeError, api_version_list, encode_api_versions_fallback, encode_response};
