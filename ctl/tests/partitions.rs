//! `skiffctl partition move|move-status|move-cancel` and `skiffctl cluster decommission` against
//! a scripted stand-in broker that keeps reassignments the way KIP-455 describes them: a move is
//! recorded at once and stays listed by ListPartitionReassignments for a number of polls (the
//! data moving), a cancel removes it, and per-partition errors come back for unknown partitions,
//! dead brokers and partitions that are not moving. One real broker cannot show a move between
//! brokers, and this crate's tests must not depend on a cluster.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{api, ctl_at, last_table, read_frame, write_frame};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, ApiVersionsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer};
use serde_json::json;
use skiff_ctl::client::topic_name;

/// Live brokers of the stand-in cluster.
const BROKERS: [i32; 4] = [1, 2, 3, 4];

/// The topics: each partition's replicas.
fn topics() -> Vec<(&'static str, Vec<Vec<i32>>)> {
    vec![
        ("__consumer_offsets", vec![vec![3]]),
        ("clicks", vec![vec![1, 2], vec![2, 3], vec![3, 1]]),
    ]
}

/// A move the stand-in is making.
#[derive(Debug, Clone)]
struct Moving {
    from: Vec<i32>,
    to: Vec<i32>,
    /// ListPartitionReassignments answers that list it before it completes.
    polls_left: u32,
}

#[derive(Debug, Default)]
struct State {
    /// How many polls a new move stays listed.
    polls: u32,
    moving: BTreeMap<(String, i32), Moving>,
    /// (version, allow_replication_factor_change) of each AlterPartitionReassignments.
    alters: Vec<(i16, bool)>,
}

type Shared = Arc<Mutex<State>>;

/// Serves the stand-in on a free port; moves stay listed for `polls` polls.
fn stand_in(polls: u32) -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state: Shared = Arc::new(Mutex::new(State {
        polls,
        ..State::default()
    }));
    let shared = state.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let state = state.clone();
            std::thread::spawn(move || serve(stream, &state));
        }
    });
    (addr, shared)
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&b| BrokerId(b)).collect()
}

fn serve(mut stream: TcpStream, state: &Shared) {
    loop {
        let Some(frame) = read_frame(&mut stream) else {
            return;
        };
        let mut buf = Bytes::from(frame);
        let key = (&buf[0..2]).get_i16();
        let version = (&buf[2..4]).get_i16();
        let header = decode_request_header_from_buffer(&mut buf).unwrap();
        let mut out = BytesMut::new();
        out.put_i32(0);
        let correlation = ResponseHeader::default().with_correlation_id(header.correlation_id);
        if key == ApiKey::ApiVersions as i16 {
            correlation
                .encode(&mut out, ApiVersionsResponse::header_version(version))
                .unwrap();
            ApiVersionsResponse::default()
                .with_api_keys(vec![
                    api(ApiKey::ApiVersions, 4),
                    api(ApiKey::Metadata, 12),
                    api(ApiKey::AlterPartitionReassignments, 1),
                    api(ApiKey::ListPartitionReassignments, 0),
                ])
                .encode(&mut out, version)
                .unwrap();
        } else if key == ApiKey::Metadata as i16 {
            correlation
                .encode(&mut out, MetadataResponse::header_version(version))
                .unwrap();
            metadata().encode(&mut out, version).unwrap();
        } else if key == ApiKey::AlterPartitionReassignments as i16 {
            let request = AlterPartitionReassignmentsRequest::decode(&mut buf, version).unwrap();
            let response = alter(&mut state.lock().unwrap(), version, request);
            correlation
                .encode(&mut out, AlterPartitionReassignmentsResponse::header_version(version))
                .unwrap();
            response.encode(&mut out, version).unwrap();
        } else if key == ApiKey::ListPartitionReassignments as i16 {
            let request = ListPartitionReassignmentsRequest::decode(&mut buf, version).unwrap();
            let response = list(&mut state.lock().unwrap(), request);
            correlation
                .encode(&mut out, ListPartitionReassignmentsResponse::header_version(version))
                .unwrap();
            response.encode(&mut out, version).unwrap();
        } else {
            panic!("unexpected API {key}");
        }
        if !write_frame(&mut stream, out) {
            return;
        }
    }
}

