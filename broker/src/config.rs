//! Broker configuration, with Kafka's broker config names and defaults. Every value can be set
//! with `--set name=value` on the command line; nothing is read from a file.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use skiff_storage::LogConfig;

use crate::listener::{DEFAULT_LISTENER_NAME, Listener, ListenerError};

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
/// `default.replication.factor`: replicas of an auto-created topic, or of a CreateTopics that
/// says -1.
pub const DEFAULT_REPLICATION_FACTOR_DEFAULT: i16 = 1;
/// `offsets.topic.replication.factor`: replicas of `__consumer_offsets` (fewer when the cluster
/// has fewer live brokers when it is created).
pub const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// `replica.lag.time.max.ms`: a follower that has not caught up with the leader's log end for
/// this long leaves the ISR.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 30_000;
/// `broker.session.timeout.ms`: a broker the controller has not heard from for this long is
/// fenced (no longer listed in Metadata, its replicas reported offline) until it is heard again.
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 9_000;
/// `auto.leader.rebalance.enable`: leaders hand partitions back to their preferred replica.
pub const AUTO_LEADER_REBALANCE_ENABLE_DEFAULT: bool = true;
/// `leader.imbalance.check.interval.seconds`: how often leaders look for imbalance.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT: u64 = 300;
/// `leader.imbalance.per.broker.percentage`: the share of a broker's preferred partitions that
/// others may lead before they are handed back.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: u32 = 10;

/// One entry of `controller.quorum.voters` (`id@host:port`): a broker of the controller quorum
/// and the address its Raft transport listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// Parses `controller.quorum.voters`, e.g. `0@10.0.0.1:9093,1@10.0.0.2:9093,2@10.0.0.3:9093`.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || format!("controller.quorum.voters entry {entry:?} is not id@host:port");
        let (id, addr) = entry.split_once('@').ok_or_else(bad)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let voter = Voter {
            id: id.trim().parse().map_err(|_| bad())?,
            host: host.trim().to_string(),
            port: port.trim().parse().map_err(|_| bad())?,
        };
        if voter.id < 0 || voter.host.is_empty() {
            return Err(bad());
        }
        if voters.iter().any(|v| v.id == voter.id) {
            return Err(format!("controller.quorum.voters names broker {} twice", voter.id));
        }
        voters.push(voter);
    }
    Ok(voters)
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `log.dirs`
    pub data_dir: PathBuf,
    /// `listeners` with `advertised.listeners`: never empty (see `set_listeners`); the first
    /// is the default.
    listeners: Vec<Listener>,
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
    /// `controller.quorum.voters`: empty on a single node; in a cluster every broker lists the
    /// same voters (each broker of a cluster is a voter of the controller group).
    pub controller_quorum_voters: Vec<Voter>,
    /// `broker.rack`
    pub broker_rack: Option<String>,
    pub default_replication_factor: i16,
    pub offsets_topic_replication_factor: i16,
    pub replica_lag_time_max_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// `min.insync.replicas`: the default of the topic config of the same name.
    pub min_insync_replicas: i32,
    /// Defaults every topic's log config starts from (`log.retention.ms`, `log.segment.bytes`, …).
    pub log_defaults: LogConfig,
    /// The configs given explicitly (with `--set`), which DescribeConfigs reports as
    /// STATIC_BROKER_CONFIG rather than DEFAULT_CONFIG.
    pub explicitly_set: BTreeSet<&'static str>,
}

