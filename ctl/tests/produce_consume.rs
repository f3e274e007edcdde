//! `skiffctl produce` and `skiffctl consume` against a real broker: lines in, records out, in
//! every output format and with every compression, keys partitioned as Kafka partitions them,
//! and nothing on stderr when the output goes to a pipe.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Broker, table};
use skiff_ctl::produce::partition_for_key;

fn input(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn keyed_lines_land_where_kafka_would_put_them_and_come_back_in_every_format() {
    let b = Broker::start();
    b.ok(&["topic", "create", "clicks", "-p", "4"]);
    let keys = ["user-1", "user-2", "user-3", "user-4", "user-5", "user-1"];
    let lines: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k}:click-{i}")).collect();
    let run = b.ctl_stdin(
        &["produce", "clicks", "-K", ":"],
        &input(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    run.assert_ok(&["produce"]);
    assert_eq!(run.stderr, "", "a pipe gets no progress output");
    let rows = table(&run.stdout);
    assert_eq!(
        rows[0],
        ["TOPIC", "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]
    );
    let produced: u64 = rows[1..].iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(produced, 6);

    let out = b.ok(&[
        "consume",
        "clicks",
        "--from-beginning",
        "-e",
        "--format",
        "{partition} {offset} {key}={value}",
    ]);
    let mut seen: Vec<(i32, String, String)> = out
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let p = it.next().unwrap().parse().unwrap();
            let _offset = it.next().unwrap();
            let (k, v) = it.next().unwrap().split_once('=').unwrap();
            (p, k.to_string(), v.to_string())
        })
        .collect();
    seen.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(seen.len(), 6, "{out}");
    for (i, (p, k, v)) in seen.iter().enumerate() {
        assert_eq!((k.as_str(), v.as_str()), (keys[i], format!("click-{i}").as_str()));
        assert_eq!(*p, partition_for_key(k.as_bytes(), 4), "{k} is in partition {p}");
    }

    // Default format: values only; JSON: one object per line with every field.
    let values = b.ok(&[
        "consume",
        "clicks",
        "--from-beginning",
        "-e",
        "-p",
        "0",
        "-p",
        "1",
        "-p",
        "2",
        "-p",
        "3",
    ]);
    assert_eq!(values.lines().count(), 6);
    assert!(values.lines().all(|l| l.starts_with("click-")), "{values}");
    let json = b.ok(&["consume", "clicks", "--from-beginning", "-e", "--format", "json"]);
    let records: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 6);
    for r in &records {
        assert_eq!(r["topic"], "clicks");
        assert!(
            r["partition"].is_i64() && r["offset"].is_i64() && r["timestamp"].as_i64().unwrap() > 0,
            "{r}"
        );
        assert!(r["key"].as_str().unwrap().starts_with("user-"));
        assert!(r["value"].as_str().unwrap().starts_with("click-"));
        assert!(r["headers"].is_object());
    }
}

