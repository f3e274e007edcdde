//! The one error type of `skiffctl`'s library: every failure a command can meet, each rendering as
//! one line that says what went wrong (the binary prints it after `skiffctl: ` and exits non-zero).
//! Kafka error codes keep their protocol names (`UNKNOWN_TOPIC_OR_PARTITION`), so an operator can
//! look them up.

use kafka_protocol::ResponseError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CtlError {
    /// No address in `--brokers` accepted a connection and answered ApiVersions.
    #[error("cannot reach any broker in {brokers}: {reason}")]
    Unreachable { brokers: String, reason: String },

    /// A connection to one broker failed or broke mid-request.
    #[error("broker {addr}: {reason}")]
    Connection { addr: String, reason: String },

    /// The broker did not answer within `--timeout`.
    #[error("broker {addr} did not answer {api} within {secs} s")]
    Timeout { addr: String, api: String, secs: u64 },

    /// A request or response that could not be encoded or decoded.
    #[error("broker {addr}: {api}: {reason}")]
    Protocol { addr: String, api: String, reason: String },

    /// The broker serves no version of an API that this tool speaks.
    #[error("broker {addr} does not support {api}{detail}")]
    Unsupported { addr: String, api: String, detail: String },

    /// A Kafka error code in a response.
    #[error("{context}: {}{}", error_name(*code), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        context: String,
        code: ResponseError,
        message: Option<String>,
    },

    #[error("unknown topic: {0}")]
    UnknownTopic(String),

    #[error("unknown group: {0}")]
    UnknownGroup(String),

    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },

    /// A flag or value that makes no sense; the binary exits with the usage status for it.
    #[error("{0}")]
    InvalidArgument(String),

    /// Input that could not be used (a line without the key separator, …).
    #[error("{0}")]
    BadInput(String),

    /// The operation cannot be done in the cluster's current state (resetting an active group, …).
    #[error("{0}")]
    Refused(String),

    /// Some partitions of a request failed (the printed table has each one's reason); `first`
    /// names one, so the one-line error is useful on its own.
    #[error("{failed} of {total} partitions failed, e.g. {first}")]
    SomeFailed { failed: usize, total: usize, first: String },

    /// `--wait` ran out of time. The moves go on in the cluster, so this says how to follow them.
    #[error(
        "{moving} of {total} partitions still moving after {secs} s ({examples}); \
         they keep moving: follow them with 'skiffctl partition move-status'"
    )]
    StillMoving {
        moving: usize,
        total: usize,
        secs: u64,
        examples: String,
    },

    /// Writing to stdout or reading stdin failed (a closed pipe is not reported).
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl CtlError {
    /// A Kafka error code from a response, with what was being done and the broker's message.
    pub fn kafka(context: impl Into<String>, code: i16, message: Option<&str>) -> Self {
        CtlError::Kafka {
            context: context.into(),
            code: ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
            message: message.map(one_line).filter(|m| !m.is_empty()),
        }
    }

    /// Whether this error comes from a bad command line rather than from the cluster.
    pub fn is_usage(&self) -> bool {
        matches!(self, CtlError::InvalidArgument(_))
    }

    /// Whether stdout was closed under us (`skiffctl consume | head`): not an error to report.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The Kafka error code carried by this error, if any.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            CtlError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Turns a Kafka error code into its protocol name: `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: ResponseError) -> String {
    if let ResponseError::Unknown(n) = code {
        return format!("ERROR_{n}");
    }
    let camel = format!("{code:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Broker messages are free text; the one-line rule holds even when they contain newlines.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Short for results of this library.
pub type Result<T, E = CtlError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafka_protocol_names() {
        assert_eq!(
            error_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(error_name(ResponseError::NonEmptyGroup), "NON_EMPTY_GROUP");
        assert_eq!(error_name(ResponseError::Unknown(999)), "ERROR_999");
    }

    #[test]
    fn kafka_errors_render_on_one_line() {
        let e = CtlError::kafka("create topic x", 36, Some("Topic 'x'\nalready exists."));
        assert_eq!(
            e.to_string(),
            "create topic x: TOPIC_ALREADY_EXISTS: Topic 'x' already exists."
        );
        let e = CtlError::kafka("delete group g", 69, None);
        assert_eq!(e.to_string(), "delete group g: GROUP_ID_NOT_FOUND");
    }
}
