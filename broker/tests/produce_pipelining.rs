//! Produce requests pipelined on one connection (as librdkafka and the Java client send them, up
//! to five in flight) must append in request order and be answered in request order, and a
//! request of another kind queued behind them must see them all committed — Kafka's per-connection
//! ordering, even though the broker lets the produces share their fsyncs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BrokerProcess, record_batch};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use skiff_protocol::kafka_protocol;

const TOPIC: &str = "pipelined";
const REQUESTS: usize = 40;
const RECORDS_PER_BATCH: usize = 10;

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

#[test]
fn pipelined_produces_append_and_answer_in_order_and_a_fetch_behind_them_sees_them_all() {
    let broker = BrokerProcess::start();
    let mut client = broker.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name())
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let (_, created): (_, CreateTopicsResponse) = client.call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(created.topics[0].error_code, 0);

    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(name()).with_partition_data(
            vec![
            PartitionProduceData::default().with_index(0).with_records(Some(record_batch(RECORDS_PER_BATCH, 50))),
        ],
        )]);
    // Everything is written before any answer is read: the broker sees a queue of requests.
    let produce_ids: Vec<i32> = (0..REQUESTS)
        .map(|_| client.send(ApiKey::Produce, 9, &produce))
        .collect();
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 24)
        .with_topics(vec![FetchTopic::default().with_topic(name()).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 24),
        ])]);
    let fetch_id = client.send(ApiKey::Fetch, 11, &fetch);

    for (i, id) in produce_ids.iter().enumerate() {
        let (corr, response): (_, ProduceResponse) = client.recv(ApiKey::Produce, 9);
        assert_eq!(corr, *id, "answer {i} is out of order");
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(
            p.base_offset,
            (i * RECORDS_PER_BATCH) as i64,
            "request {i} appended out of order"
        );
    }
    let (corr, fetched): (_, FetchResponse) = client.recv(ApiKey::Fetch, 11);
    assert_eq!(corr, fetch_id);
    let partition = &fetched.responses[0].partitions[0];
    let total = (REQUESTS * RECORDS_PER_BATCH) as i64;
    assert_eq!(
        partition.high_watermark, total,
        "the fetch ran before every earlier produce was committed"
    );
    let batches = skiff_storage::batch::split_batches(partition.records.as_deref().unwrap()).unwrap();
    assert_eq!(batches.len(), REQUESTS, "the fetch sees every batch produced before it");
}
