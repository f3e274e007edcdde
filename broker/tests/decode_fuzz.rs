//! Property tests for everything that parses bytes a client controls: request framing and
//! decoding (`RequestPrefix::peek`, `Request::decode`) for every API key and version
//! kafka-protocol knows, and record batch splitting (`split_batches`, `record_timestamps`).
//! Random and mutated-valid inputs may fail to parse, but must never panic, abort or eat memory.
//! The process runs on the broker's allocator (`HugeAlloc`), as the broker does: without it a
//! claimed array of 2^31 elements aborts this test binary.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use skiff_protocol::{HugeAlloc, Request, RequestPrefix, kafka_protocol};
use skiff_storage::batch::{compute_crc, record_timestamps, split_batches};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

#[global_allocator]
static ALLOC: HugeAlloc = HugeAlloc;

/// Cases per property: enough to cover every API key and version many times, fast in debug.
const CASES: u32 = 1500;
/// How much this process's peak memory may grow decoding small hostile frames.
const PEAK_GROWTH_LIMIT_KIB: u64 = 256 * 1024;

/// Every (api, version) kafka-protocol can decode.
fn all_versions() -> Vec<(ApiKey, i16)> {
    ApiKey::iter()
        .flat_map(|api| {
            let r = api.valid_versions();
            (r.min..=r.max).map(move |v| (api, v))
        })
        .collect()
}

/// A request frame (no size prefix) with a header of the right version and `body` after it.
fn frame_with_body(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut buf, api.request_header_version(version))
        .expect("header");
    buf.put_slice(body);
    buf.freeze()
}

fn decode(frame: Bytes) {
    let Ok(prefix) = RequestPrefix::peek(&frame) else {
        return;
    };
    if let Ok(api) = prefix.api() {
        let valid = api.valid_versions();
        if (valid.min..=valid.max).contains(&prefix.api_version) {
            let _ = Request::decode(frame, api, prefix.api_version);
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Valid requests with non-empty nested arrays, strings, records and tagged fields, at every
/// version of their API: the seeds that mutations start from.
fn corpus() -> Vec<(ApiKey, i16, Bytes)> {
    let batch = common::record_batch(3, 16);
    let mut out = Vec::new();
    for (api, v) in all_versions() {
        let request = match api {
            ApiKey::Produce => RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(1000)
                    .with_topic_data(vec![
                        produce_request::TopicProduceData::default()
                            .with_name(if v < 13 { name("topic") } else { TopicName::default() })
                            .with_topic_id(if v >= 13 {
                                uuid::Uuid::from_u128(7)
                            } else {
                                uuid::Uuid::nil()
                            })
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(0)
                                    .with_records(Some(batch.clone())),
                                produce_request::PartitionProduceData::default().with_index(1),
                            ]),
                    ]),
            ),
            ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(100).with_topics(vec![
                    fetch_request::FetchTopic::default()
                        .with_topic(if v < 13 { name("topic") } else { TopicName::default() })
                        .with_topic_id(if v >= 13 { uuid::Uuid::from_u128(7) } else { uuid::Uuid::nil() })
                        .with_partitions(vec![
                            fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(5)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ])),
            ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("a"))),
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("bb"))),
            ]))),
            ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(name("new"))
                        .with_num_partitions(3)
                        .with_replication_factor(1)
                        .with_configs(vec![
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(StrBytes::from_static_str("retention.ms"))
                                .with_value(Some(StrBytes::from_static_str("1000"))),
                        ]),
                ])),
            ApiKey::JoinGroup => RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_session_timeout_ms(10_000)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![
                        join_group_request::JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str("range"))
                            .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 1, b't'])),
                    ]),
            ),
            ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(name("topic"))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ])),
            ApiKey::ApiVersions => RequestKind::ApiVersions(common::api_versions_request(v)),
            _ => continue,
        };
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(v)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")))
            .encode(&mut buf, api.request_header_version(v))
            .expect("header");
        request
            .encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("corpus {api:?} v{v}: {e:#}"));
        let frame = buf.freeze();
        // Every seed is valid: mutations start from something the decoder accepts.
        Request::decode(frame.clone(), api, v).unwrap_or_else(|e| panic!("corpus {api:?} v{v} decodes: {e}"));
        out.push((api, v, frame));
    }
    out
}

/// Values that make a length or count field hostile.
const HOSTILE_I32: [i32; 8] = [i32::MAX, 0x7fff_fffe, 0x4000_0000, 0x0100_0000, 0, -1, -2, i32::MIN];
/// Unsigned varints (compact lengths): 2^32 - 1, 2^31, and an over-long one.
const HOSTILE_VARINTS: [&[u8]; 3] = [
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { keep: usize },
    HostileI32 { at: usize, which: usize },
    HostileVarint { at: usize, which: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        (any::<usize>(), 0..HOSTILE_I32.len()).prop_map(|(at, which)| Mutation::HostileI32 { at, which }),
        (any::<usize>(), 0..HOSTILE_VARINTS.len()).prop_map(|(at, which)| Mutation::HostileVarint { at, which }),
    ]
}

