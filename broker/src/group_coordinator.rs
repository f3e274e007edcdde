//! The group coordinator for Kafka's classic group protocol (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup) and the committed offsets of every group.
//!
//! Each group is a [`Group`] behind its own `std::sync::Mutex`, never held across an await: a
//! JoinGroup or SyncGroup that must wait parks on a oneshot channel the state machine answers when
//! the join phase ends or the leader's assignment arrives. The registry of groups is one more
//! mutex, held only to look a group up. Each group with a deadline pending (session timeouts,
//! the rebalance timeout, `group.initial.rebalance.delay.ms`, the pending-sync timeout, forgetting
//! an unused empty group) runs one tokio task that sleeps until the earliest deadline; it exits as
//! soon as the group has none, so idle groups cost no task.
//!
//! The transitions follow Kafka's `GroupMetadataManager` for classic groups: Empty →
//! PreparingRebalance → CompletingRebalance → Stable, back to PreparingRebalance when membership
//! or metadata changes, and Dead when deleted. Offset writes for a group are serialized by a
//! per-group async lock so that the order of the records in `__consumer_offsets` is the order in
//! which they were applied in memory; they run in a spawned task so that a client hanging up
//! cannot leave a record on disk that memory never saw.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::group::{
    CONSUMER_PROTOCOL_TYPE, CommittedOffset, Group, GroupState, JoinResponse, JoinTimer, Member, Protocol,
    SyncResponse, subscription_topics,
};
use crate::offset_store;

/// `group.min.session.timeout.ms`
pub const GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT: u64 = 6_000;
/// `group.max.session.timeout.ms`
pub const GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT: u64 = 1_800_000;
/// How long a new member may wait in JoinGroup before it is dropped (Kafka's
/// `CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS`); clients that are still there retry.
pub const GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS_DEFAULT: u64 = 300_000;
/// `offsets.retention.check.interval.ms`: how long an empty group without offsets is kept.
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 600_000;
/// `offset.metadata.max.bytes`
pub const OFFSET_METADATA_MAX_BYTES_DEFAULT: usize = 4096;
/// The Kafka `AclOperation`s a group supports (READ, DELETE, DESCRIBE), as DescribeGroups'
/// authorized-operations bit field reports them when no authorizer restricts anything.
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// The shortest wait for static members to rejoin when none has, so that tiny rebalance timeouts
/// cannot make the timer spin.
const REJOIN_WAIT_MIN: Duration = Duration::from_secs(1);
/// How often an operation retries a group that was deleted under it before giving up.
const DEAD_GROUP_RETRIES: usize = 3;

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout: Duration,
    pub new_member_join_timeout: Duration,
    pub empty_group_retention: Duration,
}

impl CoordinatorConfig {
    pub fn from_broker(config: &BrokerConfig) -> Self {
        CoordinatorConfig {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            ..CoordinatorConfig::default()
        }
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            initial_rebalance_delay: Duration::from_millis(crate::config::GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT),
            min_session_timeout: Duration::from_millis(GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT),
            max_session_timeout: Duration::from_millis(GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT),
            new_member_join_timeout: Duration::from_millis(GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS_DEFAULT),
            empty_group_retention: Duration::from_millis(OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT),
        }
    }
}

/// A JoinGroup, independent of its wire version.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+ (KIP-394): a new dynamic member first gets its id with MEMBER_ID_REQUIRED
    /// and must join again with it.
    pub require_known_member_id: bool,
    pub reason: Option<String>,
}

/// A SyncGroup, independent of its wire version.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// One member a LeaveGroup names.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// What DescribeGroups reports of a group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol while Stable, else empty.
    pub protocol_data: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the chosen protocol and the assignment, both only while Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// What ListGroups reports of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// An offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
}

/// Who commits: the member and generation of a group using group management, or an empty member
/// id with generation -1 for a "simple" consumer (only allowed while the group has no members).
#[derive(Debug, Clone)]
pub struct Committer {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// OffsetCommit v9+ answers a missing group with GROUP_ID_NOT_FOUND, older versions with
    /// ILLEGAL_GENERATION.
    pub group_id_not_found_error: bool,
}

/// One group: its state and what serializes and wakes work on it.
#[derive(Debug)]
pub struct GroupHandle {
    state: Mutex<Group>,
    /// Held across a `__consumer_offsets` append so that the group's records land in the order
    /// memory applies them.
    write_lock: tokio::sync::Mutex<()>,
    /// Tells the timer task that a deadline changed.
    wake: Notify,
}

