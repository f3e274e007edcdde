//! Topic-level configs: which names a topic accepts, how each is validated, its default (from the
//! broker's config), and the storage `LogConfig` a topic's overrides produce. The names and
//! defaults are Kafka's, so `kafka-configs.sh`-style tools and AdminClients see what they expect.

use std::collections::BTreeMap;

use skiff_storage::LogConfig;

use crate::config::BrokerConfig;

/// `cleanup.policy`
pub const CLEANUP_POLICY_DEFAULT: &str = "delete";
/// `min.insync.replicas`
pub const MIN_INSYNC_REPLICAS_DEFAULT: &str = "1";

/// Topic configs outside the log's own, with their defaults and rules. They are stored and
/// described; see the README for which ones the broker acts on yet.
const OTHER_CONFIGS: [(&str, &str, Rule); 10] = [
    ("cleanup.policy", CLEANUP_POLICY_DEFAULT, Rule::CleanupPolicy),
    (
        "compression.type",
        "producer",
        Rule::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    ("delete.retention.ms", "86400000", Rule::Long(0)),
    ("min.compaction.lag.ms", "0", Rule::Long(0)),
    ("max.compaction.lag.ms", "9223372036854775807", Rule::Long(1)),
    ("min.cleanable.dirty.ratio", "0.5", Rule::Ratio),
    ("min.insync.replicas", MIN_INSYNC_REPLICAS_DEFAULT, Rule::Long(1)),
    ("unclean.leader.election.enable", "false", Rule::Bool),
    ("preallocate", "false", Rule::Bool),
    ("segment.jitter.ms", "0", Rule::Long(0)),
];

#[derive(Debug, Clone, Copy)]
enum Rule {
    Long(i64),
    Bool,
    Ratio,
    OneOf(&'static [&'static str]),
    CleanupPolicy,
}

impl Rule {
    fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            Rule::Long(min) => value.trim().parse::<i64>().is_ok_and(|v| v >= min),
            Rule::Bool => matches!(value, "true" | "false"),
            Rule::Ratio => value.trim().parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v)),
            Rule::OneOf(allowed) => allowed.contains(&value),
            Rule::CleanupPolicy => {
                !value.is_empty() && value.split(',').all(|p| matches!(p.trim(), "delete" | "compact"))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("invalid value {value:?}"))
        }
    }
}

/// Every topic config name, in the order DescribeConfigs lists them.
pub fn names() -> impl Iterator<Item = &'static str> {
    skiff_storage::config::LOG_CONFIG_NAMES
        .into_iter()
        .chain(OTHER_CONFIGS.iter().map(|(n, _, _)| *n))
}

/// Checks one `name=value` for a topic; the error text is what INVALID_CONFIG carries.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    if let Some((_, _, rule)) = OTHER_CONFIGS.iter().find(|(n, _, _)| *n == name) {
        return rule.check(value).map_err(|e| format!("{e} for {name}"));
    }
    if skiff_storage::config::LOG_CONFIG_NAMES.contains(&name) {
        return LogConfig::default().set(name, value).map_err(|e| e.to_string());
    }
    Err(format!("unknown topic config {name}"))
}

/// The default of a topic config on this broker.
pub fn default_value(broker: &BrokerConfig, name: &str) -> Option<String> {
    if name == "min.insync.replicas" {
        return Some(broker.min_insync_replicas.to_string());
    }
    broker.log_defaults.get(name).or_else(|| {
        OTHER_CONFIGS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, d, _)| d.to_string())
    })
}

/// The effective value: the topic's override, else the broker default.
pub fn effective(broker: &BrokerConfig, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
    overrides.get(name).cloned().or_else(|| default_value(broker, name))
}

/// The storage config a topic's overrides give on this broker.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut config = broker.log_defaults.clone();
    for (name, value) in overrides {
        if skiff_storage::config::LOG_CONFIG_NAMES.contains(&name.as_str())
            && let Err(e) = config.set(name, value)
        {
            // Overrides were validated when stored; a bad one is kept out, and said once.
            tracing::warn!(config = %name, %value, error = %e, "ignoring invalid stored topic config");
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> BrokerConfig {
        BrokerConfig::new("d".into(), "127.0.0.1:9092".parse().unwrap())
    }

    #[test]
    fn validation_follows_kafkas_rules() {
        for (n, v) in [
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "-1"),
            ("min.insync.replicas", "2"),
            ("compression.type", "zstd"),
            ("min.cleanable.dirty.ratio", "0.9"),
        ] {
            assert!(validate(n, v).is_ok(), "{n}={v}");
        }
        for (n, v) in [
            ("cleanup.policy", "shred"),
            ("retention.ms", "-5"),
            ("min.insync.replicas", "0"),
            ("compression.type", "brotli"),
            ("bogus.config", "1"),
            ("preallocate", "yes"),
        ] {
            assert!(validate(n, v).is_err(), "{n}={v}");
        }
    }

    #[test]
    fn effective_values_layer_overrides_on_broker_defaults() {
        let mut b = broker();
        b.set("log.retention.ms", "5000").unwrap();
        let mut overrides = BTreeMap::new();
        assert_eq!(effective(&b, &overrides, "retention.ms").as_deref(), Some("5000"));
        overrides.insert("retention.ms".to_string(), "7000".to_string());
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
        assert_eq!(effective(&b, &overrides, "retention.ms").as_deref(), Some("7000"));
        assert_eq!(log_config(&b, &overrides).retention_ms, 7000);
        assert_eq!(effective(&b, &overrides, "min.insync.replicas").as_deref(), Some("1"));
        assert_eq!(names().count(), 20);
    }
}
