//! `skiffctl partition move|move-status|move-cancel` and `skiffctl cluster decommission`: move
//! partition replicas between brokers with AlterPartitionReassignments and follow the moves with
//! ListPartitionReassignments (KIP-455), as `rpk cluster partitions move` and
//! `kafka-reassign-partitions.sh` do. The broker answers a move once it has recorded the target;
//! the data moves afterwards, so `--wait` polls until the partitions leave the list of moves in
//! progress. The decommission plan is a pure function of one Metadata response (and the moves
//! already in progress), so it is tested without a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use clap::{Args, Subcommand};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest};
use serde::Serialize;

use crate::client::{Client, Metadata, TopicPartition, by_topic, check_topic_error, topic_name};
use crate::error::{CtlError, Result, error_name, one_line};
use crate::group::{TopicSpec, parse_topic_spec};
use crate::output::{Format, Report, Table, emit, ids};
use crate::progress::Progress;
use crate::{Status, timeout_ms};

/// How often `--wait` asks ListPartitionReassignments (Kafka's tools poll about as often).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// `--wait-timeout` default: long enough for a few GiB to move, short enough that a stuck move
/// does not hang a script forever.
pub const WAIT_TIMEOUT_SECS_DEFAULT: u64 = 300;
/// How many partitions an error message names before it says "and N more".
const NAMED_IN_ERRORS: usize = 3;

#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// Move partitions' replicas to other brokers (the first one becomes the preferred leader).
    ///
    /// The command returns once the cluster has recorded the new replicas; the data moves
    /// afterwards (follow it with move-status, or pass --wait). Exit status 1 when any partition
    /// could not be moved.
    Move(MoveArgs),
    /// List the partitions still moving, with the replicas being added and removed.
    MoveStatus(MoveStatusArgs),
    /// Stop moves in progress: the partitions go back to their previous replicas.
    MoveCancel(MoveCancelArgs),
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Partitions to move: a whole topic (clicks) or some of its partitions (clicks:0,1).
    #[arg(required = true, value_name = "TOPIC[:P,…]", value_parser = parse_topic_spec)]
    pub partitions: Vec<TopicSpec>,
    /// The brokers to place each partition's replicas on, preferred leader first, e.g. --to 2,3,4.
    #[arg(long, value_name = "BROKER,…", value_parser = parse_replicas)]
    pub to: Replicas,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct MoveStatusArgs {
    /// Only these topics (clicks) or partitions (clicks:0,1) [default: every partition moving].
    #[arg(value_name = "TOPIC[:P,…]", value_parser = parse_topic_spec)]
    pub partitions: Vec<TopicSpec>,
}

#[derive(Debug, Args)]
pub struct MoveCancelArgs {
    /// Partitions whose move to stop: some (clicks:0,1) or every one of a topic that is moving (clicks).
    #[arg(required = true, value_name = "TOPIC[:P,…]", value_parser = parse_topic_spec)]
    pub partitions: Vec<TopicSpec>,
}

#[derive(Debug, Args)]
pub struct DecommissionArgs {
    /// The broker to move every replica off.
    #[arg(value_name = "BROKER_ID", value_parser = clap::value_parser!(i32).range(0..))]
    pub broker: i32,
    /// Only print the plan; move nothing.
    #[arg(long, conflicts_with = "wait")]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the data has moved (the partitions have left move-status).
    #[arg(long)]
    pub wait: bool,
    /// Stop waiting after this many seconds and fail; the moves go on in the cluster.
    #[arg(long, value_name = "SECONDS", default_value_t = WAIT_TIMEOUT_SECS_DEFAULT, requires = "wait",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub wait_timeout: u64,
}

impl WaitArgs {
    /// How long to wait, or `None` without `--wait`.
    fn limit(&self) -> Option<Duration> {
        self.wait.then(|| Duration::from_secs(self.wait_timeout))
    }
}

/// Broker ids a partition should live on, preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas(pub Vec<i32>);

/// Parses `2,3,4`: broker ids, at least one, none twice (a broker holds at most one replica).
pub fn parse_replicas(s: &str) -> std::result::Result<Replicas, String> {
    let mut out: Vec<i32> = Vec::new();
    for part in s.split(',') {
        let id: i32 = part
            .trim()
            .parse()
            .ok()
            .filter(|&id| id >= 0)
            .ok_or_else(|| format!("expected broker ids like 2,3,4, got {s:?}"))?;
        if out.contains(&id) {
            return Err(format!("broker {id} is listed twice in {s:?}"));
        }
        out.push(id);
    }
    Ok(Replicas(out))
}

pub async fn run(command: &PartitionCommand, client: &mut Client, format: &Format) -> Result<Status> {
    match command {
        PartitionCommand::Move(a) => move_partitions(client, a, format).await,
        PartitionCommand::MoveStatus(a) => {
            let wanted = |tp: &TopicPartition| a.partitions.is_empty() || a.partitions.iter().any(|s| covers(s, tp));
            let rows = ongoing(client, None)
                .await?
                .into_iter()
                .filter(|o| wanted(&o.tp()))
                .collect();
            emit(&MoveStatus(rows), format)?;
            Ok(Status::Ok)
        }
        PartitionCommand::MoveCancel(a) => cancel(client, a, format).await,
    }
}

