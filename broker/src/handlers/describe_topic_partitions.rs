//! DescribeTopicPartitions (KIP-966, what Kafka 4 admin clients use to describe topics): the
//! leader, epoch, replicas, ISR and offline replicas of each partition — the same view Metadata
//! gives (`metadata::describe`) — paged by a partition limit and a cursor over topics sorted by
//! name. Skiff keeps no eligible-leader-replica sets (Raft elects only from the majority that has
//! every committed entry), so those fields are left empty.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};
use skiff_protocol::kafka_protocol;
use uuid::Uuid;

use super::metadata::{LATEST_VERSION, TOPIC_OPERATIONS, describe};
use super::{Ctx, topic_name};

/// Kafka's `max.request.partition.size.limit`: the most partitions one response describes.
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn handle(ctx: &Ctx<'_>, request: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let as_metadata = Ctx {
        broker: ctx.broker,
        version: LATEST_VERSION,
        client_id: ctx.client_id.clone(),
        peer: ctx.peer,
        listener: ctx.listener.clone(),
    };
    let mut names: Vec<String> = if request.topics.is_empty() {
        ctx.broker.topics().into_iter().map(|t| t.name).collect()
    } else {
        request.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = if request.response_partition_limit > 0 {
        request.response_partition_limit.min(MAX_PARTITIONS_PER_RESPONSE)
    } else {
        MAX_PARTITIONS_PER_RESPONSE
    };
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.iter().filter(|n| start_topic.as_ref().is_none_or(|s| *n >= s)) {
        let first = if start_topic.as_ref() == Some(name) {
            start_partition
        } else {
            0
        };
        let Some(topic) = ctx.broker.topic(name) else {
            topics.push(unknown(name));
            continue;
        };
        if budget == 0 {
            next_cursor = Some(cursor(name, first));
            break;
        }
        let mut described = convert(describe(&as_metadata, &topic, TOPIC_OPERATIONS));
        described.partitions.retain(|p| p.partition_index >= first);
        if described.partitions.len() > budget as usize {
            described.partitions.truncate(budget as usize);
            let resume = described.partitions.last().map_or(first, |p| p.partition_index + 1);
            topics.push(described);
            next_cursor = Some(cursor(name, resume));
            break;
        }
        budget -= i32::try_from(described.partitions.len()).unwrap_or(budget);
        topics.push(described);
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition)
}

fn unknown(name: &str) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
        .with_name(Some(topic_name(name)))
        .with_topic_id(Uuid::nil())
}

fn convert(t: MetadataResponseTopic) -> DescribeTopicPartitionsResponseTopic {
    let partitions = t
        .partitions
        .into_iter()
        .map(|p| {
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(p.error_code)
                .with_partition_index(p.partition_index)
                .with_leader_id(p.leader_id)
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replica_nodes)
                .with_isr_nodes(p.isr_nodes)
                .with_offline_replicas(p.offline_replicas)
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(t.error_code)
        .with_name(t.name)
        .with_topic_id(t.topic_id)
        .with_is_internal(t.is_internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(t.topic_authorized_operations)
}
