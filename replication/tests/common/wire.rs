//! The in-memory network between test brokers' group drivers: messages wait in flight until
//! delivered, and traffic to or from an isolated broker is dropped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::prelude::Message;
use skiff_replication::group_driver::{GroupDriver, GroupId, NodeId};

#[derive(Default)]
pub struct Wire {
    /// (from, to, group, message), oldest first.
    pub in_flight: VecDeque<(NodeId, NodeId, GroupId, Message)>,
    pub isolated: BTreeSet<NodeId>,
}

impl Wire {
    /// Queues the messages one broker's pass produced.
    pub fn send(&mut self, from: NodeId, messages: BTreeMap<NodeId, Vec<(GroupId, Message)>>) {
        for (to, msgs) in messages {
            for (g, m) in msgs {
                self.in_flight.push_back((from, to, g, m));
            }
        }
    }

    /// A broker crashed: nothing it sent or was sent arrives any more.
    pub fn forget(&mut self, node: NodeId) {
        self.in_flight.retain(|m| m.0 != node && m.1 != node);
    }

    /// Delivers every message in flight to the live brokers; returns how many were delivered.
    pub fn deliver(&mut self, drivers: &mut BTreeMap<NodeId, GroupDriver>) -> usize {
        let mut delivered = 0;
        for (from, to, g, m) in self.in_flight.drain(..).collect::<Vec<_>>() {
            if self.isolated.contains(&from) || self.isolated.contains(&to) {
                continue;
            }
            if let Some(d) = drivers.get_mut(&to) {
                delivered += 1;
                // A stale message may be refused, as in raft-rs's examples.
                let _ = d.step(g, m);
            }
        }
        delivered
    }
}
