//! `skiffctl group …` and `consume --group` against a real broker: committed offsets and lag,
//! resets (dry run by default, `--execute` to commit, refused while the group has members),
//! listing and deleting groups. A group with a live member is made by joining it over the
//! Kafka protocol (JoinGroup + SyncGroup), as a consumer would.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{Broker, field, last_table, table};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use skiff_ctl::client::{Connection, group_id, str_bytes, topic_name};

fn lines(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

/// A topic `name` with `partitions` partitions and `per_partition` records in each.
fn topic_with_records(b: &Broker, name: &str, partitions: i32, per_partition: usize) {
    b.ok(&["topic", "create", name, "-p", &partitions.to_string()]);
    for p in 0..partitions {
        let input: String = lines(per_partition).iter().map(|l| format!("{l}\n")).collect();
        b.ctl_stdin(&["produce", name, "-p", &p.to_string()], &input)
            .assert_ok(&["produce"]);
    }
}

#[test]
fn consume_with_a_group_commits_and_resumes_and_describe_shows_lag() {
    let b = Broker::start();
    topic_with_records(&b, "orders", 2, 10);
    // Partition 0 only, 3 records: committed 3, lag 7; partition 1 untouched.
    assert_eq!(
        b.ok(&[
            "consume",
            "orders",
            "-g",
            "billing",
            "-p",
            "0",
            "--from-beginning",
            "-n",
            "3"
        ]),
        "m0\nm1\nm2\n"
    );
    // Resumes at the committed offset.
    assert_eq!(
        b.ok(&["consume", "orders", "-g", "billing", "-p", "0", "-n", "2"]),
        "m3\nm4\n"
    );

    let rows = table(&b.ok(&["group", "list"]));
    assert_eq!(rows[0], ["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
    assert_eq!(rows[1], ["billing", "Empty", "-", "0"]);
    let listed = b.json(&["group", "list"]);
    assert_eq!(listed[0]["group"], "billing");
    assert_eq!(listed[0]["state"], "Empty");

    let out = b.ok(&["group", "describe", "billing"]);
    assert_eq!(field(&out, "Group"), "billing");
    assert_eq!(field(&out, "State"), "Empty");
    assert_eq!(field(&out, "Members"), "0");
    assert_eq!(field(&out, "Total lag"), "5");
    let rows = last_table(&out);
    assert_eq!(
        rows[0],
        [
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "LOG-END",
            "LAG",
            "MEMBER-ID",
            "CLIENT-ID"
        ]
    );
    assert_eq!(rows[1], ["orders", "0", "5", "10", "5", "-", "-"]);
    assert_eq!(rows.len(), 2, "only committed partitions are listed: {out}");
    let d = b.json(&["group", "describe", "billing"]);
    assert_eq!(d["total_lag"], 5);
    assert_eq!(d["offsets"][0]["committed_offset"], 5);
    assert_eq!(d["offsets"][0]["log_end_offset"], 10);
    assert_eq!(d["offsets"][0]["lag"], 5);

    // A consumer that reads everything to the end leaves no lag.
    b.ok(&["consume", "orders", "-g", "billing", "--from-beginning", "-e"]);
    let d = b.json(&["group", "describe", "billing"]);
    assert_eq!(d["total_lag"], 0, "{d}");
    assert_eq!(d["offsets"].as_array().unwrap().len(), 2);

    // Every partition read is committed, empty ones included, so lag shows for all of them.
    b.ok(&["topic", "create", "sparse", "-p", "3"]);
    b.ctl_stdin(&["produce", "sparse", "-p", "1"], "a\nb\n")
        .assert_ok(&["produce"]);
    assert_eq!(
        b.ok(&["consume", "sparse", "-g", "s", "--from-beginning", "-e"]),
        "a\nb\n"
    );
    let rows = last_table(&b.ok(&["group", "describe", "s"]));
    assert_eq!(
        rows[1..],
        [
            vec!["sparse", "0", "0", "0", "0", "-", "-"],
            vec!["sparse", "1", "2", "2", "0", "-", "-"],
            vec!["sparse", "2", "0", "0", "0", "-", "-"],
        ]
    );

    b.ctl(&["group", "describe", "nobody"])
        .assert_fails(1, "unknown group: nobody");
}

#[test]
fn reset_offsets_is_a_dry_run_until_execute() {
    let b = Broker::start();
    topic_with_records(&b, "orders", 3, 10);
    b.ok(&["consume", "orders", "-g", "ops", "--from-beginning", "-e"]);

    let run = b.ctl(&["group", "reset-offsets", "ops", "--topic", "orders", "--to-earliest"]);
    run.assert_ok(&["reset-offsets"]);
    let rows = table(&run.stdout);
    assert_eq!(
        rows[0],
        [
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
            "LOG-START",
            "LOG-END"
        ]
    );
    assert_eq!(
        rows[1..],
        [
            vec!["orders", "0", "10", "0", "0", "10"],
            vec!["orders", "1", "10", "0", "0", "10"],
            vec!["orders", "2", "10", "0", "0", "10"],
        ]
    );
    assert!(run.stderr.contains("dry run"), "{run:#?}");
    assert_eq!(
        b.json(&["group", "describe", "ops"])["total_lag"],
        0,
        "a dry run changes nothing"
    );

    let plan = b.json(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders:1",
        "--to-offset",
        "4",
        "--execute",
    ]);
    assert_eq!(plan["executed"], true);
    assert_eq!(plan["partitions"].as_array().unwrap().len(), 1);
    assert_eq!(plan["partitions"][0]["new_offset"], 4);
    let committed = |b: &Broker| -> Vec<i64> {
        b.json(&["group", "describe", "ops"])["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["committed_offset"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(committed(&b), [10, 4, 10]);

    b.ok(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders",
        "--shift-by",
        "-3",
        "--execute",
    ]);
    assert_eq!(committed(&b), [7, 1, 7]);
    // Out of the log: clamped to its ends, with a warning.
    let run = b.ctl(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders:0",
        "--shift-by",
        "100",
        "--execute",
    ]);
    run.assert_ok(&["reset-offsets"]);
    assert!(run.stderr.contains("past the log end"), "{run:#?}");
    b.ok(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders:2",
        "--to-offset",
        "0",
        "--execute",
    ]);
    assert_eq!(committed(&b), [10, 1, 0]);

    b.ok(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders",
        "--to-datetime",
        "2000-01-01T00:00:00Z",
        "--execute",
    ]);
    assert_eq!(committed(&b), [0, 0, 0]);
    b.ok(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders",
        "--to-datetime",
        "2999-01-01",
        "--execute",
    ]);
    assert_eq!(committed(&b), [10, 10, 10]);
    b.ok(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
    ]);
    b.ok(&[
        "group",
        "reset-offsets",
        "ops",
        "--topic",
        "orders:0,2",
        "--to-latest",
        "--execute",
    ]);
    assert_eq!(committed(&b), [10, 0, 10]);
    // Consuming resumes where the reset put the group.
    assert_eq!(
        b.ok(&["consume", "orders", "-g", "ops", "-p", "1", "-n", "2"]),
        "m0\nm1\n"
    );

    // A group that never committed: --shift-by has nothing to shift; other resets create its offsets.
    b.ctl(&[
        "group",
        "reset-offsets",
        "fresh",
        "--topic",
        "orders",
        "--shift-by",
        "1",
        "--execute",
    ])
    .assert_fails(1, "no committed offset");
    b.ok(&[
        "group",
        "reset-offsets",
        "fresh",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
    ]);
    assert_eq!(b.json(&["group", "describe", "fresh"])["total_lag"], 30);

    b.ctl(&["group", "reset-offsets", "ops", "--topic", "ghost", "--to-earliest"])
        .assert_fails(1, "unknown topic: ghost");
    b.ctl(&["group", "reset-offsets", "ops", "--topic", "orders:9", "--to-earliest"])
        .assert_fails(1, "topic orders has no partition 9");
}

