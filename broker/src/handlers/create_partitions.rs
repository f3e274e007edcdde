//! CreatePartitions: grows a topic to a larger partition count (never shrinks it). Manual replica
//! assignments are accepted only when they name this broker alone, since it is the only one;
//! `validate_only` checks without creating anything.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::error::ApiError;

pub fn handle(ctx: &Ctx<'_>, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = request
        .topics
        .iter()
        .map(|t| {
            let duplicate = request.topics.iter().filter(|o| o.name == t.name).count() > 1;
            let outcome = if duplicate {
                Err(ApiError::new(ResponseError::InvalidRequest, "duplicate topic name"))
            } else {
                grow(ctx, t, request.validate_only)
            };
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn grow(ctx: &Ctx<'_>, t: &CreatePartitionsTopic, validate_only: bool) -> Result<(), ApiError> {
    let name = t.name.0.as_str();
    let topic = ctx
        .broker
        .topic(name)
        .ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition, format!("unknown topic {name}")))?;
    check_count(topic.partitions, t.count)?;
    if let Some(assignments) = &t.assignments {
        let me = ctx.broker.config.node_id;
        check_assignments(
            me,
            t.count - topic.partitions,
            assignments.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()),
        )?;
    }
    if validate_only {
        return Ok(());
    }
    ctx.broker.add_partitions(name, t.count)?;
    tracing::info!(topic = name, from = topic.partitions, to = t.count, "added partitions");
    Ok(())
}

/// Kafka's rule: the new count must be larger than the current one.
fn check_count(current: i32, requested: i32) -> Result<(), ApiError> {
    if requested == current {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            format!("topic already has {current} partitions"),
        ));
    }
    if requested < current {
        return Err(ApiError::new(
            ResponseError::InvalidPartitions,
            format!("topic currently has {current} partitions, which is higher than the requested {requested}"),
        ));
    }
    Ok(())
}

/// One assignment per new partition, each naming exactly this broker.
fn check_assignments(
    me: i32,
    added: i32,
    assignments: impl ExactSizeIterator<Item = Vec<i32>>,
) -> Result<(), ApiError> {
    if assignments.len() as i64 != i64::from(added) {
        return Err(ApiError::new(
            ResponseError::InvalidReplicaAssignment,
            format!(
                "increasing the number of partitions by {added} but {} assignments provided",
                assignments.len()
            ),
        ));
    }
    for replicas in assignments {
        if replicas != [me] {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("replica assignment {replicas:?} is invalid: only broker {me} exists"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use kafka_protocol::messages::{ApiKey, BrokerId, ResponseKind};

    use super::*;
    use crate::handlers::delete_records::tests::{broker, ctx};
    use crate::handlers::topic_name;

    #[test]
    fn only_a_larger_count_is_accepted() {
        assert!(check_count(3, 4).is_ok());
        assert_eq!(check_count(3, 3).unwrap_err().code, ResponseError::InvalidPartitions);
        assert_eq!(check_count(3, 1).unwrap_err().code, ResponseError::InvalidPartitions);
    }

    #[test]
    fn assignments_must_cover_each_new_partition_with_this_broker_only() {
        let check = |added, a: Vec<Vec<i32>>| check_assignments(0, added, a.into_iter());
        assert!(check(2, vec![vec![0], vec![0]]).is_ok());
        for bad in [
            check(2, vec![vec![0]]),
            check(1, vec![vec![1]]),
            check(1, vec![vec![0, 0]]),
            check(1, vec![vec![]]),
        ] {
            assert_eq!(bad.unwrap_err().code, ResponseError::InvalidReplicaAssignment);
        }
    }

    fn grow_to(
        broker: &std::sync::Arc<crate::broker::Broker>,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> i16 {
        let assignments = assignments.map(|a| {
            a.into_iter()
                .map(|ids| {
                    CreatePartitionsAssignment::default().with_broker_ids(ids.into_iter().map(BrokerId).collect())
                })
                .collect()
        });
        let request = CreatePartitionsRequest::default()
            .with_validate_only(validate_only)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(count)
                    .with_assignments(assignments),
            ]);
        let response = handle(&ctx(broker, 3), request);
        for v in 0..=3 {
            let kind = ResponseKind::CreatePartitions(response.clone());
            skiff_protocol::encode_response(ApiKey::CreatePartitions, v, 1, &kind).unwrap();
        }
        response.results[0].error_code
    }

    #[test]
    fn grows_a_topic_and_opens_the_new_partitions() {
        let (_dir, broker) = broker();
        broker.create_topic("t", 1, Default::default(), false).unwrap();
        assert_eq!(grow_to(&broker, "t", 3, None, true), 0);
        assert!(broker.partition("t", 1).is_none(), "validate_only creates nothing");
        assert_eq!(grow_to(&broker, "t", 3, Some(vec![vec![0], vec![0]]), false), 0);
        assert_eq!(broker.topic("t").unwrap().partitions, 3);
        assert!(broker.partition("t", 2).is_some());
        let invalid_assignment = ResponseError::InvalidReplicaAssignment.code();
        assert_eq!(grow_to(&broker, "t", 4, Some(vec![vec![2]]), false), invalid_assignment);
        assert_eq!(
            grow_to(&broker, "t", 3, None, false),
            ResponseError::InvalidPartitions.code()
        );
        assert_eq!(
            grow_to(&broker, "nope", 3, None, false),
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(broker.topic("t").unwrap().partitions, 3);
    }
}
