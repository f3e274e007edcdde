//! DeleteTopics: removes topics by name (v1-v5) or by name or id (v6, KIP-516) — registry entry
//! first, then the data. Internal topics (`__consumer_offsets`) are refused: the broker's own
//! coordinators own them, and losing one would lose every group's committed offsets. Apache
//! Kafka leaves that refusal to its tools; Skiff answers with the code Kafka uses for a refused
//! deletion (TOPIC_DELETION_DISABLED, or INVALID_REQUEST before v3).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use skiff_protocol::kafka_protocol;
use uuid::Uuid;

use super::{Ctx, str_bytes, topic_name};
use crate::error::ApiError;

/// The first version that names topics by id (and may leave the name null).
const TOPIC_ID_VERSION: i16 = 6;
/// The first version whose results carry an error message.
const ERROR_MESSAGE_VERSION: i16 = 5;
/// The first version that knows TOPIC_DELETION_DISABLED; older clients get INVALID_REQUEST.
const TOPIC_DELETION_DISABLED_VERSION: i16 = 3;

pub fn handle(ctx: &Ctx<'_>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, Uuid)> = if ctx.version >= TOPIC_ID_VERSION {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .iter()
        .map(|(name, id)| {
            let duplicate = wanted
                .iter()
                .filter(|(n, i)| match name {
                    Some(name) => n.as_ref() == Some(name),
                    None => n.is_none() && i == id,
                })
                .count()
                > 1;
            let outcome = if duplicate {
                Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "topic named more than once",
                ))
            } else {
                delete_one(ctx, name.as_deref(), *id)
            };
            result(ctx, name.as_deref(), *id, outcome)
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Deletes one topic; on success, its name and id.
fn delete_one(ctx: &Ctx<'_>, name: Option<&str>, id: Uuid) -> Result<(String, Uuid), ApiError> {
    let topic = match (name, id.is_nil()) {
        (None, true) => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "neither topic name nor id were specified",
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "you may not specify both topic name and topic id",
            ));
        }
        (Some(name), true) => ctx
            .broker
            .topic(name)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}")))?,
        (None, false) => ctx
            .broker
            .topic_by_id(id)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicId, format!("unknown topic id {id}")))?,
    };
    if topic.internal {
        let code = if ctx.version >= TOPIC_DELETION_DISABLED_VERSION {
            ResponseError::TopicDeletionDisabled
        } else {
            ResponseError::InvalidRequest
        };
        return Err(ApiError::new(
            code,
            format!("{} is an internal topic and cannot be deleted", topic.name),
        ));
    }
    let deleted = ctx.broker.delete_topic(&topic.name)?;
    Ok((deleted.name, deleted.id))
}

fn result(
    ctx: &Ctx<'_>,
    name: Option<&str>,
    id: Uuid,
    outcome: Result<(String, Uuid), ApiError>,
) -> DeletableTopicResult {
    let (name, id, error) = match outcome {
        Ok((name, id)) => (Some(name), id, None),
        Err(e) => (name.map(str::to_string), id, Some(e)),
    };
    let by_id = ctx.version >= TOPIC_ID_VERSION;
    // Before v6 the name is not nullable; it is always given there.
    let name = match name {
        Some(n) => Some(topic_name(&n)),
        None if by_id => None,
        None => Some(topic_name("")),
    };
    let result = DeletableTopicResult::default()
        .with_name(name)
        .with_topic_id(if by_id { id } else { Uuid::nil() });
    match error {
        None => result,
        Some(e) => {
            let message = (ctx.version >= ERROR_MESSAGE_VERSION).then(|| str_bytes(&e.message));
            result.with_error_code(e.code()).with_error_message(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::broker::Broker;
    use crate::handlers::delete_records::tests::{broker, ctx};

    fn by_name(broker: &Arc<Broker>, version: i16, names: &[&str]) -> DeleteTopicsResponse {
        let request = DeleteTopicsRequest::default().with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        encoded(version, handle(&ctx(broker, version), request))
    }

    fn by_state(broker: &Arc<Broker>, topics: Vec<DeleteTopicState>) -> DeleteTopicsResponse {
        let request = DeleteTopicsRequest::default().with_topics(topics);
        encoded(6, handle(&ctx(broker, 6), request))
    }

    fn encoded(version: i16, response: DeleteTopicsResponse) -> DeleteTopicsResponse {
        let kind = ResponseKind::DeleteTopics(response.clone());
        skiff_protocol::encode_response(ApiKey::DeleteTopics, version, 1, &kind).unwrap();
        response
    }

    fn codes(response: &DeleteTopicsResponse) -> Vec<i16> {
        response.responses.iter().map(|r| r.error_code).collect()
    }

    #[test]
    fn deletes_by_name_and_says_which_are_unknown() {
        let (_dir, broker) = broker();
        broker.create_topic("a", 2, Default::default(), false).unwrap();
        for version in 1..=5 {
            let response = by_name(&broker, version, &["a", "b"]);
            let unknown = ResponseError::UnknownTopicOrPartition.code();
            let expected = if version == 1 {
                vec![0, unknown]
            } else {
                vec![unknown, unknown]
            };
            assert_eq!(codes(&response), expected, "v{version}");
        }
        assert!(broker.topic("a").is_none() && broker.partition("a", 0).is_none());
    }

    #[test]
    fn v6_deletes_by_id_and_answers_with_the_name() {
        let (_dir, broker) = broker();
        let topic = broker.create_topic("a", 1, Default::default(), false).unwrap();
        let response = by_state(
            &broker,
            vec![
                DeleteTopicState::default().with_name(None).with_topic_id(topic.id),
                DeleteTopicState::default()
                    .with_name(None)
                    .with_topic_id(Uuid::new_v4()),
                DeleteTopicState::default().with_name(None).with_topic_id(Uuid::nil()),
                DeleteTopicState::default()
                    .with_name(Some(topic_name("x")))
                    .with_topic_id(topic.id),
            ],
        );
        assert_eq!(
            codes(&response),
            vec![
                0,
                ResponseError::UnknownTopicId.code(),
                ResponseError::InvalidRequest.code(),
                ResponseError::InvalidRequest.code()
            ]
        );
        assert_eq!(response.responses[0].name, Some(topic_name("a")));
        assert_eq!(response.responses[0].topic_id, topic.id);
        assert_eq!(response.responses[1].name, None);
        assert!(broker.topic("a").is_none());
    }

    #[test]
    fn refuses_internal_topics_and_duplicates() {
        let (_dir, broker) = broker();
        broker
            .create_topic("__consumer_offsets", 1, Default::default(), true)
            .unwrap();
        broker.create_topic("a", 1, Default::default(), false).unwrap();
        let disabled = ResponseError::TopicDeletionDisabled.code();
        assert_eq!(codes(&by_name(&broker, 4, &["__consumer_offsets"])), vec![disabled]);
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(codes(&by_name(&broker, 2, &["__consumer_offsets"])), vec![invalid]);
        assert!(broker.topic("__consumer_offsets").is_some());
        assert_eq!(codes(&by_name(&broker, 4, &["a", "a"])), vec![invalid, invalid]);
        assert!(broker.topic("a").is_some());
    }
}
