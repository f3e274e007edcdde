//! Broker configuration, with Kafka's broker config names and defaults. Every value can be set
//! with `--set name=value` on the command line; nothing is read from a file.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use skiff_storage::LogConfig;

/// `num.partitions`: partitions of an auto-created topic, or of a CreateTopics that says -1.
pub const NUM_PARTITIONS_DEFAULT: i32 = 1;
/// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
pub const OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT: i32 = 50;
/// `group.initial.rebalance.delay.ms`: how long a new group waits for more members to join.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u64 = 3000;
/// `log.retention.check.interval.ms`: how often retention runs.
pub const LOG_RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// `connections.max.idle.ms`: a connection with no request for this long is closed.
pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 600_000;
/// `message.max.bytes`: the broker-wide default of a topic's `max.message.bytes`.
pub const MESSAGE_MAX_BYTES_DEFAULT: u32 = 1024 * 1024 + 12;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `log.dirs`
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Host and port clients are told to connect to (`advertised.listeners`).
    pub advertised_host: String,
    pub advertised_port: u16,
    pub num_partitions: i32,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms`
    pub connections_max_idle_ms: u64,
    pub group_initial_rebalance_delay_ms: u64,
    pub offsets_topic_num_partitions: i32,
    pub log_retention_check_interval_ms: u64,
    /// Defaults every topic's log config starts from (`log.retention.ms`, `log.segment.bytes`, …).
    pub log_defaults: LogConfig,
    /// The configs given explicitly (with `--set`), which DescribeConfigs reports as
    /// STATIC_BROKER_CONFIG rather than DEFAULT_CONFIG.
    pub explicitly_set: BTreeSet<&'static str>,
}

impl BrokerConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        let advertised_host = if listen.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            listen.ip().to_string()
        };
        BrokerConfig {
            node_id: 0,
            data_dir,
            listen,
            advertised_host,
            advertised_port: listen.port(),
            num_partitions: NUM_PARTITIONS_DEFAULT,
            auto_create_topics: true,
            socket_request_max_bytes: skiff_protocol::SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            connections_max_idle_ms: CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            group_initial_rebalance_delay_ms: GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            offsets_topic_num_partitions: OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT,
            log_retention_check_interval_ms: LOG_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            log_defaults: LogConfig {
                max_message_bytes: MESSAGE_MAX_BYTES_DEFAULT,
                ..LogConfig::default()
            },
            explicitly_set: BTreeSet::new(),
        }
    }

    /// Sets a broker config by its Kafka name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
            value
                .trim()
                .parse()
                .map_err(|_| format!("invalid value {value:?} for {name}"))
        }
        match name {
            "node.id" | "broker.id" => self.node_id = parse(name, value)?,
            "num.partitions" => {
                self.num_partitions = parse(name, value)?;
                if self.num_partitions < 1 {
                    return Err("num.partitions must be at least 1".into());
                }
            }
            "auto.create.topics.enable" => self.auto_create_topics = parse(name, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse(name, value)?,
            "connections.max.idle.ms" => self.connections_max_idle_ms = parse(name, value)?,
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms = parse(name, value)?,
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions = parse(name, value)?,
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = parse(name, value)?,
            _ => {
                let topic_name = log_config_for_broker_config(name).ok_or_else(|| format!("unknown config {name}"))?;
                self.log_defaults.set(topic_name, value).map_err(|e| e.to_string())?;
            }
        }
        if let Some(known) = BROKER_CONFIG_NAMES.iter().find(|n| **n == name) {
            self.explicitly_set.insert(known);
        }
        Ok(())
    }

    /// The current value of a broker config by its Kafka name, as DescribeConfigs shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "node.id" | "broker.id" => self.node_id.to_string(),
            "num.partitions" => self.num_partitions.to_string(),
            "auto.create.topics.enable" => self.auto_create_topics.to_string(),
            "socket.request.max.bytes" => self.socket_request_max_bytes.to_string(),
            "connections.max.idle.ms" => self.connections_max_idle_ms.to_string(),
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms.to_string(),
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions.to_string(),
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms.to_string(),
            _ => return self.log_defaults.get(log_config_for_broker_config(name)?),
        })
    }

    /// Whether `name` was set explicitly (`--set`) rather than left at its default.
    pub fn is_explicit(&self, name: &str) -> bool {
        match name {
            "node.id" | "broker.id" => {
                self.explicitly_set.contains("node.id") || self.explicitly_set.contains("broker.id")
            }
            _ => self.explicitly_set.contains(name),
        }
    }
}

/// Every name `BrokerConfig::set` accepts, in the order DescribeConfigs lists them.
pub const BROKER_CONFIG_NAMES: [&str; 19] = [
    "node.id",
    "broker.id",
    "num.partitions",
    "auto.create.topics.enable",
    "socket.request.max.bytes",
    "connections.max.idle.ms",
    "group.initial.rebalance.delay.ms",
    "offsets.topic.num.partitions",
    "log.retention.check.interval.ms",
    "log.segment.bytes",
    "log.roll.ms",
    "log.index.size.max.bytes",
    "log.index.interval.bytes",
    "log.retention.ms",
    "log.retention.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "message.max.bytes",
    "log.message.timestamp.type",
];

/// The broker-wide default config (`log.*`, `message.max.bytes`) behind a topic config name.
pub fn log_config_for_broker_config(broker_name: &str) -> Option<&'static str> {
    BROKER_TO_TOPIC_CONFIG
        .iter()
        .find(|(b, _)| *b == broker_name)
        .map(|(_, t)| *t)
}

/// The broker config that supplies a topic config's default, as DescribeConfigs reports it.
pub fn broker_config_for_topic_config(topic_name: &str) -> Option<&'static str> {
    BROKER_TO_TOPIC_CONFIG
        .iter()
        .find(|(_, t)| *t == topic_name)
        .map(|(b, _)| *b)
}

const BROKER_TO_TOPIC_CONFIG: [(&str, &str); 10] = [
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.index.size.max.bytes", "segment.index.bytes"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("message.max.bytes", "max.message.bytes"),
    ("log.message.timestamp.type", "message.timestamp.type"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_accepts_kafka_names_and_refuses_the_rest() {
        let mut c = BrokerConfig::new(PathBuf::from("data"), "0.0.0.0:9092".parse().unwrap());
        assert_eq!(c.advertised_host, "localhost");
        c.set("num.partitions", "8").unwrap();
        c.set("log.retention.ms", "1000").unwrap();
        c.set("message.max.bytes", "2000").unwrap();
        assert_eq!(
            (
                c.num_partitions,
                c.log_defaults.retention_ms,
                c.log_defaults.max_message_bytes
            ),
            (8, 1000, 2000)
        );
        assert!(c.set("num.partitions", "0").is_err());
        assert!(c.set("no.such.thing", "1").is_err());
        assert!(c.set("log.retention.ms", "soon").is_err());
    }

    #[test]
    fn every_listed_config_reads_back_and_remembers_being_set() {
        let mut c = BrokerConfig::new(PathBuf::from("data"), "0.0.0.0:9092".parse().unwrap());
        assert!(BROKER_CONFIG_NAMES.iter().all(|n| !c.is_explicit(n)));
        for name in BROKER_CONFIG_NAMES {
            let value = c.get(name).unwrap_or_else(|| panic!("{name} has no value"));
            c.set(name, &value).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
            assert!(c.is_explicit(name), "{name}");
        }
        assert_eq!(c.get("no.such.thing"), None);
        let mut d = BrokerConfig::new(PathBuf::from("data"), "0.0.0.0:9092".parse().unwrap());
        assert!(d.set("log.retention.ms", "soon").is_err());
        assert!(!d.is_explicit("log.retention.ms"), "a refused value is not recorded");
        d.set("broker.id", "3").unwrap();
        assert_eq!(
            (d.get("node.id").as_deref(), d.is_explicit("node.id")),
            (Some("3"), true)
        );
    }
}
