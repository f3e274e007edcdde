//! `skiffctl topic …` and `skiffctl configs describe` against a real broker: the tables people
//! read, the JSON scripts read, and the errors (unknown topic, duplicate topic, Kafka refusals)
//! with their exit status.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Broker, field, last_table, table};

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn create_list_describe_delete() {
    let b = Broker::start();
    let out = b.ok(&[
        "topic",
        "create",
        "orders",
        "-p",
        "3",
        "-r",
        "1",
        "-c",
        "retention.ms=86400000",
    ]);
    let rows = table(&out);
    assert_eq!(rows[0], ["TOPIC", "STATUS", "PARTITIONS", "REPLICATION-FACTOR", "ID"]);
    assert_eq!(rows[1][..4], ["orders", "created", "3", "1"]);
    let id = rows[1][4].clone();
    assert_eq!(id.len(), 22, "Kafka prints topic ids as 22 base64 characters: {id}");

    let created = b.json(&["topic", "create", "events"]);
    assert_eq!(created["topic"], "events");
    assert_eq!(
        created["partitions"], 1,
        "the broker's num.partitions applies: {created}"
    );
    assert_eq!(created["replication_factor"], 1);

    let rows = table(&b.ok(&["topic", "list"]));
    assert_eq!(rows[0], ["NAME", "PARTITIONS", "REPLICATION-FACTOR", "ID"]);
    assert_eq!(rows[1], ["events", "1", "1", created["topic_id"].as_str().unwrap()]);
    assert_eq!(rows[2], ["orders", "3", "1", id.as_str()]);
    let listed = b.json(&["topic", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["events", "orders"]);

    b.produce("orders", &lines("v", 5), false);
    let out = b.ok(&["topic", "describe", "orders"]);
    assert_eq!(field(&out, "Name"), "orders");
    assert_eq!(field(&out, "ID"), id);
    assert_eq!(field(&out, "Partitions"), "3");
    assert_eq!(field(&out, "Replication factor"), "1");
    let rows = last_table(&out);
    assert_eq!(
        rows[0],
        [
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START",
            "HIGH-WATERMARK",
            "SIZE"
        ]
    );
    assert_eq!(rows.len(), 4);
    let total: i64 = rows[1..].iter().map(|r| r[6].parse::<i64>().unwrap()).sum();
    assert_eq!(total, 5, "{out}");
    for r in &rows[1..] {
        assert_eq!(
            (r[1].as_str(), r[3].as_str(), r[4].as_str(), r[5].as_str()),
            ("0", "0", "0", "0"),
            "{out}"
        );
    }
    let d = b.json(&["topic", "describe", "orders"]);
    assert_eq!(d["name"], "orders");
    assert_eq!(d["topic_id"], id.as_str());
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts.iter().map(|p| p["high_watermark"].as_i64().unwrap()).sum::<i64>(),
        5
    );
    assert_eq!(parts[0]["replicas"], serde_json::json!([0]));
    assert_eq!(parts[0]["isr"], serde_json::json!([0]));

    let rows = table(&b.ok(&["topic", "delete", "orders", "events"]));
    assert_eq!(
        rows,
        [
            vec!["TOPIC", "STATUS"],
            vec!["orders", "deleted"],
            vec!["events", "deleted"]
        ]
    );
    assert_eq!(b.json(&["topic", "list"]), serde_json::json!([]));
    b.ctl(&["topic", "describe", "orders"])
        .assert_fails(1, "unknown topic: orders");

    // Deleting several: what exists goes, and the missing one is still an error.
    b.ok(&["topic", "create", "stays-not"]);
    let run = b.ctl(&["topic", "delete", "stays-not", "ghost"]);
    run.assert_fails(1, "unknown topic: ghost");
    assert_eq!(table(&run.stdout)[1], ["stays-not", "deleted"]);
    assert_eq!(b.json(&["topic", "list"]), serde_json::json!([]));
}

#[test]
fn create_refusals_carry_the_kafka_error() {
    let b = Broker::start();
    b.ok(&["topic", "create", "dup"]);
    b.ctl(&["topic", "create", "dup"])
        .assert_fails(1, "create topic dup: TOPIC_ALREADY_EXISTS");
    b.ctl(&["topic", "create", "rf", "-r", "3"])
        .assert_fails(1, "INVALID_REPLICATION_FACTOR");
    b.ctl(&["topic", "create", "bad name!"])
        .assert_fails(1, "create topic bad name!");
    b.ctl(&["topic", "create", "cfg", "-c", "retention.ms=soon"])
        .assert_fails(1, "INVALID_CONFIG");
}

#[test]
fn unknown_topics_are_reported_by_every_command() {
    let b = Broker::start();
    let cases: &[&[&str]] = &[
        &["topic", "describe", "ghost"],
        &["topic", "delete", "ghost"],
        &["topic", "alter-config", "ghost", "--set", "retention.ms=1000"],
        &["topic", "add-partitions", "ghost", "-n", "1"],
        &["topic", "trim", "ghost", "-p", "0", "--offset", "1"],
        &["produce", "ghost"],
        &["consume", "ghost", "-n", "1"],
        &["configs", "describe", "topic", "ghost"],
    ];
    for args in cases {
        b.ctl_stdin(args, "x\n").assert_fails(1, "unknown topic: ghost");
    }
    // Asking never creates it (Metadata is sent with allow_auto_topic_creation=false).
    assert_eq!(b.json(&["topic", "list"]), serde_json::json!([]));
}

