//! Replicas whose log was lost: a replaced disk, an emptied data dir. raft-rs assumes a
//! replica never loses what it acknowledged, and breaks both ways when one does. The follower
//! panics on a heartbeat that commits past its log end (the leader sends
//! `min(matched, committed)`), and the leader ignores the follower's rejections as stale
//! because they fall below the index it recorded as matched, so it never sends the missing
//! entries. [`correct`] fixes a message before it is stepped, on whichever side sees it. The
//! follower then catches up from the leader's log like any follower that is far behind.
//!
//! What is not restored: a wiped voter forgets the vote it cast in its last term, so one
//! election may count it twice. That is the price of losing a disk. Raft's answer is to
//! remove the replica and add it back as a new member, which needs reassignment.

use raft::RawNode;
use raft::prelude::{Message, MessageType};
use raft::storage::Storage;

/// What `correct` changed, for the caller's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    /// A heartbeat would have committed past this follower's log end: its commit was held at
    /// the follower's own commit index.
    HeartbeatCommitHeld { commit: u64, last_index: u64 },
    /// A follower answered from below what this leader recorded as its match: the record was
    /// dropped and the leader probes from the follower's real log end.
    FollowerProgressReset { follower: u64, matched: u64, log_end: u64 },
}

/// Fixes `msg` (and, on a leader, the sender's progress) before `raw.step(msg)`.
pub fn correct<S: Storage>(raw: &mut RawNode<S>, msg: &mut Message) -> Option<Correction> {
    match msg.get_msg_type() {
        MessageType::MsgHeartbeat => {
            let last_index = raw.raft.raft_log.last_index();
            if msg.commit <= last_index {
                return None;
            }
            let commit = msg.commit;
            msg.commit = raw.raft.raft_log.committed;
            Some(Correction::HeartbeatCommitHeld { commit, last_index })
        }
        MessageType::MsgAppendResponse if msg.reject && raw.raft.state == raft::StateRole::Leader => {
            let follower = msg.from;
            let pr = raw.raft.mut_prs().get_mut(follower)?;
            if msg.reject_hint >= pr.matched {
                return None;
            }
            let matched = pr.matched;
            // Nothing of the follower's log is known to match any more; probing from its end
            // lets Raft's consistency check find the common prefix. The probe is left as if it
            // had sent this very append, so that raft-rs takes the rejection at once and
            // resends from the follower's end (or sends a snapshot when that end is compacted)
            // instead of waiting for the next heartbeat.
            pr.matched = 0;
            pr.become_probe();
            pr.next_idx = msg.index + 1;
            Some(Correction::FollowerProgressReset {
                follower,
                matched,
                log_end: msg.reject_hint,
            })
        }
        _ => None,
    }
}
