//! DescribeProducers (KIP-664): the idempotent producers each partition tracks, with their epoch
//! and last sequence, so operators can see who writes where (and find stuck producers once
//! transactions exist).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use skiff_protocol::kafka_protocol;

use super::Ctx;

/// No transaction coordinator yet: Kafka's value for "none".
const NO_COORDINATOR_EPOCH: i32 = -1;
/// No open transaction: Kafka's value for "none".
const NO_TXN_START_OFFSET: i64 = -1;

pub fn handle(ctx: &Ctx<'_>, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    match ctx.broker.partition(&t.name.0, index) {
                        None => response
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(super::str_bytes("unknown topic or partition"))),
                        Some(part) => response.with_active_producers(
                            part.producer_states()
                                .active_producers()
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.epoch))
                                        .with_last_sequence(p.last_seq())
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(NO_COORDINATOR_EPOCH)
                                        .with_current_txn_start_offset(NO_TXN_START_OFFSET)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
