//! Response encoding: size prefix, response header (v0 or flexible v1 as the API version says),
//! body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

/// Encoding fails only on a broker bug (a field that the version cannot carry).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a whole response frame, size prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let err = |reason: String| EncodeError {
        api: api_key,
        version,
        reason,
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| err(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| err(format!("{e:#}")))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// `(api, min, max)` ranges as ApiVersions lists them.
pub fn api_version_list(supported: &[(ApiKey, i16, i16)]) -> Vec<ApiVersion> {
    supported
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The answer to an ApiVersions request at a version the broker does not know: a v0 response
/// with UNSUPPORTED_VERSION and the supported ranges, so the client can pick a version it shares.
pub fn encode_api_versions_fallback(correlation_id: i32, supported: &[(ApiKey, i16, i16)]) -> Bytes {
    const UNSUPPORTED_VERSION: i16 = 35;
    let body = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(api_version_list(supported));
    match encode_response(ApiKey::ApiVersions, 0, correlation_id, &ResponseKind::ApiVersions(body)) {
        Ok(frame) => frame,
        // v0 carries every field set above; an empty frame makes the client reconnect.
        Err(_) => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn api_versions_fallback_is_a_v0_response() {
        let mut frame = encode_api_versions_fallback(7, &[(ApiKey::Produce, 3, 11), (ApiKey::ApiVersions, 0, 4)]);
        assert_eq!(frame.get_i32() as usize, frame.len());
        assert_eq!(frame.get_i32(), 7, "header v0: just the correlation id");
        let body = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
        assert_eq!(body.error_code, 35);
        assert_eq!(body.api_keys.len(), 2);
        assert_eq!((body.api_keys[0].api_key, body.api_keys[0].max_version), (0, 11));
    }
}
