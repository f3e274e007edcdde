//! ElectLeaders (KIP-460). PREFERRED hands each partition back to its preferred replica (the
//! first one) when that replica is in sync, through a Raft leadership transfer, and answers once
//! it leads (see `cluster/preferred_leader.rs`). UNCLEAN cannot exist under Raft: a partition
//! without a majority stays without a leader rather than lose acknowledged records, so it is
//! answered ELIGIBLE_LEADERS_NOT_AVAILABLE; where a leader exists, neither election is needed.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::error::ApiError;

/// ElectLeaders election types.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;
/// The longest an election request waits for leadership to move, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn handle(ctx: &Ctx<'_>, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let broker = ctx.broker;
    // A null list means every partition; then only partitions an election was tried on are
    // listed, as Kafka does.
    let all = request.topic_partitions.is_none();
    let wanted: Vec<(TopicName, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => broker
            .topics()
            .iter()
            .map(|t| (super::topic_name(&t.name), (0..t.partitions).collect()))
            .collect(),
    };
    let wait = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0)).min(MAX_WAIT);
    let election_type = if ctx.version == 0 {
        PREFERRED
    } else {
        request.election_type
    };
    let mut results = Vec::new();
    for (topic, partitions) in wanted {
        let outcomes: Vec<(i32, Result<(), ApiError>)> = match (election_type, broker.cluster()) {
            (PREFERRED, Some(cluster)) => cluster.elect_preferred(&topic.0, &partitions, wait),
            (PREFERRED | UNCLEAN, _) => partitions
                .iter()
                .map(|&p| (p, leader_exists(ctx, &topic.0, p, election_type)))
                .collect(),
            (other, _) => partitions
                .iter()
                .map(|&p| {
                    let e = ApiError::new(ResponseError::InvalidRequest, format!("unknown election type {other}"));
                    (p, Err(e))
                })
                .collect(),
        };
        let partition_results: Vec<PartitionResult> = outcomes
            .into_iter()
            .filter(|(_, r)| !(all && matches!(r, Err(e) if e.code == ResponseError::ElectionNotNeeded)))
            .map(|(p, r)| {
                let result = PartitionResult::default().with_partition_id(p);
                match r {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(&e.message))),
                }
            })
            .collect();
        if !partition_results.is_empty() {
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(partition_results),
            );
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// Where the partition has a leader no election is needed (always, on a single node, where
/// the only replica leads); without one, no unclean election can give it one.
fn leader_exists(ctx: &Ctx<'_>, topic: &str, index: i32, election_type: i8) -> Result<(), ApiError> {
    let led = match ctx.broker.cluster() {
        Some(cluster) => cluster.partition_view(topic, index).map(|v| v.leader.is_some()),
        None => ctx.broker.partition_or_unknown(topic, index).ok().map(|_| true),
    };
    match led {
        None => Err(ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown partition {topic}-{index}"),
        )),
        Some(true) => Err(ApiError::new(
            ResponseError::ElectionNotNeeded,
            "the partition has a leader",
        )),
        Some(false) if election_type == UNCLEAN => Err(ApiError::new(
            ResponseError::EligibleLeadersNotAvailable,
            "no majority of replicas: an unclean election would lose acknowledged records",
        )),
        Some(false) => Err(ApiError::new(ResponseError::PreferredLeaderNotAvailable, "no leader")),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;

    use super::*;
    use crate::handlers::delete_records::tests::{broker, ctx};

    fn elect(
        broker: &std::sync::Arc<crate::broker::Broker>,
        version: i16,
        election_type: i8,
        topics: Option<Vec<(&str, Vec<i32>)>>,
    ) -> Vec<(String, i32, i16)> {
        let request = ElectLeadersRequest::default()
            .with_election_type(if version == 0 { 0 } else { election_type })
            .with_timeout_ms(1000)
            .with_topic_partitions(topics.map(|ts| {
                ts.into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(super::super::topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect()
            }));
        handle(&ctx(broker, version), request)
            .replica_election_results
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partition_result
                    .into_iter()
                    .map(move |p| (name.clone(), p.partition_id, p.error_code))
            })
            .collect()
    }

    #[test]
    fn a_single_node_never_needs_an_election() {
        let (_dir, broker) = broker();
        broker.create_topic("clicks", 2, Default::default(), false).unwrap();
        let not_needed = ResponseError::ElectionNotNeeded.code();
        for (version, kind) in [(0, PREFERRED), (1, PREFERRED), (2, UNCLEAN)] {
            assert_eq!(
                elect(
                    &broker,
                    version,
                    kind,
                    Some(vec![("clicks", vec![0, 1]), ("nope", vec![0])])
                ),
                vec![
                    ("clicks".to_string(), 0, not_needed),
                    ("clicks".to_string(), 1, not_needed),
                    ("nope".to_string(), 0, ResponseError::UnknownTopicOrPartition.code()),
                ],
                "v{version} type {kind}"
            );
        }
        // Every partition: nothing needed an election, so nothing is listed.
        assert!(elect(&broker, 2, PREFERRED, None).is_empty());
        assert_eq!(
            elect(&broker, 2, 7, Some(vec![("clicks", vec![0])])),
            vec![("clicks".to_string(), 0, ResponseError::InvalidRequest.code())]
        );
    }
}