#[test]
fn delete_groups() {
    let b = Broker::start();
    topic_with_records(&b, "orders", 1, 3);
    b.ok(&["consume", "orders", "-g", "a", "--from-beginning", "-e"]);
    b.ok(&["consume", "orders", "-g", "b", "--from-beginning", "-e"]);
    let names = |b: &Broker| -> Vec<String> {
        b.json(&["group", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["group"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&b), ["a", "b"]);
    let rows = table(&b.ok(&["group", "delete", "a"]));
    assert_eq!(rows, [vec!["GROUP", "STATUS"], vec!["a", "deleted"]]);
    assert_eq!(names(&b), ["b"]);
    b.ctl(&["group", "describe", "a"]).assert_fails(1, "unknown group: a");
    b.ctl(&["group", "delete", "a"]).assert_fails(1, "unknown group: a");
    // Several at once: what could be deleted is, and the failure is still reported.
    let run = b.ctl(&["group", "delete", "b", "zzz"]);
    run.assert_fails(1, "unknown group: zzz");
    assert!(
        run.stdout.contains("b  deleted") || run.stdout.contains("b      deleted"),
        "{run:#?}"
    );
    assert!(names(&b).is_empty());
}

/// A consumer that joined `group` over the Kafka protocol and holds partitions of `topic`.
struct Member {
    runtime: tokio::runtime::Runtime,
    conn: Connection,
    group: String,
    member_id: StrBytes,
}

impl Member {
    fn join(addr: &str, group: &str, topic: &str, partitions: &[i32]) -> Member {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (conn, member_id) = runtime.block_on(async {
            let mut conn = Connection::open(addr, std::time::Duration::from_secs(10))
                .await
                .unwrap();
            let mut subscription = BytesMut::new();
            subscription.extend_from_slice(&1i16.to_be_bytes());
            ConsumerProtocolSubscription::default()
                .with_topics(vec![str_bytes(topic)])
                .encode(&mut subscription, 1)
                .unwrap();
            let subscription = subscription.freeze();
            let version = conn.version::<JoinGroupRequest>().unwrap();
            let mut member_id = StrBytes::default();
            let joined = loop {
                let request = JoinGroupRequest::default()
                    .with_group_id(group_id(group))
                    .with_session_timeout_ms(30_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_member_id(member_id.clone())
                    .with_protocol_type(str_bytes("consumer"))
                    .with_protocols(vec![
                        JoinGroupRequestProtocol::default()
                            .with_name(str_bytes("range"))
                            .with_metadata(subscription.clone()),
                    ]);
                let response = conn.send(&request, version).await.unwrap();
                // KIP-394: the first join of a new member is answered MEMBER_ID_REQUIRED with its id.
                if response.error_code == 79 {
                    member_id = response.member_id;
                    continue;
                }
                assert_eq!(response.error_code, 0, "JoinGroup: {response:?}");
                break response;
            };
            member_id = joined.member_id.clone();
            assert_eq!(joined.leader, member_id, "the only member leads");
            let mut assignment = BytesMut::new();
            assignment.extend_from_slice(&1i16.to_be_bytes());
            ConsumerProtocolAssignment::default()
                .with_assigned_partitions(vec![
                    AssignedTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions.to_vec()),
                ])
                .encode(&mut assignment, 1)
                .unwrap();
            let version = conn.version::<SyncGroupRequest>().unwrap();
            let mut request = SyncGroupRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id(joined.generation_id)
                .with_member_id(member_id.clone())
                .with_assignments(vec![
                    SyncGroupRequestAssignment::default()
                        .with_member_id(member_id.clone())
                        .with_assignment(Bytes::from(assignment)),
                ]);
            if version >= 5 {
                request = request
                    .with_protocol_type(Some(str_bytes("consumer")))
                    .with_protocol_name(Some(str_bytes("range")));
            }
            let synced = conn.send(&request, version).await.unwrap();
            assert_eq!(synced.error_code, 0, "SyncGroup: {synced:?}");
            (conn, member_id)
        });
        Member {
            runtime,
            conn,
            group: group.to_string(),
            member_id,
        }
    }

    fn leave(mut self) {
        let (group, member_id) = (self.group.clone(), self.member_id.clone());
        self.runtime.block_on(async {
            let version = self.conn.version::<LeaveGroupRequest>().unwrap();
            let request = if version >= 3 {
                LeaveGroupRequest::default()
                    .with_group_id(group_id(&group))
                    .with_members(vec![MemberIdentity::default().with_member_id(member_id)])
            } else {
                LeaveGroupRequest::default()
                    .with_group_id(group_id(&group))
                    .with_member_id(member_id)
            };
            let response = self.conn.send(&request, version).await.unwrap();
            assert_eq!(response.error_code, 0, "LeaveGroup: {response:?}");
        });
    }
}

#[test]
fn a_group_with_members_shows_them_and_is_protected() {
    let b = Broker::start();
    topic_with_records(&b, "orders", 3, 4);
    b.ok(&[
        "group",
        "reset-offsets",
        "live",
        "--topic",
        "orders:0",
        "--to-offset",
        "1",
        "--execute",
    ]);
    let member = Member::join(&b.addr, "live", "orders", &[0, 1]);

    let out = b.ok(&["group", "describe", "live"]);
    assert_eq!(field(&out, "State"), "Stable");
    assert_eq!(field(&out, "Protocol"), "consumer (range)");
    assert_eq!(field(&out, "Members"), "1");
    let members = table(out.split("\n\n").nth(1).unwrap());
    assert_eq!(members[0], ["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
    assert_eq!(members[1][0], member.member_id.as_str());
    assert_eq!(members[1][1], "skiffctl");
    assert!(members[1][2] == "-" || members[1][2].contains("127.0.0.1"), "{out}");
    assert_eq!(members[1][3], "orders:0,1");
    let offsets = last_table(&out);
    let id = member.member_id.to_string();
    assert_eq!(offsets[1], ["orders", "0", "1", "4", "3", id.as_str(), "skiffctl"]);
    assert_eq!(offsets[2], ["orders", "1", "-", "4", "-", id.as_str(), "skiffctl"]);
    assert_eq!(offsets.len(), 3, "partition 2 is neither assigned nor committed: {out}");
    let d = b.json(&["group", "describe", "live"]);
    assert_eq!(
        d["members"][0]["assignment"],
        serde_json::json!([{"topic": "orders", "partitions": [0, 1]}])
    );
    assert_eq!(d["total_lag"], 3);

    let listed = b.json(&["group", "list"]);
    assert_eq!(listed[0]["state"], "Stable");
    assert_eq!(listed[0]["protocol_type"], "consumer");

    // Kafka resets only inactive groups; a dry run still shows the plan, with a warning.
    b.ctl(&[
        "group",
        "reset-offsets",
        "live",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
    ])
    .assert_fails(1, "stop its consumers");
    let run = b.ctl(&["group", "reset-offsets", "live", "--topic", "orders", "--to-earliest"]);
    run.assert_ok(&["reset-offsets"]);
    assert!(run.stderr.contains("Stable with 1 active member"), "{run:#?}");
    b.ctl(&["group", "delete", "live"])
        .assert_fails(1, "delete group live: NON_EMPTY_GROUP");

    member.leave();
    b.ok(&[
        "group",
        "reset-offsets",
        "live",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
    ]);
    assert_eq!(b.json(&["group", "describe", "live"])["total_lag"], 12);
    b.ok(&["group", "delete", "live"]);
}
