//! Brokers that join a running cluster and brokers that leave it. The controller quorum is fixed
//! by `controller.quorum.voters`; any other broker follows the metadata log as a Raft learner of
//! the controller group (as KRaft's brokers fetch it without voting):
//! - it registers by handing its `RegisterBroker` record to every voter (it knows no leader yet),
//!   with the address of its Raft listener;
//! - every broker learns that address from the applied record, and the controller's leader adds
//!   the broker as a learner, which then replicates the whole metadata log, sees its own
//!   registration and starts hosting replicas (new topics, reassignments);
//! - the controller's leader fences a broker it has not heard from for `broker.session.timeout.ms`
//!   (Metadata stops listing it, its replicas are reported offline, no new replicas go to it) and
//!   unfences it once it is heard again;
//! - UnregisterBroker removes a broker that holds no replica any more (decommissioned: its
//!   replicas were moved away first), and the leader drops it from the controller group.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use skiff_replication::cluster_metadata::{CONTROLLER_GROUP, ClusterMetadata};
use skiff_replication::group_driver::{GroupDriver, remote_proposal};
use skiff_replication::metadata_records::{
    BrokerId, Endpoint, FenceBroker, MetadataRecord, UnfenceBroker, UnregisterBroker, encode_batch,
    metadata_record::Kind,
};
use skiff_replication::reassignment::Step;

use super::{Cluster, broker_id, lock, raft_id, read};
use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::error::ApiError;
use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;

/// How often the controller's leader looks at brokers' liveness.
const LIVENESS_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// What the controller's leader knows of brokers' liveness.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    heard: HashMap<BrokerId, Instant>,
    leading_since: Option<Instant>,
    last_check: Option<Instant>,
}

/// The Raft address this broker registers: the replication listener's port, on its own address
/// when bound to one, else on the host clients are told (the first advertised listener's).
pub(super) fn advertised_raft_endpoint(config: &BrokerConfig, bound: SocketAddr) -> Endpoint {
    let host = if bound.ip().is_unspecified() {
        config
            .listeners()
            .first()
            .map_or_else(|| "localhost".to_string(), |l| l.advertised_host.clone())
    } else {
        bound.ip().to_string()
    };
    Endpoint {
        name: "RAFT".into(),
        host,
        port: u32::from(bound.port()),
    }
}