#[test]
fn counts_offsets_and_partitions_choose_what_is_read() {
    let b = Broker::start();
    b.ok(&["topic", "create", "seq", "-p", "2"]);
    let values: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let run = b.ctl_stdin(
        &["produce", "seq", "-p", "1"],
        &input(&values.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    run.assert_ok(&["produce"]);
    let produced = table(&run.stdout);
    assert_eq!(produced[1], ["seq", "1", "20", "0", "19"]);

    assert_eq!(b.ok(&["consume", "seq", "--from-beginning", "-n", "3"]), "m0\nm1\nm2\n");
    assert_eq!(
        b.ok(&["consume", "seq", "-p", "1", "--offset", "15", "-n", "2"]),
        "m15\nm16\n"
    );
    assert_eq!(
        b.ok(&["consume", "seq", "-p", "1", "--offset", "-2", "-e"]),
        "m18\nm19\n"
    );
    assert_eq!(
        b.ok(&["consume", "seq", "-p", "0", "--from-beginning", "-e"]),
        "",
        "partition 0 is empty"
    );
    let out = b.ok(&[
        "consume",
        "seq",
        "-p",
        "1",
        "--offset",
        "7",
        "-n",
        "1",
        "--format",
        "{topic}/{partition}@{offset}\\t{value}",
    ]);
    assert_eq!(out, "seq/1@7\tm7\n");
    // Past the end: consume moves to the end and, with -e, stops there.
    let run = b.ctl(&["consume", "seq", "-p", "1", "--offset", "500", "-e"]);
    run.assert_ok(&["consume"]);
    assert_eq!(run.stdout, "");
    b.ctl(&["consume", "seq", "-p", "9", "-n", "1"])
        .assert_fails(1, "topic seq has no partition 9");
}

#[test]
fn consume_waits_for_new_records_from_the_end() {
    let b = Broker::start();
    b.ok(&["topic", "create", "live"]);
    b.produce("live", &["old".to_string()], false);
    let addr = b.addr.clone();
    let reader = std::thread::spawn(move || common::ctl_at(&addr, &["consume", "live", "-n", "2"], None));
    // consume starts at the log end, so it prints only records written after it started: keep
    // writing (bounded) until it has two.
    for i in 0..50 {
        if reader.is_finished() {
            break;
        }
        b.produce("live", &[format!("new-{i}")], false);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let run = reader.join().unwrap();
    run.assert_ok(&["consume"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:#?}");
    assert!(lines.iter().all(|l| l.starts_with("new-")), "{run:#?}");
}

#[test]
fn every_compression_and_acks_setting_round_trips() {
    let b = Broker::start();
    b.ok(&["topic", "create", "packed"]);
    let mut expected = String::new();
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        for acks in ["all", "1", "-1"] {
            let line = format!("{codec}-{acks}-{}", "x".repeat(i * 100));
            let run = b.ctl_stdin(
                &["produce", "packed", "--compression", codec, "--acks", acks],
                &input(&[&line]),
            );
            run.assert_ok(&["produce", codec, acks]);
            expected.push_str(&line);
            expected.push('\n');
        }
    }
    // acks=0 gets no answer, so no offsets to show.
    let run = b.ctl_stdin(
        &["produce", "packed", "--acks", "0", "--format", "json"],
        &input(&["fire-and-forget"]),
    );
    run.assert_ok(&["produce", "--acks", "0"]);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["records"], 1);
    assert_eq!(summary["partitions"][0]["first_offset"], serde_json::Value::Null);
    expected.push_str("fire-and-forget\n");
    // acks=0 is not acknowledged: wait (bounded) until the broker has it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = b.ok(&["consume", "packed", "--from-beginning", "-e"]);
        if out == expected || std::time::Instant::now() > deadline {
            assert_eq!(out, expected);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn headers_empty_lines_and_crlf() {
    let b = Broker::start();
    b.ok(&["topic", "create", "misc"]);
    let run = b.ctl_stdin(
        &["produce", "misc", "-H", "source=test", "-H", "trace=a=b"],
        "one\r\n\ntwo\n",
    );
    run.assert_ok(&["produce"]);
    let out = b.ok(&[
        "consume",
        "misc",
        "--from-beginning",
        "-e",
        "--format",
        "[{value}] {headers}",
    ]);
    assert_eq!(
        out,
        "[one] source=test,trace=a=b\n[] source=test,trace=a=b\n[two] source=test,trace=a=b\n"
    );
    let json = b.ok(&["consume", "misc", "--from-beginning", "-n", "1", "--format", "json"]);
    let r: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(r["headers"], serde_json::json!({"source": "test", "trace": "a=b"}));
    assert_eq!(r["key"], serde_json::Value::Null);
}

#[test]
fn a_line_without_the_key_separator_is_refused() {
    let b = Broker::start();
    b.ok(&["topic", "create", "strict"]);
    let run = b.ctl_stdin(&["produce", "strict", "-K", ":"], "a:1\nno-separator\n");
    run.assert_fails(1, "line 2 has no key separator \":\"");
    b.ctl_stdin(&["produce", "strict", "-p", "3"], "x\n")
        .assert_fails(1, "topic strict has no partition 3");
}

#[test]
fn a_closed_pipe_ends_consume_quietly() {
    let b = Broker::start();
    b.ok(&["topic", "create", "many"]);
    let values: Vec<String> = (0..2000).map(|i| format!("value-{i}")).collect();
    b.produce("many", &values, false);
    let script = format!(
        "{} -b {} consume many --from-beginning -e | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        common::SKIFFCTL,
        b.addr
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "value-0\nstatus=0\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn progress_shows_on_a_terminal_and_not_in_pipes() {
    let b = Broker::start();
    b.ok(&["topic", "create", "bulk"]);
    let values: Vec<String> = (0..3000).map(|i| format!("v{i}")).collect();
    b.produce("bulk", &values, false);
    // In a pipe (as every other test runs it): stderr stays empty.
    let run = b.ctl(&["consume", "bulk", "--from-beginning", "-n", "3000"]);
    run.assert_ok(&["consume"]);
    assert_eq!(run.stdout.lines().count(), 3000);
    assert_eq!(run.stderr, "");
    // On a terminal (script(1) gives the command a pseudo-terminal) with records going to a file:
    // a progress line on stderr, cleared at the end.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("records");
    let command = format!(
        "{} -b {} consume bulk --from-beginning -n 3000 > {}",
        common::SKIFFCTL,
        b.addr,
        out.display()
    );
    let Ok(script) = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
    else {
        eprintln!("script(1) is not installed; skipping the terminal half");
        return;
    };
    assert!(script.status.success(), "{script:?}");
    let terminal = String::from_utf8_lossy(&script.stdout);
    assert!(
        terminal.contains("consuming: ") && terminal.contains("/3000 records"),
        "{terminal:?}"
    );
    assert!(terminal.contains("\x1b[K"), "the line is cleared: {terminal:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3000);
}
