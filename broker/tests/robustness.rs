//! The broker against abusive clients, over raw TCP to the real binary: garbage bytes, negative and
//! huge sizes, truncated frames, unknown APIs and versions, arrays that claim billions of elements,
//! a flood of connections and a client that never reads. Each abusive connection must be closed
//! (or answered as Kafka would), and afterwards the broker must still be up and serving everyone
//! else: every test ends by checking that a fresh connection gets a correct ApiVersions and
//! Metadata answer.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{BrokerProcess, Client, api_versions_request, encode_request, encode_request_kind};
use skiff_broker::dispatch::{SUPPORTED, supported_range};
use skiff_protocol::kafka_protocol;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, FetchRequest, FetchResponse, GroupId, JoinGroupRequest,
    MetadataRequest, MetadataResponse, ProduceRequest, RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// How long the broker may take to close a connection it should refuse.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
/// `socket.request.max.bytes`' default.
const SOCKET_REQUEST_MAX_BYTES: i32 = 100 * 1024 * 1024;
/// How much the broker's resident memory may grow while refusing oversized or bogus requests.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;
/// UNSUPPORTED_VERSION
const UNSUPPORTED_VERSION: i16 = 35;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn assert_closed(client: &mut Client, broker: &mut BrokerProcess, what: &str) {
    assert!(
        client.closed_within(CLOSE_WITHIN),
        "the broker kept the connection open after {what}"
    );
    broker.assert_responsive(what);
}

/// A deterministic xorshift generator: the garbage is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_garbage_is_refused_and_the_broker_keeps_serving() {
    let mut broker = BrokerProcess::start();
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    for round in 0..20 {
        // Garbage from the first byte: the size prefix is random too. Half-close so a plausible
        // size that waits for more bytes ends at EOF.
        let mut c = broker.connect();
        let len = 1 + (rng.next() % 4096) as usize;
        let _ = c.send_raw(&rng.bytes(len));
        c.shutdown_write();
        assert_closed(&mut c, &mut broker, &format!("garbage round {round}"));

        // A correct size prefix around a garbage request (random api key, version, header, body).
        let mut c = broker.connect();
        let len = 8 + (rng.next() % 512) as usize;
        let body = rng.bytes(len);
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        let _ = c.send_raw(&frame);
        assert_closed(&mut c, &mut broker, &format!("a framed garbage request, round {round}"));
    }
    broker.assert_serving("random garbage");
}

#[test]
fn negative_sizes_are_refused() {
    let mut broker = BrokerProcess::start();
    for size in [-1i32, -2, i32::MIN] {
        let mut c = broker.connect();
        let _ = c.send_raw(&size.to_be_bytes());
        assert_closed(&mut c, &mut broker, &format!("a size of {size}"));
    }
    broker.assert_serving("negative sizes");
}

#[test]
fn huge_sizes_are_refused_before_buffering() {
    let mut broker = BrokerProcess::start();
    broker.assert_serving("startup");
    let rss_before = broker.rss_kib().expect("VmRSS of the broker");
    for size in [i32::MAX, 1 << 30, SOCKET_REQUEST_MAX_BYTES + 1] {
        for _ in 0..10 {
            let mut c = broker.connect();
            let mut frame = size.to_be_bytes().to_vec();
            frame.extend_from_slice(&[0u8; 4096]);
            let _ = c.send_raw(&frame);
            assert_closed(&mut c, &mut broker, &format!("a size of {size}"));
        }
    }
    let rss_after = broker.rss_kib().expect("VmRSS of the broker");
    assert!(
        rss_after < rss_before + RSS_GROWTH_LIMIT_KIB,
        "the broker's RSS grew from {rss_before} KiB to {rss_after} KiB refusing oversized frames"
    );
    broker.assert_serving("huge sizes");
}

#[test]
fn truncated_frames_then_close_are_dropped() {
    let mut broker = BrokerProcess::start();
    // A size prefix cut short, and a frame cut short, each followed by the client closing.
    for bytes in [vec![0u8, 0], vec![0, 0, 0, 100, 0, 18, 0, 3, 0, 0]] {
        let mut c = broker.connect();
        c.send_raw(&bytes).expect("send");
        c.shutdown_write();
        assert_closed(&mut c, &mut broker, "a truncated frame and EOF");
    }
    // And a client that vanishes mid-frame without a half-close.
    let mut s = TcpStream::connect(broker.addr).expect("connect");
    s.write_all(&[0, 0, 1, 0, 0, 3]).expect("send");
    drop(s);
    broker.assert_serving("truncated frames");
}