impl GroupHandle {
    fn new(id: &str) -> Arc<Self> {
        Arc::new(GroupHandle {
            state: Mutex::new(Group::new(id)),
            write_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Group> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the timer tasks share with the coordinator.
#[derive(Debug)]
struct Inner {
    config: CoordinatorConfig,
    groups: Mutex<HashMap<String, Arc<GroupHandle>>>,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, HashMap<String, Arc<GroupHandle>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops a group from the registry, if `handle` is still the one registered.
    fn forget(&self, id: &str, handle: &Arc<GroupHandle>) {
        let mut groups = self.registry();
        if groups.get(id).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            groups.remove(id);
            tracing::info!(group = id, "group removed");
        }
    }

    /// A live group, created (empty) if `create`; a group found dead is dropped and looked up
    /// again.
    fn live_group(&self, id: &str, create: bool) -> Option<Arc<GroupHandle>> {
        for _ in 0..DEAD_GROUP_RETRIES {
            let handle = {
                let mut groups = self.registry();
                match groups.get(id) {
                    Some(h) => Arc::clone(h),
                    None if create => {
                        let h = GroupHandle::new(id);
                        groups.insert(id.to_string(), Arc::clone(&h));
                        h
                    }
                    None => return None,
                }
            };
            if handle.lock().state != GroupState::Dead {
                return Some(handle);
            }
            self.forget(id, &handle);
        }
        None
    }

    /// Bookkeeping after every change to a group: whether an unused empty group should be
    /// forgotten later, and a timer task for whatever deadline is now set.
    /// Runs one operation on a group under its lock, then settles the group's timers and
    /// retention as every operation must.
    fn with_group<R>(self: &Arc<Self>, handle: &Arc<GroupHandle>, op: impl FnOnce(&mut Group, Instant) -> R) -> R {
        let mut g = handle.lock();
        let now = Instant::now();
        let result = op(&mut g, now);
        self.settle(handle, &mut g, now);
        result
    }

    fn settle(self: &Arc<Self>, handle: &Arc<GroupHandle>, g: &mut Group, now: Instant) {
        if g.is_unused() {
            if g.empty_deadline.is_none() {
                g.empty_deadline = Some(now + self.config.empty_group_retention);
            }
        } else {
            g.empty_deadline = None;
        }
        if g.next_deadline().is_none() {
            return;
        }
        if g.timer_running {
            handle.wake.notify_one();
        } else {
            g.timer_running = true;
            tokio::spawn(run_timers(
                Arc::clone(handle),
                Arc::downgrade(self),
                self.config.clone(),
            ));
        }
    }
}

/// One group's timer task: sleeps until the earliest deadline, fires what expired, and exits
/// when no deadline is left.
async fn run_timers(handle: Arc<GroupHandle>, inner: Weak<Inner>, config: CoordinatorConfig) {
    loop {
        let next = {
            let mut g = handle.lock();
            match g.next_deadline() {
                Some(d) => d,
                None => {
                    g.timer_running = false;
                    return;
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = handle.wake.notified() => continue,
        }
        let forget = {
            let mut g = handle.lock();
            let forget = g.fire_timers(Instant::now(), &config);
            forget.then(|| g.id.clone())
        };
        if let (Some(id), Some(inner)) = (forget, inner.upgrade()) {
            inner.forget(&id, &handle);
        }
    }
}

/// A JoinGroup or SyncGroup answered at once or parked until the group can answer it.
#[derive(Debug)]
enum Reply<T> {
    Now(T),
    Parked(oneshot::Receiver<T>),
}

/// Keeps the group coordinator's state: every group and its committed offsets.
#[derive(Debug)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
    /// Set once the committed offsets in `__consumer_offsets` have been read back.
    loaded: tokio::sync::OnceCell<()>,
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        GroupCoordinator {
            inner: Arc::new(Inner {
                config,
                groups: Mutex::new(HashMap::new()),
            }),
            loaded: tokio::sync::OnceCell::new(),
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// Reads the committed offsets back from `__consumer_offsets`, once, before the first group
    /// operation. A failure is retried by the next operation; meanwhile the coordinator is
    /// unavailable, which clients retry.
    pub async fn ensure_loaded(&self, broker: &Arc<Broker>) -> Result<(), ResponseError> {
        if broker.cluster().is_some() {
            // A cluster's coordinators load their partitions when they become leader of them.
            return Ok(());
        }
        self.loaded
            .get_or_try_init(|| async {
                let b = Arc::clone(broker);
                let loaded = tokio::task::spawn_blocking(move || offset_store::load(&b))
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "loading committed offsets panicked");
                        ResponseError::CoordinatorNotAvailable
                    })?
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot load committed offsets");
                        ResponseError::CoordinatorNotAvailable
                    })?;
                let (groups, count) = (loaded.len(), loaded.values().map(BTreeMap::len).sum::<usize>());
                self.restore_offsets(loaded);
                tracing::info!(groups, offsets = count, "committed offsets loaded");
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// `ensure_loaded`, and in a cluster NOT_COORDINATOR unless this broker leads the group's
    /// `__consumer_offsets` partition (clients then look the coordinator up again).
    pub async fn ensure_coordinator(&self, broker: &Arc<Broker>, group_id: &str) -> Result<(), ResponseError> {
        self.ensure_loaded(broker).await?;
        let Some(cluster) = broker.cluster() else {
            return Ok(());
        };
        let (b, key) = (Arc::clone(broker), group_id.to_string());
        let c = Arc::clone(cluster);
        let coordinator = tokio::task::spawn_blocking(move || c.coordinator(&b, &key))
            .await
            .map_err(|_| ResponseError::CoordinatorNotAvailable)??;
        if coordinator == cluster.me() {
            Ok(())
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    /// Installs offsets read from disk, without overwriting anything committed since.
    pub fn restore_offsets(&self, loaded: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>) {
        for (group_id, offsets) in loaded {
            let Some(handle) = self.inner.live_group(&group_id, true) else {
                continue;
            };
            let mut g = handle.lock();
            for (key, offset) in offsets {
                g.offsets.entry(key).or_insert(offset);
            }
            self.inner.settle(&handle, &mut g, Instant::now());
        }
    }

    /// Installs the offsets a new coordinator read from its `__consumer_offsets` partition: they
    /// replace what this broker remembered from an earlier time as coordinator.
    pub fn replace_offsets(&self, loaded: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>) {
        for (group_id, offsets) in loaded {
            let Some(handle) = self.inner.live_group(&group_id, true) else {
                continue;
            };
            let mut g = handle.lock();
            g.offsets = offsets.into_iter().collect();
            self.inner.settle(&handle, &mut g, Instant::now());
        }
    }

    fn session_timeout_error(&self, session_timeout_ms: i32) -> Option<ResponseError> {
        let ms = u64::try_from(session_timeout_ms).ok()?;
        let timeout = Duration::from_millis(ms);
        (timeout < self.inner.config.min_session_timeout || timeout > self.inner.config.max_session_timeout)
            .then_some(ResponseError::InvalidSessionTimeout)
    }

    /// JoinGroup: answers once the join phase ends (or at once with an error, MEMBER_ID_REQUIRED,
    /// or the current generation when nothing changes).
    pub async fn join_group(&self, request: JoinRequest) -> JoinResponse {
        if request.group_id.is_empty() {
            return JoinResponse::error(ResponseError::InvalidGroupId, &request.member_id);
        }
        if request.session_timeout_ms < 0 || self.session_timeout_error(request.session_timeout_ms).is_some() {
            return JoinResponse::error(ResponseError::InvalidSessionTimeout, &request.member_id);
        }
        let Some(handle) = self.inner.live_group(&request.group_id, request.member_id.is_empty()) else {
            return JoinResponse::error(ResponseError::UnknownMemberId, &request.member_id);
        };
        let reply = self
            .inner
            .with_group(&handle, |g, now| g.join(&request, now, &self.inner.config));
        match reply {
            Reply::Now(r) => r,
            // Another JoinGroup of the same member took this one's place.
            Reply::Parked(rx) => rx
                .await
                .unwrap_or_else(|_| JoinResponse::error(ResponseError::RebalanceInProgress, &request.member_id)),
        }
    }

    /// SyncGroup: the leader's call hands out the assignment; followers wait for it.
    pub async fn sync_group(&self, request: SyncRequest) -> SyncResponse {
        if request.group_id.is_empty() {
            return SyncResponse::error(ResponseError::InvalidGroupId);
        }
        let Some(handle) = self.inner.live_group(&request.group_id, false) else {
            return SyncResponse::error(ResponseError::UnknownMemberId);
        };
        let reply = self
            .inner
            .with_group(&handle, |g, now| g.sync(&request, now, &self.inner.config));
        match reply {
            Reply::Now(r) => r,
            Reply::Parked(rx) => rx
                .await
                .unwrap_or_else(|_| SyncResponse::error(ResponseError::RebalanceInProgress)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let handle = self
            .inner
            .live_group(group_id, false)
            .ok_or(ResponseError::UnknownMemberId)?;
        self.inner.with_group(&handle, |g, now| {
            g.heartbeat(member_id, group_instance_id, generation_id, now)
        })
    }

    /// LeaveGroup: removes each member (by member id, or by `group.instance.id` with an empty
    /// member id); the outer error is the group's, the inner ones each member's.
    pub fn leave_group(
        &self,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let handle = self
            .inner
            .live_group(group_id, false)
            .ok_or(ResponseError::UnknownMemberId)?;
        self.inner
            .with_group(&handle, |g, now| g.leave(members, now, &self.inner.config))
    }

    pub fn list_groups(&self) -> Vec<GroupListing> {
        let handles: Vec<Arc<GroupHandle>> = self.inner.registry().values().cloned().collect();
        let mut listed: Vec<GroupListing> = handles
            .iter()
            .filter_map(|h| {
                let g = h.lock();
                (g.state != GroupState::Dead).then(|| GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state,
                })
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// `None` for a group that does not exist.
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let handle = self.inner.live_group(group_id, false)?;
        let g = handle.lock();
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol).cloned().unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable { m.assignment.clone() } else { Bytes::new() },
            })
            .collect();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol } else { String::new() },
            members,
        })
    }

    /// The committed offsets of `partitions` (every committed partition when `None`); a
    /// partition without a commit comes back as `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let handle = self.inner.live_group(group_id, false);
        let g = handle.as_ref().map(|h| h.lock());
        let offsets = g.as_ref().map(|g| &g.offsets);
        match partitions {
            Some(wanted) => wanted
                .into_iter()
                .map(|(topic, partition)| {
                    let found = offsets.and_then(|o| o.get(&(topic.clone(), partition))).cloned();
                    (topic, partition, found)
                })
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|((t, p), o)| (t.clone(), *p, Some(o.clone())))
                .collect(),
        }
    }

