//! ListGroups: every group this coordinator knows, including empty groups that only hold
//! offsets. v4+ filter by state (KIP-518), v5 by type (KIP-848); all groups here are "classic".

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};

/// The first version with states (filter and answer).
const STATES_VERSION: i16 = 4;
/// The first version with group types (filter and answer).
const TYPES_VERSION: i16 = 5;
/// The type of every group here (KIP-848 names the classic protocol's groups so).
const GROUP_TYPE_CLASSIC: &str = "classic";

pub async fn handle(ctx: &Ctx<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    tracing::debug!(states = ?request.states_filter, types = ?request.types_filter, "list groups");
    if let Err(e) = ctx.broker.groups.ensure_loaded(ctx.broker).await {
        return ListGroupsResponse::default().with_error_code(e.code());
    }
    let states: Vec<String> = if ctx.version >= STATES_VERSION {
        request.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if ctx.version >= TYPES_VERSION {
        request.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let groups = ctx
        .broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == GROUP_TYPE_CLASSIC))
        .map(|g| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            let listed = if ctx.version >= STATES_VERSION {
                listed.with_group_state(str_bytes(g.state.name()))
            } else {
                listed
            };
            if ctx.version >= TYPES_VERSION {
                listed.with_group_type(str_bytes(GROUP_TYPE_CLASSIC))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