/// Whether `spec` names `tp`.
fn covers(spec: &TopicSpec, tp: &TopicPartition) -> bool {
    spec.topic == tp.topic && spec.partitions.as_ref().is_none_or(|ps| ps.contains(&tp.partition))
}

/// What became of one partition of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveState {
    /// `--dry-run`: would be moved.
    Planned,
    /// The cluster recorded the target; the data is moving.
    Started,
    /// `--wait` saw the move complete.
    Done,
    /// `--wait` gave up while the partition was still moving.
    Moving,
    /// The move in progress was stopped.
    Cancelled,
    /// Decommission: an earlier request is already moving this replica off the broker.
    AlreadyMoving,
    /// The broker refused this partition; `error` says why.
    Failed,
}

impl MoveState {
    fn word(self) -> &'static str {
        match self {
            MoveState::Planned => "planned",
            MoveState::Started => "started",
            MoveState::Done => "done",
            MoveState::Moving => "moving",
            MoveState::Cancelled => "cancelled",
            MoveState::AlreadyMoving => "already-moving",
            MoveState::Failed => "failed",
        }
    }

    /// The state after `--wait`: a partition that was moving is now done or still moving.
    fn after_wait(self, still_moving: bool) -> MoveState {
        match self {
            MoveState::Started | MoveState::AlreadyMoving if still_moving => MoveState::Moving,
            MoveState::Started | MoveState::AlreadyMoving => MoveState::Done,
            other => other,
        }
    }
}

/// The RESULT column: the state, or the broker's reason for a failure.
fn result_cell(state: MoveState, error: Option<&str>) -> String {
    error.map_or_else(|| state.word().to_string(), str::to_string)
}

/// A failed partition of a request: its Kafka error name and the broker's message.
fn partition_error(code: i16, message: Option<&str>) -> String {
    let name = error_name(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError));
    match message.map(one_line).filter(|m| !m.is_empty()) {
        Some(m) => format!("{name}: {m}"),
        None => name,
    }
}

/// `a-0, a-1, a-2 and 4 more`: partitions named in an error without making it long.
fn some_of<'a>(tps: impl IntoIterator<Item = &'a TopicPartition>) -> String {
    let all: Vec<String> = tps.into_iter().map(TopicPartition::to_string).collect();
    let mut out = all.iter().take(NAMED_IN_ERRORS).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > NAMED_IN_ERRORS {
        out.push_str(&format!(" and {} more", all.len() - NAMED_IN_ERRORS));
    }
    out
}

/// The error for a request in which some partitions failed, or `None` when none did.
fn failures<'a>(rows: impl IntoIterator<Item = (TopicPartition, Option<&'a str>)>) -> Option<CtlError> {
    let mut total = 0;
    let mut failed = Vec::new();
    for (tp, error) in rows {
        total += 1;
        if let Some(e) = error {
            failed.push(format!("{tp}: {e}"));
        }
    }
    let first = failed.first()?.clone();
    Some(CtlError::SomeFailed {
        failed: failed.len(),
        total,
        first,
    })
}

// ---------------------------------------------------------------------------------------------
// AlterPartitionReassignments / ListPartitionReassignments

