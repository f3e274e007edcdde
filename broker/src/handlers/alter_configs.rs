//! AlterConfigs (the legacy, non-incremental API): replaces a topic's whole set of config
//! overrides with the ones given, after validating each (`validate_only` stops there). Changes
//! are persisted in the topic registry and applied to the topic's open logs. Broker configs are
//! set at startup only, so a BROKER resource gets an honest INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use skiff_protocol::kafka_protocol;

use super::describe_configs::{
    RESOURCE_TYPE_BROKER, RESOURCE_TYPE_TOPIC, check_broker_resource, unsupported_resource_type,
};
use super::{Ctx, str_bytes};
use crate::error::ApiError;

pub fn handle(ctx: &Ctx<'_>, request: AlterConfigsRequest) -> AlterConfigsResponse {
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
                        // A config sent without a value is simply not among the new overrides.
                        let configs = r
                            .configs
                            .iter()
                            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                            .collect();
                        replace_topic_configs(ctx, name, configs, request.validate_only)
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
    AlterConfigsResponse::default().with_responses(responses)
}

/// The error for altering a BROKER resource: a bad broker id says so, else dynamic broker
/// configs are refused (they are only set with `--set` at startup).
pub fn broker_configs_unsupported(ctx: &Ctx<'_>, name: &str) -> ApiError {
    match check_broker_resource(&ctx.broker.config, name) {
        Err(e) => e,
        Ok(_) => ApiError::new(
            ResponseError::InvalidRequest,
            "dynamic broker configs are not supported; set broker configs with --set at startup",
        ),
    }
}

/// Validates a topic's new complete set of overrides and, unless `validate_only`, stores it and
/// applies it to the topic's logs.
pub fn replace_topic_configs(
    ctx: &Ctx<'_>,
    topic: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ApiError> {
    ctx.broker.update_topic_configs(topic, validate_only, |_| Ok(configs))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::delete_records::tests::{broker, ctx};

    fn alter(
        broker: &std::sync::Arc<crate::broker::Broker>,
        topic: &str,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> i16 {
        let configs = configs
            .iter()
            .map(|(n, v)| {
                AlterableConfig::default()
                    .with_name(str_bytes(n))
                    .with_value(Some(str_bytes(v)))
            })
            .collect();
        let request = AlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TYPE_TOPIC)
                    .with_resource_name(str_bytes(topic))
                    .with_configs(configs),
            ]);
        let response = handle(&ctx(broker, 2), request);
        for v in 0..=2 {
            let kind = ResponseKind::AlterConfigs(response.clone());
            skiff_protocol::encode_response(ApiKey::AlterConfigs, v, 1, &kind).unwrap();
        }
        response.responses[0].error_code
    }

    #[test]
    fn replaces_the_whole_override_set() {
        let (_dir, broker) = broker();
        let overrides = [("segment.ms".to_string(), "1000".to_string())].into();
        broker.create_topic("t", 1, overrides, false).unwrap();
        assert_eq!(alter(&broker, "t", &[("retention.bytes", "4096")], true), 0);
        assert_eq!(
            broker.topic("t").unwrap().configs.len(),
            1,
            "validate_only changes nothing"
        );
        assert_eq!(alter(&broker, "t", &[("retention.bytes", "4096")], false), 0);
        let configs = broker.topic("t").unwrap().configs;
        assert_eq!(configs, [("retention.bytes".to_string(), "4096".to_string())].into());
        assert_eq!(
            broker
                .partition("t", 0)
                .unwrap()
                .with_log(|l| l.config().retention_bytes),
            4096
        );

        assert_eq!(
            alter(&broker, "t", &[("retention.bytes", "lots")], false),
            ResponseError::InvalidConfig.code()
        );
        assert_eq!(
            alter(&broker, "t", &[("bogus", "1")], false),
            ResponseError::InvalidConfig.code()
        );
        assert_eq!(
            broker.topic("t").unwrap().configs,
            configs,
            "a refused change changes nothing"
        );
        assert_eq!(
            alter(&broker, "nope", &[], false),
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