/// A well-formed request of each kind whose body is cut short, with the size prefix telling the
/// truth about the shorter frame: the body does not decode, so the connection is closed.
#[test]
fn valid_headers_with_truncated_bodies_are_refused() {
    let mut broker = BrokerProcess::start();
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("t"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(common::record_batch(3, 10))),
                ]),
        ]);
    let metadata =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("t")))]));
    let create = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(name("t"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let frames = [
        encode_request(ApiKey::Produce, 9, 1, &produce),
        encode_request(ApiKey::Produce, 3, 1, &produce),
        encode_request(ApiKey::Metadata, 12, 1, &metadata),
        encode_request(ApiKey::Metadata, 1, 1, &metadata),
        encode_request(ApiKey::CreateTopics, 7, 1, &create),
        encode_request(ApiKey::Fetch, 11, 1, &common::fetch_request("t", 0, 1024)),
    ];
    for (i, full) in frames.iter().enumerate() {
        let body_len = full.len() - 4;
        // Keep the header (at least 8 bytes) and lose the end of the body at a few cut points.
        for keep in [body_len - 1, body_len - 3, body_len / 2, 12] {
            let mut frame = BytesMut::new();
            frame.put_i32(keep as i32);
            frame.put_slice(&full[4..4 + keep]);
            let mut c = broker.connect();
            c.send_raw(&frame).expect("send");
            assert_closed(
                &mut c,
                &mut broker,
                &format!("frame {i} cut to {keep} of {body_len} bytes"),
            );
        }
    }
    broker.assert_serving("truncated bodies");
}

#[test]
fn unknown_api_keys_and_unsupported_versions_close_the_connection() {
    let mut broker = BrokerProcess::start();
    // Unknown api keys, with a plausible header behind them.
    for key in [9999i16, -1, 1000, i16::MAX] {
        let mut frame = BytesMut::new();
        frame.put_i32(10);
        frame.put_i16(key);
        frame.put_i16(0);
        frame.put_i32(1);
        frame.put_i16(-1);
        let mut c = broker.connect();
        c.send_raw(&frame).expect("send");
        assert_closed(&mut c, &mut broker, &format!("api key {key}"));
    }
    // Known APIs at versions nobody speaks, or the broker does not advertise.
    for (api, version) in [
        (ApiKey::Produce, 99),
        (ApiKey::Produce, -1),
        (ApiKey::Metadata, 99),
        (ApiKey::Fetch, 0),
    ] {
        if supported_range(api).is_some_and(|(min, max)| (min..=max).contains(&version)) {
            continue;
        }
        let mut frame = BytesMut::new();
        frame.put_i32(10);
        frame.put_i16(api as i16);
        frame.put_i16(version);
        frame.put_i32(1);
        frame.put_i16(-1);
        let mut c = broker.connect();
        c.send_raw(&frame).expect("send");
        assert_closed(&mut c, &mut broker, &format!("{api:?} v{version}"));
    }
    broker.assert_serving("unknown apis and versions");
}

/// KIP-511: an ApiVersions request at a version the broker does not know gets a v0 response with
/// UNSUPPORTED_VERSION and the supported ranges, and the connection stays usable.
#[test]
fn api_versions_at_an_unknown_version_gets_a_v0_answer() {
    let mut broker = BrokerProcess::start();
    let mut c = broker.connect();
    // A v99 request as a newer client would send it: flexible header v2 and a body we cannot know.
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(4242);
    frame.put_i16(4);
    frame.put_slice(b"test");
    frame.put_u8(0); // header tagged fields
    frame.put_slice(&[0x42; 17]); // an unknown body
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    c.send_raw(&frame).expect("send");
    let mut response = c.recv_frame().expect("an ApiVersions answer");
    let header = ResponseHeader::decode(&mut response, 0).expect("a v0 response header");
    assert_eq!(header.correlation_id, 4242);
    let body = ApiVersionsResponse::decode(&mut response, 0).expect("a v0 ApiVersions response");
    assert!(response.is_empty(), "trailing bytes after the v0 response");
    assert_eq!(body.error_code, UNSUPPORTED_VERSION);
    let listed: Vec<(i16, i16, i16)> = body
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let supported: Vec<(i16, i16, i16)> = SUPPORTED.iter().map(|&(k, min, max)| (k as i16, min, max)).collect();
    assert_eq!(listed, supported);
    // The client now retries at a version both know, on the same connection.
    let (_, versions): (i32, ApiVersionsResponse) = c.call(ApiKey::ApiVersions, 3, &api_versions_request(3));
    assert_eq!(versions.error_code, 0);
    broker.assert_serving("ApiVersions v99");
}

/// Kafka answers requests on one connection in the order they were sent.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut broker = BrokerProcess::start();
    let mut c = broker.connect();
    let mut sent = Vec::new();
    let mut all = BytesMut::new();
    for i in 0..60i32 {
        let correlation_id = 1000 + i * 7;
        let (api, version, frame) = match i % 3 {
            0 => {
                let v = (i / 3 % 5) as i16;
                (
                    ApiKey::ApiVersions,
                    v,
                    encode_request(ApiKey::ApiVersions, v, correlation_id, &api_versions_request(v)),
                )
            }
            1 => {
                let v = (i / 3 % 13) as i16;
                let request = if v == 0 {
                    MetadataRequest::default().with_topics(Some(Vec::new()))
                } else {
                    MetadataRequest::default().with_topics(None)
                };
                (
                    ApiKey::Metadata,
                    v,
                    encode_request(ApiKey::Metadata, v, correlation_id, &request),
                )
            }
            _ => (
                ApiKey::Fetch,
                11,
                encode_request(
                    ApiKey::Fetch,
                    11,
                    correlation_id,
                    &common::fetch_request("nope", 0, 1024),
                ),
            ),
        };
        all.put_slice(&frame);
        sent.push((api, version, correlation_id));
    }
    c.send_raw(&all).expect("send all at once");
    for (api, version, correlation_id) in sent {
        let mut frame = c.recv_frame().expect("a response");
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version)).expect("header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses come back in request order"
        );
        match api {
            ApiKey::ApiVersions => {
                ApiVersionsResponse::decode(&mut frame, version).expect("ApiVersions response");
            }
            ApiKey::Metadata => {
                MetadataResponse::decode(&mut frame, version).expect("Metadata response");
            }
            _ => {
                FetchResponse::decode(&mut frame, version).expect("Fetch response");
            }
        }
        assert!(frame.is_empty(), "{api:?} v{version}: trailing bytes");
    }
    broker.assert_serving("pipelining");
}

