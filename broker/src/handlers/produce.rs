//! Produce: appends each partition's batches and answers per partition. acks=all answers once the
//! batches are fsync'd (committed), acks=1 after the append, acks=0 never.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;
use crate::error::ApiError;

/// The first version whose response carries the log start offset.
const LOG_START_VERSION: i16 = 5;
/// The first version whose response carries an error message.
const ERROR_MESSAGE_VERSION: i16 = 8;
/// The first produce version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;

/// `None` when the producer asked for no answer (acks=0).
pub async fn handle(ctx: &Ctx<'_>, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let topic = if ctx.version >= TOPIC_ID_VERSION {
            ctx.broker.topic_by_id(topic_data.topic_id)
        } else {
            ctx.broker.topic(&topic_data.name.0)
        };
        let unknown = if ctx.version >= TOPIC_ID_VERSION {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let result = match (&topic, acks) {
                (_, a) if !matches!(a, -1..=1) => Err(ApiError::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks={a} is not -1, 0 or 1"),
                )),
                (None, _) => Err(ApiError::new(unknown, "unknown topic")),
                (Some(t), _) if t.internal => Err(ApiError::new(
                    ResponseError::InvalidTopicException,
                    format!("cannot append to internal topic {}", t.name),
                )),
                (Some(t), _) => match ctx.broker.partition(&t.name, data.index) {
                    None => Err(ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        "unknown partition",
                    )),
                    Some(partition) => match &data.records {
                        None => Err(ApiError::new(ResponseError::InvalidRecord, "no records")),
                        Some(records) => partition
                            .append(records, acks)
                            .await
                            .map(|info| (info, partition.with_log(|l| l.log_start_offset()))),
                    },
                },
            };
            let response = PartitionProduceResponse::default().with_index(data.index);
            partitions.push(match result {
                Ok((info, log_start)) => response
                    .with_base_offset(info.first_offset as i64)
                    .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                    .with_log_start_offset(if ctx.version >= LOG_START_VERSION {
                        log_start as i64
                    } else {
                        -1
                    }),
                Err(e) => {
                    tracing::debug!(error = %e, "produce refused");
                    response
                        .with_error_code(e.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(
                            (ctx.version >= ERROR_MESSAGE_VERSION).then(|| super::str_bytes(&e.message)),
                        )
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
