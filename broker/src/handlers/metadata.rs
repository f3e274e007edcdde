//! Metadata: the brokers (just this one on a single node) and the requested topics with their
//! partitions' leader, replicas and ISR. Unknown topics are created when both the client and
//! `auto.create.topics.enable` allow it, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use skiff_protocol::kafka_protocol;
use uuid::Uuid;

use super::{Ctx, str_bytes, topic_name};
use crate::topics::Topic;

/// The first version whose topics carry their id.
const TOPIC_ID_VERSION: i16 = 10;
/// The first version whose partitions carry the leader epoch.
const LEADER_EPOCH_VERSION: i16 = 7;
/// Kafka's "authorized operations were not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Versions whose response carries the cluster's authorized operations (KIP-430).
const CLUSTER_OPERATIONS_VERSIONS: std::ops::RangeInclusive<i16> = 8..=10;
/// Without an authorizer every TOPIC operation is allowed: READ (3), WRITE (4), CREATE (5),
/// DELETE (6), ALTER (7), DESCRIBE (8), DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11).
pub(crate) const TOPIC_OPERATIONS: i32 = 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

pub fn handle(ctx: &Ctx<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let me = BrokerId(broker.config.node_id);
    // v0 has no null topic list: an empty one means "all topics".
    let wanted = match request.topics {
        Some(t) if !(t.is_empty() && ctx.version == 0) => Some(t),
        _ => None,
    };
    let topic_ops = if request.include_topic_authorized_operations {
        TOPIC_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let cluster_ops =
        if request.include_cluster_authorized_operations && CLUSTER_OPERATIONS_VERSIONS.contains(&ctx.version) {
            super::describe_cluster::CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    let auto_create = broker.config.auto_create_topics && (ctx.version < 4 || request.allow_auto_topic_creation);
    // A broker still catching up with the cluster's metadata may not know a topic yet: that is
    // retriable (LEADER_NOT_AVAILABLE), not UNKNOWN_TOPIC_OR_PARTITION, which consumers report.
    let catching_up = broker.cluster().is_some_and(|c| !c.caught_up());
    let topics = match wanted {
        None => broker.topics().iter().map(|t| describe(ctx, t, topic_ops)).collect(),
        Some(requested) => requested
            .into_iter()
            .map(|rt| match rt.name {
                Some(name) => {
                    let name = name.0.to_string();
                    match broker.topic(&name) {
                        Some(t) => describe(ctx, &t, topic_ops),
                        None if catching_up => error_topic(Some(&name), Uuid::nil(), ResponseError::LeaderNotAvailable),
                        None if auto_create => {
                            match broker.create_topic(&name, broker.config.num_partitions, Default::default(), false) {
                                Ok(t) => describe(ctx, &t, topic_ops),
                                Err(e) if e.code == ResponseError::TopicAlreadyExists => match broker.topic(&name) {
                                    Some(t) => describe(ctx, &t, topic_ops),
                                    None => error_topic(Some(&name), Uuid::nil(), e.code),
                                },
                                Err(e) => error_topic(Some(&name), Uuid::nil(), e.code),
                            }
                        }
                        None => error_topic(Some(&name), Uuid::nil(), ResponseError::UnknownTopicOrPartition),
                    }
                }
                None => match broker.topic_by_id(rt.topic_id) {
                    Some(t) => describe(ctx, &t, topic_ops),
                    None => error_topic(None, rt.topic_id, ResponseError::UnknownTopicId),
                },
            })
            .collect(),
    };
    let (brokers, controller) = match broker.cluster() {
        Some(cluster) => (
            cluster
                .brokers(&ctx.listener)
                .into_iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(str_bytes))
                })
                .collect(),
            BrokerId(cluster.controller_for_clients()),
        ),
        None => (
            vec![
                MetadataResponseBroker::default()
                    .with_node_id(me)
                    .with_host(str_bytes(&broker.config.listener(&ctx.listener).advertised_host))
                    .with_port(i32::from(broker.config.listener(&ctx.listener).advertised_port)),
            ],
            me,
        ),
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&broker.cluster_id)))
        .with_controller_id(controller)
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// The newest Metadata version: what DescribeTopicPartitions answers with (epochs, topic ids).
pub const LATEST_VERSION: i16 = 13;

pub(crate) fn describe(ctx: &Ctx<'_>, topic: &Topic, operations: i32) -> MetadataResponseTopic {
    let me = BrokerId(ctx.broker.config.node_id);
    let partitions = (0..topic.partitions)
        .map(|p| {
            if let Some(cluster) = ctx.broker.cluster() {
                return describe_replicated(ctx, cluster, topic, p);
            }
            let epoch = ctx
                .broker
                .partition(&topic.name, p)
                .map_or(0, |part| part.leader_epoch());
            let epoch = if ctx.version >= LEADER_EPOCH_VERSION { epoch } else { -1 };
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(me)
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![me])
                .with_isr_nodes(vec![me])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(if ctx.version >= TOPIC_ID_VERSION {
            topic.id
        } else {
            Uuid::nil()
        })
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(operations)
}

/// A partition of a cluster: leader, replicas and ISR as the Raft groups report them; a
/// partition whose leader is not known yet answers LEADER_NOT_AVAILABLE, which clients retry.
fn describe_replicated(
    ctx: &Ctx<'_>,
    cluster: &crate::cluster::Cluster,
    topic: &Topic,
    index: i32,
) -> MetadataResponsePartition {
    let response = MetadataResponsePartition::default().with_partition_index(index);
    let Some(view) = cluster.partition_view(&topic.name, index) else {
        return response
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_leader_id(BrokerId(-1));
    };
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let registered: Vec<i32> = cluster.brokers(&ctx.listener).iter().map(|b| b.id).collect();
    let offline: Vec<i32> = view
        .replicas
        .iter()
        .copied()
        .filter(|b| !registered.contains(b))
        .collect();
    let epoch = if ctx.version >= LEADER_EPOCH_VERSION {
        view.leader_epoch
    } else {
        -1
    };
    let response = response
        .with_leader_epoch(epoch)
        .with_replica_nodes(ids(&view.replicas))
        .with_isr_nodes(ids(&view.isr))
        .with_offline_replicas(ids(&offline));
    match view.leader {
        Some(leader) => response.with_leader_id(BrokerId(leader)),
        None => response
            .with_error_code(ResponseError::LeaderNotAvailable.code())
            .with_leader_id(BrokerId(-1)),
    }
}

fn error_topic(name: Option<&str>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
