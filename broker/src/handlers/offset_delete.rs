//! OffsetDelete (KIP-496): deletes a group's committed offsets of some partitions, refusing
//! (GROUP_SUBSCRIBED_TO_TOPIC) those whose topic a member of the group subscribes to.

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;

pub async fn handle(ctx: &Ctx<'_>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let groups = &ctx.broker.groups;
    let group_id = request.group_id.0.to_string();
    // Unknown topics or partitions are refused up front, as Kafka does.
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let known = ctx.broker.topic(&topic.name.0);
        for p in &topic.partitions {
            if known
                .as_ref()
                .is_some_and(|t| (0..t.partitions).contains(&p.partition_index))
            {
                wanted.push((topic.name.0.to_string(), p.partition_index));
            }
        }
    }
    let result = match groups.ensure_coordinator(ctx.broker, &group_id).await {
        Ok(()) => groups.delete_offsets(ctx.broker, &group_id, wanted).await,
        Err(e) => Err(e),
    };
    tracing::debug!(group = %group_id, result = ?result, "offset delete");
    let results: HashMap<(String, i32), Option<ResponseError>> = match result {
        Ok(results) => results.into_iter().map(|(t, p, e)| ((t, p), e)).collect(),
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = results
                        .get(&(topic.name.0.to_string(), p.partition_index))
                        .copied()
                        .unwrap_or(Some(ResponseError::UnknownTopicOrPartition));
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