/// Sends one AlterPartitionReassignments: for each partition its target replicas, or `None` to
/// cancel its move. Returns each partition's error (`None`: accepted), in the order given.
async fn alter(client: &mut Client, changes: &[(TopicPartition, Option<Vec<i32>>)]) -> Result<Vec<Option<String>>> {
    let timeout = timeout_ms(client);
    let conn = client.any();
    let version = conn.version::<AlterPartitionReassignmentsRequest>()?;
    let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for (tp, replicas) in changes {
        topics.entry(&tp.topic).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(tp.partition)
                .with_replicas(replicas.as_ref().map(|r| r.iter().map(|&b| BrokerId(b)).collect())),
        );
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout)
        // v1 (KIP-860): changing the replica count is what `--to` with more or fewer brokers
        // asks for. v0 always allows it, and must be sent with `true`.
        .with_allow_replication_factor_change(true)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    ReassignableTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response = conn.send(&request, version).await?;
    if response.error_code != 0 {
        return Err(CtlError::kafka(
            "reassign partitions",
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let mut answers: HashMap<(String, i32), Option<String>> = HashMap::new();
    for t in response.responses {
        for p in t.partitions {
            let error = (p.error_code != 0).then(|| partition_error(p.error_code, p.error_message.as_deref()));
            answers.insert((t.name.0.to_string(), p.partition_index), error);
        }
    }
    Ok(changes
        .iter()
        .map(|(tp, _)| {
            answers
                .remove(&(tp.topic.clone(), tp.partition))
                .unwrap_or_else(|| Some("no answer from the broker for this partition".into()))
        })
        .collect())
}

/// A partition that is moving, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    /// Every replica during the move: the target's and the leaving ones.
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

impl Ongoing {
    fn tp(&self) -> TopicPartition {
        TopicPartition::new(&self.topic, self.partition)
    }

    /// The replicas the partition is moving to: all of them but the leaving ones, in order.
    fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
}

/// The moves in progress (of `only` those partitions, else all), sorted by topic and partition.
async fn ongoing(client: &mut Client, only: Option<&BTreeSet<TopicPartition>>) -> Result<Vec<Ongoing>> {
    if only.is_some_and(BTreeSet::is_empty) {
        return Ok(Vec::new());
    }
    let timeout = timeout_ms(client);
    let conn = client.any();
    let version = conn.version::<ListPartitionReassignmentsRequest>()?;
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout)
        .with_topics(only.map(|tps| {
            by_topic(tps)
                .into_iter()
                .map(|(t, ps)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name(&t))
                        .with_partition_indexes(ps)
                })
                .collect()
        }));
    let response = conn.send(&request, version).await?;
    if response.error_code != 0 {
        return Err(CtlError::kafka(
            "list partition reassignments",
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut out: Vec<Ongoing> = response
        .topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| Ongoing {
                topic: topic.clone(),
                partition: p.partition_index,
                replicas: ids(p.replicas),
                adding_replicas: ids(p.adding_replicas),
                removing_replicas: ids(p.removing_replicas),
            })
        })
        // A broker may answer with more than was asked; only what was asked counts.
        .filter(|o| only.is_none_or(|tps| tps.contains(&o.tp())))
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// `--wait`: polls ListPartitionReassignments every [`POLL_INTERVAL`] until none of `tps` is
/// listed or `limit` has passed; returns the partitions still moving then.
async fn wait_until_moved(
    client: &mut Client,
    tps: &BTreeSet<TopicPartition>,
    limit: Duration,
) -> Result<BTreeSet<TopicPartition>> {
    if tps.is_empty() {
        return Ok(BTreeSet::new());
    }
    let total = tps.len() as u64;
    let mut progress = Progress::new("moving partitions", "partitions", Some(total), true);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let moving: BTreeSet<TopicPartition> = ongoing(client, Some(tps)).await?.iter().map(Ongoing::tp).collect();
        progress.set(total.saturating_sub(moving.len() as u64));
        let now = tokio::time::Instant::now();
        if moving.is_empty() || now >= deadline {
            progress.finish();
            return Ok(moving);
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// The error for partitions `--wait` gave up on, or `None` when every one arrived.
fn still_moving(moving: &BTreeSet<TopicPartition>, total: usize, limit: Duration) -> Option<CtlError> {
    (!moving.is_empty()).then(|| CtlError::StillMoving {
        moving: moving.len(),
        total,
        secs: limit.as_secs(),
        examples: some_of(moving),
    })
}

/// The partitions `specs` name; a topic without partitions stands for all of them (from Metadata,
/// which also makes an unknown topic an error rather than a row per partition).
async fn resolve(client: &mut Client, specs: &[TopicSpec]) -> Result<BTreeSet<TopicPartition>> {
    let whole: Vec<String> = specs
        .iter()
        .filter(|s| s.partitions.is_none())
        .map(|s| s.topic.clone())
        .collect();
    let meta = if whole.is_empty() {
        None
    } else {
        Some(client.metadata(Some(&whole)).await?)
    };
    let mut out = BTreeSet::new();
    for spec in specs {
        match (&spec.partitions, &meta) {
            (Some(ps), _) => out.extend(ps.iter().map(|&p| TopicPartition::new(&spec.topic, p))),
            (None, Some(meta)) => {
                let topic = meta
                    .topic(&spec.topic)
                    .ok_or_else(|| CtlError::UnknownTopic(spec.topic.clone()))?;
                check_topic_error(topic)?;
                out.extend(
                    topic
                        .partitions
                        .iter()
                        .map(|p| TopicPartition::new(&spec.topic, p.partition)),
                );
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// partition move

/// One partition of `partition move`.
#[derive(Debug, Serialize)]
pub struct MovedPartition {
    pub topic: String,
    pub partition: i32,
    /// The target replicas, preferred leader first.
    pub replicas: Vec<i32>,
    pub result: MoveState,
    /// The broker's reason when `result` is `failed`: the Kafka error name and its message.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Moves(pub Vec<MovedPartition>);

impl Report for Moves {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "RESULT"]);
        for m in &self.0 {
            t.row(vec![
                m.topic.clone(),
                m.partition.to_string(),
                ids(&m.replicas),
                result_cell(m.result, m.error.as_deref()),
            ]);
        }
        t.render()
    }
}

async fn move_partitions(client: &mut Client, args: &MoveArgs, format: &Format) -> Result<Status> {
    if args.wait.wait {
        // Refuse before moving anything, rather than after, when --wait cannot be honoured.
        client.any().version::<ListPartitionReassignmentsRequest>()?;
    }
    let tps = resolve(client, &args.partitions).await?;
    let changes: Vec<(TopicPartition, Option<Vec<i32>>)> =
        tps.into_iter().map(|tp| (tp, Some(args.to.0.clone()))).collect();
    let errors = alter(client, &changes).await?;
    let mut rows: Vec<MovedPartition> = changes
        .iter()
        .zip(errors)
        .map(|((tp, _), error)| MovedPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            replicas: args.to.0.clone(),
            result: if error.is_some() {
                MoveState::Failed
            } else {
                MoveState::Started
            },
            error,
        })
        .collect();
    let mut timed_out = None;
    if let Some(limit) = args.wait.limit() {
        let started: BTreeSet<TopicPartition> = rows
            .iter()
            .filter(|r| r.result == MoveState::Started)
            .map(|r| TopicPartition::new(&r.topic, r.partition))
            .collect();
        let moving = wait_until_moved(client, &started, limit).await?;
        for r in &mut rows {
            r.result = r
                .result
                .after_wait(moving.contains(&TopicPartition::new(&r.topic, r.partition)));
        }
        timed_out = still_moving(&moving, started.len(), limit);
    }
    let failed = failures(
        rows.iter()
            .map(|r| (TopicPartition::new(&r.topic, r.partition), r.error.as_deref())),
    );
    emit(&Moves(rows), format)?;
    finish(failed, timed_out)
}

/// How a command that printed its table ends: a refused partition is the error that counts most,
/// then a `--wait` that gave up.
fn finish(failed: Option<CtlError>, timed_out: Option<CtlError>) -> Result<Status> {
    match failed.or(timed_out) {
        Some(e) => Err(e),
        None => Ok(Status::Ok),
    }
}

// ---------------------------------------------------------------------------------------------
// partition move-status

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct MoveStatus(pub Vec<Ongoing>);

impl Report for MoveStatus {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "no partition reassignment in progress\n".into();
        }
        let mut t = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
        for o in &self.0 {
            t.row(vec![
                o.topic.clone(),
                o.partition.to_string(),
                ids(&o.replicas),
                ids(&o.adding_replicas),
                ids(&o.removing_replicas),
            ]);
        }
        t.render()
    }
}

// ---------------------------------------------------------------------------------------------
// partition move-cancel

/// One partition of `partition move-cancel`.
#[derive(Debug, Serialize)]
pub struct CancelledPartition {
    pub topic: String,
    pub partition: i32,
    pub result: MoveState,
    /// The broker's reason when `result` is `failed` (NO_REASSIGNMENT_IN_PROGRESS, …).
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Cancels(pub Vec<CancelledPartition>);

impl Report for Cancels {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "no partition reassignment in progress: nothing to cancel\n".into();
        }
        let mut t = Table::new(&["TOPIC", "PARTITION", "RESULT"]);
        for c in &self.0 {
            t.row(vec![
                c.topic.clone(),
                c.partition.to_string(),
                result_cell(c.result, c.error.as_deref()),
            ]);
        }
        t.render()
    }
}

