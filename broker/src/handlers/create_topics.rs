//! CreateTopics: validates names, partition counts, replication and configs, then creates (or, with
//! `validate_only`, just checks) each topic.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, describe_configs, str_bytes};
use crate::error::ApiError;
use crate::topic_config;

/// The first version whose results carry partition count, replication factor and configs.
const DETAILS_VERSION: i16 = 5;
/// The first version whose results carry the topic id.
const TOPIC_ID_VERSION: i16 = 7;

pub fn handle(ctx: &Ctx<'_>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = ctx.broker;
    let names: Vec<String> = request.topics.iter().map(|t| t.name.0.to_string()).collect();
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let outcome = (|| -> Result<_, ApiError> {
                if names.iter().filter(|n| **n == name).count() > 1 {
                    return Err(ApiError::new(
                        ResponseError::InvalidRequest,
                        "topic named more than once",
                    ));
                }
                let configs: BTreeMap<String, String> = t
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect();
                let (partitions, replication) = if t.assignments.is_empty() {
                    let p = if t.num_partitions == -1 {
                        broker.config.num_partitions
                    } else {
                        t.num_partitions
                    };
                    (
                        p,
                        if t.replication_factor == -1 {
                            broker.default_replication_factor(false)
                        } else {
                            t.replication_factor
                        },
                    )
                } else {
                    if t.num_partitions != -1 || t.replication_factor != -1 {
                        return Err(ApiError::new(
                            ResponseError::InvalidRequest,
                            "give either replica assignments or partitions and replication factor",
                        ));
                    }
                    let me = broker.config.node_id;
                    if broker.cluster().is_some() {
                        return Err(ApiError::new(
                            ResponseError::InvalidReplicaAssignment,
                            "manual replica assignments are not supported in a cluster yet",
                        ));
                    }
                    if t.assignments.iter().any(|a| a.broker_ids.iter().map(|b| b.0).ne([me])) {
                        return Err(ApiError::new(
                            ResponseError::InvalidReplicaAssignment,
                            format!("only broker {me} exists"),
                        ));
                    }
                    (t.assignments.len() as i32, 1)
                };
                broker.check_new_topic(&name, partitions, replication, &configs)?;
                if request.validate_only {
                    return Ok((None, partitions, configs));
                }
                let topic = broker.create_topic_with(&name, partitions, replication, configs, false)?;
                Ok((Some(topic.id), partitions, topic.configs))
            })();
            match outcome {
                Ok((id, partitions, overrides)) => {
                    if ctx.version < DETAILS_VERSION {
                        return result;
                    }
                    let pristine = describe_configs::pristine(&broker.config);
                    let configs = topic_config::names()
                        .map(|n| {
                            let d = describe_configs::describe_topic_config(&broker.config, &pristine, &overrides, n);
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(n))
                                .with_value(d.value.as_deref().map(str_bytes))
                                .with_config_source(d.source)
                        })
                        .collect();
                    let id = if ctx.version >= TOPIC_ID_VERSION {
                        id.unwrap_or_default()
                    } else {
                        Default::default()
                    };
                    result
                        .with_topic_id(id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(configs))
                }
                Err(e) => {
                    let result = result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message)));
                    if ctx.version < DETAILS_VERSION {
                        return result;
                    }
                    result.with_num_partitions(-1).with_replication_factor(-1)
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}
