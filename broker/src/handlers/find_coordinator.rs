//! FindCoordinator: this single broker coordinates every group and every transactional id. v0-3
//! ask for one key; v4+ (KIP-699) batch several in `coordinator_keys`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes};

/// The first version that batches keys.
const BATCHED_VERSION: i16 = 4;
/// The first version whose single-key response carries an error message.
const ERROR_MESSAGE_VERSION: i16 = 1;
/// `key_type` of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// `key_type` of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(ctx: &Ctx<'_>, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let config = &ctx.broker.config;
    let supported = matches!(request.key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION);
    let unsupported = (!supported).then(|| {
        // Share groups (key type 2, KIP-932) and anything newer are not served.
        (
            ResponseError::InvalidRequest,
            format!("coordinator key type {} is not supported", request.key_type),
        )
    });
    // On one node this broker coordinates everything; in a cluster the leader of the key's
    // `__consumer_offsets` partition does.
    let locate = |key: &str| -> Result<(BrokerId, StrBytes, i32), (ResponseError, String)> {
        if let Some(e) = &unsupported {
            return Err(e.clone());
        }
        match ctx.broker.cluster() {
            None => {
                let listener = config.listener(&ctx.listener);
                Ok((
                    BrokerId(config.node_id),
                    str_bytes(&listener.advertised_host),
                    i32::from(listener.advertised_port),
                ))
            }
            Some(cluster) => tokio::task::block_in_place(|| cluster.coordinator(ctx.broker, key))
                .and_then(|id| {
                    cluster
                        .brokers(&ctx.listener)
                        .into_iter()
                        .find(|b| b.id == id)
                        .ok_or(ResponseError::CoordinatorNotAvailable)
                })
                .map(|b| (BrokerId(b.id), str_bytes(&b.host), b.port))
                .map_err(|e| (e, format!("no coordinator for {key:?} is available yet"))),
        }
    };
    if ctx.version >= BATCHED_VERSION {
        tracing::debug!(keys = ?request.coordinator_keys, key_type = request.key_type, "find coordinator");
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key: StrBytes| {
                let found = locate(&key);
                let c = Coordinator::default().with_key(key);
                match &found {
                    Ok((node_id, host, port)) => c.with_node_id(*node_id).with_host(host.clone()).with_port(*port),
                    Err((code, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1)
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    tracing::debug!(key = %request.key, key_type = request.key_type, "find coordinator");
    let response = FindCoordinatorResponse::default();
    match locate(&request.key) {
        Ok((node_id, host, port)) => {
            let response = response.with_node_id(node_id).with_host(host).with_port(port);
            if ctx.version >= ERROR_MESSAGE_VERSION {
                response.with_error_message(None)
            } else {
                response
            }
        }
        Err((code, message)) => {
            let response = response
                .with_error_code(code.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if ctx.version >= ERROR_MESSAGE_VERSION {
                response.with_error_message(Some(str_bytes(&message)))
            } else {
                response
            }
        }
    }
}