impl Cluster {
    /// Sends records as a Raft proposal straight to every controller voter; a follower forwards
    /// it to its leader (raft-rs `MsgPropose`).
    pub(super) fn propose_to_voters(&self, records: &[MetadataRecord]) {
        let batch = match encode_batch(records, now_ms()) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a registration");
                return;
            }
        };
        for v in &self.config.controller_quorum_voters {
            let message = remote_proposal(raft_id(self.me), raft_id(v.id), batch.clone());
            if let Err(e) = self.transport.send(raft_id(v.id), CONTROLLER_GROUP, &message) {
                tracing::debug!(voter = v.id, error = %e, "registration not sent");
            }
        }
    }

    /// Tells the transport where registered brokers that are not voters take Raft traffic. The
    /// lookup blocks the loop only for a host name (registrations normally carry addresses); one
    /// that does not resolve is tried again with the next metadata change.
    pub(super) fn learn_peers(&self, metadata: &ClusterMetadata) {
        use std::net::ToSocketAddrs;
        let mut known = lock(&self.known_peers);
        for b in metadata.brokers() {
            let Some(e) = &b.raft_endpoint else { continue };
            if b.id == self.me || known.contains(&b.id) {
                continue;
            }
            match (e.host.as_str(), u16::try_from(e.port).unwrap_or(0)).to_socket_addrs() {
                Ok(mut addrs) => {
                    if let Some(addr) = addrs.next() {
                        tracing::info!(broker = b.id, %addr, "raft peer added");
                        self.transport.add_peer(raft_id(b.id), addr);
                        known.insert(b.id);
                    }
                }
                Err(err) => {
                    tracing::warn!(broker = b.id, host = %e.host, error = %err, "cannot resolve a registered broker's raft address")
                }
            }
        }
    }

    /// On the controller leader, every `REASSIGNMENT_STEP_INTERVAL`: registered brokers that are
    /// not voters become learners of the controller group; unregistered learners are removed.
    pub(super) fn step_controller_learners(&self, driver: &mut GroupDriver) {
        if !driver.is_leader(CONTROLLER_GROUP) {
            return;
        }
        let Some(conf) = driver.conf(CONTROLLER_GROUP) else {
            return;
        };
        if conf.pending || !conf.outgoing.is_empty() {
            return;
        }
        let registered: BTreeSet<u64> = read(&self.metadata).brokers().map(|b| raft_id(b.id)).collect();
        let add: Vec<u64> = registered
            .iter()
            .copied()
            .filter(|id| !conf.voters.contains(id) && !conf.learners.contains(id))
            .collect();
        let remove: Vec<u64> = conf
            .learners
            .iter()
            .copied()
            .filter(|id| !registered.contains(id))
            .collect();
        let step = if !add.is_empty() {
            Step::AddLearners(add)
        } else if !remove.is_empty() {
            Step::Promote { add: vec![], remove }
        } else {
            return;
        };
        let Some(cc) = step.conf_change() else { return };
        match driver.propose_conf_change(CONTROLLER_GROUP, cc) {
            Ok(()) => tracing::info!(change = ?step_brokers(&step), "controller group membership change"),
            Err(e) => tracing::debug!(error = %e, "controller membership change refused"),
        }
    }

    /// Every broker sends to the controller's leader each tick (heartbeat and append
    /// responses): what the leader hears tells which brokers are alive.
    pub(super) fn note_controller_traffic(&self, from: impl Iterator<Item = BrokerId>) {
        let now = Instant::now();
        let mut liveness = lock(&self.liveness);
        for b in from {
            liveness.heard.insert(b, now);
        }
    }

    /// On the controller leader: fences brokers not heard from for `broker.session.timeout.ms`
    /// and unfences those heard again (KRaft's broker heartbeats, from Raft traffic).
    pub(super) fn step_broker_liveness(&self, driver: &mut GroupDriver) {
        let now = Instant::now();
        let since = {
            let mut liveness = lock(&self.liveness);
            if !driver.is_leader(CONTROLLER_GROUP) {
                liveness.leading_since = None;
                return;
            }
            if liveness
                .last_check
                .is_some_and(|t| now.duration_since(t) < LIVENESS_CHECK_INTERVAL)
            {
                return;
            }
            liveness.last_check = Some(now);
            *liveness.leading_since.get_or_insert(now)
        };
        let session = Duration::from_millis(self.config.broker_session_timeout_ms);
        let records: Vec<MetadataRecord> = {
            let heard = &lock(&self.liveness).heard;
            read(&self.metadata)
                .brokers()
                .filter(|b| b.id != self.me)
                .filter_map(|b| {
                    // A new controller leader gives everyone a session before judging.
                    let last = heard.get(&b.id).copied().map_or(since, |t| t.max(since));
                    let alive = now.duration_since(last) < session;
                    match (alive, b.fenced) {
                        (false, false) => Some(Kind::FenceBroker(FenceBroker {
                            broker_id: b.id,
                            incarnation: b.incarnation,
                        })),
                        (true, true) => Some(Kind::UnfenceBroker(UnfenceBroker {
                            broker_id: b.id,
                            incarnation: b.incarnation,
                        })),
                        _ => None,
                    }
                })
                .map(MetadataRecord::from)
                .collect()
        };
        if records.is_empty() {
            return;
        }
        tracing::info!(changes = ?records.iter().filter_map(|r| r.kind.as_ref()).map(liveness_change).collect::<Vec<_>>(), "broker liveness changed");
        match encode_batch(&records, now_ms()) {
            Ok(batch) => {
                if let Err(e) = driver.propose(CONTROLLER_GROUP, batch) {
                    tracing::debug!(error = %e, "liveness change not proposed");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode liveness changes"),
        }
    }

    /// UnregisterBroker: removes a broker that holds no replica (move them away first) and is
    /// not a controller voter, and waits until the metadata log has it.
    pub fn unregister_broker(&self, broker: BrokerId) -> Result<(), ApiError> {
        if self.config.controller_quorum_voters.iter().any(|v| v.id == broker) {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("broker {broker} is a controller voter (controller.quorum.voters) and cannot leave"),
            ));
        }
        let check = |m: &ClusterMetadata| -> Result<Vec<MetadataRecord>, ApiError> {
            if m.broker(broker).is_none() {
                return Err(ApiError::new(
                    ResponseError::BrokerIdNotRegistered,
                    format!("broker {broker} is not registered"),
                ));
            }
            if let Some(p) = m.replicas_on(broker).first() {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("broker {broker} still holds a replica of {p}: move its replicas away first"),
                ));
            }
            Ok(vec![
                Kind::UnregisterBroker(UnregisterBroker { broker_id: broker }).into(),
            ])
        };
        check(&read(&self.metadata))?;
        self.change_metadata(
            |m| {
                if m.broker(broker).is_none() {
                    Ok(Vec::new())
                } else {
                    check(m)
                }
            },
            |m| m.broker(broker).is_none(),
        )?;
        lock(&self.known_peers).remove(&broker);
        tracing::info!(broker, "broker unregistered");
        Ok(())
    }
}

fn liveness_change(kind: &Kind) -> String {
    match kind {
        Kind::FenceBroker(f) => format!("fence {}", f.broker_id),
        Kind::UnfenceBroker(u) => format!("unfence {}", u.broker_id),
        _ => String::new(),
    }
}

fn step_brokers(step: &Step) -> String {
    let ids = |v: &[u64]| v.iter().map(|&n| broker_id(n)).collect::<Vec<_>>();
    match step {
        Step::AddLearners(v) => format!("add learners {:?}", ids(v)),
        Step::Promote { remove, .. } => format!("remove {:?}", ids(remove)),
        _ => String::new(),
    }
}