async fn cancel(client: &mut Client, args: &MoveCancelArgs, format: &Format) -> Result<Status> {
    let mut tps = BTreeSet::new();
    let mut whole = Vec::new();
    for spec in &args.partitions {
        match &spec.partitions {
            Some(ps) => tps.extend(ps.iter().map(|&p| TopicPartition::new(&spec.topic, p))),
            None => whole.push(spec.topic.clone()),
        }
    }
    // A whole topic means its partitions that are moving: cancelling the others would only fail.
    if !whole.is_empty() {
        let meta = client.metadata(Some(&whole)).await?;
        for name in &whole {
            check_topic_error(meta.topic(name).ok_or_else(|| CtlError::UnknownTopic(name.clone()))?)?;
        }
        let moving = ongoing(client, None).await?;
        tps.extend(moving.iter().filter(|o| whole.contains(&o.topic)).map(Ongoing::tp));
    }
    let changes: Vec<(TopicPartition, Option<Vec<i32>>)> = tps.into_iter().map(|tp| (tp, None)).collect();
    let errors = if changes.is_empty() {
        Vec::new()
    } else {
        alter(client, &changes).await?
    };
    let rows: Vec<CancelledPartition> = changes
        .iter()
        .zip(errors)
        .map(|((tp, _), error)| CancelledPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            result: if error.is_some() {
                MoveState::Failed
            } else {
                MoveState::Cancelled
            },
            error,
        })
        .collect();
    let failed = failures(
        rows.iter()
            .map(|r| (TopicPartition::new(&r.topic, r.partition), r.error.as_deref())),
    );
    emit(&Cancels(rows), format)?;
    finish(failed, None)
}

// ---------------------------------------------------------------------------------------------
// cluster decommission

/// A partition's replica moving off the decommissioned broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub tp: TopicPartition,
    /// The replicas now (for a partition already moving: the ones it is moving to).
    pub from: Vec<i32>,
    /// The same replicas with the decommissioned broker replaced, at its position.
    pub to: Vec<i32>,
}

