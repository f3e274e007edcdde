//! OffsetForLeaderEpoch (KIP-101, KIP-320): for each partition, the largest leader epoch at or
//! below the requested one and the offset where it ends, so a consumer (or, later, a follower)
//! can detect that the log it read was truncated. The client's `current_leader_epoch` is fenced
//! exactly as Fetch fences it.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;
use super::fetch::check_leader_epoch;
use crate::error::ApiError;
use crate::partition::Partition;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

pub fn handle(ctx: &Ctx<'_>, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    // `replica_id` (v3+) is -1 for consumers; a follower would send its id. With no followers
    // yet, both get the leader's answer.
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = EpochEndOffset::default().with_partition(p.partition);
                    let outcome = ctx
                        .broker
                        .partition_or_unknown(&t.topic.0, p.partition)
                        .and_then(|part| end_offset(&part, p.current_leader_epoch, p.leader_epoch));
                    match outcome {
                        Ok((epoch, offset)) => result.with_leader_epoch(epoch).with_end_offset(offset),
                        Err(e) => result
                            .with_error_code(e.code())
                            .with_leader_epoch(UNDEFINED_EPOCH)
                            .with_end_offset(UNDEFINED_EPOCH_OFFSET),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

fn end_offset(part: &Partition, current_leader_epoch: i32, leader_epoch: i32) -> Result<(i32, i64), ApiError> {
    check_leader_epoch(part, current_leader_epoch)?;
    let found = part.with_log(|log| {
        log.end_offset_for_epoch(leader_epoch).or_else(|| {
            // Kafka's leader records its own epoch when it takes over, so that epoch is known
            // even before a batch carries it: it ends at the log end.
            (leader_epoch >= 0 && leader_epoch == part.leader_epoch()).then(|| (leader_epoch, log.log_end_offset()))
        })
    });
    Ok(
        found.map_or((UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET), |(epoch, offset)| {
            (epoch, offset as i64)
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    use kafka_protocol::messages::{ApiKey, BrokerId, ResponseKind};

    use super::*;
    use crate::broker::Broker;
    use crate::handlers::delete_records::tests::{broker, ctx, topic_with_records};
    use crate::handlers::topic_name;

    /// (error code, epoch, end offset) for one partition, checking every version encodes.
    fn ask(broker: &Arc<Broker>, topic: &str, current_leader_epoch: i32, leader_epoch: i32) -> (i16, i32, i64) {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current_leader_epoch)
                            .with_leader_epoch(leader_epoch),
                    ]),
            ]);
        let response = handle(&ctx(broker, 4), request);
        for v in 2..=4 {
            let kind = ResponseKind::OffsetForLeaderEpoch(response.clone());
            skiff_protocol::encode_response(ApiKey::OffsetForLeaderEpoch, v, 1, &kind).unwrap();
        }
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    }

    #[tokio::test]
    async fn answers_where_an_epoch_ends() {
        let (_dir, broker) = broker();
        broker.create_topic("empty", 1, Default::default(), false).unwrap();
        assert_eq!(
            ask(&broker, "empty", -1, 0),
            (0, 0, 0),
            "the leader's own epoch is known"
        );
        assert_eq!(ask(&broker, "empty", -1, 3), (0, -1, -1), "a future epoch is undefined");
        topic_with_records(&broker, "t", 2).await;
        assert_eq!(ask(&broker, "t", 0, 0), (0, 0, 10));
        assert_eq!(ask(&broker, "t", -1, 7), (0, -1, -1));
    }

    #[tokio::test]
    async fn fences_the_current_leader_epoch_like_fetch() {
        let (_dir, broker) = broker();
        topic_with_records(&broker, "t", 1).await;
        let unknown_epoch = kafka_protocol::ResponseError::UnknownLeaderEpoch.code();
        assert_eq!(ask(&broker, "t", 1, 0), (unknown_epoch, -1, -1));
        let unknown = kafka_protocol::ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(ask(&broker, "nope", -1, 0), (unknown, -1, -1));
    }
}
