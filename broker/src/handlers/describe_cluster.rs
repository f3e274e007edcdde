//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers, as the AdminClient's
//! `describeCluster` asks for them. On one node this broker is the whole cluster and its
//! controller; no broker is ever fenced.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};

/// The first version whose request says which kind of endpoint it wants (KIP-919).
const ENDPOINT_TYPE_VERSION: i16 = 1;
/// Kafka's `EndpointType` ids.
const ENDPOINT_TYPE_BROKER: i8 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;
/// Kafka's "authorized operations were not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Without an authorizer every CLUSTER operation is allowed: CREATE (5), ALTER (7), DESCRIBE (8),
/// CLUSTER_ACTION (9), DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11), IDEMPOTENT_WRITE (12), as a bit
/// field of `AclOperation` codes.
pub const CLUSTER_OPERATIONS: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

pub fn handle(ctx: &Ctx<'_>, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let config = &ctx.broker.config;
    if ctx.version >= ENDPOINT_TYPE_VERSION && request.endpoint_type != ENDPOINT_TYPE_BROKER {
        let (code, message) = if request.endpoint_type == ENDPOINT_TYPE_CONTROLLER {
            (
                ResponseError::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
                    .to_string(),
            )
        } else {
            (
                ResponseError::UnsupportedEndpointType,
                format!("Unsupported endpoint type {}", request.endpoint_type),
            )
        };
        return DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(&message)));
    }
    let (brokers, controller) = match ctx.broker.cluster() {
        Some(cluster) => (
            cluster
                .brokers(&ctx.listener)
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(str_bytes))
                })
                .collect(),
            cluster.controller_for_clients(),
        ),
        None => (
            vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(config.node_id))
                    .with_host(str_bytes(&config.listener(&ctx.listener).advertised_host))
                    .with_port(i32::from(config.listener(&ctx.listener).advertised_port))
                    .with_rack(None),
            ],
            config.node_id,
        ),
    };
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.broker.cluster_id))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::delete_records::tests::{broker, ctx};

    #[test]
    fn describes_this_broker_as_the_whole_cluster() {
        let (_dir, broker) = broker();
        for version in 0..=2 {
            for ops in [false, true] {
                let request = DescribeClusterRequest::default().with_include_cluster_authorized_operations(ops);
                let response = handle(&ctx(&broker, version), request);
                let kind = ResponseKind::DescribeCluster(response.clone());
                skiff_protocol::encode_response(ApiKey::DescribeCluster, version, 1, &kind).unwrap();
                assert_eq!(response.error_code, 0);
                assert_eq!(response.cluster_id.as_str(), broker.cluster_id);
                assert_eq!(response.controller_id, BrokerId(0));
                assert_eq!(response.brokers.len(), 1);
                assert_eq!(response.brokers[0].port, 9092);
                let expected = if ops { CLUSTER_OPERATIONS } else { i32::MIN };
                assert_eq!(response.cluster_authorized_operations, expected);
            }
        }
    }

    #[test]
    fn a_controller_endpoint_request_is_refused() {
        let (_dir, broker) = broker();
        let request = DescribeClusterRequest::default().with_endpoint_type(ENDPOINT_TYPE_CONTROLLER);
        let response = handle(&ctx(&broker, 1), request);
        assert_eq!(response.error_code, ResponseError::MismatchedEndpointType.code());
        let request = DescribeClusterRequest::default().with_endpoint_type(9);
        let response = handle(&ctx(&broker, 2), request);
        assert_eq!(response.error_code, ResponseError::UnsupportedEndpointType.code());
    }
}
