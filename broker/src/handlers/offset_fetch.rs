//! OffsetFetch: the committed offset, leader epoch and metadata of each partition asked for (or
//! of every partition the group committed, when the topic list is null); -1 where nothing was
//! committed. v8+ ask for several groups at once. `require_stable` needs no waiting here: without
//! transactional offset commits no offset is ever pending.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes, topic_name};
use crate::group::CommittedOffset;

/// The first version carrying the committed leader epoch.
const LEADER_EPOCH_VERSION: i16 = 5;
/// The first version that asks for several groups.
const BATCHED_VERSION: i16 = 8;

/// Per topic, per partition, the committed offset.
type TopicOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;
/// One group's answer.
type Fetched = Result<TopicOffsets, ResponseError>;

pub async fn handle(ctx: &Ctx<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let coordinator = &ctx.broker.groups;
    if ctx.version >= BATCHED_VERSION {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in request.groups {
            let wanted = g
                .topics
                .map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
            let loaded = coordinator.ensure_coordinator(ctx.broker, &g.group_id.0).await;
            let fetched = loaded.map(|()| fetch(ctx, &g.group_id, wanted));
            groups.push(group_response(g.group_id, fetched));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let loaded = coordinator.ensure_coordinator(ctx.broker, &request.group_id.0).await;
    let wanted = request
        .topics
        .map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    match loaded.map(|()| fetch(ctx, &request.group_id, wanted)) {
        Err(e) => OffsetFetchResponse::default().with_error_code(e.code()),
        Ok(topics) => {
            let topics = topics
                .into_iter()
                .map(|(name, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|(index, offset)| {
                            let (offset, epoch, metadata) = fields(offset);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if ctx.version >= LEADER_EPOCH_VERSION {
                                    epoch
                                } else {
                                    -1
                                })
                                .with_metadata(Some(str_bytes(&metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
    }
}

fn fetch(ctx: &Ctx<'_>, group_id: &GroupId, wanted: Option<Vec<(TopicName, Vec<i32>)>>) -> TopicOffsets {
    tracing::debug!(group = %group_id.0, all = wanted.is_none(), "offset fetch");
    let partitions = wanted.map(|ts| {
        ts.iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.0.to_string(), *p)))
            .collect()
    });
    // Grouped by topic, in the order asked (or by name for "all").
    let mut out = TopicOffsets::new();
    for (topic, partition, offset) in ctx.broker.groups.fetch_offsets(&group_id.0, partitions) {
        match out.last_mut() {
            Some((t, ps)) if *t == topic => ps.push((partition, offset)),
            _ => out.push((topic, vec![(partition, offset)])),
        }
    }
    out
}

fn fields(offset: Option<CommittedOffset>) -> (i64, i32, String) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, String::new()),
    }
}

fn group_response(group_id: GroupId, fetched: Fetched) -> OffsetFetchResponseGroup {
    let response = OffsetFetchResponseGroup::default().with_group_id(group_id);
    match fetched {
        Err(e) => response.with_error_code(e.code()),
        Ok(topics) => response.with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&name))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, offset)| {
                                    let (offset, epoch, metadata) = fields(offset);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(str_bytes(&metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