    /// OffsetCommit: checks the committer against the group, appends the offsets to
    /// `__consumer_offsets` (fsync'd before this returns) and applies them.
    pub async fn commit_offsets(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        committer: Committer,
        commits: Vec<OffsetCommit>,
    ) -> Result<(), ResponseError> {
        for _ in 0..DEAD_GROUP_RETRIES {
            let handle = match self.inner.live_group(group_id, committer.generation_id < 0) {
                Some(h) => h,
                None if committer.group_id_not_found_error => return Err(ResponseError::GroupIdNotFound),
                None => return Err(ResponseError::IllegalGeneration),
            };
            let task = tokio::spawn(write_commits(
                Arc::clone(&self.inner),
                Arc::clone(broker),
                handle,
                committer.clone(),
                commits.clone(),
            ));
            match task.await {
                Ok(Some(result)) => return result,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(group = group_id, error = %e, "offset commit task failed");
                    return Err(ResponseError::UnknownServerError);
                }
            }
        }
        Err(ResponseError::CoordinatorNotAvailable)
    }

    /// DeleteGroups for one group: only an empty group can go; its offsets are tombstoned.
    pub async fn delete_group(&self, broker: &Arc<Broker>, group_id: &str) -> Result<(), ResponseError> {
        let handle = self
            .inner
            .live_group(group_id, false)
            .ok_or(ResponseError::GroupIdNotFound)?;
        let task = tokio::spawn(delete_group(Arc::clone(&self.inner), Arc::clone(broker), handle));
        task.await.unwrap_or(Err(ResponseError::UnknownServerError))
    }

    /// OffsetDelete: tombstones the offsets of the partitions whose topic no member subscribes
    /// to. The outer error is the group's; each partition gets its own result.
    pub async fn delete_offsets(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Option<ResponseError>)>, ResponseError> {
        let handle = self
            .inner
            .live_group(group_id, false)
            .ok_or(ResponseError::GroupIdNotFound)?;
        let task = tokio::spawn(delete_offsets(
            Arc::clone(&self.inner),
            Arc::clone(broker),
            handle,
            partitions,
        ));
        task.await.unwrap_or(Err(ResponseError::UnknownServerError))
    }
}

/// The body of an offset commit; `None` when the group died before the write could start (the
/// caller looks it up again).
async fn write_commits(
    inner: Arc<Inner>,
    broker: Arc<Broker>,
    handle: Arc<GroupHandle>,
    committer: Committer,
    commits: Vec<OffsetCommit>,
) -> Option<Result<(), ResponseError>> {
    let _serial = handle.write_lock.lock().await;
    let group_id = {
        let mut g = handle.lock();
        if g.state == GroupState::Dead {
            return None;
        }
        let now = Instant::now();
        if let Err(e) = g.validate_offset_commit(&committer, now) {
            inner.settle(&handle, &mut g, now);
            return Some(Err(e));
        }
        g.writes_in_flight += 1;
        g.id.clone()
    };
    let records = commits
        .iter()
        .map(|c| offset_store::commit_record(&group_id, &c.topic, c.partition, &c.offset))
        .collect::<Result<Vec<_>, _>>();
    let written = match records {
        Ok(records) => offset_store::append(&broker, &group_id, records).await,
        Err(e) => {
            tracing::warn!(group = %group_id, error = %e, "offset commit refused");
            Err(ResponseError::InvalidCommitOffsetSize)
        }
    };
    let mut g = handle.lock();
    g.writes_in_flight -= 1;
    if written.is_ok() {
        for c in commits {
            g.offsets.insert((c.topic, c.partition), c.offset);
        }
    }
    inner.settle(&handle, &mut g, Instant::now());
    Some(written)
}

async fn delete_group(inner: Arc<Inner>, broker: Arc<Broker>, handle: Arc<GroupHandle>) -> Result<(), ResponseError> {
    let _serial = handle.write_lock.lock().await;
    let (group_id, keys) = {
        let mut g = handle.lock();
        match g.state {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(ResponseError::NonEmptyGroup),
        }
        g.writes_in_flight += 1;
        (g.id.clone(), g.offsets.keys().cloned().collect::<Vec<_>>())
    };
    let written = tombstone(&broker, &group_id, &keys).await;
    let forget = {
        let mut g = handle.lock();
        g.writes_in_flight -= 1;
        if written.is_ok() {
            for key in &keys {
                g.offsets.remove(key);
            }
        }
        let now = Instant::now();
        let dead = written.is_ok() && g.is_unused();
        if dead {
            g.mark_dead();
        } else {
            inner.settle(&handle, &mut g, now);
        }
        dead
    };
    if forget {
        inner.forget(&group_id, &handle);
    }
    written
}

async fn delete_offsets(
    inner: Arc<Inner>,
    broker: Arc<Broker>,
    handle: Arc<GroupHandle>,
    partitions: Vec<(String, i32)>,
) -> Result<Vec<(String, i32, Option<ResponseError>)>, ResponseError> {
    let _serial = handle.write_lock.lock().await;
    let (group_id, results, doomed) = {
        let mut g = handle.lock();
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = if g.state == GroupState::Empty {
            Default::default()
        } else {
            g.subscribed_topics().ok_or(ResponseError::NonEmptyGroup)?
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut doomed = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(&topic) {
                results.push((topic, partition, Some(ResponseError::GroupSubscribedToTopic)));
                continue;
            }
            let key = (topic.clone(), partition);
            if g.offsets.contains_key(&key) && !doomed.contains(&key) {
                doomed.push(key);
            }
            results.push((topic, partition, None));
        }
        g.writes_in_flight += 1;
        (g.id.clone(), results, doomed)
    };
    let written = tombstone(&broker, &group_id, &doomed).await;
    let mut g = handle.lock();
    g.writes_in_flight -= 1;
    if written.is_ok() {
        for key in &doomed {
            g.offsets.remove(key);
        }
    }
    inner.settle(&handle, &mut g, Instant::now());
    written.map(|()| results)
}

/// Appends tombstones for `keys` of a group (nothing when there are none).
async fn tombstone(broker: &Arc<Broker>, group_id: &str, keys: &[(String, i32)]) -> Result<(), ResponseError> {
    if keys.is_empty() {
        return Ok(());
    }
    let records = keys
        .iter()
        .map(|(t, p)| offset_store::tombstone_record(group_id, t, *p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            tracing::error!(group = group_id, error = %e, "cannot encode offset tombstones");
            ResponseError::UnknownServerError
        })?;
    offset_store::append(broker, group_id, records).await
}

