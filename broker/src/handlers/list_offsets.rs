//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups, never past the high
//! watermark.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use skiff_protocol::kafka_protocol;

use super::Ctx;
use super::fetch::check_leader_epoch;
use crate::error::ApiError;
use crate::partition::Partition;

/// The first version whose response carries the leader epoch.
const LEADER_EPOCH_VERSION: i16 = 4;
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;

pub fn handle(ctx: &Ctx<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let result = ctx
                        .broker
                        .partition_or_unknown(&t.name.0, p.partition_index)
                        .and_then(|part| {
                            check_leader_epoch(&part, p.current_leader_epoch)?;
                            lookup(&part, p.timestamp)
                        });
                    match result {
                        Ok((offset, timestamp, epoch)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if ctx.version >= LEADER_EPOCH_VERSION { epoch } else { -1 }),
                        Err(e) => response.with_error_code(e.code()).with_offset(-1).with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp, leader epoch)`; offset -1 when no record matches.
fn lookup(part: &Partition, timestamp: i64) -> Result<(i64, i64, i32), ApiError> {
    let hw = part.high_watermark();
    let epoch = part.leader_epoch();
    part.with_log(|log| {
        let visible = |found: Option<(u64, i64)>| -> Result<(i64, i64, i32), ApiError> {
            match found {
                Some((offset, ts)) if offset < hw => Ok((offset as i64, ts, log.epoch_at(offset)?.unwrap_or(epoch))),
                _ => Ok((-1, -1, -1)),
            }
        };
        match timestamp {
            LATEST_TIMESTAMP => Ok((hw as i64, -1, epoch)),
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => Ok((log.log_start_offset() as i64, -1, epoch)),
            MAX_TIMESTAMP => visible(log.max_timestamp(&record_timestamps)?),
            LATEST_TIERED_TIMESTAMP => Ok((-1, -1, -1)),
            t if t >= 0 => visible(log.offset_for_timestamp(t, &record_timestamps)?),
            t => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("timestamp {t} is not a known special value"),
            )),
        }
    })
}

/// Opens a compressed batch the way a client would, for record-precise timestamp lookups.
fn record_timestamps(batch: &[u8]) -> Option<Vec<(u64, i64)>> {
    let set = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch)).ok()?;
    Some(
        set.records
            .iter()
            .map(|r| (r.offset.max(0) as u64, r.timestamp))
            .collect(),
    )
}
