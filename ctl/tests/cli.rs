//! The command line itself: help that reads well for every command, one-line errors with exit
//! status 2 for a bad command line, and exit status 1 with the reason when no broker answers.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{SKIFFCTL, ctl_at};

const COMMANDS: &[&[&str]] = &[
    &["cluster"],
    &["cluster", "info"],
    &["cluster", "health"],
    &["topic"],
    &["topic", "create"],
    &["topic", "list"],
    &["topic", "describe"],
    &["topic", "delete"],
    &["topic", "alter-config"],
    &["topic", "add-partitions"],
    &["topic", "trim"],
    &["group"],
    &["group", "list"],
    &["group", "describe"],
    &["group", "reset-offsets"],
    &["group", "delete"],
    &["produce"],
    &["consume"],
    &["configs"],
    &["configs", "describe"],
];

fn dead_address() -> String {
    // Bound and dropped: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

#[test]
fn top_level_help_lists_every_command_and_the_exit_statuses() {
    let run = ctl_at("", &["--help"], None);
    run.assert_ok(&["--help"]);
    for word in [
        "Usage: skiffctl",
        "cluster",
        "topic",
        "group",
        "produce",
        "consume",
        "configs",
        "--brokers",
        "SKIFF_BROKERS",
        "--format",
        "Exit status",
        "Examples",
    ] {
        assert!(run.stdout.contains(word), "--help lacks {word:?}:\n{}", run.stdout);
    }
}

#[test]
fn every_subcommand_has_its_own_help() {
    for path in COMMANDS {
        let mut args = path.to_vec();
        args.push("--help");
        let run = ctl_at("", &args, None);
        run.assert_ok(&args);
        let usage = format!("Usage: skiffctl {}", path.join(" "));
        assert!(run.stdout.contains(&usage), "{args:?}: no {usage:?} in\n{}", run.stdout);
        // The first line is the command's one-sentence description.
        let first = run.stdout.lines().next().unwrap_or("");
        assert!(
            first.len() > 10 && !first.starts_with("Usage"),
            "{args:?} starts with {first:?}"
        );
    }
    let reset = ctl_at("", &["group", "reset-offsets", "--help"], None).stdout;
    for flag in [
        "--to-earliest",
        "--to-latest",
        "--to-offset",
        "--to-datetime",
        "--shift-by",
        "--dry-run",
        "--execute",
    ] {
        assert!(reset.contains(flag), "reset-offsets help lacks {flag}");
    }
    let consume = ctl_at("", &["consume", "--help"], None).stdout;
    for flag in ["--group", "--from-beginning", "--offset", "--count", "--format"] {
        assert!(consume.contains(flag), "consume help lacks {flag}");
    }
}

#[test]
fn version_prints() {
    let run = ctl_at("", &["--version"], None);
    run.assert_ok(&["--version"]);
    assert!(run.stdout.starts_with("skiffctl "), "{}", run.stdout);
}

#[test]
fn bad_command_lines_fail_with_one_line_and_status_2() {
    let addr = dead_address();
    let cases: &[(&[&str], &str)] = &[
        (
            &["topic", "create", "t", "--partitons", "3"],
            "unexpected argument '--partitons'",
        ),
        (&["topic", "create"], "<NAME>"),
        (&["topic", "create", "t", "-p", "0"], "--partitions"),
        (&["topic", "create", "t", "-c", "retention.ms"], "expected KEY=VALUE"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["group", "reset-offsets", "g", "--topic", "t"], "--to-earliest"),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--to-latest",
            ],
            "cannot be used with",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--dry-run",
                "--execute",
            ],
            "cannot be used with",
        ),
        (
            &["group", "reset-offsets", "g", "--topic", "t:x", "--to-earliest"],
            "TOPIC:P",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-datetime",
                "yesterday",
            ],
            "invalid",
        ),
        (&["produce", "t", "--acks", "2"], "expected all, -1, 1 or 0"),
        (&["produce", "t", "--compression", "brotli"], "brotli"),
        (&["topic", "list", "--format", "yaml"], "unknown format"),
        // Checked before any connection, so the dead address does not matter.
        (&["topic", "list", "--format", "{value}"], "only applies to consume"),
        (&["consume", "t", "--format", "{nope}"], "unknown field {nope}"),
        (
            &["consume", "t", "--from-beginning", "--offset", "3"],
            "cannot be used with",
        ),
    ];
    for (args, needle) in cases {
        let run = ctl_at(&addr, args, None);
        run.assert_fails(2, needle);
    }
    // Missing subcommand: clap prints the help (several lines) and exits 2.
    let run = ctl_at("", &["topic"], None);
    assert_eq!(run.code, Some(2), "{run:#?}");
}

#[test]
fn an_unreachable_broker_fails_with_status_1_and_says_where() {
    let addr = dead_address();
    for args in [
        &["cluster", "info"][..],
        &["topic", "list"],
        &["group", "list"],
        &["consume", "t", "-n", "1"],
    ] {
        let run = ctl_at(&addr, args, None);
        run.assert_fails(1, &format!("cannot reach any broker in {addr}"));
    }
    // Several bootstrap brokers: all are tried, all are named.
    let other = dead_address();
    let run = ctl_at(&format!("{addr},{other}"), &["cluster", "info"], None);
    run.assert_fails(1, &format!("{addr},{other}"));
}

#[test]
fn brokers_come_from_skiff_brokers_when_not_given() {
    let addr = dead_address();
    let out = Command::new(SKIFFCTL)
        .args(["cluster", "info"])
        .env("SKIFF_BROKERS", &addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
}
