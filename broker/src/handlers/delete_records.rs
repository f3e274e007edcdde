//! DeleteRecords: moves each partition's log start offset up to the given offset (-1 means the
//! high watermark), so earlier records are no longer readable and whole segments below it are
//! deleted. Answers the new low watermark; an offset past the high watermark is out of range.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use skiff_protocol::kafka_protocol;

use super::Ctx;
use crate::error::ApiError;
use crate::partition::Partition;

/// The offset that asks to delete everything up to the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub fn handle(ctx: &Ctx<'_>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    let outcome = ctx
                        .broker
                        .partition_or_unknown(&t.name.0, p.partition_index)
                        .and_then(|part| delete(&part, p.offset));
                    match outcome {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(e) => {
                            tracing::debug!(topic = %t.name.0, partition = p.partition_index, error = %e, "delete records refused");
                            result.with_low_watermark(-1).with_error_code(e.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Moves the log start to `offset` and answers the new low watermark.
fn delete(part: &Partition, offset: i64) -> Result<i64, ApiError> {
    let target = match offset {
        HIGH_WATERMARK => part.high_watermark(),
        o if o < 0 => {
            return Err(ApiError::new(
                ResponseError::OffsetOutOfRange,
                format!("offset {o} is negative"),
            ));
        }
        o => o as u64,
    };
    let low_watermark = part.delete_records(target)?;
    tracing::info!(topic = %part.topic, partition = part.index, low_watermark, "deleted records");
    Ok(low_watermark as i64)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::broker::Broker;
    use crate::config::BrokerConfig;
    use crate::handlers::topic_name;

    /// A broker on a fresh data directory (kept alive by the returned guard).
    pub(crate) fn broker() -> (tempfile::TempDir, Arc<Broker>) {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new(dir.path().join("data"), "127.0.0.1:9092".parse().unwrap());
        (dir, Broker::open(config).unwrap())
    }

    pub(crate) fn ctx(broker: &Arc<Broker>, version: i16) -> Ctx<'_> {
        Ctx {
            broker,
            version,
            client_id: "test".into(),
            peer: "127.0.0.1:1".parse().expect("a literal address"),
            listener: crate::listener::DEFAULT_LISTENER_NAME.into(),
        }
    }

    /// One uncompressed batch of `n` records, as a producer sends it.
    pub(crate) fn batch(n: usize) -> Bytes {
        crate::test_batches::build(n, 10, 1_700_000_000_000, kafka_protocol::records::Compression::None).freeze()
    }

    /// Creates `topic` with one partition holding `batches` committed batches of 5 records.
    pub(crate) async fn topic_with_records(broker: &Arc<Broker>, topic: &str, batches: usize) {
        broker.create_topic(topic, 1, Default::default(), false).unwrap();
        let part = broker.partition(topic, 0).unwrap();
        for _ in 0..batches {
            part.append(&batch(5), -1).await.unwrap();
        }
    }

    fn request(topic: &str, partition: i32, offset: i64) -> DeleteRecordsRequest {
        DeleteRecordsRequest::default().with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ])
    }

    fn delete(broker: &Arc<Broker>, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
        let response = handle(&ctx(broker, 2), request(topic, partition, offset));
        for v in 0..=2 {
            let kind = ResponseKind::DeleteRecords(response.clone());
            skiff_protocol::encode_response(ApiKey::DeleteRecords, v, 1, &kind).unwrap();
        }
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    }

    #[tokio::test]
    async fn moves_the_log_start_up_to_the_high_watermark_and_no_further() {
        let (_dir, broker) = broker();
        topic_with_records(&broker, "t", 2).await;
        assert_eq!(delete(&broker, "t", 0, 3), (0, 3));
        assert_eq!(
            delete(&broker, "t", 0, 1),
            (0, 3),
            "an older offset leaves the log start alone"
        );
        let out_of_range = ResponseError::OffsetOutOfRange.code();
        assert_eq!(delete(&broker, "t", 0, 11), (out_of_range, -1));
        assert_eq!(delete(&broker, "t", 0, -2), (out_of_range, -1));
        assert_eq!(delete(&broker, "t", 0, -1), (0, 10), "-1 means the high watermark");
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(delete(&broker, "t", 1, 0), (unknown, -1));
        assert_eq!(delete(&broker, "nope", 0, 0), (unknown, -1));
    }
}