#[test]
fn two_hundred_connections_at_once() {
    let mut broker = BrokerProcess::start();
    let mut clients: Vec<Client> = (0..200).map(|_| broker.connect()).collect();
    for c in &mut clients {
        c.send(ApiKey::ApiVersions, 3, &api_versions_request(3));
    }
    for c in &mut clients {
        let (corr, response): (i32, ApiVersionsResponse) = c.recv(ApiKey::ApiVersions, 3);
        assert_eq!((corr, response.error_code), (1, 0));
    }
    drop(clients);
    // And 200 that connect and leave without a word.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(broker.addr).expect("connect"))
        .collect();
    drop(idle);
    broker.assert_serving("200 connections");
}

/// A frame whose request is `one` with its top-level array's element count replaced by one the
/// wire cannot hold (2^31 - 1, or 2^32 - 2 for a compact array). The count is found by encoding
/// the request with one and with two elements: the first byte that differs ends the count.
fn huge_count_frame(api: ApiKey, version: i16, one: &RequestKind, two: &RequestKind) -> Bytes {
    let a = encode_request_kind(api, version, 7, one);
    let b = encode_request_kind(api, version, 7, two);
    let (a, b) = (&a[4..], &b[4..]);
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| panic!("{api:?} v{version}: one and two elements encode the same"));
    let flexible = api.request_header_version(version) >= 2;
    let (start, len, count): (usize, usize, Vec<u8>) = if flexible {
        // Compact arrays carry count + 1 as an unsigned varint: 2 for one element.
        assert_eq!(a[at], 2, "{api:?} v{version}: compact count of one element");
        (at, 1, vec![0xff, 0xff, 0xff, 0xff, 0x0f])
    } else {
        assert_eq!(
            &a[at - 3..=at],
            &[0, 0, 0, 1],
            "{api:?} v{version}: count of one element"
        );
        (at - 3, 4, i32::MAX.to_be_bytes().to_vec())
    };
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_slice(&a[..start]);
    frame.put_slice(&count);
    frame.put_slice(&a[start + len..]);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    frame.freeze()
}

