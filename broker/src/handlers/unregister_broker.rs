//! UnregisterBroker (KIP-631, what `kafka-cluster.sh unregister` sends): the last step of
//! decommissioning a broker, once its replicas were moved away (AlterPartitionReassignments).
//! Refused for a controller voter, a broker still holding replicas, and on a single node.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};
use crate::error::ApiError;

pub fn handle(ctx: &Ctx<'_>, request: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    let broker = request.broker_id.0;
    let outcome = match ctx.broker.cluster() {
        Some(cluster) => cluster.unregister_broker(broker),
        None => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("broker {broker} is a single node: there is no cluster to leave"),
        )),
    };
    match outcome {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&e.message))),
    }
}
