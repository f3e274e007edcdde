//! ApiVersions: the APIs and versions this broker serves, exactly the dispatch table.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use skiff_protocol::{api_version_list, kafka_protocol};

use super::Ctx;
use crate::dispatch::SUPPORTED;

pub fn handle(_ctx: &Ctx<'_>, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_version_list(SUPPORTED))
}