/// Requests with one and with two elements in a top-level array whose elements are large in
/// memory, for every version kafka-protocol knows.
fn huge_array_cases() -> Vec<(ApiKey, i16, &'static str, RequestKind, RequestKind)> {
    let mut cases = Vec::new();
    let versions = |api: ApiKey| {
        let r = api.valid_versions();
        r.min..=r.max
    };
    for v in versions(ApiKey::Produce) {
        let topic = |n: &str| {
            TopicProduceData::default()
                .with_name(if v < 13 { name(n) } else { TopicName::default() })
                .with_topic_id(if v >= 13 { uuid_of(n) } else { Default::default() })
                .with_partition_data(vec![PartitionProduceData::default().with_index(0)])
        };
        let req = |n: usize| {
            RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(100)
                    .with_topic_data((0..n).map(|i| topic(&format!("t{i}"))).collect()),
            )
        };
        cases.push((ApiKey::Produce, v, "topic_data", req(1), req(2)));
        let parts = |n: usize| {
            RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(vec![
                    topic("t").with_partition_data(
                        (0..n)
                            .map(|i| PartitionProduceData::default().with_index(i as i32))
                            .collect(),
                    ),
                ]))
        };
        cases.push((ApiKey::Produce, v, "partition_data", parts(1), parts(2)));
    }
    for v in versions(ApiKey::Fetch) {
        let req = |n: usize| {
            RequestKind::Fetch(
                FetchRequest::default().with_topics(
                    (0..n)
                        .map(|i| {
                            FetchTopic::default()
                                .with_topic(if v < 13 {
                                    name(&format!("t{i}"))
                                } else {
                                    TopicName::default()
                                })
                                .with_topic_id(if v >= 13 {
                                    uuid_of(&format!("t{i}"))
                                } else {
                                    Default::default()
                                })
                                .with_partitions(vec![FetchPartition::default()])
                        })
                        .collect(),
                ),
            )
        };
        cases.push((ApiKey::Fetch, v, "topics", req(1), req(2)));
    }
    for v in versions(ApiKey::CreateTopics) {
        let req = |n: usize| {
            RequestKind::CreateTopics(
                CreateTopicsRequest::default().with_topics(
                    (0..n)
                        .map(|i| CreatableTopic::default().with_name(name(&format!("t{i}"))))
                        .collect(),
                ),
            )
        };
        cases.push((ApiKey::CreateTopics, v, "topics", req(1), req(2)));
    }
    for v in versions(ApiKey::JoinGroup) {
        let req = |n: usize| {
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_session_timeout_ms(10_000)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(
                        (0..n)
                            .map(|i| {
                                JoinGroupRequestProtocol::default().with_name(StrBytes::from_string(format!("p{i}")))
                            })
                            .collect(),
                    ),
            )
        };
        cases.push((ApiKey::JoinGroup, v, "protocols", req(1), req(2)));
    }
    for v in versions(ApiKey::Metadata) {
        let req = |n: usize| {
            RequestKind::Metadata(
                MetadataRequest::default().with_topics(Some(
                    (0..n)
                        .map(|i| MetadataRequestTopic::default().with_name(Some(name(&format!("t{i}")))))
                        .collect(),
                )),
            )
        };
        cases.push((ApiKey::Metadata, v, "topics", req(1), req(2)));
    }
    cases
}

fn uuid_of(s: &str) -> uuid::Uuid {
    let mut bytes = [7u8; 16];
    for (i, b) in s.bytes().enumerate().take(16) {
        bytes[i] = b;
    }
    uuid::Uuid::from_bytes(bytes)
}

/// kafka-protocol reserves `Vec::with_capacity(count)` with the count taken from the wire. A
/// 2^31-element array of large structs asks the allocator for hundreds of GiB, and an allocation
/// failure aborts the whole process (it does not unwind). The broker must survive such requests
/// without its memory growing: it closes the connection because the frame ends long before the
/// array does.
#[test]
fn arrays_claiming_billions_of_elements_do_not_kill_the_broker() {
    let mut broker = BrokerProcess::start();
    broker.assert_serving("startup");
    let rss_before = broker.rss_kib().expect("VmRSS of the broker");
    let mut exercised = Vec::new();
    for (api, version, field, one, two) in huge_array_cases() {
        let frame = huge_count_frame(api, version, &one, &two);
        let mut c = broker.connect();
        c.send_raw(&frame).expect("send");
        let what = format!("{api:?} v{version} with 2^31 {field}");
        assert_closed(&mut c, &mut broker, &what);
        if supported_range(api).is_some_and(|(min, max)| (min..=max).contains(&version)) {
            exercised.push(format!("{api:?} v{version} {field}"));
        }
    }
    eprintln!("decoded by the broker (the rest were refused by version): {exercised:?}");
    assert!(!exercised.is_empty(), "no case reached the decoder");
    let rss_after = broker.rss_kib().expect("VmRSS of the broker");
    assert!(
        rss_after < rss_before + RSS_GROWTH_LIMIT_KIB,
        "the broker's RSS grew from {rss_before} KiB to {rss_after} KiB on bogus array counts"
    );
    broker.assert_serving("arrays claiming billions of elements");
}

