//! Fetch: whole batches from each requested partition, up to the high watermark and the request's
//! byte limits. If fewer than `min_bytes` are ready the request parks until an append commits more
//! (woken by the partitions' high-watermark channels, not by polling) or `max_wait_ms` passes.
//! Fetch sessions (KIP-227) are not offered: every response has session id 0, which tells
//! clients to send full fetches, as the protocol allows.

use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use skiff_protocol::kafka_protocol;
use tokio::time::Instant;

use super::Ctx;
use crate::error::ApiError;
use crate::partition::Partition;

/// The first version whose partitions carry the log start offset.
const LOG_START_VERSION: i16 = 5;
/// The first fetch version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// What a client that sends a non-positive `max_bytes` gets (`fetch.max.bytes`' default).
const FETCH_MAX_BYTES_DEFAULT: usize = 50 * 1024 * 1024;
/// Parked fetches never wait longer than this, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

pub async fn handle(ctx: &Ctx<'_>, request: FetchRequest) -> FetchResponse {
    if request.session_id != 0 {
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        // Subscribe before reading, so an append between the read and the wait still wakes us.
        let mut watchers: Vec<_> = resolve(ctx, &request.topics).flatten().map(|p| p.subscribe()).collect();
        let (response, bytes, errors) = read_all(ctx, &request);
        if bytes >= min_bytes || errors || watchers.is_empty() || Instant::now() >= deadline {
            return response;
        }
        let woken = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return read_all(ctx, &request).0;
        }
    }
}

fn resolve<'a>(
    ctx: &'a Ctx<'_>,
    topics: &'a [FetchTopic],
) -> impl Iterator<Item = Vec<std::sync::Arc<Partition>>> + 'a {
    topics.iter().map(move |t| {
        let topic = if ctx.version >= TOPIC_ID_VERSION {
            ctx.broker.topic_by_id(t.topic_id)
        } else {
            ctx.broker.topic(&t.topic.0)
        };
        match topic {
            Some(topic) => t
                .partitions
                .iter()
                .filter_map(|p| ctx.broker.partition(&topic.name, p.partition))
                .collect(),
            None => Vec::new(),
        }
    })
}

/// Reads every requested partition once: the response, the bytes in it, and whether any
/// partition failed (an error is worth answering at once).
fn read_all(ctx: &Ctx<'_>, request: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut remaining = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        FETCH_MAX_BYTES_DEFAULT
    };
    let mut total = 0;
    let mut errors = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let by_id = ctx.version >= TOPIC_ID_VERSION;
        let topic = if by_id {
            ctx.broker.topic_by_id(t.topic_id)
        } else {
            ctx.broker.topic(&t.topic.0)
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let data = PartitionData::default().with_partition_index(p.partition);
            let result = match &topic {
                None if by_id => Err(ApiError::new(ResponseError::UnknownTopicId, "unknown topic id")),
                None => Err(ApiError::new(ResponseError::UnknownTopicOrPartition, "unknown topic")),
                Some(topic) => match ctx.broker.partition(&topic.name, p.partition) {
                    None => Err(ctx.broker.no_replica_here(&topic.name, p.partition)),
                    Some(part) => read_one(
                        &part,
                        p.current_leader_epoch,
                        p.fetch_offset,
                        p.partition_max_bytes,
                        remaining,
                    )
                    .map(|records| (part, records)),
                },
            };
            partitions.push(match result {
                Ok((part, records)) => {
                    remaining = remaining.saturating_sub(records.len());
                    total += records.len();
                    let hw = part.high_watermark() as i64;
                    data.with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(if ctx.version >= LOG_START_VERSION {
                            part.with_log(|l| l.log_start_offset()) as i64
                        } else {
                            -1
                        })
                        .with_aborted_transactions((request.isolation_level == 1).then(Vec::new))
                        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                        .with_records(Some(records))
                }
                Err(e) => {
                    errors = true;
                    let (hw, start) = match &topic {
                        Some(topic) => ctx.broker.partition(&topic.name, p.partition).map_or((-1, -1), |part| {
                            (
                                part.high_watermark() as i64,
                                part.with_log(|l| l.log_start_offset()) as i64,
                            )
                        }),
                        None => (-1, -1),
                    };
                    let start = if ctx.version >= LOG_START_VERSION { start } else { -1 };
                    data.with_error_code(e.code())
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(start)
                        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                        .with_records(Some(Bytes::new()))
                }
            });
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    (FetchResponse::default().with_responses(responses), total, errors)
}

fn read_one(
    part: &Partition,
    current_leader_epoch: i32,
    offset: i64,
    partition_max_bytes: i32,
    remaining: usize,
) -> Result<Bytes, ApiError> {
    check_leader_epoch(part, current_leader_epoch)?;
    if offset < 0 {
        return Err(ApiError::new(
            ResponseError::OffsetOutOfRange,
            format!("offset {offset} is negative"),
        ));
    }
    if remaining == 0 {
        return Ok(Bytes::new());
    }
    let limit = (partition_max_bytes.max(0) as usize).min(remaining);
    Ok(part.read(offset as u64, limit)?)
}

/// Only the leader serves (NOT_LEADER_OR_FOLLOWER), and KIP-320: a client that knows a newer or
/// older leader epoch than ours is told so.
pub fn check_leader_epoch(part: &Partition, current_leader_epoch: i32) -> Result<(), ApiError> {
    part.check_leader()?;
    let ours = part.leader_epoch();
    if current_leader_epoch < 0 || current_leader_epoch == ours {
        Ok(())
    } else if current_leader_epoch < ours {
        Err(ApiError::new(
            ResponseError::FencedLeaderEpoch,
            format!("epoch {current_leader_epoch} is older than {ours}"),
        ))
    } else {
        Err(ApiError::new(
            ResponseError::UnknownLeaderEpoch,
            format!("epoch {current_leader_epoch} is newer than {ours}"),
        ))
    }
}
