//! Request decoding. The first eight bytes of every request header (api key, api version,
//! correlation id) have the same layout in all header versions, so they are read first: that is
//! enough to answer or refuse a request the broker cannot decode.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request is {0} bytes, shorter than a request header")]
    Short(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
}

/// The fixed start of every request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestPrefix {
    pub fn peek(frame: &[u8]) -> Result<Self, DecodeError> {
        if frame.len() < 8 {
            return Err(DecodeError::Short(frame.len()));
        }
        Ok(RequestPrefix {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        })
    }

    pub fn api(&self) -> Result<ApiKey, DecodeError> {
        ApiKey::try_from(self.api_key).map_err(|_| DecodeError::UnknownApiKey(self.api_key))
    }
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    /// Decodes header and body of a frame whose api key and version the caller has accepted.
    pub fn decode(mut frame: Bytes, api_key: ApiKey, version: i16) -> Result<Self, DecodeError> {
        let malformed = |reason: String| DecodeError::Malformed {
            api: api_key,
            version,
            reason,
        };
        let header_version = api_key.request_header_version(version);
        let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| malformed(e.to_string()))?;
        let body = RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
        Ok(Request {
            api_key,
            version,
            header,
            body,
        })
    }

    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode_request(api: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header.encode(&mut buf, api.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_what_a_client_encodes() {
        let frame = encode_request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let prefix = RequestPrefix::peek(&frame).unwrap();
        assert_eq!((prefix.api_key, prefix.api_version, prefix.correlation_id), (18, 3, 42));
        let req = Request::decode(frame, ApiKey::ApiVersions, 3).unwrap();
        assert_eq!(req.client_id(), "test");
        assert!(matches!(req.body, RequestKind::ApiVersions(_)));
    }

    #[test]
    fn truncated_and_unknown_requests_are_errors() {
        assert!(matches!(RequestPrefix::peek(&[0, 1, 2]), Err(DecodeError::Short(3))));
        let unknown = RequestPrefix {
            api_key: 999,
            api_version: 0,
            correlation_id: 1,
        };
        assert!(matches!(unknown.api(), Err(DecodeError::UnknownApiKey(999))));
        let frame = encode_request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        for cut in 0..frame.len() {
            let _ = Request::decode(frame.slice(..cut), ApiKey::ApiVersions, 3);
        }
    }

    /// kafka-protocol reserves an array's capacity from the count on the wire; with the crate's
    /// `HugeAlloc` (the global allocator of these tests and of the broker) a count of 2^31 large
    /// structs is an error, not an aborted process.
    #[test]
    fn arrays_claiming_billions_of_elements_are_errors() {
        use bytes::BufMut;
        // Produce v3: header, transactional_id null, acks, timeout, then the topic_data count.
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::Produce as i16);
        frame.put_i16(3);
        frame.put_i32(1);
        frame.put_i16(-1);
        frame.put_i16(-1);
        frame.put_i16(1);
        frame.put_i32(1000);
        frame.put_i32(i32::MAX);
        frame.put_i16(1);
        frame.put_slice(b"t");
        let err = Request::decode(frame.freeze(), ApiKey::Produce, 3).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
    }
}
