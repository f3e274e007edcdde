//! Produce: appends each partition's batches and answers per partition. acks=all answers once the
//! batches are fsync'd (committed), acks=1 after the append, acks=0 never.
//!
//! The work is split in two so that a connection can overlap requests (see `server.rs`): `start`
//! appends every partition at once, in request order; the future it returns waits for all the
//! partitions' commits together, so their fsyncs run side by side instead of one after another.

use std::future::Future;
use std::sync::Arc;

use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use skiff_protocol::kafka_protocol;
use skiff_storage::AppendInfo;
use uuid::Uuid;

use super::Ctx;
use crate::error::ApiError;
use crate::partition::{Commit, Partition};

/// The first version whose response carries the log start offset.
const LOG_START_VERSION: i16 = 5;
/// The first version whose response carries an error message.
const ERROR_MESSAGE_VERSION: i16 = 8;
/// The first produce version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;

/// One partition of the request after its append.
type Appended = Result<(Arc<Partition>, AppendInfo), ApiError>;
/// One topic of the request: its name and id as the client gave them, and its partitions.
type TopicAppends = (TopicName, Uuid, Vec<(i32, Appended)>);

/// Appends every partition of the request now and returns the future that finishes it: `None`
/// when the producer asked for no answer (acks=0).
pub fn start<'a>(ctx: &Ctx<'a>, request: ProduceRequest) -> impl Future<Output = Option<ProduceResponse>> + use<'a> {
    let acks = request.acks;
    let version = ctx.version;
    let mut topics: Vec<TopicAppends> = Vec::with_capacity(request.topic_data.len());
    let mut commits: Vec<(usize, usize, Commit)> = Vec::new();
    for topic_data in request.topic_data {
        let by_id = version >= TOPIC_ID_VERSION;
        let topic = if by_id {
            ctx.broker.topic_by_id(topic_data.topic_id)
        } else {
            ctx.broker.topic(&topic_data.name.0)
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let appended = match &topic {
                _ if !matches!(acks, -1..=1) => Err(ApiError::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks={acks} is not -1, 0 or 1"),
                )),
                None if by_id => Err(ApiError::new(ResponseError::UnknownTopicId, "unknown topic id")),
                None => Err(ApiError::new(ResponseError::UnknownTopicOrPartition, "unknown topic")),
                Some(t) if t.internal => Err(ApiError::new(
                    ResponseError::InvalidTopicException,
                    format!("cannot append to internal topic {}", t.name),
                )),
                Some(t) => match (ctx.broker.partition(&t.name, data.index), &data.records) {
                    (None, _) => Err(ctx.broker.no_replica_here(&t.name, data.index)),
                    (Some(_), None) => Err(ApiError::new(ResponseError::InvalidRecord, "no records")),
                    (Some(partition), Some(records)) => partition.begin_append(records, acks).map(|(info, commit)| {
                        commits.push((topics.len(), partitions.len(), commit));
                        (partition, info)
                    }),
                },
            };
            partitions.push((data.index, appended));
        }
        topics.push((topic_data.name, topic_data.topic_id, partitions));
    }
    async move {
        if acks != -1 {
            commits.into_iter().for_each(|(_, _, commit)| commit.detach());
        } else {
            let waits = commits
                .into_iter()
                .map(|(t, p, commit)| async move { (t, p, commit.wait().await) });
            for (t, p, result) in join_all(waits).await {
                if let Err(e) = result {
                    topics[t].2[p].1 = Err(e);
                }
            }
        }
        (acks != 0).then(|| respond(version, topics))
    }
}

fn respond(version: i16, topics: Vec<TopicAppends>) -> ProduceResponse {
    let responses = topics
        .into_iter()
        .map(|(name, topic_id, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, appended)| {
                    let response = PartitionProduceResponse::default().with_index(index);
                    match appended {
                        Ok((partition, info)) => {
                            let log_start = partition.with_log(|l| l.log_start_offset()) as i64;
                            response
                                .with_base_offset(info.first_offset as i64)
                                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                                .with_log_start_offset(if version >= LOG_START_VERSION { log_start } else { -1 })
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "produce refused");
                            response
                                .with_error_code(e.code())
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                                .with_error_message(
                                    (version >= ERROR_MESSAGE_VERSION).then(|| super::str_bytes(&e.message)),
                                )
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