/// Applies mutations, leaving the first `keep_prefix` bytes alone.
fn mutate(original: &[u8], mutations: &[Mutation], keep_prefix: usize) -> Vec<u8> {
    let mut b = original.to_vec();
    for m in mutations {
        let span = b.len().saturating_sub(keep_prefix).max(1);
        let pos = |at: usize| keep_prefix + at % span;
        match m {
            Mutation::Flip { at, xor } => {
                let i = pos(*at);
                if i < b.len() {
                    b[i] ^= xor;
                }
            }
            Mutation::Insert { at, bytes } => {
                let i = pos(*at).min(b.len());
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let i = pos(*at).min(b.len());
                let end = (i + len).min(b.len());
                b.drain(i..end);
            }
            Mutation::Truncate { keep } => {
                let k = keep_prefix + keep % span;
                b.truncate(k);
            }
            Mutation::HostileI32 { at, which } => {
                let i = pos(*at);
                let v = HOSTILE_I32[*which].to_be_bytes();
                if i + 4 <= b.len() {
                    b[i..i + 4].copy_from_slice(&v);
                }
            }
            Mutation::HostileVarint { at, which } => {
                let i = pos(*at).min(b.len());
                let v = HOSTILE_VARINTS[*which];
                let end = (i + 1).min(b.len());
                b.splice(i..end, v.iter().copied());
            }
        }
    }
    b
}

/// Resident peak (`VmHWM`) of this process in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmHWM")
}

/// Every API at every version, with small bodies that read as enormous counts and lengths
/// wherever the decoder looks: each must be an error (or a tiny request) without the process
/// aborting or its memory growing.
#[test]
fn hostile_patterns_decode_to_errors_at_every_version() {
    let before = peak_rss_kib();
    let patterns: [&[u8]; 5] = [
        &[0x7f],
        &[0xff],
        &[0x7f, 0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0x0f],
        &[0x00],
    ];
    let mut decoded = 0;
    for (api, v) in all_versions() {
        for pattern in patterns {
            for len in [1usize, 7, 64, 300] {
                let body: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
                let frame = frame_with_body(api, v, &body);
                if Request::decode(frame, api, v).is_ok() {
                    decoded += 1;
                }
            }
        }
    }
    let after = peak_rss_kib();
    assert!(
        after < before + PEAK_GROWTH_LIMIT_KIB,
        "peak RSS grew from {before} KiB to {after} KiB decoding small hostile frames"
    );
    eprintln!("{decoded} hostile frames happened to decode");
}

#[test]
fn the_corpus_covers_its_apis_at_every_version() {
    let corpus = corpus();
    for api in [ApiKey::Produce, ApiKey::Fetch, ApiKey::Metadata, ApiKey::JoinGroup] {
        let r = api.valid_versions();
        let n = corpus.iter().filter(|(a, _, _)| *a == api).count();
        assert_eq!(n, (r.max - r.min + 1) as usize, "{api:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes as a whole frame: peek, then decode whatever claims a known API.
    #[test]
    fn random_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        decode(Bytes::from(bytes));
    }

    /// A correct header of any API and version in front of a random body.
    #[test]
    fn random_bodies_never_panic(
        which in any::<prop::sample::Index>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let all = all_versions();
        let (api, v) = all[which.index(all.len())];
        let _ = Request::decode(frame_with_body(api, v, &body), api, v);
    }

    /// Valid requests with a few bytes flipped, inserted, deleted, cut, or replaced by hostile
    /// counts and lengths, decoded at their own API and version.
    #[test]
    fn mutated_requests_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let corpus = corpus_cached();
        let (api, v, frame) = &corpus[which.index(corpus.len())];
        let mutated = Bytes::from(mutate(frame, &mutations, 0));
        let _ = RequestPrefix::peek(&mutated);
        let _ = Request::decode(mutated, *api, *v);
    }

    #[test]
    fn random_bytes_never_panic_split_batches(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = split_batches(&bytes);
    }

    /// Valid batches, mutated after the CRC-covered prefix and with the CRC recomputed so the
    /// mutation reaches the structure checks and the record walk.
    #[test]
    fn mutated_batches_never_panic(
        mutations in prop::collection::vec(mutation(), 1..4),
        fix_crc in any::<bool>(),
        records in 1usize..5,
    ) {
        let batch = common::record_batch(records, 8);
        let mut two = batch.to_vec();
        two.extend_from_slice(&batch);
        let mut bytes = mutate(&two, &mutations, 0);
        if fix_crc && bytes.len() >= 61 {
            // Recompute the first batch's CRC over what its (possibly mutated) length covers.
            let len = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            let end = (12 + len.max(9) as usize).min(bytes.len());
            let crc = compute_crc(&bytes[..end]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        if let Ok(batches) = split_batches(&bytes) {
            for (at, header) in batches {
                let _ = record_timestamps(&bytes[at..at + header.total_size()], &header);
            }
        }
    }
}

/// The corpus, built once per process.
fn corpus_cached() -> &'static [(ApiKey, i16, Bytes)] {
    static CORPUS: std::sync::OnceLock<Vec<(ApiKey, i16, Bytes)>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(corpus)
}