fn new_member(request: &JoinRequest, member_id: String) -> Member {
    Member {
        member_id,
        group_instance_id: request.group_instance_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        rebalance_timeout: rebalance_timeout(request),
        session_timeout: millis(request.session_timeout_ms),
        protocol_type: request.protocol_type.clone(),
        protocols: request.protocols.clone(),
        assignment: Bytes::new(),
        is_new: false,
        join_waiter: None,
        sync_waiter: None,
        heartbeat_deadline: None,
    }
}

/// A member's rebalance timeout; a client that sends none (or a nonsensical one) gets its session
/// timeout, as JoinGroup v0 implies, so the join and sync phases never time out at once.
fn rebalance_timeout(request: &JoinRequest) -> Duration {
    if request.rebalance_timeout_ms > 0 {
        millis(request.rebalance_timeout_ms)
    } else {
        millis(request.session_timeout_ms)
    }
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Kafka's member ids: the client id (or the static member's instance id) and a UUID.
fn new_member_id(request: &JoinRequest) -> String {
    let prefix = request.group_instance_id.as_deref().unwrap_or(&request.client_id);
    format!("{prefix}-{}", Uuid::new_v4())
}

/// The transitions of the classic group state machine.
impl Group {
    fn join(&mut self, request: &JoinRequest, now: Instant, config: &CoordinatorConfig) -> Reply<JoinResponse> {
        let error = |e| Reply::Now(JoinResponse::error(e, &request.member_id));
        if self.state == GroupState::Dead {
            return error(ResponseError::CoordinatorNotAvailable);
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return error(ResponseError::InconsistentGroupProtocol);
        }
        if request.member_id.is_empty() {
            self.join_new_member(request, now, config)
        } else {
            self.join_existing_member(request, now, config)
        }
    }

