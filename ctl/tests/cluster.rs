//! `skiffctl cluster info|health` against a real broker, and against a scripted stand-in broker
//! for what one node cannot show: an unhealthy cluster (exit status 3), an older broker that
//! only knows ApiVersions v2 (the client falls back, as against older Apache Kafka), and a
//! broker that never answers (bounded by --timeout).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{TcpListener, TcpStream};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Broker, api, ctl_at, field, last_table, read_frame, write_frame};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeLogDirsResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer};
use skiff_ctl::client::topic_name;

#[test]
fn info_and_health_of_a_single_node() {
    let b = Broker::start();
    b.ok(&["topic", "create", "t", "-p", "4"]);
    let port = b.addr.rsplit(':').next().unwrap();

    let out = b.ok(&["cluster", "info"]);
    assert!(!field(&out, "Cluster id").is_empty());
    assert_eq!(field(&out, "Controller"), "0");
    assert_eq!(field(&out, "Brokers"), "1");
    let rows = last_table(&out);
    assert_eq!(rows[0], ["ID", "HOST", "PORT", "RACK"]);
    assert_eq!(rows[1], ["0", "127.0.0.1", port, "-"]);
    let info = b.json(&["cluster", "info"]);
    assert_eq!(info["controller_id"], 0);
    assert_eq!(info["brokers"][0]["port"].as_i64().unwrap().to_string(), port);
    assert_eq!(info["cluster_id"].as_str().unwrap(), field(&out, "Cluster id"));

    let run = b.ctl(&["cluster", "health"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(field(&run.stdout, "Healthy"), "yes");
    assert_eq!(field(&run.stdout, "Partitions"), "4 in 1 topic");
    assert_eq!(field(&run.stdout, "Under-replicated partitions"), "0");
    let health = b.json(&["cluster", "health"]);
    assert_eq!(health["healthy"], true);
    assert_eq!(health["partitions"], 4);
    assert_eq!(health["problems"], serde_json::json!([]));
}

/// What the stand-in broker does with each connection.
#[derive(Clone, Copy)]
enum Script {
    /// An older broker (ApiVersions up to v2, Metadata up to v9) with a sick topic.
    Unhealthy,
    /// Reads requests and never answers.
    Silent,
    /// A current broker (like Apache Kafka) that serves DescribeLogDirs, with topic `t` led by itself.
    WithSizes,
}

/// Serves `script` on a free port from a thread; returns the address.
fn stand_in(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let me = addr.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let me = me.clone();
            std::thread::spawn(move || serve(stream, script, &me));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, script: Script, me: &str) {
    loop {
        let Some(frame) = read_frame(&mut stream) else {
            return;
        };
        if let Script::Silent = script {
            continue;
        }
        let modern = matches!(script, Script::WithSizes);
        let mut buf = Bytes::from(frame);
        let key = (&buf[0..2]).get_i16();
        let version = (&buf[2..4]).get_i16();
        let header = decode_request_header_from_buffer(&mut buf).unwrap();
        let mut out = BytesMut::new();
        out.put_i32(0);
        let correlation = ResponseHeader::default().with_correlation_id(header.correlation_id);
        if key == ApiKey::ApiVersions as i16 {
            let keys = if modern {
                vec![
                    api(ApiKey::ApiVersions, 4),
                    api(ApiKey::Metadata, 12),
                    api(ApiKey::ListOffsets, 9),
                    api(ApiKey::DescribeLogDirs, 4),
                ]
            } else {
                vec![api(ApiKey::ApiVersions, 2), api(ApiKey::Metadata, 9)]
            };
            // Kafka answers an ApiVersions version it does not know at v0, with UNSUPPORTED_VERSION.
            let (v, error) = if !modern && version > 2 { (0, 35) } else { (version, 0) };
            correlation
                .encode(&mut out, ApiVersionsResponse::header_version(v))
                .unwrap();
            ApiVersionsResponse::default()
                .with_error_code(error)
                .with_api_keys(keys)
                .encode(&mut out, v)
                .unwrap();
        } else if key == ApiKey::Metadata as i16 {
            let offered = if modern { 12 } else { 9 };
            assert!(version <= offered, "asked Metadata v{version} beyond what was offered");
            correlation
                .encode(&mut out, MetadataResponse::header_version(version))
                .unwrap();
            let metadata = if modern { led_by(me) } else { sick_cluster() };
            metadata.encode(&mut out, version).unwrap();
        } else if modern && key == ApiKey::ListOffsets as i16 {
            let request = ListOffsetsRequest::decode(&mut buf, version).unwrap();
            assert_eq!(request.replica_id, -1, "a consumer's ListOffsets has replica id -1");
            let topics = request
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_offset(if p.timestamp == -2 { 5 } else { 42 })
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            correlation
                .encode(&mut out, ListOffsetsResponse::header_version(version))
                .unwrap();
            ListOffsetsResponse::default()
                .with_topics(topics)
                .encode(&mut out, version)
                .unwrap();
        } else if modern && key == ApiKey::DescribeLogDirs as i16 {
            let size = |p: i32, bytes: i64| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p)
                    .with_partition_size(bytes)
            };
            let dir = DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_static_str("/var/lib/kafka"))
                .with_topics(vec![
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name("t"))
                        .with_partitions(vec![size(0, 2048), size(1, 3 * 1024 * 1024)]),
                ]);
            correlation
                .encode(&mut out, DescribeLogDirsResponse::header_version(version))
                .unwrap();
            DescribeLogDirsResponse::default()
                .with_results(vec![dir])
                .encode(&mut out, version)
                .unwrap();
        } else {
            panic!("unexpected API {key}");
        }
        if !write_frame(&mut stream, out) {
            return;
        }
    }
}

