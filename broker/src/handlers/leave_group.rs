//! LeaveGroup: members leave at once instead of waiting for their sessions to expire. v0-2 name
//! one member; v3+ (KIP-345) a batch, by member id or by `group.instance.id`.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;
use crate::group_coordinator::LeavingMember;

/// The first version that batches members.
const BATCH_VERSION: i16 = 3;

pub fn handle(ctx: &Ctx<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let leaving: Vec<LeavingMember> = if ctx.version >= BATCH_VERSION {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    tracing::debug!(group = %request.group_id.0, members = ?leaving, "leave group");
    let result = ctx.broker.groups.leave_group(&request.group_id.0, &leaving);
    let code = |r: &Result<(), kafka_protocol::ResponseError>| r.as_ref().err().map_or(0, |e| e.code());
    match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if ctx.version < BATCH_VERSION => {
            LeaveGroupResponse::default().with_error_code(results.first().map_or(0, code))
        }
        Ok(results) => LeaveGroupResponse::default().with_members(
            request
                .members
                .into_iter()
                .zip(results.iter())
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(code(r))
                })
                .collect(),
        ),
    }
}