#[test]
fn alter_config_and_configs_describe_show_values_and_sources() {
    let b = Broker::start();
    b.ok(&["topic", "create", "cfg", "-c", "retention.ms=86400000"]);
    let rows = table(&b.ok(&["configs", "describe", "topic", "cfg"]));
    assert_eq!(rows[0], ["NAME", "VALUE", "SOURCE", "READ-ONLY"]);
    let row = |rows: &[Vec<String>], name: &str| rows.iter().find(|r| r[0] == name).cloned().unwrap();
    assert_eq!(row(&rows, "retention.ms")[1..3], ["86400000", "DYNAMIC_TOPIC_CONFIG"]);
    assert_eq!(row(&rows, "cleanup.policy")[1..3], ["delete", "DEFAULT_CONFIG"]);

    let rows = table(&b.ok(&[
        "topic",
        "alter-config",
        "cfg",
        "--set",
        "cleanup.policy=compact",
        "--delete",
        "retention.ms",
    ]));
    assert_eq!(rows[0], ["TOPIC", "CONFIG", "OPERATION", "VALUE"]);
    assert_eq!(rows[1], ["cfg", "cleanup.policy", "set", "compact"]);
    assert_eq!(rows[2], ["cfg", "retention.ms", "delete", "-"]);

    let changed = b.json(&["configs", "describe", "topic", "cfg", "--changed"]);
    assert_eq!(changed["resource_type"], "topic");
    assert_eq!(changed["name"], "cfg");
    let configs = changed["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 1, "{changed}");
    assert_eq!(configs[0]["name"], "cleanup.policy");
    assert_eq!(configs[0]["value"], "compact");
    assert_eq!(configs[0]["source"], "DYNAMIC_TOPIC_CONFIG");
    let all = b.json(&["configs", "describe", "topic", "cfg"]);
    let retention = all["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention.ms")
        .unwrap()
        .clone();
    assert_eq!(
        retention["source"], "DEFAULT_CONFIG",
        "deleted config falls back to the default: {retention}"
    );

    let altered = b.json(&["topic", "alter-config", "cfg", "--set", "retention.ms=1000"]);
    assert_eq!(altered["changes"][0]["operation"], "set");
    b.ctl(&["topic", "alter-config", "cfg", "--set", "retention.ms=-7x"])
        .assert_fails(1, "INVALID_CONFIG");

    // A broker's configs, answered by that broker: the default is the controller.
    let out = b.ok(&["configs", "describe", "broker"]);
    assert!(
        table(&out)
            .iter()
            .any(|r| r[0] == "group.initial.rebalance.delay.ms" && r[1] == "0"),
        "{out}"
    );
    let broker = b.json(&["configs", "describe", "broker", "0"]);
    assert_eq!(broker["resource_type"], "broker");
    assert_eq!(broker["name"], "0");
    b.ctl(&["configs", "describe", "broker", "zero"])
        .assert_fails(2, "is not a number");
    b.ctl(&["configs", "describe", "topic"])
        .assert_fails(2, "needs the topic name");
}

#[test]
fn add_partitions_by_count_or_to_a_total() {
    let b = Broker::start();
    b.ok(&["topic", "create", "grow", "-p", "2"]);
    let rows = table(&b.ok(&["topic", "add-partitions", "grow", "-n", "3"]));
    assert_eq!(
        rows,
        [
            vec!["TOPIC", "PARTITIONS-BEFORE", "PARTITIONS-AFTER"],
            vec!["grow", "2", "5"]
        ]
    );
    let grown = b.json(&["topic", "add-partitions", "grow", "--total", "6"]);
    assert_eq!(
        (grown["partitions_before"].as_i64(), grown["partitions_after"].as_i64()),
        (Some(5), Some(6))
    );
    assert_eq!(field(&b.ok(&["topic", "describe", "grow"]), "Partitions"), "6");
    b.ctl(&["topic", "add-partitions", "grow", "--total", "2"])
        .assert_fails(1, "INVALID_PARTITIONS");
    b.ctl(&["topic", "add-partitions", "grow"]).assert_fails(2, "--num");
}

#[test]
fn trim_moves_the_log_start() {
    let b = Broker::start();
    b.ok(&["topic", "create", "trim", "-p", "2"]);
    let run = b.ctl_stdin(
        &["produce", "trim", "-p", "0"],
        &(0..10).map(|i| format!("r{i}\n")).collect::<String>(),
    );
    run.assert_ok(&["produce"]);
    let rows = table(&b.ok(&["topic", "trim", "trim", "-p", "0", "--offset", "4"]));
    assert_eq!(rows, [vec!["TOPIC", "PARTITION", "LOG-START"], vec!["trim", "0", "4"]]);
    let d = b.json(&["topic", "describe", "trim"]);
    assert_eq!(d["partitions"][0]["log_start_offset"], 4);
    assert_eq!(d["partitions"][0]["high_watermark"], 10);
    let out = b.ok(&["consume", "trim", "-p", "0", "--from-beginning", "-e"]);
    assert_eq!(out, "r4\nr5\nr6\nr7\nr8\nr9\n");

    // -1: everything up to the high watermark.
    let trimmed = b.json(&["topic", "trim", "trim", "-p", "0", "--offset", "-1"]);
    assert_eq!(trimmed["partitions"][0]["log_start_offset"], 10);
    b.ctl(&["topic", "trim", "trim", "-p", "1", "--offset", "5"])
        .assert_fails(1, "OFFSET_OUT_OF_RANGE");
    b.ctl(&["topic", "trim", "trim", "-p", "7", "--offset", "0"])
        .assert_fails(1, "topic trim has no partition 7");
}