/// A client that sends Fetch after Fetch and never reads the answers stalls only its own
/// connection: the broker writes to it until the socket is full and parks that connection, while
/// another client keeps producing and fetching, and the broker's memory stays bounded.
#[test]
fn a_client_that_never_reads_stalls_only_itself() {
    const TOPIC: &str = "slow";
    const DATA_BYTES: usize = 20 * 1024 * 1024;
    const PARTITION_MAX_BYTES: i32 = 16 * 1024 * 1024;
    let mut broker = BrokerProcess::start();
    let mut producer = broker.connect();
    common::create_topic(&mut producer, TOPIC, 1);
    // 16 records of 60 KiB: just under max.message.bytes (1 MiB + 12).
    let batch = common::record_batch(16, 60 * 1024);
    let mut produced = 0;
    while produced < DATA_BYTES {
        common::produce(&mut producer, TOPIC, &batch);
        produced += batch.len();
    }

    let mut slow = broker.connect();
    slow.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let fetch = common::fetch_request(TOPIC, 0, PARTITION_MAX_BYTES);
    let mut sent = 0;
    for i in 0..2000 {
        let frame = encode_request(ApiKey::Fetch, 11, i, &fetch);
        if slow.stream.write_all(&frame).is_err() {
            break; // our send buffer is full: the broker stopped reading us
        }
        sent += 1;
    }
    assert!(sent > 0, "the slow client could not send a single fetch");
    // Give the broker time to fill the slow connection's socket.
    std::thread::sleep(Duration::from_millis(500));
    broker.assert_alive("the slow client's fetches");

    let deadline = Instant::now() + Duration::from_secs(15);
    let small = common::record_batch(2, 100);
    let mut consumer = broker.connect();
    for round in 0..5 {
        let offset = common::produce(&mut producer, TOPIC, &small);
        let (_, response): (i32, FetchResponse) =
            consumer.call(ApiKey::Fetch, 11, &common::fetch_request(TOPIC, offset, 1024 * 1024));
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "round {round}: {p:?}");
        assert!(p.high_watermark > offset, "round {round}: the new batch is committed");
        assert!(
            p.records.as_ref().is_some_and(|r| !r.is_empty()),
            "round {round}: the fetch returns the new batch"
        );
        assert!(
            Instant::now() < deadline,
            "other clients were served too slowly while a client did not read"
        );
    }
    broker.assert_serving("a client that never reads");
    let rss = broker.rss_kib().expect("VmRSS of the broker");
    eprintln!("slow client: {sent} fetches sent, {produced} bytes in the topic, broker RSS {rss} KiB");
    assert!(
        rss < 512 * 1024,
        "the broker holds {rss} KiB with one client not reading {sent} fetches of up to {PARTITION_MAX_BYTES} bytes"
    );
    // The stalled connection was parked, not dropped: once it reads, its answers arrive in order.
    slow.stream
        .set_read_timeout(Some(common::IO_TIMEOUT))
        .expect("read timeout");
    for expected in 0..2 {
        let (corr, response): (i32, FetchResponse) = slow.recv(ApiKey::Fetch, 11);
        assert_eq!(corr, expected, "the slow client's answers come in order");
        let records = response.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |r| r.len());
        assert!(
            records > PARTITION_MAX_BYTES as usize / 2,
            "a full fetch of {records} bytes"
        );
    }
    drop(slow);
    broker.assert_serving("the slow client left");
}

/// `connections.max.idle.ms`: a connection that sends nothing (or half a frame) is closed, so
/// trickling or abandoned clients cannot hold connections forever.
#[test]
fn idle_and_trickling_connections_are_closed() {
    let mut broker = BrokerProcess::start_with(&["connections.max.idle.ms=500"]);
    let mut idle = broker.connect();
    let mut trickle = broker.connect();
    // Half a frame: the size says 100 bytes, 3 arrive.
    trickle.send_raw(&[0, 0, 0, 100, 0, 18, 0]).unwrap();
    assert!(
        idle.closed_within(Duration::from_secs(5)),
        "an idle connection stayed open"
    );
    assert!(
        trickle.closed_within(Duration::from_secs(5)),
        "a trickling connection stayed open"
    );
    broker.assert_serving("idle connections were closed");
}
