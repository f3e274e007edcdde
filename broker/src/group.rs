//! One consumer group's state under the classic group protocol: its members, generation, chosen
//! protocol, leader, the deadlines its timer task watches, the requests parked on it, and its
//! committed offsets. This file holds the data and the bookkeeping that keeps it consistent
//! (adding and removing members, choosing the protocol); the transitions of Kafka's state machine
//! live in `group_coordinator.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use skiff_protocol::kafka_protocol;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The protocol type of Kafka consumers; their member metadata is a `ConsumerProtocolSubscription`.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// The newest `ConsumerProtocolSubscription` version we decode; newer versions only append
/// fields, so Kafka reads them as this one.
const CONSUMER_PROTOCOL_SUBSCRIPTION_MAX_VERSION: i16 = 3;

/// Kafka's classic group states, with the names DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before a new generation starts.
    PreparingRebalance,
    /// The generation started; waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments and heartbeat.
    Stable,
    /// Deleted or expired; whoever still holds it must look the group up again.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One protocol (assignor) a member supports, with its opaque metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// What a parked JoinGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// The leader is a static member that rejoined a stable group: it gets the members but must
    /// not assign (KIP-814).
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol; only the leader gets them.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a parked SyncGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ResponseError) -> Self {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A committed offset, as OffsetCommit stores it and OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub session_timeout: Duration,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// What the leader assigned it in the current generation.
    pub assignment: Bytes,
    /// Joined in the current rebalance and has not yet received a generation: it may time out
    /// while parked (Kafka's `isNew`).
    pub is_new: bool,
    /// Its parked JoinGroup, answered when the join phase ends.
    pub join_waiter: Option<oneshot::Sender<JoinResponse>>,
    /// Its parked SyncGroup, answered when the leader's assignment arrives.
    pub sync_waiter: Option<oneshot::Sender<SyncResponse>>,
    /// When the member is removed unless it heartbeats (or is parked in a rebalance) first.
    pub heartbeat_deadline: Option<Instant>,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Whether an expired session leaves the member alone: members parked in a rebalance do not
    /// heartbeat, except new members, which may still time out.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.join_waiter.is_some() || self.sync_waiter.is_some())
    }

    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    /// Same protocols with the same metadata, in the same order.
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Answers the parked JoinGroup, if any (the client may have gone; that is fine).
    pub fn complete_join(&mut self, response: JoinResponse) {
        if let Some(waiter) = self.join_waiter.take() {
            let _ = waiter.send(response);
        }
    }

    /// Answers the parked SyncGroup, if any.
    pub fn complete_sync(&mut self, response: SyncResponse) {
        if let Some(waiter) = self.sync_waiter.take() {
            let _ = waiter.send(response);
        }
    }
}

/// The running join-phase timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinTimer {
    /// `group.initial.rebalance.delay.ms` of a group's first rebalance: extended by `delay` while
    /// new members keep arriving, until `remaining` (of the rebalance timeout) runs out.
    Initial { delay: Duration, remaining: Duration },
    /// The rebalance timeout: members that have not rejoined by then are dropped.
    Rebalance,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    pub generation_id: i32,
    /// Set by the first member of an empty group; all members must share it.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// By member id, so that iteration (and leader election) is deterministic.
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, each with the time it expires unless the
    /// member joins with it.
    pub pending_members: BTreeMap<String, Instant>,
    /// `group.instance.id` → member id of the static members.
    pub static_members: HashMap<String, String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    pub join_timer: Option<(Instant, JoinTimer)>,
    /// When members still in `pending_sync` are dropped, and for which generation.
    pub sync_deadline: Option<(Instant, i32)>,
    /// A member joined during the initial delay, which extends it.
    pub new_member_added: bool,
    /// When an empty group without offsets is forgotten.
    pub empty_deadline: Option<Instant>,
    /// Offset writes between validation and their append completing; the group must not be
    /// forgotten while one is under way.
    pub writes_in_flight: u32,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Whether the group's timer task is running (it exits when no deadline is set).
    pub timer_running: bool,
}