impl BrokerConfig {
    /// Whether this broker is part of a replicated cluster (`controller.quorum.voters` is set).
    pub fn is_cluster(&self) -> bool {
        !self.controller_quorum_voters.is_empty()
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    pub fn set_listeners(&mut self, listeners: Vec<Listener>) -> Result<(), ListenerError> {
        if listeners.is_empty() {
            return Err(ListenerError::Empty);
        }
        self.listeners = listeners;
        Ok(())
    }

    /// The first listener: where the broker's single-listener answers come from.
    pub fn default_listener(&self) -> &Listener {
        &self.listeners[0]
    }

    /// The listener named `name`, else the default one.
    pub fn listener(&self, name: &str) -> &Listener {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| self.default_listener())
    }

    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        BrokerConfig {
            node_id: 0,
            data_dir,
            listeners: vec![Listener::new(DEFAULT_LISTENER_NAME, listen)],
            num_partitions: NUM_PARTITIONS_DEFAULT,
            auto_create_topics: true,
            socket_request_max_bytes: skiff_protocol::SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            connections_max_idle_ms: CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            group_initial_rebalance_delay_ms: GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            offsets_topic_num_partitions: OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT,
            log_retention_check_interval_ms: LOG_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            controller_quorum_voters: Vec::new(),
            broker_rack: None,
            default_replication_factor: DEFAULT_REPLICATION_FACTOR_DEFAULT,
            offsets_topic_replication_factor: OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT,
            replica_lag_time_max_ms: REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            auto_leader_rebalance_enable: AUTO_LEADER_REBALANCE_ENABLE_DEFAULT,
            leader_imbalance_check_interval_seconds: LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT,
            leader_imbalance_per_broker_percentage: LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
            min_insync_replicas: 1,
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
            "controller.quorum.voters" => self.controller_quorum_voters = parse_voters(value)?,
            "broker.rack" => self.broker_rack = Some(value.trim().to_string()).filter(|r| !r.is_empty()),
            "default.replication.factor" => {
                self.default_replication_factor = parse(name, value)?;
                if self.default_replication_factor < 1 {
                    return Err("default.replication.factor must be at least 1".into());
                }
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = parse(name, value)?;
                if self.offsets_topic_replication_factor < 1 {
                    return Err("offsets.topic.replication.factor must be at least 1".into());
                }
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse(name, value)?,
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = parse(name, value)?,
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable = parse(name, value)?,
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds = parse(name, value)?;
                if self.leader_imbalance_check_interval_seconds < 1 {
                    return Err("leader.imbalance.check.interval.seconds must be at least 1".into());
                }
            }
            "leader.imbalance.per.broker.percentage" => {
                self.leader_imbalance_per_broker_percentage = parse(name, value)?;
                if self.leader_imbalance_per_broker_percentage > 100 {
                    return Err("leader.imbalance.per.broker.percentage must be at most 100".into());
                }
            }
            "min.insync.replicas" => {
                self.min_insync_replicas = parse(name, value)?;
                if self.min_insync_replicas < 1 {
                    return Err("min.insync.replicas must be at least 1".into());
                }
            }
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
            "controller.quorum.voters" => self
                .controller_quorum_voters
                .iter()
                .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
                .collect::<Vec<_>>()
                .join(","),
            "broker.rack" => self.broker_rack.clone().unwrap_or_default(),
            "default.replication.factor" => self.default_replication_factor.to_string(),
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor.to_string(),
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms.to_string(),
            "broker.session.timeout.ms" => self.broker_session_timeout_ms.to_string(),
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable.to_string(),
            "leader.imbalance.check.interval.seconds" => self.leader_imbalance_check_interval_seconds.to_string(),
            "leader.imbalance.per.broker.percentage" => self.leader_imbalance_per_broker_percentage.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
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
pub const BROKER_CONFIG_NAMES: [&str; 29] = [
    "node.id",
    "broker.id",
    "num.partitions",
    "auto.create.topics.enable",
    "socket.request.max.bytes",
    "connections.max.idle.ms",
    "group.initial.rebalance.delay.ms",
    "offsets.topic.num.partitions",
    "log.retention.check.interval.ms",
    "controller.quorum.voters",
    "broker.rack",
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "replica.lag.time.max.ms",
    "broker.session.timeout.ms",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage",
    "min.insync.replicas",
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
        assert_eq!(c.default_listener().advertised_host, "localhost");
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
    fn controller_quorum_voters_are_kraft_style() {
        let v = parse_voters("0@127.0.0.1:19093, 1@broker-1:9093").unwrap();
        assert_eq!(
            v,
            vec![
                Voter {
                    id: 0,
                    host: "127.0.0.1".into(),
                    port: 19093
                },
                Voter {
                    id: 1,
                    host: "broker-1".into(),
                    port: 9093
                }
            ]
        );
        for bad in ["0@host", "x@h:1", "0@h:1,0@g:2", "-1@h:1", "0@:1"] {
            assert!(parse_voters(bad).is_err(), "{bad}");
        }
        let mut c = BrokerConfig::new(PathBuf::from("data"), "0.0.0.0:9092".parse().unwrap());
        assert!(!c.is_cluster());
        c.set("controller.quorum.voters", "0@a:1,1@b:2").unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.get("controller.quorum.voters").as_deref(), Some("0@a:1,1@b:2"));
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