/// One broker (id 1, at the stand-in's own address) leading both partitions of `t`.
fn led_by(me: &str) -> MetadataResponse {
    let (host, port) = me.rsplit_once(':').unwrap();
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port.parse().unwrap()),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("sized")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(topic_name("t")))
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(1))
                                .with_leader_epoch(7)
                                .with_replica_nodes(vec![BrokerId(1)])
                                .with_isr_nodes(vec![BrokerId(1)])
                        })
                        .collect(),
                ),
        ])
}

#[test]
fn partition_sizes_come_from_describe_log_dirs_where_the_broker_serves_it() {
    let addr = stand_in(Script::WithSizes);
    let run = ctl_at(&addr, &["topic", "describe", "t"], None);
    run.assert_ok(&["topic", "describe"]);
    let rows = last_table(&run.stdout);
    assert_eq!(rows[1], ["0", "1", "7", "1", "1", "5", "42", "2.0 KiB"]);
    assert_eq!(rows[2], ["1", "1", "7", "1", "1", "5", "42", "3.0 MiB"]);
    let run = ctl_at(&addr, &["topic", "describe", "t", "--format", "json"], None);
    let d: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(d["partitions"][1]["size_bytes"], 3 * 1024 * 1024);
    // A broker without DescribeLogDirs (Skiff, for now) shows "-" rather than failing.
    let b = Broker::start();
    b.ok(&["topic", "create", "t"]);
    let rows = last_table(&b.ok(&["topic", "describe", "t"]));
    assert!(rows[1][7] == "-" || rows[1][7].ends_with('B'), "{rows:?}");
}

/// Brokers 1 and 2 alive; topic `t`: partition 0 well, partition 1 under-replicated with broker 3
/// offline, partition 2 without a leader.
fn sick_cluster() -> MetadataResponse {
    let broker = |id: i32| {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("10.0.0.1"))
            .with_port(9092 + id)
            .with_rack(Some(StrBytes::from_static_str("rack-a")))
    };
    let ids = |v: &[i32]| v.iter().map(|&i| BrokerId(i)).collect::<Vec<_>>();
    let partition = |p: i32, leader: i32, replicas: &[i32], isr: &[i32], offline: &[i32]| {
        MetadataResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(if leader < 0 { 5 } else { 0 })
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(ids(replicas))
            .with_isr_nodes(ids(isr))
            .with_offline_replicas(ids(offline))
    };
    MetadataResponse::default()
        .with_brokers(vec![broker(1), broker(2)])
        .with_cluster_id(Some(StrBytes::from_static_str("stand-in")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(topic_name("t")))
                .with_partitions(vec![
                    partition(0, 1, &[1, 2], &[1, 2], &[]),
                    partition(1, 1, &[1, 2, 3], &[1], &[3]),
                    partition(2, -1, &[3], &[], &[3]),
                ]),
        ])
}

#[test]
fn an_unhealthy_cluster_exits_3_and_names_the_partitions() {
    let addr = stand_in(Script::Unhealthy);
    let run = ctl_at(&addr, &["cluster", "health"], None);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert_eq!(run.stderr, "");
    assert_eq!(field(&run.stdout, "Healthy"), "no");
    assert_eq!(field(&run.stdout, "Brokers down"), "3");
    assert_eq!(field(&run.stdout, "Partitions without a leader"), "1");
    assert_eq!(field(&run.stdout, "Offline partitions"), "2");
    assert_eq!(field(&run.stdout, "Under-replicated partitions"), "2");
    let rows = last_table(&run.stdout);
    assert_eq!(
        rows[0],
        ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE", "PROBLEM"]
    );
    assert_eq!(
        rows[1],
        ["t", "1", "1", "1,2,3", "1", "3", "offline replicas, under-replicated"]
    );
    assert_eq!(
        rows[2],
        [
            "t",
            "2",
            "-",
            "3",
            "-",
            "3",
            "no leader, offline replicas, under-replicated"
        ]
    );

    let run = ctl_at(&addr, &["cluster", "health", "--format", "json"], None);
    assert_eq!(run.code, Some(3));
    let h: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(h["healthy"], false);
    assert_eq!(h["brokers_down"], serde_json::json!([3]));
    assert_eq!(
        h["problems"][1]["problems"],
        serde_json::json!(["no leader", "offline replicas", "under-replicated"])
    );
}

#[test]
fn an_older_broker_is_spoken_to_at_its_own_versions() {
    let addr = stand_in(Script::Unhealthy);
    let run = ctl_at(&addr, &["cluster", "info"], None);
    run.assert_ok(&["cluster", "info"]);
    assert_eq!(field(&run.stdout, "Cluster id"), "stand-in");
    assert_eq!(field(&run.stdout, "Controller"), "1");
    let rows = last_table(&run.stdout);
    assert_eq!(
        rows[1..],
        [
            vec!["1", "10.0.0.1", "9093", "rack-a"],
            vec!["2", "10.0.0.1", "9094", "rack-a"]
        ]
    );
    // An API it does not serve is a clear error, not a hang.
    ctl_at(&addr, &["topic", "create", "x"], None).assert_fails(1, "does not support CreateTopics");
}

#[test]
fn a_broker_that_never_answers_is_given_up_on_after_the_timeout() {
    let addr = stand_in(Script::Silent);
    let started = std::time::Instant::now();
    let run = ctl_at(&addr, &["--timeout", "1", "cluster", "info"], None);
    run.assert_fails(1, "did not answer ApiVersions within 1 s");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
