//! Producer ids in a cluster. Every broker answers InitProducerId, so ids must be unique across
//! brokers, restarts and lost data dirs: a broker takes ids from a block the metadata log gave it
//! (`AllocateProducerIds`, like KRaft's), asking for the next block when one runs out. Blocks are
//! never reused, so a restarted broker simply asks for a new one.

use skiff_protocol::kafka_protocol;
use skiff_replication::cluster_metadata::ClusterMetadata;
use skiff_replication::metadata_records::{AllocateProducerIds, metadata_record::Kind};

use super::{Cluster, lock, read};
use crate::error::ApiError;
use crate::producer_ids::PRODUCER_ID_BLOCK_SIZE;

impl Cluster {
    /// A producer id no broker handed out before (blocking while a new block is allocated).
    pub fn next_producer_id(&self) -> Result<i64, ApiError> {
        {
            let mut block = lock(&self.producer_ids);
            if block.0 < block.1 {
                block.0 += 1;
                return Ok(block.0 - 1);
            }
        }
        let me = self.me;
        let asked_from = read(&self.metadata).next_producer_id();
        let got = |m: &ClusterMetadata| m.producer_block(me).filter(|&(first, _)| first >= asked_from);
        self.change_metadata(
            |m| {
                if got(m).is_some() {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    Kind::AllocateProducerIds(AllocateProducerIds {
                        broker_id: me,
                        first_id: m.next_producer_id(),
                        count: PRODUCER_ID_BLOCK_SIZE,
                    })
                    .into(),
                ])
            },
            |m| got(m).is_some(),
        )?;
        let (first, end) = got(&read(&self.metadata)).ok_or_else(|| {
            ApiError::new(
                kafka_protocol::ResponseError::UnknownServerError,
                "the producer id block vanished",
            )
        })?;
        let mut block = lock(&self.producer_ids);
        *block = (first + 1, end);
        tracing::info!(first, end, "producer id block allocated");
        Ok(first)
    }

    /// Whether `id` was ever handed out in this cluster (KIP-360: a producer may then keep it
    /// with a bumped epoch).
    pub fn producer_id_issued(&self, id: i64) -> bool {
        id >= 0 && id < read(&self.metadata).next_producer_id()
    }
}
