//! SyncGroup: the leader hands in the assignment of every member; each member (leader included)
//! gets its own. Followers that arrive first park until the leader's SyncGroup does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::group::SyncResponse;
use crate::group_coordinator::SyncRequest;

/// The first version with `group_instance_id`.
const GROUP_INSTANCE_ID_VERSION: i16 = 3;
/// The first version that carries the protocol type and name both ways (KIP-559).
const PROTOCOL_VERSION: i16 = 5;

pub async fn handle(ctx: &Ctx<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    tracing::debug!(
        group = %request.group_id.0,
        member = %request.member_id,
        generation = request.generation_id,
        assignments = request.assignments.len(),
        "sync group"
    );
    let response =
        if ctx.version >= PROTOCOL_VERSION && (request.protocol_type.is_none() || request.protocol_name.is_none()) {
            SyncResponse::error(ResponseError::InconsistentGroupProtocol)
        } else {
            let sync = SyncRequest {
                group_id: request.group_id.0.to_string(),
                generation_id: request.generation_id,
                member_id: request.member_id.to_string(),
                group_instance_id: if ctx.version >= GROUP_INSTANCE_ID_VERSION {
                    request.group_instance_id.map(|s| s.to_string())
                } else {
                    None
                },
                protocol_type: request.protocol_type.map(|s| s.to_string()),
                protocol_name: request.protocol_name.map(|s| s.to_string()),
                assignments: request
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            };
            ctx.broker.groups.sync_group(sync).await
        };
    if let Some(e) = response.error {
        tracing::debug!(error = ?e, "sync group refused");
    }
    let out = SyncGroupResponse::default()
        .with_error_code(response.error.map_or(0, |e| e.code()))
        .with_assignment(response.assignment);
    if ctx.version >= PROTOCOL_VERSION {
        out.with_protocol_type(response.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(response.protocol_name.as_deref().map(str_bytes))
    } else {
        out
    }
}
