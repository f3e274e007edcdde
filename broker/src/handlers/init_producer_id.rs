//! InitProducerId: hands an idempotent producer its producer id and epoch (KIP-98), or bumps the
//! epoch of the id it already has (KIP-360). Ids come from the broker's `ProducerIdManager`, which
//! never reissues one, not even across restarts.
//!
//! Transactions are not implemented yet, so a transactional id is refused with
//! `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`: librdkafka and the Java client both treat it as fatal
//! and fail `init_transactions()` at once with that error. The alternatives a missing coordinator
//! would suggest (`COORDINATOR_NOT_AVAILABLE`, `NOT_COORDINATOR`) are retriable, so clients would
//! spin on FindCoordinator/InitProducerId until their timeout and then report a misleading
//! timeout instead.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use skiff_protocol::kafka_protocol;

use super::Ctx;
use crate::producer_ids::ProducerIdError;

/// The first version whose request carries the producer's current id and epoch (KIP-360).
const PRODUCER_ID_AND_EPOCH_VERSION: i16 = 3;
/// Kafka gives a producer a new id instead of bumping an epoch that has reached this value
/// (`Short.MaxValue - 1`, so the bumped epoch itself never reaches `Short.MaxValue`).
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// Why no producer id could be assigned.
enum Assign {
    Local(ProducerIdError),
    Cluster(crate::error::ApiError),
}

pub fn handle(ctx: &Ctx<'_>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.as_ref().is_some_and(|id| id.0.is_empty()) {
        // Kafka's answer: an empty transactional id is a malformed request, not a null one.
        return response.with_error_code(ResponseError::InvalidRequest.code());
    }
    if let Some(id) = &request.transactional_id {
        tracing::warn!(
            transactional_id = %id.0.as_str(),
            client_id = %ctx.client_id,
            "refusing InitProducerId for a transactional id: transactions are not supported yet"
        );
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    let ids = &ctx.broker.producer_ids;
    let current =
        (ctx.version >= PRODUCER_ID_AND_EPOCH_VERSION && request.producer_id.0 >= 0 && request.producer_epoch >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
    // In a cluster the metadata log hands out the ids (`cluster/producer_id_blocks.rs`).
    let cluster = ctx.broker.cluster();
    let issued = |id| match &cluster {
        Some(c) => c.producer_id_issued(id),
        None => ids.was_issued(id),
    };
    let assigned = match current {
        // KIP-360: an idempotent producer that lost track of its sequences keeps its id with a
        // higher epoch; every partition then expects sequence 0 from it.
        Some((id, epoch)) if issued(id) && epoch < EPOCH_EXHAUSTED => Ok((id, epoch + 1)),
        _ => match &cluster {
            Some(c) => c.next_producer_id().map_err(Assign::Cluster),
            None => ids.next_id().map_err(Assign::Local),
        }
        .map(|id| (id, 0)),
    };
    match assigned {
        Ok((id, epoch)) => {
            tracing::debug!(producer_id = id, epoch, "assigned producer id");
            response.with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
        }
        Err(Assign::Local(e)) => {
            tracing::error!(error = %e, "could not assign a producer id");
            let code = match e {
                ProducerIdError::Storage(_) => ResponseError::KafkaStorageError,
                ProducerIdError::Exhausted => ResponseError::UnknownServerError,
            };
            response.with_error_code(code.code())
        }
        Err(Assign::Cluster(e)) => {
            tracing::warn!(error = %e, "could not assign a producer id");
            // The controller is electing or unreachable: the client retries.
            response.with_error_code(ResponseError::CoordinatorLoadInProgress.code())
        }
    }
}
