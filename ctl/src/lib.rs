//! `skiffctl`, the administration tool for Skiff. It speaks only the Kafka protocol (through the
//! `kafka-protocol` crate, never this repository's broker code), so it works against Apache Kafka
//! as well. [`client`] is the small Kafka client; one module per command group ([`cluster`],
//! [`topic`], [`group`], [`produce`], [`consume`], [`configs`], [`partition`]); [`output`] prints tables for
//! people and JSON for scripts; [`cli`] is the command line.

pub mod cli;
pub mod client;
pub mod cluster;
pub mod configs;
pub mod consume;
pub mod error;
pub mod group;
pub mod output;
pub mod partition;
pub mod produce;
pub mod progress;
pub mod time;
pub mod topic;

pub use error::{CtlError, Result};

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// `cluster health` found a problem.
    Unhealthy,
}

/// Exit status of a command that succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status of a command that failed (unreachable broker, unknown topic, Kafka error, …).
pub const EXIT_ERROR: u8 = 1;
/// Exit status of a bad command line (unknown flag, bad value), as clap uses.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `cluster health` when the cluster is not healthy.
pub const EXIT_UNHEALTHY: u8 = 3;

/// Parses `KEY=VALUE` (the value may contain `=`).
pub fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The request timeout in ms, for the `timeout_ms` fields of admin requests.
pub fn timeout_ms(client: &client::Client) -> i32 {
    i32::try_from(client.timeout().as_millis()).unwrap_or(i32::MAX)
}

/// A one-line note on stderr that does not stop the command.
pub fn warn(message: &str) {
    eprintln!("skiffctl: warning: {}", error::one_line(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("retention.ms="), Ok(("retention.ms".into(), "".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
