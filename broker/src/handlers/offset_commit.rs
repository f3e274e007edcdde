//! OffsetCommit: checks the member and generation against the group (classic protocol), then
//! stores the offsets in `__consumer_offsets`, fsync'd before the answer. A commit with an empty
//! member id and generation -1 is a "simple" commit, allowed while the group has no members.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;
use crate::clock::now_ms;
use crate::group::CommittedOffset;
use crate::group_coordinator::{Committer, OFFSET_METADATA_MAX_BYTES_DEFAULT, OffsetCommit};

/// The first version carrying the committed leader epoch.
const LEADER_EPOCH_VERSION: i16 = 6;
/// The first version with `group_instance_id`.
const GROUP_INSTANCE_ID_VERSION: i16 = 7;
/// From this version a commit to a group that does not exist gets GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND_VERSION: i16 = 9;

pub async fn handle(ctx: &Ctx<'_>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    tracing::debug!(
        group = %group_id,
        member = %request.member_id,
        generation = request.generation_id_or_member_epoch,
        partitions = request.topics.iter().map(|t| t.partitions.len()).sum::<usize>(),
        "offset commit"
    );
    let timestamp = now_ms();
    // Per (topic index, partition index): the error found before the write, if any.
    let mut errors: Vec<Vec<Option<ResponseError>>> = Vec::with_capacity(request.topics.len());
    let mut commits = Vec::new();
    for topic in &request.topics {
        let known = ctx.broker.topic(&topic.name.0);
        let row = topic
            .partitions
            .iter()
            .map(|p| {
                let metadata = p.committed_metadata.as_deref().unwrap_or_default();
                if !known
                    .as_ref()
                    .is_some_and(|t| (0..t.partitions).contains(&p.partition_index))
                {
                    return Some(ResponseError::UnknownTopicOrPartition);
                }
                if metadata.len() > OFFSET_METADATA_MAX_BYTES_DEFAULT {
                    return Some(ResponseError::OffsetMetadataTooLarge);
                }
                commits.push(OffsetCommit {
                    topic: topic.name.0.to_string(),
                    partition: p.partition_index,
                    offset: CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if ctx.version >= LEADER_EPOCH_VERSION {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: metadata.to_string(),
                        commit_timestamp: timestamp,
                    },
                });
                None
            })
            .collect();
        errors.push(row);
    }
    let group_error = if commits.is_empty() {
        None
    } else {
        let committer = Committer {
            member_id: request.member_id.to_string(),
            group_instance_id: if ctx.version >= GROUP_INSTANCE_ID_VERSION {
                request.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            generation_id: request.generation_id_or_member_epoch,
            group_id_not_found_error: ctx.version >= GROUP_ID_NOT_FOUND_VERSION,
        };
        let groups = &ctx.broker.groups;
        let result = match groups.ensure_coordinator(ctx.broker, &group_id).await {
            Ok(()) => groups.commit_offsets(ctx.broker, &group_id, committer, commits).await,
            Err(e) => Err(e),
        };
        result.err()
    };
    if let Some(e) = group_error {
        tracing::debug!(group = %group_id, error = ?e, "offset commit refused");
    }
    let topics = request
        .topics
        .into_iter()
        .zip(errors)
        .map(|(topic, row)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(row)
                .map(|(p, e)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(e.or(group_error).map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
