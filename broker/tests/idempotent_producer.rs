//! The idempotent producer (KIP-98, KIP-360) against the real binary over raw frames:
//! InitProducerId at every version, retries answered with the original offset, sequence gaps and
//! fenced epochs refused with Kafka's codes, DescribeProducers showing the state, and producer
//! ids and state surviving a restart on the same data directory.

mod common;

use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use common::{BrokerProcess, Client, create_topic};
use skiff_protocol::kafka_protocol;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProduceRequest, ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

const INVALID_REQUEST: i16 = 42;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn init(client: &mut Client, version: i16, current: Option<(i64, i16)>) -> InitProducerIdResponse {
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1);
    if let Some((id, epoch)) = current {
        request = request.with_producer_id(ProducerId(id)).with_producer_epoch(epoch);
    }
    client.call(ApiKey::InitProducerId, version, &request).1
}

/// One batch of `records` records from an idempotent producer, as a client encodes it.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    let plain = common::record_batch(records, 8);
    let mut b = BytesMut::from(&plain[..]);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = skiff_storage::batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Produces with Produce v9 (acks=all): (error code, base offset).
fn produce(client: &mut Client, topic: &str, batch: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default().with_index(0).with_records(Some(batch)),
                ]),
        ]);
    let (_, response): (i32, ProduceResponse) = client.call(ApiKey::Produce, 9, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn describe(client: &mut Client, topic: &str) -> DescribeProducersResponse {
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(name(topic))
            .with_partition_indexes(vec![0, 7]),
    ]);
    client.call(ApiKey::DescribeProducers, 0, &request).1
}

#[test]
fn init_producer_id_hands_out_fresh_ids_and_bumps_epochs() {
    let broker = BrokerProcess::start();
    let mut client = broker.connect();
    let mut seen = Vec::new();
    for version in 0..=5 {
        let r = init(&mut client, version, None);
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{version}: {r:?}");
        assert!(
            r.producer_id.0 >= 0 && !seen.contains(&r.producer_id.0),
            "v{version}: {r:?}"
        );
        seen.push(r.producer_id.0);
    }
    // KIP-360 (v3+): the same id with the next epoch.
    let r = init(&mut client, 4, Some((seen[0], 0)));
    assert_eq!((r.error_code, r.producer_id.0, r.producer_epoch), (0, seen[0], 1));
    // An exhausted epoch gets a new id.
    let r = init(&mut client, 5, Some((seen[0], i16::MAX - 1)));
    assert_eq!(r.producer_epoch, 0);
    assert!(!seen.contains(&r.producer_id.0));
    // An id this broker never issued is not bumped.
    let r = init(&mut client, 5, Some((1 << 40, 3)));
    assert_eq!(r.producer_epoch, 0);
    assert_ne!(r.producer_id.0, 1 << 40);
    // An empty transactional id is malformed (Kafka: INVALID_REQUEST).
    let request = InitProducerIdRequest::default().with_transaction_timeout_ms(-1);
    let (_, r): (i32, InitProducerIdResponse) = client.call(ApiKey::InitProducerId, 2, &request);
    assert_eq!(r.error_code, INVALID_REQUEST);
    // Transactions are not supported: a clear, non-retriable refusal.
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("txn-1"))))
        .with_transaction_timeout_ms(60_000);
    let (_, r): (i32, InitProducerIdResponse) = client.call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(
        (r.error_code, r.producer_id.0),
        (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)
    );
}

#[test]
fn retries_get_the_original_offset_and_state_survives_a_kill() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.connect();
    create_topic(&mut client, "idem", 1);
    let pid = init(&mut client, 4, None).producer_id.0;

    assert_eq!(produce(&mut client, "idem", idempotent_batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(produce(&mut client, "idem", idempotent_batch(pid, 0, 3, 2)), (0, 3));
    // A retry of the first batch: not written again, answered with its offset.
    assert_eq!(produce(&mut client, "idem", idempotent_batch(pid, 0, 0, 3)), (0, 0));
    // A gap and a bumped epoch that does not restart at 0.
    assert_eq!(
        produce(&mut client, "idem", idempotent_batch(pid, 0, 9, 1)).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        produce(&mut client, "idem", idempotent_batch(pid, 1, 5, 1)).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(produce(&mut client, "idem", common::record_batch(1, 8)), (0, 5));

    let d = describe(&mut client, "idem");
    let parts = &d.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    assert_eq!(parts[0].active_producers.len(), 1);
    let p = &parts[0].active_producers[0];
    assert_eq!(
        (
            p.producer_id.0,
            p.producer_epoch,
            p.last_sequence,
            p.coordinator_epoch,
            p.current_txn_start_offset
        ),
        (pid, 0, 4, -1, -1)
    );
    assert_ne!(parts[1].error_code, 0, "partition 7 does not exist");

    // SIGKILL, then a new broker on the same data directory: the state is rebuilt from the log.
    let data_dir = broker.data.path().join("data");
    let addr = broker.addr;
    drop(client);
    Command::new("kill")
        .arg("-9")
        .arg(broker.pid().to_string())
        .status()
        .expect("kill -9");
    for _ in 0..200 {
        if !broker.is_alive() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!broker.is_alive(), "the broker survived kill -9");
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart skiff");
    let mut client = None;
    for _ in 0..200 {
        if let Ok(stream) = std::net::TcpStream::connect(addr) {
            drop(stream);
            client = Some(Client::connect(addr));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut client = client.expect("the restarted broker accepts connections");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eq!(produce(&mut client, "idem", idempotent_batch(pid, 0, 3, 2)), (0, 3));
        assert_eq!(produce(&mut client, "idem", idempotent_batch(pid, 0, 5, 1)), (0, 6));
        assert_eq!(
            produce(&mut client, "idem", idempotent_batch(pid, 0, 0, 1)).0,
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        // A zombie with an older epoch after a bump is fenced.
        let bumped = init(&mut client, 4, Some((pid, 0)));
        assert_eq!((bumped.producer_id.0, bumped.producer_epoch), (pid, 1));
        assert_eq!(produce(&mut client, "idem", idempotent_batch(pid, 1, 0, 1)), (0, 7));
        assert_eq!(
            produce(&mut client, "idem", idempotent_batch(pid, 0, 6, 1)).0,
            INVALID_PRODUCER_EPOCH
        );
        // Ids handed out before the kill are never handed out again.
        let fresh = init(&mut client, 4, None).producer_id.0;
        assert!(fresh > pid, "{fresh} after {pid}");
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
