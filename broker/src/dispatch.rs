//! Request dispatch: the one table of APIs and versions this broker serves (ApiVersions advertises
//! exactly it), version bounds checked once here, then one handler per API.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use skiff_protocol::{Request, RequestPrefix, encode_api_versions_fallback, encode_response, kafka_protocol};
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers::{self, Ctx};

/// Every API the broker serves, with the versions it handles in full.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
];

pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Bytes),
    /// Produce with acks=0 gets no response.
    Silent,
    /// The request could not be understood; Kafka closes such connections.
    Close(String),
}

/// Whether a frame is a Produce request: the one kind a connection lets overlap with the requests
/// before it (see `server.rs`).
pub fn is_produce(frame: &[u8]) -> bool {
    RequestPrefix::peek(frame).is_ok_and(|p| p.api_key == ApiKey::Produce as i16)
}

/// Starts a request. A Produce request does its appends before this returns, so requests started
/// in order append in order; the returned future waits for their commit and builds the response.
/// Every other request does all its work in the returned future.
pub fn start<'a>(
    broker: &'a Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
    listener: Arc<str>,
) -> BoxFuture<'a, Outcome> {
    let prefix = match RequestPrefix::peek(&frame) {
        Ok(p) => p,
        Err(e) => return ready(Outcome::Close(e.to_string())),
    };
    let api = match prefix.api() {
        Ok(api) => api,
        Err(e) => return ready(Outcome::Close(e.to_string())),
    };
    let version = prefix.api_version;
    let Some((min, max)) = supported_range(api) else {
        return ready(Outcome::Close(format!("{api:?} is not supported")));
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return ready(Outcome::Respond(encode_api_versions_fallback(
                prefix.correlation_id,
                SUPPORTED,
            )));
        }
        return ready(Outcome::Close(format!(
            "{api:?} v{version} is not supported (v{min}-v{max} are)"
        )));
    }
    let request = match Request::decode(frame, api, version) {
        Ok(r) => r,
        Err(e) => return ready(Outcome::Close(e.to_string())),
    };
    let span = tracing::debug_span!(
        "request",
        api = ?api,
        version,
        correlation_id = prefix.correlation_id,
        client_id = request.client_id()
    );
    let ctx = Ctx {
        broker,
        version,
        client_id: request.client_id().to_string(),
        peer,
        listener,
    };
    let correlation_id = prefix.correlation_id;
    match request.body {
        RequestKind::Produce(r) => {
            let committed = span.in_scope(|| handlers::produce::start(&ctx, r));
            Box::pin(
                async move { finish(api, version, correlation_id, committed.await.map(ResponseKind::Produce)) }
                    .instrument(span),
            )
        }
        body => Box::pin(async move { finish(api, version, correlation_id, route(&ctx, body).await) }.instrument(span)),
    }
}

fn ready<'a>(outcome: Outcome) -> BoxFuture<'a, Outcome> {
    Box::pin(std::future::ready(outcome))
}

fn finish(api: ApiKey, version: i16, correlation_id: i32, response: Option<ResponseKind>) -> Outcome {
    let Some(response) = response else {
        return Outcome::Silent;
    };
    match encode_response(api, version, correlation_id, &response) {
        Ok(bytes) => Outcome::Respond(bytes),
        Err(e) => {
            tracing::error!(error = %e, "response encoding failed");
            Outcome::Close(e.to_string())
        }
    }
}

async fn route(ctx: &Ctx<'_>, body: RequestKind) -> Option<ResponseKind> {
    Some(match body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(handlers::api_versions::handle(ctx, r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(handlers::metadata::handle(ctx, r)),
        RequestKind::Fetch(r) => ResponseKind::Fetch(handlers::fetch::handle(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(handlers::list_offsets::handle(ctx, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(handlers::create_topics::handle(ctx, r)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(handlers::delete_topics::handle(ctx, r)),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(handlers::create_partitions::handle(ctx, r)),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(handlers::describe_configs::handle(ctx, r)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(handlers::alter_configs::handle(ctx, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(handlers::incremental_alter_configs::handle(ctx, r))
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(handlers::delete_records::handle(ctx, r)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(handlers::describe_cluster::handle(ctx, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(handlers::offset_for_leader_epoch::handle(ctx, r))
        }
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(handlers::init_producer_id::handle(ctx, r)),
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(handlers::describe_producers::handle(ctx, r))
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(handlers::find_coordinator::handle(ctx, r)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(handlers::join_group::handle(ctx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(handlers::sync_group::handle(ctx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(handlers::heartbeat::handle(ctx, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(handlers::leave_group::handle(ctx, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(handlers::offset_commit::handle(ctx, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(handlers::offset_fetch::handle(ctx, r).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(handlers::list_groups::handle(ctx, r).await),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(handlers::describe_groups::handle(ctx, r).await),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(handlers::delete_groups::handle(ctx, r).await),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(handlers::offset_delete::handle(ctx, r).await),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(handlers::describe_log_dirs::handle(ctx, r)),
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(handlers::elect_leaders::handle(ctx, r)),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(handlers::alter_partition_reassignments::handle(ctx, r))
        }
        RequestKind::UnregisterBroker(r) => ResponseKind::UnregisterBroker(handlers::unregister_broker::handle(ctx, r)),
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(handlers::describe_topic_partitions::handle(ctx, r))
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(handlers::list_partition_reassignments::handle(ctx, r))
        }
        other => {
            // Unreachable while SUPPORTED and this match agree; a test checks that they do.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}