impl Group {
    pub fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_sync: BTreeSet::new(),
            join_timer: None,
            sync_deadline: None,
            new_member_added: false,
            empty_deadline: None,
            writes_in_flight: 0,
            offsets: BTreeMap::new(),
            timer_running: false,
        }
    }

    pub fn transition(&mut self, to: GroupState) {
        tracing::debug!(group = %self.id, from = self.state.name(), to = to.name(), "group state");
        self.previous_state = self.state;
        self.state = to;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    /// Every member is parked in JoinGroup and no member id handed out is still unused.
    pub fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::is_awaiting_join) && self.pending_members.is_empty()
    }

    /// The longest rebalance timeout of the members: how long the join phase waits.
    pub fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Whether a member with this protocol type and these protocols may join: any non-empty set
    /// for an empty group, else the group's type and at least one protocol every member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type) && protocols.iter().any(|p| self.supported_by_all(&p.name))
    }

    fn supported_by_all(&self, protocol: &str) -> bool {
        self.members.values().all(|m| m.metadata_for(protocol).is_some())
    }

    /// The protocol for the next generation: among those every member supports, each member votes
    /// for the one it prefers most, and the most votes win (ties to the leader's preference).
    pub fn select_protocol(&self) -> Option<String> {
        let leader = self.leader_id.as_ref().and_then(|l| self.members.get(l));
        let first = leader.or_else(|| self.members.values().next())?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|p| self.supported_by_all(p))
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name));
            if let Some(i) = choice {
                votes[i] += 1;
            }
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|(_, bv)| *v > bv) {
                best = Some((i, *v));
            }
        }
        best.map(|(i, _)| candidates[i].to_string())
    }

    /// Adds a member; the first member of an empty group sets its protocol type and leads.
    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        let id = member.member_id.clone();
        if let Some(instance) = &member.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        self.pending_members.remove(&id);
        if self.leader_id.is_none() {
            self.leader_id = Some(id.clone());
        }
        self.members.insert(id, member);
    }

    /// Removes a member from every list it is on; a departing leader hands over to the first
    /// remaining member. The caller answers its parked requests.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(instance) = removed.as_ref().and_then(|m| m.group_instance_id.as_ref())
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    /// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID unless `member_id` (with `instance`, if given) is
    /// a current member.
    pub fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
        match instance {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => Err(ResponseError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// The member list the leader assigns from: each member's metadata for the chosen protocol.
    pub fn members_for_leader(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The current generation as a JoinGroup answer for `member_id`.
    pub fn join_response(&self, member_id: &str, skip_assignment: bool) -> JoinResponse {
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members: if self.is_leader(member_id) {
                self.members_for_leader()
            } else {
                Vec::new()
            },
        }
    }

    /// The topics the members subscribe to, from their consumer-protocol metadata for the chosen
    /// protocol; `None` when that cannot be known (another protocol type, or metadata we cannot
    /// parse).
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(subscription_topics(member.metadata_for(protocol)?)?);
        }
        Some(topics)
    }

    /// The group holds nothing worth keeping: no members, no offsets, nothing in flight.
    pub fn is_unused(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && self.writes_in_flight == 0
    }

    /// The earliest deadline the timer task must wake for.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        let pending = self.pending_members.values().copied();
        members
            .chain(pending)
            .chain(self.join_timer.map(|(d, _)| d))
            .chain(self.sync_deadline.map(|(d, _)| d))
            .chain(self.empty_deadline)
            .min()
    }
}

/// The topics of a `ConsumerProtocolSubscription` (an int16 version, then the message).
pub fn subscription_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut buf = metadata;
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    if version < 0 {
        return None;
    }
    buf = &buf[2..];
    let subscription =
        ConsumerProtocolSubscription::decode(&mut buf, version.min(CONSUMER_PROTOCOL_SUBSCRIPTION_MAX_VERSION)).ok()?;
    Some(subscription.topics.iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    pub(crate) fn subscription(topics: &[&str], version: i16) -> Bytes {
        let mut buf = Vec::new();
        buf.extend_from_slice(&version.to_be_bytes());
        ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect())
            .encode(&mut buf, version.min(3))
            .unwrap();
        Bytes::from(buf)
    }

    fn member(id: &str, protocols: &[(&str, &[u8])]) -> Member {
        Member {
            member_id: id.to_string(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            rebalance_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|(n, m)| Protocol {
                    name: n.to_string(),
                    metadata: Bytes::copy_from_slice(m),
                })
                .collect(),
            assignment: Bytes::new(),
            is_new: false,
            join_waiter: None,
            sync_waiter: None,
            heartbeat_deadline: None,
        }
    }

    #[test]
    fn protocol_selection_takes_the_most_preferred_common_protocol() {
        let mut g = Group::new("g");
        g.add_member(member("a", &[("range", b""), ("roundrobin", b"")]));
        g.state = GroupState::PreparingRebalance;
        g.add_member(member("b", &[("roundrobin", b""), ("range", b""), ("sticky", b"")]));
        g.add_member(member("c", &[("roundrobin", b""), ("range", b"")]));
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        let sticky_only = [Protocol {
            name: "sticky".into(),
            metadata: Bytes::new(),
        }];
        assert!(!g.supports_protocols("consumer", &sticky_only));
        assert!(g.supports_protocols("consumer", &g.members["a"].protocols.clone()));
        assert!(!g.supports_protocols("connect", &g.members["a"].protocols.clone()));
    }

    #[test]
    fn removing_the_leader_hands_over_and_clears_static_mapping() {
        let mut g = Group::new("g");
        let mut a = member("a", &[("range", b"")]);
        a.group_instance_id = Some("i-a".into());
        g.add_member(a);
        g.add_member(member("b", &[("range", b"")]));
        assert!(g.is_leader("a"));
        assert_eq!(g.validate_member("a", Some("i-a")), Ok(()));
        assert_eq!(
            g.validate_member("x", Some("i-a")),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(g.validate_member("x", None), Err(ResponseError::UnknownMemberId));
        g.remove_member("a");
        assert!(g.is_leader("b"));
        assert!(g.static_members.is_empty());
    }

    #[test]
    fn consumer_subscriptions_parse_at_every_version_and_newer_ones_read_as_latest() {
        for v in 0..=4 {
            let topics = subscription_topics(&subscription(&["t1", "t2"], v)).unwrap();
            assert_eq!(topics.into_iter().collect::<Vec<_>>(), vec!["t1", "t2"], "v{v}");
        }
        assert_eq!(subscription_topics(b"\x00"), None);
        assert_eq!(subscription_topics(b"\x00\x00\x00\x00\x00\x05ab"), None);
        assert_eq!(subscription_topics(b"\xff\xff"), None);
    }
}