/// What `cluster decommission` does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DecommissionPlan {
    /// Partitions to reassign, by topic and partition.
    pub moves: Vec<PlannedMove>,
    /// Partitions that an earlier move already takes off the broker: nothing to send for them,
    /// but the broker is not empty until they arrive, so `--wait` waits for them too.
    pub already_moving: Vec<PlannedMove>,
}

/// Plans moving every replica off `broker`: in each partition (internal topics included) that
/// has a replica on it, that replica goes, at the same position (so a preferred leader stays
/// first), to the live broker outside the partition's replicas that holds the fewest replicas,
/// counting the moves planned so far (ties: the lowest id). `moving` gives the target replicas of
/// partitions already moving; they count as the replicas those partitions will have, because a
/// new reassignment replaces the one in progress.
///
/// Fails, planning nothing, when some partition has no such broker (3 brokers and replication
/// factor 3), and when `broker` is neither alive nor holding any replica (a mistyped id).
pub fn plan_decommission(
    meta: &Metadata,
    moving: &BTreeMap<TopicPartition, Vec<i32>>,
    broker: i32,
) -> Result<DecommissionPlan> {
    let mut live: Vec<i32> = meta.brokers.iter().map(|b| b.id).filter(|&id| id != broker).collect();
    live.sort_unstable();
    let mut topics: Vec<_> = meta.topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    // (partition, its replicas now, the replicas it has once the move in progress is done)
    let mut partitions = Vec::new();
    for t in topics {
        for p in &t.partitions {
            let tp = TopicPartition::new(&t.name, p.partition);
            let target = moving.get(&tp).cloned().unwrap_or_else(|| p.replicas.clone());
            partitions.push((tp, &p.replicas, target));
        }
    }
    let mut load: BTreeMap<i32, usize> = live.iter().map(|&b| (b, 0)).collect();
    for r in partitions.iter().flat_map(|(_, _, target)| target) {
        if let Some(n) = load.get_mut(r) {
            *n += 1;
        }
    }
    let mut plan = DecommissionPlan::default();
    let mut stuck = Vec::new();
    for (tp, current, target) in partitions {
        let Some(position) = target.iter().position(|&r| r == broker) else {
            if current.contains(&broker) {
                plan.already_moving.push(PlannedMove {
                    tp,
                    from: current.clone(),
                    to: target,
                });
            }
            continue;
        };
        let candidate = live
            .iter()
            .copied()
            .filter(|b| !target.contains(b))
            .min_by_key(|b| (load.get(b).copied().unwrap_or(0), *b));
        let Some(to_broker) = candidate else {
            stuck.push(tp);
            continue;
        };
        *load.entry(to_broker).or_default() += 1;
        let mut to = target.clone();
        to[position] = to_broker;
        plan.moves.push(PlannedMove { tp, from: target, to });
    }
    if !stuck.is_empty() {
        return Err(CtlError::Refused(format!(
            "cannot decommission broker {broker}: no other live broker can take its replica of {} \
             ({} partition{}; live brokers: {}); add a broker or lower their replication factor first",
            some_of(&stuck),
            stuck.len(),
            if stuck.len() == 1 { "" } else { "s" },
            ids(&live),
        )));
    }
    if plan.moves.is_empty() && plan.already_moving.is_empty() && meta.broker(broker).is_none() {
        return Err(CtlError::Refused(format!(
            "broker {broker} is not in the cluster and holds no replicas (brokers: {})",
            ids(&live)
        )));
    }
    Ok(plan)
}

/// One partition of `cluster decommission`.
#[derive(Debug, Serialize)]
pub struct Relocation {
    pub topic: String,
    pub partition: i32,
    /// The replicas before the move.
    pub from: Vec<i32>,
    /// The replicas after it: the decommissioned broker replaced at its position.
    pub to: Vec<i32>,
    pub result: MoveState,
    /// The broker's reason when `result` is `failed`.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Decommissioned {
    #[serde(skip)]
    pub broker: i32,
    pub moves: Vec<Relocation>,
}

impl Report for Decommissioned {
    fn text(&self) -> String {
        if self.moves.is_empty() {
            return format!("broker {} holds no replicas: nothing to move\n", self.broker);
        }
        let mut t = Table::new(&["TOPIC", "PARTITION", "FROM", "TO", "RESULT"]);
        for m in &self.moves {
            t.row(vec![
                m.topic.clone(),
                m.partition.to_string(),
                ids(&m.from),
                ids(&m.to),
                result_cell(m.result, m.error.as_deref()),
            ]);
        }
        t.render()
    }
}

