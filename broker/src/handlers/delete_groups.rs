//! DeleteGroups: removes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members gets NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;

pub async fn handle(ctx: &Ctx<'_>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let groups = &ctx.broker.groups;
    let loaded = groups.ensure_loaded(ctx.broker).await;
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let result = match loaded {
            Ok(()) => groups.delete_group(ctx.broker, &group_id.0).await,
            Err(e) => Err(e),
        };
        tracing::debug!(group = %group_id.0, result = ?result, "delete group");
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(result.err().map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
