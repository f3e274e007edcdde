//! IncrementalAlterConfigs (KIP-339): changes a topic's config overrides one key at a time —
//! SET a value, DELETE an override (back to the default), APPEND to or SUBTRACT from a list
//! config such as `cleanup.policy` — then validates and stores the result like AlterConfigs.
//! Broker configs are set at startup only, so a BROKER resource gets an honest INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use skiff_protocol::kafka_protocol;

use super::alter_configs::broker_configs_unsupported;
use super::describe_configs::{
    RESOURCE_TYPE_BROKER, RESOURCE_TYPE_TOPIC, TYPE_LIST, config_type, unsupported_resource_type,
};
use super::{Ctx, str_bytes};
use crate::error::ApiError;
use crate::topic_config;

/// Kafka's `AlterConfigOp.OpType` ids.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// One requested change.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    pub name: &'a str,
    pub op: i8,
    pub value: Option<&'a str>,
}

pub fn handle(ctx: &Ctx<'_>, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let keys: Vec<(i8, &str)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.as_str()))
        .collect();
    let responses = request
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.as_str();
            let outcome = if keys.iter().filter(|k| **k == (r.resource_type, name)).count() > 1 {
                Err(ApiError::new(ResponseError::InvalidRequest, "duplicate resource"))
            } else {
                match r.resource_type {
                    RESOURCE_TYPE_TOPIC => {
                        let ops: Vec<Op<'_>> = r
                            .configs
                            .iter()
                            .map(|c| Op {
                                name: c.name.as_str(),
                                op: c.config_operation,
                                value: c.value.as_ref().map(|v| v.as_str()),
                            })
                            .collect();
                        alter_topic(ctx, name, &ops, request.validate_only)
                    }
                    RESOURCE_TYPE_BROKER => Err(broker_configs_unsupported(ctx, name)),
                    other => Err(unsupported_resource_type(other)),
                }
            };
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter_topic(ctx: &Ctx<'_>, topic: &str, ops: &[Op<'_>], validate_only: bool) -> Result<(), ApiError> {
    let broker = &ctx.broker.config;
    ctx.broker.update_topic_configs(topic, validate_only, |current| {
        apply_ops(current, ops, |name| topic_config::default_value(broker, name))
    })?;
    Ok(())
}

/// A topic's overrides after `ops`. APPEND and SUBTRACT start from the current override, else
/// from `default` (as Kafka does); the new values are validated.
pub fn apply_ops(
    overrides: &BTreeMap<String, String>,
    ops: &[Op<'_>],
    default: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut configs = overrides.clone();
    for (i, op) in ops.iter().enumerate() {
        if ops[..i].iter().any(|o| o.name == op.name) {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("duplicate config key {}", op.name),
            ));
        }
        if !topic_config::names().any(|n| n == op.name) {
            return Err(ApiError::new(
                ResponseError::InvalidConfig,
                format!("unknown topic config {}", op.name),
            ));
        }
        let value = || {
            op.value.ok_or_else(|| {
                ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("a null value is not allowed for {}", op.name),
                )
            })
        };
        match op.op {
            OP_SET => {
                configs.insert(op.name.to_string(), value()?.to_string());
            }
            OP_DELETE => {
                configs.remove(op.name);
            }
            OP_APPEND | OP_SUBTRACT => {
                let verb = if op.op == OP_APPEND { "APPEND" } else { "SUBTRACT" };
                if config_type(op.name) != TYPE_LIST {
                    return Err(ApiError::new(
                        ResponseError::InvalidConfig,
                        format!("cannot {verb} to {} because its type is not LIST", op.name),
                    ));
                }
                let given = list_items(value()?);
                let current = configs.get(op.name).cloned().or_else(|| default(op.name));
                let mut items = current.as_deref().map(list_items).unwrap_or_default();
                if op.op == OP_APPEND {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|item| !given.contains(item));
                }
                configs.insert(op.name.to_string(), items.join(","));
            }
            other => {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for {}", op.name),
                ));
            }
        }
    }
    for op in ops {
        if let Some(value) = configs.get(op.name) {
            topic_config::validate(op.name, value).map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        }
    }
    Ok(configs)
}

fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::delete_records::tests::{broker, ctx};

    fn op<'a>(name: &'a str, op: i8, value: Option<&'a str>) -> Op<'a> {
        Op { name, op, value }
    }

    fn defaults(name: &str) -> Option<String> {
        (name == "cleanup.policy").then(|| "delete".to_string())
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn set_and_delete_change_only_the_named_overrides() {
        let before = map(&[("retention.ms", "1000"), ("segment.ms", "5000")]);
        let after = apply_ops(
            &before,
            &[
                op("retention.ms", OP_SET, Some("2000")),
                op("segment.ms", OP_DELETE, None),
                op("flush.ms", OP_DELETE, None),
            ],
            defaults,
        )
        .unwrap();
        assert_eq!(after, map(&[("retention.ms", "2000")]));
    }

    #[test]
    fn append_and_subtract_start_from_the_default_and_keep_items_unique() {
        let none = BTreeMap::new();
        let appended = apply_ops(&none, &[op("cleanup.policy", OP_APPEND, Some("compact"))], defaults).unwrap();
        assert_eq!(appended, map(&[("cleanup.policy", "delete,compact")]));
        let again = apply_ops(
            &appended,
            &[op("cleanup.policy", OP_APPEND, Some("compact,delete"))],
            defaults,
        )
        .unwrap();
        assert_eq!(again, appended);
        let subtracted = apply_ops(
            &appended,
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
            defaults,
        )
        .unwrap();
        assert_eq!(subtracted, map(&[("cleanup.policy", "compact")]));
    }

    #[test]
    fn subtracting_everything_leaves_an_invalid_empty_policy() {
        let e = apply_ops(
            &BTreeMap::new(),
            &[op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
            defaults,
        )
        .unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidConfig);
    }

    #[test]
    fn bad_requests_are_refused_with_kafkas_codes() {
        let none = BTreeMap::new();
        let code = |ops: &[Op<'_>]| apply_ops(&none, ops, defaults).unwrap_err().code;
        assert_eq!(
            code(&[op("retention.ms", OP_APPEND, Some("1"))]),
            ResponseError::InvalidConfig,
            "APPEND to a non-list"
        );
        assert_eq!(
            code(&[op("retention.ms", OP_SET, Some("soon"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            code(&[op("no.such.config", OP_SET, Some("1"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(code(&[op("retention.ms", OP_SET, None)]), ResponseError::InvalidRequest);
        assert_eq!(code(&[op("retention.ms", 9, Some("1"))]), ResponseError::InvalidRequest);
        assert_eq!(
            code(&[
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None)
            ]),
            ResponseError::InvalidRequest,
            "duplicate key"
        );
    }

    fn alter(
        broker: &std::sync::Arc<crate::broker::Broker>,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> i16 {
        let configs = ops
            .iter()
            .map(|(n, op, v)| {
                AlterableConfig::default()
                    .with_name(str_bytes(n))
                    .with_config_operation(*op)
                    .with_value(v.map(str_bytes))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name))
                    .with_configs(configs),
            ]);
        let response = handle(&ctx(broker, 1), request);
        for v in 0..=1 {
            let kind = ResponseKind::IncrementalAlterConfigs(response.clone());
            skiff_protocol::encode_response(ApiKey::IncrementalAlterConfigs, v, 1, &kind).unwrap();
        }
        response.responses[0].error_code
    }

    #[test]
    fn changes_are_stored_and_reach_the_logs() {
        let (_dir, broker) = broker();
        broker.create_topic("t", 2, Default::default(), false).unwrap();
        let retention = |b: &crate::broker::Broker| b.partition("t", 1).unwrap().with_log(|l| l.config().retention_ms);
        let ops = [
            ("retention.ms", OP_SET, Some("1234")),
            ("cleanup.policy", OP_APPEND, Some("compact")),
        ];
        assert_eq!(alter(&broker, RESOURCE_TYPE_TOPIC, "t", &ops, true), 0);
        assert!(
            broker.topic("t").unwrap().configs.is_empty(),
            "validate_only changes nothing"
        );
        assert_eq!(alter(&broker, RESOURCE_TYPE_TOPIC, "t", &ops, false), 0);
        assert_eq!(
            broker.topic("t").unwrap().configs,
            map(&[("retention.ms", "1234"), ("cleanup.policy", "delete,compact")])
        );
        assert_eq!(retention(&broker), 1234);
        assert_eq!(
            alter(
                &broker,
                RESOURCE_TYPE_TOPIC,
                "t",
                &[("retention.ms", OP_DELETE, None)],
                false
            ),
            0
        );
        assert_eq!(retention(&broker), skiff_storage::config::RETENTION_MS_DEFAULT);

        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(
            alter(
                &broker,
                RESOURCE_TYPE_BROKER,
                "0",
                &[("num.partitions", OP_SET, Some("3"))],
                false
            ),
            invalid
        );
        assert_eq!(
            alter(&broker, RESOURCE_TYPE_TOPIC, "nope", &[], false),
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
