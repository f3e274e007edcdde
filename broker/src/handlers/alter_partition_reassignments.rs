//! AlterPartitionReassignments (KIP-455): moves partitions' replicas to other brokers while
//! clients keep producing (see `cluster/reassignment.rs`), or with null replicas reverts a
//! reassignment in progress. The answer comes once the target is in the metadata log, not once
//! the data has moved: ListPartitionReassignments follows the move. A single-node broker can
//! only "move" a partition to itself.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::error::ApiError;

pub fn handle(ctx: &Ctx<'_>, request: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = ctx.version == 0 || request.allow_replication_factor_change;
    let responses = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
                    let outcome = reassign(ctx, &t.name.0, p.partition_index, target.as_deref(), allow_rf_change);
                    let response = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match outcome {
                        Ok(()) => response,
                        Err(e) => response
                            .with_error_code(e.code())
                            .with_error_message(Some(str_bytes(&e.message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(responses)
}

fn reassign(
    ctx: &Ctx<'_>,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> Result<(), ApiError> {
    let unknown = || {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown partition {topic}-{partition}"),
        )
    };
    let t = ctx.broker.topic(topic).ok_or_else(unknown)?;
    if partition < 0 || partition >= t.partitions {
        return Err(unknown());
    }
    let Some(cluster) = ctx.broker.cluster() else {
        let me = ctx.broker.config.node_id;
        return match target {
            None => Err(ApiError::new(
                ResponseError::NoReassignmentInProgress,
                format!("no reassignment of {topic}-{partition} is in progress"),
            )),
            Some([b]) if *b == me => Ok(()),
            Some(other) => Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("replica assignment {other:?} is invalid: only broker {me} exists"),
            )),
        };
    };
    if let Some(target) = target
        && !allow_rf_change
        && let Some(current) = cluster.target_replicas(topic, partition)
        && current.len() != target.len()
    {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "the replication factor of {topic}-{partition} would change from {} to {}",
                current.len(),
                target.len()
            ),
        ));
    }
    cluster.reassign(topic, partition, target)?;
    tracing::info!(topic, partition, target = ?target, "reassignment requested");
    Ok(())
}