/// `cluster decommission`: plans from one Metadata response (and the moves in progress), sends
/// every move in one request, and with `--wait` waits until the broker holds nothing.
pub async fn decommission(client: &mut Client, args: &DecommissionArgs, format: &Format) -> Result<Status> {
    let meta = client.metadata(None).await?;
    let moving: BTreeMap<TopicPartition, Vec<i32>> = ongoing(client, None)
        .await?
        .iter()
        .map(|o| (o.tp(), o.target()))
        .collect();
    let plan = plan_decommission(&meta, &moving, args.broker)?;
    let errors = if args.dry_run || plan.moves.is_empty() {
        vec![None; plan.moves.len()]
    } else {
        let changes: Vec<(TopicPartition, Option<Vec<i32>>)> =
            plan.moves.iter().map(|m| (m.tp.clone(), Some(m.to.clone()))).collect();
        alter(client, &changes).await?
    };
    let relocation = |m: &PlannedMove, result: MoveState, error: Option<String>| Relocation {
        topic: m.tp.topic.clone(),
        partition: m.tp.partition,
        from: m.from.clone(),
        to: m.to.clone(),
        result,
        error,
    };
    let sent = if args.dry_run {
        MoveState::Planned
    } else {
        MoveState::Started
    };
    let mut rows: Vec<Relocation> = plan
        .moves
        .iter()
        .zip(errors)
        .map(|(m, error)| {
            let result = if error.is_some() { MoveState::Failed } else { sent };
            relocation(m, result, error)
        })
        .chain(
            plan.already_moving
                .iter()
                .map(|m| relocation(m, MoveState::AlreadyMoving, None)),
        )
        .collect();
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut timed_out = None;
    if let Some(limit) = args.wait.limit() {
        let waiting: BTreeSet<TopicPartition> = rows
            .iter()
            .filter(|r| matches!(r.result, MoveState::Started | MoveState::AlreadyMoving))
            .map(|r| TopicPartition::new(&r.topic, r.partition))
            .collect();
        let still = wait_until_moved(client, &waiting, limit).await?;
        for r in &mut rows {
            r.result = r
                .result
                .after_wait(still.contains(&TopicPartition::new(&r.topic, r.partition)));
        }
        timed_out = still_moving(&still, waiting.len(), limit);
    }
    let failed = failures(
        rows.iter()
            .map(|r| (TopicPartition::new(&r.topic, r.partition), r.error.as_deref())),
    );
    emit(
        &Decommissioned {
            broker: args.broker,
            moves: rows,
        },
        format,
    )?;
    finish(failed, timed_out)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::client::{BrokerMeta, PartitionMeta, TopicMeta};
    use crate::cluster::ClusterCommand;

    /// A cluster of `brokers` with topics given as each partition's replicas.
    fn cluster(brokers: &[i32], topics: &[(&str, &[&[i32]])]) -> Metadata {
        Metadata {
            cluster_id: None,
            controller: brokers.first().copied().unwrap_or(-1),
            brokers: brokers
                .iter()
                .map(|&id| BrokerMeta {
                    id,
                    host: "h".into(),
                    port: 9092,
                    rack: None,
                })
                .collect(),
            topics: topics
                .iter()
                .map(|(name, partitions)| TopicMeta {
                    name: name.to_string(),
                    id: uuid::Uuid::nil(),
                    internal: name.starts_with("__"),
                    error: 0,
                    partitions: (0..)
                        .zip(partitions.iter())
                        .map(|(partition, replicas)| PartitionMeta {
                            partition,
                            error: 0,
                            leader: replicas[0],
                            leader_epoch: 0,
                            replicas: replicas.to_vec(),
                            isr: replicas.to_vec(),
                            offline: vec![],
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn moves(plan: &DecommissionPlan) -> Vec<(String, Vec<i32>, Vec<i32>)> {
        plan.moves
            .iter()
            .map(|m| (m.tp.to_string(), m.from.clone(), m.to.clone()))
            .collect()
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn decommission_sends_each_replica_to_the_least_loaded_broker_counting_the_plan() {
        // Load without broker 4: 1 → 2, 2 → 2, 3 → 1.
        let meta = cluster(&[1, 2, 3, 4], &[("a", &[&[1, 4], &[2, 4], &[4, 3], &[1, 2]])]);
        let plan = plan_decommission(&meta, &BTreeMap::new(), 4).unwrap();
        assert_eq!(
            moves(&plan),
            vec![
                // 3 holds fewest (1).
                (s("a-0"), vec![1, 4], vec![1, 3]),
                // 1 and 3 now both hold 2 (3 got a-0): the lower id wins. Without counting the
                // plan, 3 would take this one too.
                (s("a-1"), vec![2, 4], vec![2, 1]),
                // 1 holds 3 now, 2 holds 2; 3 is already a replica. Position 0 is kept, so the
                // preferred leader is the replacement.
                (s("a-2"), vec![4, 3], vec![2, 3]),
            ]
        );
        assert!(plan.already_moving.is_empty());
    }

    #[test]
    fn decommission_spreads_many_partitions_evenly() {
        let replicas: Vec<Vec<i32>> = (0..12).map(|p| vec![p % 3, 3]).collect();
        let refs: Vec<&[i32]> = replicas.iter().map(Vec::as_slice).collect();
        let meta = cluster(&[0, 1, 2, 3, 4, 5], &[("t", &refs)]);
        let plan = plan_decommission(&meta, &BTreeMap::new(), 3).unwrap();
        assert_eq!(plan.moves.len(), 12);
        let mut load: BTreeMap<i32, usize> = BTreeMap::new();
        for m in &plan.moves {
            assert_eq!(m.to[0], m.from[0], "the other replica stays where it is: {m:?}");
            assert!(!m.to.contains(&3));
            *load.entry(m.to[1]).or_default() += 1;
        }
        // 0, 1, 2 start with 4 each and 4, 5 with none: 4 and 5 alternate until they hold 4
        // each (t-0..t-7), then t-8..t-10 go to 0, 1, 2 (the lowest id that is not the
        // partition's other replica and holds 4), and t-11 to 4.
        assert_eq!(load, BTreeMap::from([(0, 1), (1, 1), (2, 1), (4, 5), (5, 4)]));
        let total: BTreeMap<i32, usize> =
            plan.moves
                .iter()
                .flat_map(|m| m.to.clone())
                .fold(BTreeMap::new(), |mut acc, b| {
                    *acc.entry(b).or_default() += 1;
                    acc
                });
        let (min, max) = (total.values().min().unwrap(), total.values().max().unwrap());
        assert!(max - min <= 1, "replicas per broker after the plan: {total:?}");
    }

    #[test]
    fn decommission_leaves_partitions_without_the_broker_alone_and_plans_internal_topics() {
        let meta = cluster(
            &[1, 2, 3],
            &[
                ("__consumer_offsets", &[&[3], &[1]]),
                ("b", &[&[1, 2], &[2, 1]]),
                ("c", &[&[2, 3]]),
            ],
        );
        let plan = plan_decommission(&meta, &BTreeMap::new(), 3).unwrap();
        assert_eq!(
            moves(&plan),
            vec![
                // Load without 3: 1 → 3, 2 → 3; tie to the lower id.
                (s("__consumer_offsets-0"), vec![3], vec![1]),
                (s("c-0"), vec![2, 3], vec![2, 1]),
            ]
        );
    }

    #[test]
    fn decommission_fails_when_a_partition_has_nowhere_to_go() {
        let meta = cluster(&[1, 2, 3], &[("t", &[&[1, 2, 3], &[3, 1, 2], &[1, 2]])]);
        let err = plan_decommission(&meta, &BTreeMap::new(), 3).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CtlError::Refused(_)));
        assert!(
            text.contains("cannot decommission broker 3")
                && text.contains("t-0, t-1 (2 partitions; live brokers: 1,2)"),
            "{text}"
        );
        // A single broker cannot be decommissioned either.
        let meta = cluster(&[0], &[("t", &[&[0]])]);
        assert!(plan_decommission(&meta, &BTreeMap::new(), 0).is_err());
    }

    #[test]
    fn decommission_of_a_dead_broker_moves_its_replicas_and_an_unknown_id_is_refused() {
        // Broker 3 is down (not in Metadata's brokers) but still holds a replica.
        let meta = cluster(&[1, 2], &[("t", &[&[1, 3], &[1, 2]])]);
        let plan = plan_decommission(&meta, &BTreeMap::new(), 3).unwrap();
        assert_eq!(moves(&plan), vec![(s("t-0"), vec![1, 3], vec![1, 2])]);
        let err = plan_decommission(&meta, &BTreeMap::new(), 9).unwrap_err();
        assert!(err.to_string().contains("broker 9 is not in the cluster"), "{err}");
        // A live broker without replicas: nothing to do, and that is fine.
        let meta = cluster(&[1, 2, 5], &[("t", &[&[1, 2]])]);
        assert_eq!(
            plan_decommission(&meta, &BTreeMap::new(), 5).unwrap(),
            DecommissionPlan::default()
        );
    }

    #[test]
    fn decommission_plans_from_the_targets_of_moves_in_progress() {
        // t-0 is moving from 1,3 to 1,2 (Metadata lists every replica during the move): already
        // leaving 3. t-1 is moving from 3,1 to 3,4: 3 stays in its target, so that is replaced.
        let meta = cluster(&[1, 2, 3, 4], &[("t", &[&[1, 2, 3], &[3, 4, 1]])]);
        let moving = BTreeMap::from([
            (TopicPartition::new("t", 0), vec![1, 2]),
            (TopicPartition::new("t", 1), vec![3, 4]),
        ]);
        let plan = plan_decommission(&meta, &moving, 3).unwrap();
        assert_eq!(
            plan.already_moving,
            vec![PlannedMove {
                tp: TopicPartition::new("t", 0),
                from: vec![1, 2, 3],
                to: vec![1, 2],
            }]
        );
        // Load of the targets: 1 → 1, 2 → 1, 4 → 1: the lowest id.
        assert_eq!(moves(&plan), vec![(s("t-1"), vec![3, 4], vec![1, 4])]);
    }

    #[test]
    fn ongoing_targets_leave_out_the_removing_replicas_in_order() {
        let o = Ongoing {
            topic: "t".into(),
            partition: 0,
            replicas: vec![4, 1, 2, 3],
            adding_replicas: vec![4],
            removing_replicas: vec![3],
        };
        assert_eq!(o.target(), vec![4, 1, 2]);
    }

    #[test]
    fn replica_lists_parse_and_refuse_duplicates() {
        assert_eq!(parse_replicas("2,3,4"), Ok(Replicas(vec![2, 3, 4])));
        assert_eq!(parse_replicas(" 0 , 7"), Ok(Replicas(vec![0, 7])));
        assert!(
            parse_replicas("2,3,2")
                .unwrap_err()
                .contains("broker 2 is listed twice")
        );
        for bad in ["", "2,", "a", "-1", "1,,2"] {
            assert!(parse_replicas(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn results_show_the_reason_and_failures_name_one() {
        assert_eq!(result_cell(MoveState::Started, None), "started");
        assert_eq!(
            partition_error(39, Some("broker 9\nis not alive")),
            "INVALID_REPLICA_ASSIGNMENT: broker 9 is not alive"
        );
        assert_eq!(partition_error(85, None), "NO_REASSIGNMENT_IN_PROGRESS");
        let tps: Vec<TopicPartition> = (0..5).map(|p| TopicPartition::new("t", p)).collect();
        assert_eq!(some_of(&tps), "t-0, t-1, t-2 and 2 more");
        let errors = [None, Some("UNKNOWN_TOPIC_OR_PARTITION"), Some("X")];
        let e = failures(tps.iter().cloned().zip(errors)).unwrap();
        assert_eq!(
            e.to_string(),
            "2 of 3 partitions failed, e.g. t-1: UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert!(failures(tps.iter().cloned().zip([None, None])).is_none());
        assert_eq!(MoveState::Started.after_wait(false), MoveState::Done);
        assert_eq!(MoveState::AlreadyMoving.after_wait(true), MoveState::Moving);
        assert_eq!(MoveState::Failed.after_wait(false), MoveState::Failed);
    }

    #[test]
    fn move_commands_parse() {
        let cli = Cli::try_parse_from([
            "skiffctl",
            "partition",
            "move",
            "clicks:0,1",
            "orders",
            "--to",
            "2,3,4",
            "--wait",
            "--wait-timeout",
            "60",
        ])
        .unwrap();
        let Command::Partition(PartitionCommand::Move(a)) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(a.to, Replicas(vec![2, 3, 4]));
        assert_eq!(a.partitions[0].partitions, Some(vec![0, 1]));
        assert_eq!(a.partitions[1].partitions, None);
        assert_eq!(a.wait.limit(), Some(Duration::from_secs(60)));

        let cli = Cli::try_parse_from(["skiffctl", "partition", "move", "t:0", "--to", "1"]).unwrap();
        let Command::Partition(PartitionCommand::Move(a)) = cli.command else {
            panic!()
        };
        assert_eq!((a.wait.wait, a.wait.wait_timeout), (false, WAIT_TIMEOUT_SECS_DEFAULT));
        assert_eq!(a.wait.limit(), None);

        let refused = |args: &[&str]| {
            let mut all = vec!["skiffctl"];
            all.extend(args);
            Cli::try_parse_from(all).unwrap_err().kind()
        };
        use clap::error::ErrorKind;
        assert_eq!(
            refused(&["partition", "move", "t:0"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["partition", "move", "--to", "1"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["partition", "move", "t:x", "--to", "1"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["partition", "move", "t", "--to", "1,1"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["partition", "move", "t", "--to", "1", "--wait-timeout", "5"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["partition", "move", "t", "--to", "1", "--wait", "--wait-timeout", "0"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["partition", "move-cancel"]),
            ErrorKind::MissingRequiredArgument
        );

        let cli = Cli::try_parse_from(["skiffctl", "partition", "move-status"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Partition(PartitionCommand::MoveStatus(MoveStatusArgs { ref partitions })) if partitions.is_empty()
        ));
        let cli = Cli::try_parse_from(["skiffctl", "partition", "move-cancel", "t:3"]).unwrap();
        let Command::Partition(PartitionCommand::MoveCancel(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.partitions[0].partitions, Some(vec![3]));
    }

    #[test]
    fn decommission_parses() {
        let cli = Cli::try_parse_from(["skiffctl", "cluster", "decommission", "3", "--wait"]).unwrap();
        let Command::Cluster(ClusterCommand::Decommission(a)) = cli.command else {
            panic!()
        };
        assert_eq!((a.broker, a.dry_run), (3, false));
        assert_eq!(a.wait.limit(), Some(Duration::from_secs(WAIT_TIMEOUT_SECS_DEFAULT)));
        let err = Cli::try_parse_from(["skiffctl", "cluster", "decommission", "3", "--dry-run", "--wait"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(Cli::try_parse_from(["skiffctl", "cluster", "decommission", "x"]).is_err());
        assert!(Cli::try_parse_from(["skiffctl", "cluster", "decommission"]).is_err());
    }
}
