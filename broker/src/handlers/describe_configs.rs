//! DescribeConfigs: the configs of a topic (every topic config, with its effective value and where
//! that value comes from) or of this broker (every broker config `--set` accepts). The sources
//! and synonyms follow Kafka: a topic override is DYNAMIC_TOPIC_CONFIG, a broker config given at
//! startup is STATIC_BROKER_CONFIG, anything else DEFAULT_CONFIG; synonyms list every layer that
//! has a value, most specific first. The alter handlers share the resource types, the config
//! types and the broker-resource check defined here.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::config::{self, BrokerConfig};
use crate::error::ApiError;
use crate::topic_config;

/// Kafka's `ConfigResource.Type` ids.
pub const RESOURCE_TYPE_TOPIC: i8 = 2;
pub const RESOURCE_TYPE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` ids, as DescribeConfigs reports them.
pub const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// Kafka's `ConfigDef.Type` ids (DescribeConfigs v3+ `config_type`).
pub const TYPE_BOOLEAN: i8 = 1;
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;
pub const TYPE_LONG: i8 = 5;
pub const TYPE_DOUBLE: i8 = 6;
pub const TYPE_LIST: i8 = 7;

/// The first version whose configs carry `config_type` and `documentation`.
const CONFIG_TYPE_VERSION: i16 = 3;

/// One described config: its value and source, and the synonyms behind it (most specific first;
/// the first is the one in force).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub synonyms: Vec<Synonym>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

impl Described {
    fn from_synonyms(name: &str, read_only: bool, synonyms: Vec<Synonym>) -> Self {
        let (value, source) = synonyms
            .first()
            .map_or((None, SOURCE_DEFAULT_CONFIG), |s| (s.value.clone(), s.source));
        Described {
            name: name.to_string(),
            value,
            source,
            read_only,
            synonyms,
        }
    }
}

/// The broker config with nothing set: where DEFAULT_CONFIG values come from.
pub fn pristine(broker: &BrokerConfig) -> BrokerConfig {
    BrokerConfig::new(broker.data_dir.clone(), broker.default_listener().bind)
}

/// A topic config as a topic with `overrides` sees it on this broker: the override, else the
/// broker config behind it if that was set at startup, else the default.
pub fn describe_topic_config(
    broker: &BrokerConfig,
    pristine: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Described {
    let mut synonyms = Vec::with_capacity(3);
    if let Some(value) = overrides.get(name) {
        synonyms.push(Synonym {
            name: name.to_string(),
            value: Some(value.clone()),
            source: SOURCE_DYNAMIC_TOPIC_CONFIG,
        });
    }
    let broker_name = config::broker_config_for_topic_config(name);
    if let Some(b) = broker_name
        && broker.is_explicit(b)
    {
        synonyms.push(Synonym {
            name: b.to_string(),
            value: topic_config::default_value(broker, name),
            source: SOURCE_STATIC_BROKER_CONFIG,
        });
    }
    // A topic config without a broker-wide counterpart here has only its built-in default.
    synonyms.push(Synonym {
        name: broker_name.unwrap_or(name).to_string(),
        value: topic_config::default_value(pristine, name),
        source: SOURCE_DEFAULT_CONFIG,
    });
    Described::from_synonyms(name, false, synonyms)
}

/// A broker config: read-only, since broker configs can only be set at startup.
pub fn describe_broker_config(broker: &BrokerConfig, pristine: &BrokerConfig, name: &str) -> Option<Described> {
    let value = broker.get(name)?;
    let mut synonyms = Vec::with_capacity(2);
    if broker.is_explicit(name) {
        synonyms.push(Synonym {
            name: name.to_string(),
            value: Some(value),
            source: SOURCE_STATIC_BROKER_CONFIG,
        });
    }
    synonyms.push(Synonym {
        name: name.to_string(),
        value: pristine.get(name),
        source: SOURCE_DEFAULT_CONFIG,
    });
    Some(Described::from_synonyms(name, true, synonyms))
}

/// Kafka's type of a topic or broker config.
pub fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "compression.type" | "message.timestamp.type" | "log.message.timestamp.type" => TYPE_STRING,
        "unclean.leader.election.enable" | "preallocate" | "auto.create.topics.enable" => TYPE_BOOLEAN,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        "segment.bytes"
        | "segment.index.bytes"
        | "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "node.id"
        | "broker.id"
        | "num.partitions"
        | "socket.request.max.bytes"
        | "group.initial.rebalance.delay.ms"
        | "offsets.topic.num.partitions"
        | "log.segment.bytes"
        | "log.index.size.max.bytes"
        | "log.index.interval.bytes"
        | "message.max.bytes" => TYPE_INT,
        _ => TYPE_LONG,
    }
}

/// Checks a BROKER resource name: "" (the cluster-wide default) or this broker's id.
/// Returns whether it names this broker (false for the cluster default).
pub fn check_broker_resource(broker: &BrokerConfig, name: &str) -> Result<bool, ApiError> {
    if name.is_empty() {
        return Ok(false);
    }
    let id: i32 = name.parse().map_err(|_| {
        ApiError::new(
            ResponseError::InvalidRequest,
            format!("broker id must be an integer, but it is: {name}"),
        )
    })?;
    if id != broker.node_id {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id
            ),
        ));
    }
    Ok(true)
}

pub fn unsupported_resource_type(resource_type: i8) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!("unsupported resource type {resource_type}"),
    )
}

pub fn handle(ctx: &Ctx<'_>, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let pristine = pristine(&ctx.broker.config);
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match describe(ctx, &pristine, resource) {
                Ok(described) => {
                    let configs = described
                        .into_iter()
                        .filter(|d| wanted(resource, &d.name))
                        .map(|d| to_wire(ctx, &request, d))
                        .collect();
                    result.with_error_message(None).with_configs(configs)
                }
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    ctx: &Ctx<'_>,
    pristine: &BrokerConfig,
    resource: &DescribeConfigsResource,
) -> Result<Vec<Described>, ApiError> {
    let broker = &ctx.broker.config;
    let name = resource.resource_name.as_str();
    match resource.resource_type {
        RESOURCE_TYPE_TOPIC => {
            let topic = ctx.broker.topic(name).ok_or_else(|| {
                ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}"))
            })?;
            Ok(topic_config::names()
                .map(|n| describe_topic_config(broker, pristine, &topic.configs, n))
                .collect())
        }
        RESOURCE_TYPE_BROKER => {
            if !check_broker_resource(broker, name)? {
                // The cluster-wide default lists only dynamic defaults, and there are none.
                return Ok(Vec::new());
            }
            Ok(config::BROKER_CONFIG_NAMES
                .iter()
                .filter_map(|n| describe_broker_config(broker, pristine, n))
                .collect())
        }
        other => Err(unsupported_resource_type(other)),
    }
}

/// `configuration_keys`: null or empty asks for every config.
fn wanted(resource: &DescribeConfigsResource, name: &str) -> bool {
    match &resource.configuration_keys {
        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
        _ => true,
    }
}

fn to_wire(ctx: &Ctx<'_>, request: &DescribeConfigsRequest, d: Described) -> DescribeConfigsResourceResult {
    let synonyms = if request.include_synonyms {
        d.synonyms
            .iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(&s.name))
                    .with_value(s.value.as_deref().map(str_bytes))
                    .with_source(s.source)
            })
            .collect()
    } else {
        Vec::new()
    };
    let result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&d.name))
        .with_value(d.value.as_deref().map(str_bytes))
        .with_read_only(d.read_only)
        .with_config_source(d.source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms);
    if ctx.version >= CONFIG_TYPE_VERSION {
        result.with_config_type(config_type(&d.name)).with_documentation(None)
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::delete_records::tests::{broker as open_broker, ctx};

    fn broker() -> BrokerConfig {
        BrokerConfig::new("d".into(), "127.0.0.1:9092".parse().unwrap())
    }

    fn synonym(name: &str, value: &str, source: i8) -> Synonym {
        Synonym {
            name: name.into(),
            value: Some(value.into()),
            source,
        }
    }

    #[test]
    fn topic_config_sources_go_override_then_static_broker_then_default() {
        let mut b = broker();
        let p = pristine(&b);
        let mut overrides = BTreeMap::new();

        let d = describe_topic_config(&b, &p, &overrides, "retention.ms");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("604800000"), SOURCE_DEFAULT_CONFIG)
        );
        assert_eq!(
            d.synonyms,
            vec![synonym("log.retention.ms", "604800000", SOURCE_DEFAULT_CONFIG)]
        );

        b.set("log.retention.ms", "5000").unwrap();
        let d = describe_topic_config(&b, &p, &overrides, "retention.ms");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("5000"), SOURCE_STATIC_BROKER_CONFIG)
        );

        overrides.insert("retention.ms".to_string(), "7000".to_string());
        let d = describe_topic_config(&b, &p, &overrides, "retention.ms");
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("7000"), SOURCE_DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(
            d.synonyms,
            vec![
                synonym("retention.ms", "7000", SOURCE_DYNAMIC_TOPIC_CONFIG),
                synonym("log.retention.ms", "5000", SOURCE_STATIC_BROKER_CONFIG),
                synonym("log.retention.ms", "604800000", SOURCE_DEFAULT_CONFIG),
            ]
        );
        assert!(!d.read_only);
    }

    #[test]
    fn topic_configs_without_a_broker_config_default_under_their_own_name() {
        let b = broker();
        let d = describe_topic_config(&b, &pristine(&b), &BTreeMap::new(), "cleanup.policy");
        assert_eq!(
            d.synonyms,
            vec![synonym("cleanup.policy", "delete", SOURCE_DEFAULT_CONFIG)]
        );
        assert_eq!(config_type("cleanup.policy"), TYPE_LIST);
    }

    #[test]
    fn every_topic_config_has_a_value() {
        let b = broker();
        for name in topic_config::names() {
            let d = describe_topic_config(&b, &pristine(&b), &BTreeMap::new(), name);
            assert!(d.value.is_some(), "{name}");
            assert_eq!(d.source, SOURCE_DEFAULT_CONFIG, "{name}");
        }
    }

    #[test]
    fn broker_configs_are_static_only_when_set() {
        let mut b = broker();
        b.set("num.partitions", "6").unwrap();
        let p = pristine(&b);
        let d = describe_broker_config(&b, &p, "num.partitions").unwrap();
        assert_eq!((d.value.as_deref(), d.source), (Some("6"), SOURCE_STATIC_BROKER_CONFIG));
        assert_eq!(d.synonyms.len(), 2);
        assert!(d.read_only);
        let d = describe_broker_config(&b, &p, "log.retention.ms").unwrap();
        assert_eq!(
            (d.value.as_deref(), d.source),
            (Some("604800000"), SOURCE_DEFAULT_CONFIG)
        );
        assert!(describe_broker_config(&b, &p, "no.such.config").is_none());
    }

    #[test]
    fn broker_resource_names_this_broker_or_the_cluster_default() {
        let b = broker();
        assert_eq!(check_broker_resource(&b, "0").ok(), Some(true));
        assert_eq!(check_broker_resource(&b, "").ok(), Some(false));
        assert_eq!(
            check_broker_resource(&b, "1").map_err(|e| e.code),
            Err(ResponseError::InvalidRequest)
        );
        assert_eq!(
            check_broker_resource(&b, "zero").map_err(|e| e.code),
            Err(ResponseError::InvalidRequest)
        );
    }

    fn resource(resource_type: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|n| str_bytes(n)).collect()))
    }

    fn describe_at(
        broker: &std::sync::Arc<crate::broker::Broker>,
        version: i16,
        resources: Vec<DescribeConfigsResource>,
    ) -> DescribeConfigsResponse {
        let request = DescribeConfigsRequest::default()
            .with_resources(resources)
            .with_include_synonyms(true)
            .with_include_documentation(version >= CONFIG_TYPE_VERSION);
        let response = handle(&ctx(broker, version), request);
        let kind = ResponseKind::DescribeConfigs(response.clone());
        skiff_protocol::encode_response(ApiKey::DescribeConfigs, version, 1, &kind).unwrap();
        response
    }

    #[test]
    fn describes_topics_and_this_broker_at_every_version() {
        let (_dir, broker) = open_broker();
        let overrides = [("retention.ms".to_string(), "1000".to_string())].into();
        broker.create_topic("t", 1, overrides, false).unwrap();
        for version in 1..=4 {
            let response = describe_at(
                &broker,
                version,
                vec![
                    resource(RESOURCE_TYPE_TOPIC, "t", None),
                    resource(RESOURCE_TYPE_TOPIC, "t", Some(&["retention.ms", "no.such"])),
                    resource(RESOURCE_TYPE_BROKER, "0", None),
                    resource(RESOURCE_TYPE_BROKER, "", None),
                ],
            );
            let [all, some, this_broker, cluster] = &response.results[..] else {
                panic!("four results expected: {response:?}");
            };
            assert!(
                response
                    .results
                    .iter()
                    .all(|r| r.error_code == 0 && r.error_message.is_none())
            );
            assert_eq!(all.configs.len(), topic_config::names().count());
            assert_eq!(some.configs.len(), 1);
            let retention = &some.configs[0];
            assert_eq!(
                (
                    retention.value.as_deref(),
                    retention.config_source,
                    retention.synonyms.len()
                ),
                (Some("1000"), SOURCE_DYNAMIC_TOPIC_CONFIG, 2)
            );
            let expected_type = if version >= CONFIG_TYPE_VERSION { TYPE_LONG } else { 0 };
            assert_eq!(retention.config_type, expected_type);
            assert_eq!(this_broker.configs.len(), config::BROKER_CONFIG_NAMES.len());
            assert!(this_broker.configs.iter().all(|c| c.read_only));
            assert!(cluster.configs.is_empty(), "no dynamic cluster defaults");
        }
    }

    #[test]
    fn unknown_resources_get_errors() {
        let (_dir, broker) = open_broker();
        let response = describe_at(
            &broker,
            4,
            vec![
                resource(RESOURCE_TYPE_TOPIC, "nope", None),
                resource(RESOURCE_TYPE_BROKER, "7", None),
                resource(8, "0", None),
            ],
        );
        let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(
            codes,
            vec![ResponseError::UnknownTopicOrPartition.code(), invalid, invalid]
        );
        assert!(response.results.iter().all(|r| r.configs.is_empty()));
    }
}
