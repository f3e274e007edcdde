//! Request dispatch: the one table of APIs and versions this broker serves (ApiVersions advertises
//! exactly it), version bounds checked once here, then one handler per API.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use skiff_protocol::{Request, RequestPrefix, encode_api_versions_fallback, encode_response, kafka_protocol};
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers::{self, Ctx};

/// Every API the broker serves, with the versions it handles in full.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
];

pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Bytes),
    /// Produce with acks=0 gets no response.
    Silent,
    /// The request could not be understood; Kafka closes such connections.
    Close(String),
}

pub async fn handle(broker: &Arc<Broker>, frame: Bytes) -> Outcome {
    let prefix = match RequestPrefix::peek(&frame) {
        Ok(p) => p,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let api = match prefix.api() {
        Ok(api) => api,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let version = prefix.api_version;
    let Some((min, max)) = supported_range(api) else {
        return Outcome::Close(format!("{api:?} is not supported"));
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return Outcome::Respond(encode_api_versions_fallback(prefix.correlation_id, SUPPORTED));
        }
        return Outcome::Close(format!("{api:?} v{version} is not supported (v{min}-v{max} are)"));
    }
    let request = match Request::decode(frame, api, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let span = tracing::debug_span!(
        "request",
        api = ?api,
        version,
        correlation_id = prefix.correlation_id,
        client_id = request.client_id()
    );
    let ctx = Ctx {
        broker,
        version,
        client_id: request.client_id().to_string(),
    };
    let response = route(&ctx, request.body).instrument(span).await;
    let Some(response) = response else {
        return Outcome::Silent;
    };
    match encode_response(api, version, prefix.correlation_id, &response) {
        Ok(bytes) => Outcome::Respond(bytes),
        Err(e) => {
            tracing::error!(error = %e, "response encoding failed");
            Outcome::Close(e.to_string())
        }
    }
}

async fn route(ctx: &Ctx<'_>, body: RequestKind) -> Option<ResponseKind> {
    Some(match body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(handlers::api_versions::handle(ctx, r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(handlers::metadata::handle(ctx, r)),
        RequestKind::Produce(r) => ResponseKind::Produce(handlers::produce::handle(ctx, r).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(handlers::fetch::handle(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(handlers::list_offsets::handle(ctx, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(handlers::create_topics::handle(ctx, r)),
        other => {
            // Unreachable while SUPPORTED and this match agree; a test checks that they do.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}