    fn join_new_member(
        &mut self,
        request: &JoinRequest,
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Reply<JoinResponse> {
        let member_id = new_member_id(request);
        if let Some(instance) = &request.group_instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                return self.replace_static_member(request, instance, &old_id, member_id, now, config);
            }
            return self.add_member_and_rebalance(request, member_id, now, config);
        }
        if request.require_known_member_id {
            // KIP-394: the member must come back with this id; until it does (or its session
            // timeout passes) the join phase waits for it.
            self.pending_members
                .insert(member_id.clone(), now + millis(request.session_timeout_ms));
            return Reply::Now(JoinResponse::error(ResponseError::MemberIdRequired, &member_id));
        }
        self.add_member_and_rebalance(request, member_id, now, config)
    }

    fn join_existing_member(
        &mut self,
        request: &JoinRequest,
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Reply<JoinResponse> {
        let id = request.member_id.as_str();
        if self.pending_members.contains_key(id) {
            return self.add_member_and_rebalance(request, id.to_string(), now, config);
        }
        if let Err(e) = self.validate_member(id, request.group_instance_id.as_deref()) {
            return Reply::Now(JoinResponse::error(e, id));
        }
        let matches = self.members.get(id).is_some_and(|m| m.matches(&request.protocols));
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(request, now, config),
            // Same metadata: it missed the JoinGroup answer; give it the current generation.
            GroupState::CompletingRebalance if matches => Reply::Now(self.join_response(id, false)),
            GroupState::CompletingRebalance => self.update_member_and_rebalance(request, now, config),
            // A rejoining leader forces a rebalance (its view of the topics may have changed).
            GroupState::Stable if matches && !self.is_leader(id) => Reply::Now(self.join_response(id, false)),
            GroupState::Stable => self.update_member_and_rebalance(request, now, config),
            GroupState::Empty | GroupState::Dead => Reply::Now(JoinResponse::error(ResponseError::UnknownMemberId, id)),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        request: &JoinRequest,
        member_id: String,
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Reply<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        let mut member = new_member(request, member_id);
        member.is_new = true;
        // A parked new member cannot heartbeat; if its client went away it must not stay forever.
        member.heartbeat_deadline = Some(now + config.new_member_join_timeout);
        member.join_waiter = Some(tx);
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        tracing::info!(group = %self.id, member = %member.member_id, client = %member.client_id, "member joining");
        self.add_member(member);
        self.maybe_prepare_rebalance_or_complete_join(now, config, "new member joined");
        Reply::Parked(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        request: &JoinRequest,
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Reply<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&request.member_id) {
            m.protocols = request.protocols.clone();
            m.rebalance_timeout = rebalance_timeout(request);
            m.session_timeout = millis(request.session_timeout_ms);
            // Replaces (and so drops) an earlier JoinGroup of the same member still parked.
            m.join_waiter = Some(tx);
        }
        self.maybe_prepare_rebalance_or_complete_join(now, config, "member rejoined");
        Reply::Parked(rx)
    }

    /// KIP-345: a static member that comes back under a new member id takes the old one's place;
    /// the old id is fenced. Unless its subscription changed, a stable group does not rebalance.
    fn replace_static_member(
        &mut self,
        request: &JoinRequest,
        instance: &str,
        old_id: &str,
        new_id: String,
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Reply<JoinResponse> {
        let Some(mut member) = self.members.remove(old_id) else {
            self.static_members.remove(instance);
            return self.add_member_and_rebalance(request, new_id, now, config);
        };
        member.complete_join(JoinResponse::error(ResponseError::FencedInstanceId, old_id));
        member.complete_sync(SyncResponse::error(ResponseError::FencedInstanceId));
        let old_protocols = std::mem::replace(&mut member.protocols, request.protocols.clone());
        let (tx, rx) = oneshot::channel();
        member.member_id = new_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.rebalance_timeout = rebalance_timeout(request);
        member.session_timeout = millis(request.session_timeout_ms);
        member.heartbeat_deadline = Some(now + member.session_timeout);
        member.join_waiter = Some(tx);
        self.members.insert(new_id.clone(), member);
        self.static_members.insert(instance.to_string(), new_id.clone());
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        tracing::info!(group = %self.id, instance, old = old_id, new = %new_id, "static member replaced");
        match self.state {
            GroupState::Stable => {
                let unchanged = self.select_protocol() == self.protocol_name
                    && self.same_subscription(&old_protocols, &request.protocols);
                if unchanged {
                    let response = self.join_response(&new_id, self.is_leader(&new_id));
                    if let Some(m) = self.members.get_mut(&new_id) {
                        m.complete_join(response);
                    }
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(
                        now,
                        config,
                        "static member changed its subscription",
                    );
                }
            }
            GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now, config, "static member rejoined")
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(now, config),
            GroupState::Empty | GroupState::Dead => {}
        }
        Reply::Parked(rx)
    }

    /// Whether two protocol lists subscribe the same way under the chosen protocol: the same
    /// metadata, or for consumers the same topics (owned partitions and generation may differ).
    fn same_subscription(&self, old: &[Protocol], new: &[Protocol]) -> bool {
        let Some(protocol) = &self.protocol_name else {
            return old == new;
        };
        let find = |list: &[Protocol]| list.iter().find(|p| &p.name == protocol).map(|p| p.metadata.clone());
        match (find(old), find(new)) {
            (Some(a), Some(b)) if a == b => true,
            (Some(a), Some(b)) if self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) => {
                let topics = subscription_topics(&a);
                topics.is_some() && topics == subscription_topics(&b)
            }
            _ => false,
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, now: Instant, config: &CoordinatorConfig, reason: &str) {
        if self.can_rebalance() {
            self.prepare_rebalance(now, config, reason);
        } else {
            self.maybe_complete_join_phase(now, config);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, config: &CoordinatorConfig, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment that will not come must rejoin.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.sync_waiter.is_some() {
                    m.complete_sync(SyncResponse::error(ResponseError::RebalanceInProgress));
                    m.heartbeat_deadline = Some(now + m.session_timeout);
                }
            }
        }
        self.sync_deadline = None;
        let initial = self.state == GroupState::Empty;
        if initial {
            let delay = config.initial_rebalance_delay;
            let remaining = self.rebalance_timeout().saturating_sub(delay);
            self.join_timer = Some((now + delay, JoinTimer::Initial { delay, remaining }));
        } else {
            self.join_timer = Some((now + self.rebalance_timeout(), JoinTimer::Rebalance));
        }
        self.transition(GroupState::PreparingRebalance);
        tracing::info!(group = %self.id, generation = self.generation_id, reason, "preparing to rebalance");
        if !initial {
            self.maybe_complete_join_phase(now, config);
        }
    }

    /// Ends the join phase early once every member has rejoined (never during the initial delay).
    fn maybe_complete_join_phase(&mut self, now: Instant, config: &CoordinatorConfig) {
        if self.state == GroupState::PreparingRebalance
            && self.has_all_members_joined()
            && self.previous_state != GroupState::Empty
        {
            self.complete_join(now, config);
        }
    }

    /// The join phase ends: dynamic members that did not rejoin are dropped, a new generation
    /// starts, and every parked JoinGroup is answered (the leader's with the member list).
    fn complete_join(&mut self, now: Instant, _config: &CoordinatorConfig) {
        self.join_timer = None;
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removing it");
            if let Some(mut m) = self.remove_member(&id) {
                m.complete_sync(SyncResponse::error(ResponseError::UnknownMemberId));
            }
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them (or for their
            // sessions to expire).
            let wait = self.rebalance_timeout().max(REJOIN_WAIT_MIN);
            self.join_timer = Some((now + wait, JoinTimer::Rebalance));
            return;
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty);
            tracing::info!(group = %self.id, generation = self.generation_id, "group is empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance);
        let members = self.members_for_leader();
        let leader = self.leader_id.clone().unwrap_or_default();
        for m in self.members.values_mut() {
            let response = JoinResponse {
                error: None,
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: leader.clone(),
                skip_assignment: false,
                member_id: m.member_id.clone(),
                members: if m.member_id == leader {
                    members.clone()
                } else {
                    Vec::new()
                },
            };
            m.complete_join(response);
            m.heartbeat_deadline = Some(now + m.session_timeout);
            m.is_new = false;
        }
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some((now + self.rebalance_timeout(), self.generation_id));
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            leader = %leader,
            "join phase complete; waiting for the leader's assignment"
        );
    }

    /// Keeps the leader if it rejoined, else picks a member that did; false if none did.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self.members.get(&leader).is_some_and(Member::is_awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(m) => {
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    fn sync(&mut self, request: &SyncRequest, now: Instant, _config: &CoordinatorConfig) -> Reply<SyncResponse> {
        let error = |e| Reply::Now(SyncResponse::error(e));
        if self.state == GroupState::Dead {
            return error(ResponseError::CoordinatorNotAvailable);
        }
        let id = request.member_id.as_str();
        if let Err(e) = self.validate_member(id, request.group_instance_id.as_deref()) {
            return error(e);
        }
        if request.generation_id != self.generation_id {
            return error(ResponseError::IllegalGeneration);
        }
        if request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || request
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref())
        {
            return error(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty => error(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => error(ResponseError::RebalanceInProgress),
            GroupState::Dead => error(ResponseError::CoordinatorNotAvailable),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(id) {
                    m.sync_waiter = Some(tx);
                }
                self.remove_pending_sync(id);
                if self.is_leader(id) {
                    let mut assigned: HashMap<&str, &Bytes> =
                        request.assignments.iter().map(|(m, a)| (m.as_str(), a)).collect();
                    let (ptype, pname) = (self.protocol_type.clone(), self.protocol_name.clone());
                    for m in self.members.values_mut() {
                        m.assignment = assigned.remove(m.member_id.as_str()).cloned().unwrap_or_default();
                        if m.sync_waiter.is_some() {
                            m.complete_sync(SyncResponse {
                                error: None,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            });
                            m.heartbeat_deadline = Some(now + m.session_timeout);
                        }
                    }
                    if !assigned.is_empty() {
                        tracing::warn!(group = %self.id, unknown = assigned.len(), "leader assigned to unknown members");
                    }
                    self.transition(GroupState::Stable);
                    tracing::info!(group = %self.id, generation = self.generation_id, "group is stable");
                }
                Reply::Parked(rx)
            }
            GroupState::Stable => {
                self.remove_pending_sync(id);
                let Some(m) = self.members.get_mut(id) else {
                    return error(ResponseError::UnknownMemberId);
                };
                m.heartbeat_deadline = Some(now + m.session_timeout);
                Reply::Now(SyncResponse {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
        }
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance)?;
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        let state = self.state;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        match state {
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline = Some(now + m.session_timeout);
                Err(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline = Some(now + m.session_timeout);
                Ok(())
            }
        }
    }

    fn leave(
        &mut self,
        leaving: &[LeavingMember],
        now: Instant,
        config: &CoordinatorConfig,
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        for l in leaving {
            let member_id = match (l.member_id.as_str(), &l.group_instance_id) {
                ("", Some(instance)) => self.static_members.get(instance).cloned(),
                ("", None) => None,
                (id, _) => Some(id.to_string()),
            };
            let Some(member_id) = member_id else {
                results.push(Err(ResponseError::UnknownMemberId));
                continue;
            };
            if self.pending_members.remove(&member_id).is_some() {
                self.maybe_complete_join_phase(now, config);
                results.push(Ok(()));
                continue;
            }
            if let Err(e) = self.validate_member(&member_id, l.group_instance_id.as_deref()) {
                results.push(Err(e));
                continue;
            }
            tracing::info!(group = %self.id, member = %member_id, "member left");
            self.remove_member_and_update(&member_id, now, config, "member left the group");
            results.push(Ok(()));
        }
        Ok(results)
    }

    fn remove_member_and_update(&mut self, member_id: &str, now: Instant, config: &CoordinatorConfig, reason: &str) {
        if let Some(mut m) = self.remove_member(member_id) {
            m.complete_join(JoinResponse::error(ResponseError::UnknownMemberId, ""));
            m.complete_sync(SyncResponse::error(ResponseError::UnknownMemberId));
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now, config, reason)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(now, config),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Members that did not send SyncGroup within the rebalance timeout are dropped, which
    /// starts another rebalance.
    fn expire_pending_sync(&mut self, generation_id: i32, now: Instant, config: &CoordinatorConfig) {
        if generation_id != self.generation_id
            || !matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable)
            || self.pending_sync.is_empty()
        {
            return;
        }
        let late = std::mem::take(&mut self.pending_sync);
        for id in &late {
            if let Some(mut m) = self.remove_member(id) {
                m.complete_join(JoinResponse::error(ResponseError::UnknownMemberId, ""));
                m.complete_sync(SyncResponse::error(ResponseError::UnknownMemberId));
            }
        }
        tracing::info!(group = %self.id, members = ?late, "members did not sync in time; removing them");
        self.prepare_rebalance(now, config, "members did not sync in time");
    }

    /// OffsetCommit's generation checks for a classic group (Kafka's `validateOffsetCommit`).
    fn validate_offset_commit(&mut self, committer: &Committer, now: Instant) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let instance = committer.group_instance_id.as_deref();
        if committer.generation_id < 0 && self.state == GroupState::Empty {
            // The admin client or a consumer without group management.
            return Ok(());
        }
        if committer.generation_id >= 0 || !committer.member_id.is_empty() || instance.is_some() {
            self.validate_member(&committer.member_id, instance)?;
            if committer.generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else {
            // A "simple" commit while the group has members.
            return Err(ResponseError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        // A commit shows the member is alive, as a heartbeat does.
        if let Some(m) = self.members.get_mut(&committer.member_id)
            && m.heartbeat_deadline.is_some()
        {
            m.heartbeat_deadline = Some(now + m.session_timeout);
        }
        Ok(())
    }

    fn mark_dead(&mut self) {
        self.transition(GroupState::Dead);
        self.join_timer = None;
        self.sync_deadline = None;
        self.empty_deadline = None;
        self.pending_members.clear();
        for m in self.members.values_mut() {
            m.heartbeat_deadline = None;
            m.complete_join(JoinResponse::error(ResponseError::CoordinatorNotAvailable, ""));
            m.complete_sync(SyncResponse::error(ResponseError::CoordinatorNotAvailable));
        }
    }

    /// Fires every deadline that has passed; true when the group should be forgotten.
    fn fire_timers(&mut self, now: Instant, config: &CoordinatorConfig) -> bool {
        if let Some((deadline, kind)) = self.join_timer
            && deadline <= now
        {
            self.join_timer = None;
            match kind {
                JoinTimer::Initial { delay, remaining } if self.new_member_added && !remaining.is_zero() => {
                    // More members arrived during the delay: wait once more for stragglers.
                    self.new_member_added = false;
                    let next = config.initial_rebalance_delay.min(remaining);
                    let left = remaining.saturating_sub(delay);
                    self.join_timer = Some((
                        now + next,
                        JoinTimer::Initial {
                            delay: next,
                            remaining: left,
                        },
                    ));
                }
                _ => self.complete_join(now, config),
            }
        }
        if let Some((deadline, generation)) = self.sync_deadline
            && deadline <= now
        {
            self.sync_deadline = None;
            self.expire_pending_sync(generation, now, config);
        }
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired_pending.is_empty() {
            for id in &expired_pending {
                self.pending_members.remove(id);
            }
            tracing::info!(group = %self.id, members = ?expired_pending, "pending members never joined; dropped");
            self.maybe_complete_join_phase(now, config);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if m.heartbeat_deadline.is_none_or(|d| d > now) {
                continue;
            }
            if m.has_satisfied_heartbeat() {
                // Parked in a rebalance: its deadline restarts when the rebalance answers it.
                m.heartbeat_deadline = None;
                continue;
            }
            tracing::info!(group = %self.id, member = %id, "session timed out; removing member");
            self.remove_member_and_update(&id, now, config, "member's session timed out");
        }
        if let Some(deadline) = self.empty_deadline
            && deadline <= now
        {
            self.empty_deadline = None;
            if self.is_unused() {
                self.mark_dead();
                return true;
            }
        }
        // Re-arm the forgetting of a group that just became unused.
        if self.is_unused() && self.empty_deadline.is_none() {
            self.empty_deadline = Some(now + config.empty_group_retention);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_MS: i32 = 10_000;
    const REBALANCE_MS: i32 = 30_000;

    fn coordinator(initial_delay_ms: u64) -> Arc<GroupCoordinator> {
        Arc::new(GroupCoordinator::new(CoordinatorConfig {
            initial_rebalance_delay: Duration::from_millis(initial_delay_ms),
            ..CoordinatorConfig::default()
        }))
    }

    fn subscription(topics: &[&str]) -> Bytes {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let mut buf = 1i16.to_be_bytes().to_vec();
        ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect())
            .encode(&mut buf, 1)
            .unwrap();
        Bytes::from(buf)
    }

    fn join_request(member_id: &str, topics: &[&str]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol {
                name: "range".into(),
                metadata: subscription(topics),
            }],
            require_known_member_id: false,
            reason: None,
        }
    }

    fn static_request(instance: &str, topics: &[&str]) -> JoinRequest {
        JoinRequest {
            group_instance_id: Some(instance.into()),
            ..join_request("", topics)
        }
    }

    fn spawn_join(c: &Arc<GroupCoordinator>, r: JoinRequest) -> tokio::task::JoinHandle<JoinResponse> {
        let c = Arc::clone(c);
        tokio::spawn(async move { c.join_group(r).await })
    }

    fn spawn_sync(
        c: &Arc<GroupCoordinator>,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> tokio::task::JoinHandle<SyncResponse> {
        let c = Arc::clone(c);
        let r = SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        tokio::spawn(async move { c.sync_group(r).await })
    }

    fn state(c: &GroupCoordinator) -> GroupState {
        c.describe_group("g").map_or(GroupState::Dead, |d| d.state)
    }

    /// Lets spawned tasks run up to their next await without moving the (paused) clock.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// One member joins an empty group and syncs itself to Stable; returns its member id.
    async fn stable_single(c: &Arc<GroupCoordinator>) -> String {
        let joined = c.join_group(join_request("", &["t"])).await;
        assert_eq!(joined.error, None);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, joined.member_id);
        let synced = spawn_sync(
            c,
            &joined.member_id,
            1,
            vec![(joined.member_id.clone(), Bytes::from("a"))],
        )
        .await
        .unwrap();
        assert_eq!((synced.error, synced.assignment), (None, Bytes::from("a")));
        assert_eq!(state(c), GroupState::Stable);
        joined.member_id
    }

    #[tokio::test(start_paused = true)]
    async fn first_member_leads_a_new_generation_and_its_assignment_makes_the_group_stable() {
        let c = coordinator(0);
        let id = stable_single(&c).await;
        assert_eq!(c.heartbeat("g", &id, None, 1), Ok(()));
        assert_eq!(c.heartbeat("g", &id, None, 0), Err(ResponseError::IllegalGeneration));
        assert_eq!(c.heartbeat("g", "nobody", None, 1), Err(ResponseError::UnknownMemberId));
        assert_eq!(c.heartbeat("other", &id, None, 1), Err(ResponseError::UnknownMemberId));
        let d = c.describe_group("g").unwrap();
        assert_eq!(
            (d.protocol_type.as_str(), d.protocol_data.as_str()),
            ("consumer", "range")
        );
        assert_eq!(d.members[0].assignment, Bytes::from("a"));
        assert_eq!(d.members[0].metadata, subscription(&["t"]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_member_without_id_gets_member_id_required_then_joins_with_it() {
        let c = coordinator(0);
        let mut request = join_request("", &["t"]);
        request.require_known_member_id = true;
        let first = c.join_group(request.clone()).await;
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        assert!(first.member_id.starts_with("client-"));
        request.member_id = first.member_id.clone();
        let second = c.join_group(request).await;
        assert_eq!((second.error, second.member_id), (None, first.member_id));
    }

    #[tokio::test(start_paused = true)]
    async fn the_initial_delay_gathers_members_into_one_generation() {
        let c = coordinator(3000);
        let a = spawn_join(&c, join_request("", &["t"]));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!((a.generation_id, b.generation_id), (1, 1));
        assert_eq!(a.leader, b.leader);
        let leader = if a.leader == a.member_id { &a } else { &b };
        assert_eq!(leader.members.len(), 2);
        let follower = if a.leader == a.member_id { &b } else { &a };
        assert!(follower.members.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_joining_member_rebalances_a_stable_group_and_followers_wait_for_the_leaders_sync() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        assert_eq!(c.describe_group("g").unwrap().members.len(), 1);
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        assert_eq!(c.heartbeat("g", &a, None, 1), Err(ResponseError::RebalanceInProgress));
        // The old member rejoins; the join phase ends at once since everyone is back.
        let a2 = c.join_group(join_request(&a, &["t"])).await;
        let b = b.await.unwrap();
        assert_eq!((a2.generation_id, b.generation_id), (2, 2));
        assert_eq!(a2.leader, a);
        assert_eq!(a2.members.len(), 2);
        assert_eq!(state(&c), GroupState::CompletingRebalance);
        // Commits are refused until the assignment is in.
        let committer = Committer {
            member_id: a.clone(),
            group_instance_id: None,
            generation_id: 2,
            group_id_not_found_error: false,
        };
        let handle = c.inner.live_group("g", false).unwrap();
        assert_eq!(
            handle.lock().validate_offset_commit(&committer, Instant::now()),
            Err(ResponseError::RebalanceInProgress)
        );
        let follower = spawn_sync(&c, &b.member_id, 2, vec![]);
        settle().await;
        assert!(!follower.is_finished(), "a follower waits for the leader");
        let leader = spawn_sync(
            &c,
            &a,
            2,
            vec![(a.clone(), Bytes::from("p0")), (b.member_id.clone(), Bytes::from("p1"))],
        )
        .await
        .unwrap();
        assert_eq!(leader.assignment, Bytes::from("p0"));
        assert_eq!(follower.await.unwrap().assignment, Bytes::from("p1"));
        assert_eq!(state(&c), GroupState::Stable);
        assert_eq!(handle.lock().validate_offset_commit(&committer, Instant::now()), Ok(()));
        let stale = Committer {
            generation_id: 1,
            ..committer.clone()
        };
        assert_eq!(
            handle.lock().validate_offset_commit(&stale, Instant::now()),
            Err(ResponseError::IllegalGeneration)
        );
        let simple = Committer {
            member_id: String::new(),
            generation_id: -1,
            ..committer
        };
        assert_eq!(
            handle.lock().validate_offset_commit(&simple, Instant::now()),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        // `a` keeps heartbeating but never rejoins.
        let started = Instant::now();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            if b.is_finished() {
                break;
            }
            let _ = c.heartbeat("g", &a, None, 1);
        }
        let b = b.await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(REBALANCE_MS as u64));
        assert_eq!(
            (b.error, b.generation_id, b.leader.clone()),
            (None, 2, b.member_id.clone())
        );
        assert_eq!(c.heartbeat("g", &a, None, 2), Err(ResponseError::UnknownMemberId));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_session_removes_the_member_and_the_group_empties() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 - 100)).await;
        assert_eq!(c.heartbeat("g", &a, None, 1), Ok(()));
        tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 - 100)).await;
        assert_eq!(state(&c), GroupState::Stable, "the heartbeat renewed the session");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(state(&c), GroupState::Empty);
        assert_eq!(c.heartbeat("g", &a, None, 1), Err(ResponseError::UnknownMemberId));
        assert_eq!(c.describe_group("g").unwrap().members.len(), 0);
        // An empty group without offsets is forgotten after a while.
        tokio::time::sleep(Duration::from_millis(OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT + 1)).await;
        assert!(c.describe_group("g").is_none());
        assert!(c.list_groups().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_that_never_syncs_is_removed_and_the_group_rebalances() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        let a2 = c.join_group(join_request(&a, &["t"])).await;
        let b = b.await.unwrap();
        assert_eq!(a2.generation_id, 2);
        // Only the leader syncs; `b` keeps quiet.
        let synced = spawn_sync(&c, &a, 2, vec![]).await.unwrap();
        assert_eq!(synced.error, None);
        // Both stay alive; `b` just never syncs.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            let _ = c.heartbeat("g", &b.member_id, None, 2);
            if c.heartbeat("g", &a, None, 2).is_err() {
                break;
            }
        }
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        assert_eq!(
            c.heartbeat("g", &b.member_id, None, 2),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(c.heartbeat("g", &a, None, 2), Err(ResponseError::RebalanceInProgress));
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_removes_members_and_rebalances_the_rest() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        let _ = c.join_group(join_request(&a, &["t"])).await;
        let b = b.await.unwrap().member_id;
        let leader = spawn_sync(&c, &a, 2, vec![]);
        let _ = spawn_sync(&c, &b, 2, vec![]).await.unwrap();
        assert_eq!(leader.await.unwrap().error, None);
        assert_eq!(state(&c), GroupState::Stable);
        let leave = |id: &str| LeavingMember {
            member_id: id.into(),
            group_instance_id: None,
        };
        let results = c.leave_group("g", &[leave(&a), leave("ghost")]).unwrap();
        assert_eq!(results, vec![Ok(()), Err(ResponseError::UnknownMemberId)]);
        assert_eq!(state(&c), GroupState::PreparingRebalance);
        assert_eq!(c.heartbeat("g", &b, None, 2), Err(ResponseError::RebalanceInProgress));
        let b3 = c.join_group(join_request(&b, &["t"])).await;
        assert_eq!((b3.generation_id, b3.leader.as_str()), (3, b.as_str()));
        assert_eq!(c.leave_group("g", &[leave(&b)]).unwrap(), vec![Ok(())]);
        settle().await;
        assert_eq!(state(&c), GroupState::Empty);
        assert_eq!(c.leave_group("nope", &[leave(&b)]), Err(ResponseError::UnknownMemberId));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_static_member_takes_over_without_a_rebalance_and_fences_its_old_id() {
        let c = coordinator(0);
        let first = c.join_group(static_request("i1", &["t"])).await;
        assert_eq!(first.error, None);
        assert!(first.member_id.starts_with("i1-"));
        let _ = spawn_sync(
            &c,
            &first.member_id,
            1,
            vec![(first.member_id.clone(), Bytes::from("x"))],
        )
        .await
        .unwrap();
        let again = c.join_group(static_request("i1", &["t"])).await;
        assert_eq!(again.error, None);
        assert_ne!(again.member_id, first.member_id);
        assert_eq!(again.generation_id, 1, "no rebalance");
        assert!(again.skip_assignment, "the leader came back: it must not assign again");
        assert_eq!(state(&c), GroupState::Stable);
        let synced = SyncRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: again.member_id.clone(),
            group_instance_id: Some("i1".into()),
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        };
        assert_eq!(c.sync_group(synced).await.assignment, Bytes::from("x"));
        assert_eq!(
            c.heartbeat("g", &first.member_id, Some("i1"), 1),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(c.heartbeat("g", &again.member_id, Some("i1"), 1), Ok(()));
        let stale = c
            .join_group(JoinRequest {
                member_id: first.member_id.clone(),
                ..static_request("i1", &["t"])
            })
            .await;
        assert_eq!(stale.error, Some(ResponseError::FencedInstanceId));
        // A changed subscription does rebalance.
        let changed = c.join_group(static_request("i1", &["t", "u"])).await;
        assert_eq!((changed.error, changed.generation_id), (None, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn static_members_are_not_dropped_for_missing_a_rebalance_but_dynamic_ones_are() {
        let c = coordinator(0);
        let s = c.join_group(static_request("s", &["t"])).await;
        let _ = spawn_sync(&c, &s.member_id, 1, vec![]).await.unwrap();
        let d = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        // The static member heartbeats but does not rejoin; the rebalance times out and keeps it.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            if d.is_finished() {
                break;
            }
            assert_eq!(
                c.heartbeat("g", &s.member_id, Some("s"), 1),
                Err(ResponseError::RebalanceInProgress)
            );
        }
        let d = d.await.unwrap();
        assert_eq!(d.generation_id, 2);
        assert_eq!(d.leader, d.member_id, "leadership moved to a member that rejoined");
        assert_eq!(d.members.len(), 2, "the static member is still in the group");
    }

    #[tokio::test(start_paused = true)]
    async fn protocols_must_overlap_and_session_timeouts_stay_in_bounds() {
        let c = coordinator(0);
        let _ = stable_single(&c).await;
        let mut other = join_request("", &["t"]);
        other.protocols[0].name = "roundrobin".into();
        assert_eq!(
            c.join_group(other).await.error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        let mut wrong_type = join_request("", &["t"]);
        wrong_type.protocol_type = "connect".into();
        assert_eq!(
            c.join_group(wrong_type).await.error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        for ms in [5_999, 1_800_001, -1] {
            let mut r = join_request("", &["t"]);
            r.session_timeout_ms = ms;
            assert_eq!(
                c.join_group(r).await.error,
                Some(ResponseError::InvalidSessionTimeout),
                "{ms}"
            );
        }
        let mut r = join_request("", &["t"]);
        r.group_id = String::new();
        assert_eq!(c.join_group(r).await.error, Some(ResponseError::InvalidGroupId));
        assert_eq!(
            c.join_group(join_request("unknown-id", &["t"])).await.error,
            Some(ResponseError::UnknownMemberId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sync_checks_generation_and_state() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        assert_eq!(
            spawn_sync(&c, &a, 7, vec![]).await.unwrap().error,
            Some(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            spawn_sync(&c, "ghost", 1, vec![]).await.unwrap().error,
            Some(ResponseError::UnknownMemberId)
        );
        let _b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        assert_eq!(
            spawn_sync(&c, &a, 1, vec![]).await.unwrap().error,
            Some(ResponseError::RebalanceInProgress)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_follower_sync_is_told_to_rejoin_when_a_rebalance_starts() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        let _ = c.join_group(join_request(&a, &["t"])).await;
        let b = b.await.unwrap().member_id;
        let parked = spawn_sync(&c, &b, 2, vec![]);
        settle().await;
        // A third member arrives before the leader syncs.
        let _late = spawn_join(&c, join_request("", &["t"]));
        assert_eq!(parked.await.unwrap().error, Some(ResponseError::RebalanceInProgress));
    }

    #[tokio::test(start_paused = true)]
    async fn simple_commits_are_allowed_only_while_the_group_is_empty() {
        let c = coordinator(0);
        let handle = c.inner.live_group("g", true).unwrap();
        let simple = Committer {
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            group_id_not_found_error: false,
        };
        assert_eq!(handle.lock().validate_offset_commit(&simple, Instant::now()), Ok(()));
        let pretender = Committer {
            member_id: "m".into(),
            generation_id: 1,
            ..simple
        };
        assert_eq!(
            handle.lock().validate_offset_commit(&pretender, Instant::now()),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn groups_are_listed_and_offsets_restored_without_overwriting_newer_commits() {
        let c = coordinator(0);
        let _ = stable_single(&c).await;
        let committed = |o| CommittedOffset {
            offset: o,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        };
        c.inner
            .live_group("g", false)
            .unwrap()
            .lock()
            .offsets
            .insert(("t".into(), 0), committed(10));
        let mut loaded = BTreeMap::new();
        loaded.insert(
            "g".to_string(),
            BTreeMap::from([
                (("t".to_string(), 0), committed(5)),
                (("t".to_string(), 1), committed(7)),
            ]),
        );
        loaded.insert(
            "old".to_string(),
            BTreeMap::from([(("t".to_string(), 0), committed(3))]),
        );
        c.restore_offsets(loaded);
        let fetched = c.fetch_offsets("g", Some(vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 2)]));
        let offsets: Vec<_> = fetched.iter().map(|(_, _, o)| o.as_ref().map(|o| o.offset)).collect();
        assert_eq!(offsets, vec![Some(10), Some(7), None]);
        assert_eq!(c.fetch_offsets("old", None).len(), 1);
        assert!(c.fetch_offsets("missing", None).is_empty());
        let listed = c.list_groups();
        assert_eq!(
            listed,
            vec![
                GroupListing {
                    group_id: "g".into(),
                    protocol_type: "consumer".into(),
                    state: GroupState::Stable
                },
                GroupListing {
                    group_id: "old".into(),
                    protocol_type: String::new(),
                    state: GroupState::Empty
                },
            ]
        );
        // A group with offsets outlives the empty-group retention.
        tokio::time::sleep(Duration::from_millis(OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT * 2)).await;
        assert_eq!(state_of(&c, "old"), GroupState::Empty);
    }

    fn state_of(c: &GroupCoordinator, id: &str) -> GroupState {
        c.describe_group(id).map_or(GroupState::Dead, |d| d.state)
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_member_that_leaves_while_parked_gets_unknown_member_id() {
        let c = coordinator(0);
        let a = stable_single(&c).await;
        let b = spawn_join(&c, join_request("", &["t"]));
        settle().await;
        let b_id = c
            .describe_group("g")
            .unwrap()
            .members
            .into_iter()
            .map(|m| m.member_id)
            .find(|m| *m != a)
            .unwrap();
        let left = c.leave_group(
            "g",
            &[LeavingMember {
                member_id: b_id,
                group_instance_id: None,
            }],
        );
        assert_eq!(left, Ok(vec![Ok(())]));
        assert_eq!(b.await.unwrap().error, Some(ResponseError::UnknownMemberId));
    }
}
