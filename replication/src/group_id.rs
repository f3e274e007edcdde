//! The id of a Raft group, shared by the driver that runs groups and the transport that carries
//! their messages.

/// A Raft group: one per partition replica set (and one for the controller). The number is
/// assigned by the cluster metadata (the partition's group id), not derived from the topic
/// name, so that a frame spends 1–10 bytes per group instead of the topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

impl From<u64> for GroupId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl From<GroupId> for u64 {
    fn from(id: GroupId) -> Self {
        id.0
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group-{}", self.0)
    }
}