fn metadata() -> MetadataResponse {
    MetadataResponse::default()
        .with_brokers(
            BROKERS
                .iter()
                .map(|&id| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_static_str("10.0.0.1"))
                        .with_port(9092)
                })
                .collect(),
        )
        .with_controller_id(BrokerId(1))
        .with_topics(
            topics()
                .into_iter()
                .map(|(name, partitions)| {
                    MetadataResponseTopic::default()
                        .with_name(Some(topic_name(name)))
                        .with_is_internal(name.starts_with("__"))
                        .with_partitions(
                            (0..)
                                .zip(partitions)
                                .map(|(p, replicas)| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_leader_id(BrokerId(replicas[0]))
                                        .with_replica_nodes(ids(&replicas))
                                        .with_isr_nodes(ids(&replicas))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn alter(
    state: &mut State,
    version: i16,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    state.alters.push((version, request.allow_replication_factor_change));
    let known = topics();
    let mut responses = Vec::new();
    for t in request.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::new();
        for p in t.partitions {
            let current = known
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, ps)| ps.get(p.partition_index as usize).cloned());
            let key = (name.clone(), p.partition_index);
            let error = match (current, p.replicas) {
                (None, _) => Some((
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown partition {name}"),
                )),
                (Some(_), Some(to)) if to.iter().any(|b| !BROKERS.contains(&b.0)) => Some((
                    ResponseError::InvalidReplicaAssignment,
                    "a replica's broker is not alive".to_string(),
                )),
                (Some(from), Some(to)) => {
                    let to: Vec<i32> = to.iter().map(|b| b.0).collect();
                    let polls_left = state.polls;
                    state.moving.insert(key, Moving { from, to, polls_left });
                    None
                }
                (Some(_), None) => match state.moving.remove(&key) {
                    Some(_) => None,
                    None => Some((ResponseError::NoReassignmentInProgress, "not moving".to_string())),
                },
            };
            let mut r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            if let Some((code, message)) = error {
                r = r
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
            partitions.push(r);
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

/// Lists the moves asked about; each listing brings a move one poll closer to done.
fn list(state: &mut State, request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let wanted = |topic: &str, p: i32| {
        request.topics.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&p))
        })
    };
    let mut topics: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    let mut done = Vec::new();
    for ((topic, p), m) in state.moving.iter_mut().filter(|((t, p), _)| wanted(t, *p)) {
        if m.polls_left == 0 {
            done.push((topic.clone(), *p));
            continue;
        }
        m.polls_left = m.polls_left.saturating_sub(1);
        let mut replicas = m.to.clone();
        replicas.extend(m.from.iter().filter(|b| !m.to.contains(b)));
        let adding: Vec<i32> = m.to.iter().copied().filter(|b| !m.from.contains(b)).collect();
        let removing: Vec<i32> = m.from.iter().copied().filter(|b| !m.to.contains(b)).collect();
        topics.entry(topic.clone()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(*p)
                .with_replicas(ids(&replicas))
                .with_adding_replicas(ids(&adding))
                .with_removing_replicas(ids(&removing)),
        );
    }
    for key in done {
        state.moving.remove(&key);
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(t, ps)| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&t))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

fn json_of(addr: &str, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let run = ctl_at(addr, &all, None);
    let value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:#?}"));
    (run.code, value)
}

#[test]
fn a_move_reports_every_partition_and_fails_when_one_is_refused() {
    let (addr, state) = stand_in(u32::MAX);
    let run = ctl_at(&addr, &["partition", "move", "clicks:0,7", "--to", "4,1"], None);
    run.assert_fails(
        1,
        "1 of 2 partitions failed, e.g. clicks-7: UNKNOWN_TOPIC_OR_PARTITION: unknown partition clicks",
    );
    assert_eq!(
        last_table(&run.stdout),
        [
            vec!["TOPIC", "PARTITION", "REPLICAS", "RESULT"],
            vec!["clicks", "0", "4,1", "started"],
            vec![
                "clicks",
                "7",
                "4,1",
                "UNKNOWN_TOPIC_OR_PARTITION: unknown partition clicks"
            ],
        ]
    );
    // v1, allowing the replication factor to change (--to 4,1,2 may grow a partition).
    assert_eq!(state.lock().unwrap().alters, [(1, true)]);

    let (code, moves) = json_of(&addr, &["partition", "move", "clicks:1", "--to", "9"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        moves,
        json!([{
            "topic": "clicks", "partition": 1, "replicas": [9], "result": "failed",
            "error": "INVALID_REPLICA_ASSIGNMENT: a replica's broker is not alive"
        }])
    );
    ctl_at(&addr, &["partition", "move", "nope", "--to", "1"], None).assert_fails(1, "unknown topic: nope");
}

#[test]
fn move_status_lists_what_is_moving_and_cancel_stops_it() {
    let (addr, _state) = stand_in(u32::MAX);
    let run = ctl_at(&addr, &["partition", "move-status"], None);
    run.assert_ok(&["partition", "move-status"]);
    assert_eq!(run.stdout, "no partition reassignment in progress\n");
    assert_eq!(json_of(&addr, &["partition", "move-status"]), (Some(0), json!([])));

    ctl_at(&addr, &["partition", "move", "clicks", "--to", "4,1"], None).assert_ok(&["move"]);
    let run = ctl_at(&addr, &["partition", "move-status", "clicks:0,1"], None);
    assert_eq!(
        last_table(&run.stdout),
        [
            vec!["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
            vec!["clicks", "0", "4,1,2", "4", "2"],
            vec!["clicks", "1", "4,1,2,3", "4,1", "2,3"],
        ]
    );
    let (_, status) = json_of(&addr, &["partition", "move-status"]);
    assert_eq!(status.as_array().unwrap().len(), 3);
    assert_eq!(
        status[2],
        json!({"topic": "clicks", "partition": 2, "replicas": [4, 1, 3],
               "adding_replicas": [4], "removing_replicas": [3]})
    );

    let run = ctl_at(&addr, &["partition", "move-cancel", "clicks:0"], None);
    run.assert_ok(&["move-cancel"]);
    assert_eq!(last_table(&run.stdout)[1], ["clicks", "0", "cancelled"]);
    // Not moving any more: the broker says so, and the command fails.
    let run = ctl_at(&addr, &["partition", "move-cancel", "clicks:0"], None);
    run.assert_fails(1, "clicks-0: NO_REASSIGNMENT_IN_PROGRESS");
    // A whole topic means the partitions of it that are moving.
    let (code, cancelled) = json_of(&addr, &["partition", "move-cancel", "clicks"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        cancelled,
        json!([
            {"topic": "clicks", "partition": 1, "result": "cancelled", "error": null},
            {"topic": "clicks", "partition": 2, "result": "cancelled", "error": null},
        ])
    );
    let run = ctl_at(&addr, &["partition", "move-cancel", "clicks"], None);
    run.assert_ok(&["move-cancel"]);
    assert_eq!(run.stdout, "no partition reassignment in progress: nothing to cancel\n");
}

#[test]
fn wait_follows_the_moves_until_they_are_done_or_the_time_is_up() {
    let (addr, _state) = stand_in(2);
    let run = ctl_at(&addr, &["partition", "move", "clicks", "--to", "4,1", "--wait"], None);
    run.assert_ok(&["move", "--wait"]);
    let rows = last_table(&run.stdout);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows[1..].iter().all(|r| r[3] == "done"), "{rows:?}");
    // stderr is not a terminal here: no progress line.
    assert_eq!(run.stderr, "");

    let (addr, _state) = stand_in(u32::MAX);
    let started = std::time::Instant::now();
    let run = ctl_at(
        &addr,
        &[
            "partition",
            "move",
            "clicks:1",
            "--to",
            "4",
            "--wait",
            "--wait-timeout",
            "1",
        ],
        None,
    );
    run.assert_fails(1, "1 of 1 partitions still moving after 1 s (clicks-1)");
    assert!(run.stderr.contains("skiffctl partition move-status"), "{run:#?}");
    assert_eq!(last_table(&run.stdout)[1], ["clicks", "1", "4", "moving"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn decommission_moves_every_replica_off_the_broker() {
    let (addr, state) = stand_in(2);
    // Without broker 3: 1 and 2 hold 2 replicas each, 4 none.
    let expected = [
        vec!["TOPIC", "PARTITION", "FROM", "TO", "RESULT"],
        vec!["__consumer_offsets", "0", "3", "4", "planned"],
        vec!["clicks", "1", "2,3", "2,4", "planned"],
        vec!["clicks", "2", "3,1", "2,1", "planned"],
    ];
    let run = ctl_at(&addr, &["cluster", "decommission", "3", "--dry-run"], None);
    run.assert_ok(&["decommission", "--dry-run"]);
    assert_eq!(last_table(&run.stdout), expected);
    assert!(state.lock().unwrap().alters.is_empty(), "a dry run sends nothing");

    let (code, moves) = json_of(&addr, &["cluster", "decommission", "3"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        moves[1],
        json!({"topic": "clicks", "partition": 1, "from": [2, 3], "to": [2, 4], "result": "started", "error": null})
    );
    assert_eq!(state.lock().unwrap().moving.len(), 3);

    // Again while those move: nothing new to send; --wait waits for the moves already going.
    let run = ctl_at(&addr, &["cluster", "decommission", "3", "--wait"], None);
    run.assert_ok(&["decommission", "--wait"]);
    let rows = last_table(&run.stdout);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[2], ["clicks", "1", "2,3", "2,4", "done"]);
    assert!(rows[1..].iter().all(|r| r[4] == "done"), "{rows:?}");
    assert_eq!(state.lock().unwrap().alters.len(), 1, "nothing new was sent");

    let run = ctl_at(&addr, &["cluster", "decommission", "9"], None);
    run.assert_fails(1, "broker 9 is not in the cluster and holds no replicas");
}
