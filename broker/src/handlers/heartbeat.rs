//! Heartbeat: keeps a member's session alive and tells it when a rebalance started
//! (REBALANCE_IN_PROGRESS) or that it is no longer part of the group.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;

/// The first version with `group_instance_id`.
const GROUP_INSTANCE_ID_VERSION: i16 = 3;

pub fn handle(ctx: &Ctx<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let instance = if ctx.version >= GROUP_INSTANCE_ID_VERSION {
        request.group_instance_id.as_deref()
    } else {
        None
    };
    let result = ctx
        .broker
        .groups
        .heartbeat(&request.group_id.0, &request.member_id, instance, request.generation_id);
    tracing::debug!(
        group = %request.group_id.0,
        member = %request.member_id,
        generation = request.generation_id,
        result = ?result,
        "heartbeat"
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
