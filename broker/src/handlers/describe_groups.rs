//! DescribeGroups: state, protocol and members of each group. Member metadata and assignments
//! (and the chosen protocol) are shown only while the group is Stable, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::group::GroupState;
use crate::group_coordinator::GROUP_AUTHORIZED_OPERATIONS;

/// The first version that can report authorized operations.
const AUTHORIZED_OPERATIONS_VERSION: i16 = 3;
/// The first version with members' `group_instance_id`.
const GROUP_INSTANCE_ID_VERSION: i16 = 4;
/// From this version an unknown group is GROUP_ID_NOT_FOUND (with a message) instead of Dead.
const GROUP_ID_NOT_FOUND_VERSION: i16 = 6;

pub async fn handle(ctx: &Ctx<'_>, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    tracing::debug!(groups = ?request.groups.iter().map(|g| g.0.to_string()).collect::<Vec<_>>(), "describe groups");
    let loaded = ctx.broker.groups.ensure_loaded(ctx.broker).await;
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let described = DescribedGroup::default().with_group_id(group_id.clone());
            if let Err(e) = loaded {
                return described.with_error_code(e.code());
            }
            let Some(d) = ctx.broker.groups.describe_group(&group_id.0) else {
                let dead = described.with_group_state(str_bytes(GroupState::Dead.name()));
                return if ctx.version >= GROUP_ID_NOT_FOUND_VERSION {
                    dead.with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(&format!("group {} not found", group_id.0))))
                } else {
                    dead
                };
            };
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    let member = DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if ctx.version >= GROUP_INSTANCE_ID_VERSION {
                        member.with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                    } else {
                        member
                    }
                })
                .collect();
            let described = described
                .with_group_state(str_bytes(d.state.name()))
                .with_protocol_type(str_bytes(&d.protocol_type))
                .with_protocol_data(str_bytes(&d.protocol_data))
                .with_members(members);
            if ctx.version >= AUTHORIZED_OPERATIONS_VERSION && request.include_authorized_operations {
                described.with_authorized_operations(GROUP_AUTHORIZED_OPERATIONS)
            } else {
                described
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
