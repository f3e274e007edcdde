//! `skiffctl group`: list consumer groups, describe one (state, members, assignment, and per
//! partition the committed offset, the log end and the lag operators watch), reset its committed
//! offsets, delete groups. Like `kafka-consumer-groups.sh`: group requests go to the group's
//! coordinator, log ends come from each partition's leader, and offsets are only reset in a group
//! without active members (a dry run unless `--execute`).
//!
//! The OffsetFetch / OffsetCommit helpers here also serve `consume --group`, which commits as a
//! "simple" consumer: generation -1 and no member id, as Kafka accepts for groups without members.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, Message, StrBytes};
use serde::Serialize;

use crate::client::{
    Client, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, Metadata, TopicPartition, by_topic, check_topic_error, group_id,
    topic_name,
};
use crate::error::{CtlError, Result};
use crate::output::{Format, Report, Table, dash, emit, fields};
use crate::progress::Progress;
use crate::{Status, warn};

/// Partitions handled per round of requests when resetting, so progress can move.
const RESET_CHUNK: usize = 500;
/// The protocol type of classic consumer groups, whose assignments this tool can read.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the consumer groups of every broker.
    List,
    /// Show a group's state and members, and per partition its committed offset, log end and lag.
    Describe(DescribeArgs),
    /// Move a group's committed offsets; a dry run that changes nothing unless --execute is given.
    ///
    /// The group must have no active members (stop its consumers first), as in Kafka. New
    /// offsets outside a partition's log are moved to its log start or log end.
    ResetOffsets(ResetArgs),
    /// Delete groups and their committed offsets (a group must have no active members).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The group id.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Group ids to delete.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// A topic and optionally some of its partitions: `orders` or `orders:0,2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    pub partitions: Option<Vec<i32>>,
}

pub fn parse_topic_spec(s: &str) -> std::result::Result<TopicSpec, String> {
    let (topic, partitions) = match s.split_once(':') {
        Some((t, ps)) => {
            let parsed: std::result::Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
            match parsed {
                Ok(v) if !v.is_empty() && v.iter().all(|&p| p >= 0) => (t, Some(v)),
                _ => {
                    return Err(format!(
                        "expected TOPIC or TOPIC:P,P,… with partition numbers, got {s:?}"
                    ));
                }
            }
        }
        None => (s, None),
    };
    if topic.is_empty() {
        return Err("empty topic name".into());
    }
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions,
    })
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The group id.
    pub group: String,
    /// Topic to reset, all its partitions (orders) or some (orders:0,1); repeatable.
    #[arg(long = "topic", value_name = "TOPIC[:P,…]", required = true, value_parser = parse_topic_spec)]
    pub topics: Vec<TopicSpec>,
    #[command(flatten)]
    pub target: ResetTarget,
    /// Only show the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// To each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's log end offset (the high watermark): skip everything not yet read.
    #[arg(long)]
    pub to_latest: bool,
    /// To this offset in every chosen partition.
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// To the first offset whose timestamp is at or after TS: YYYY-MM-DDTHH:MM:SS[.sss][Z|±HH:MM]
    /// (UTC without a zone) or Unix milliseconds.
    #[arg(long, value_name = "TS", value_parser = crate::time::parse_datetime)]
    pub to_datetime: Option<i64>,
    /// Move the committed offset by N (negative: back) in every chosen partition.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
}

pub async fn run(command: &GroupCommand, client: &mut Client, format: &Format) -> Result<Status> {
    match command {
        GroupCommand::List => emit(&list(client).await?, format)?,
        GroupCommand::Describe(a) => emit(&describe(client, &a.name).await?, format)?,
        GroupCommand::ResetOffsets(a) => {
            let plan = reset(client, a).await?;
            emit(&plan, format)?;
            if !plan.executed {
                warn("dry run: no offsets changed; run again with --execute to commit them");
            }
        }
        GroupCommand::Delete(a) => {
            let (report, error) = delete(client, &a.names).await;
            if !report.deleted.is_empty() || error.is_none() {
                emit(&report, format)?;
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
    }
    Ok(Status::Ok)
}

// ---------------------------------------------------------------------------------------------
// OffsetFetch / OffsetCommit, shared with `consume --group`

/// The committed offsets of `group` (for `only` those partitions, else every partition it has
/// committed); partitions without a commit are absent.
pub async fn committed(
    client: &mut Client,
    group: &str,
    only: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let conn = client.coordinator_conn(group).await?;
    let version = conn.version::<OffsetFetchRequest>()?;
    let context = || format!("fetch committed offsets of group {group}");
    let mut out = BTreeMap::new();
    let mut take = |topic: &str, partition: i32, offset: i64, code: i16| -> Result<()> {
        if code != 0 {
            return Err(CtlError::kafka(
                format!("{} ({topic}-{partition})", context()),
                code,
                None,
            ));
        }
        if offset >= 0 {
            out.insert(TopicPartition::new(topic, partition), offset);
        }
        Ok(())
    };
    let group_missing = |code: i16| code == ResponseError::GroupIdNotFound.code();
    if version >= 8 {
        let topics = only.map(|tps| {
            by_topic(tps)
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(&t))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
        let request = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(topics),
        ]);
        let response = conn.send(&request, version).await?;
        for g in response.groups {
            if group_missing(g.error_code) {
                continue;
            }
            if g.error_code != 0 {
                return Err(CtlError::kafka(context(), g.error_code, None));
            }
            for t in g.topics {
                for p in t.partitions {
                    take(t.name.0.as_str(), p.partition_index, p.committed_offset, p.error_code)?;
                }
            }
        }
    } else {
        if version < 2 && only.is_none() {
            return Err(CtlError::Unsupported {
                addr: conn.addr().to_string(),
                api: "OffsetFetch".into(),
                detail: format!(" for all topics at v{version}"),
            });
        }
        let topics = only.map(|tps| {
            by_topic(tps)
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(&t))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        let response = conn.send(&request, version).await?;
        if group_missing(response.error_code) {
            return Ok(out);
        }
        if response.error_code != 0 {
            return Err(CtlError::kafka(context(), response.error_code, None));
        }
        for t in response.topics {
            for p in t.partitions {
                take(t.name.0.as_str(), p.partition_index, p.committed_offset, p.error_code)?;
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` for `group` as a simple consumer (generation -1, no member id), which Kafka
/// accepts for a group without active members.
pub async fn commit(client: &mut Client, group: &str, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let conn = client.coordinator_conn(group).await?;
    let version = conn.version::<OffsetCommitRequest>()?;
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, &offset) in offsets {
        topics.entry(tp.topic.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(offset),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let response = conn.send(&request, version).await?;
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(CtlError::kafka(
                    format!("commit offset of {}-{} for group {group}", t.name.0, p.partition_index),
                    p.error_code,
                    None,
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// list

#[derive(Debug, Serialize)]
pub struct GroupRow {
    pub group: String,
    /// Absent when the broker does not say (ListGroups < v4).
    pub state: Option<String>,
    pub protocol_type: String,
    pub coordinator: i32,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct GroupList(pub Vec<GroupRow>);

impl Report for GroupList {
    fn text(&self) -> String {
        let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
        for g in &self.0 {
            t.row(vec![
                g.group.clone(),
                dash(g.state.as_deref()),
                if g.protocol_type.is_empty() {
                    "-".into()
                } else {
                    g.protocol_type.clone()
                },
                g.coordinator.to_string(),
            ]);
        }
        t.render()
    }
}

/// ListGroups on every broker: each lists the groups it coordinates.
async fn list(client: &mut Client) -> Result<GroupList> {
    let meta = client.metadata(Some(&[])).await?;
    let mut rows = Vec::new();
    for b in &meta.brokers {
        let conn = client.broker(b.id).await?;
        let version = conn.version::<ListGroupsRequest>()?;
        let response = conn.send(&ListGroupsRequest::default(), version).await?;
        if response.error_code != 0 {
            return Err(CtlError::kafka(
                format!("list groups on broker {}", b.id),
                response.error_code,
                None,
            ));
        }
        for g in response.groups {
            rows.push(GroupRow {
                group: g.group_id.0.to_string(),
                state: (version >= 4).then(|| g.group_state.to_string()),
                protocol_type: g.protocol_type.to_string(),
                coordinator: b.id,
            });
        }
    }
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    rows.dedup_by(|a, b| a.group == b.group);
    Ok(GroupList(rows))
}

// ---------------------------------------------------------------------------------------------
// describe

#[derive(Debug, Serialize)]
pub struct Assigned {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Serialize)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub assignment: Vec<Assigned>,
}

#[derive(Debug, Serialize)]
pub struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    /// Log end minus committed offset; absent without a commit.
    pub lag: Option<i64>,
    pub member_id: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GroupDescription {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor of a consumer group (`range`, `cooperative-sticky`, …).
    pub protocol: String,
    pub coordinator: i32,
    pub members: Vec<Member>,
    pub offsets: Vec<OffsetRow>,
    pub total_lag: i64,
}

impl Report for GroupDescription {
    fn text(&self) -> String {
        let protocol = match (self.protocol_type.as_str(), self.protocol.as_str()) {
            ("", _) => "-".to_string(),
            (t, "") => t.to_string(),
            (t, p) => format!("{t} ({p})"),
        };
        let mut out = fields(&[
            ("Group", self.group.clone()),
            ("State", self.state.clone()),
            ("Protocol", protocol),
            ("Coordinator", self.coordinator.to_string()),
            ("Members", self.members.len().to_string()),
            ("Total lag", self.total_lag.to_string()),
        ]);
        if !self.members.is_empty() {
            let mut t = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
            for m in &self.members {
                let assignment = m
                    .assignment
                    .iter()
                    .map(|a| {
                        let ps: Vec<String> = a.partitions.iter().map(i32::to_string).collect();
                        format!("{}:{}", a.topic, ps.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
                t.row(vec![
                    m.member_id.clone(),
                    or_dash(&m.client_id),
                    or_dash(&m.client_host),
                    if assignment.is_empty() { "-".into() } else { assignment },
                ]);
            }
            out.push('\n');
            out.push_str(&t.render());
        }
        if !self.offsets.is_empty() {
            let mut t = Table::new(&[
                "TOPIC",
                "PARTITION",
                "COMMITTED",
                "LOG-END",
                "LAG",
                "MEMBER-ID",
                "CLIENT-ID",
            ]);
            for o in &self.offsets {
                t.row(vec![
                    o.topic.clone(),
                    o.partition.to_string(),
                    dash(o.committed_offset),
                    dash(o.log_end_offset),
                    dash(o.lag),
                    dash(o.member_id.as_deref()),
                    dash(o.client_id.as_deref()),
                ]);
            }
            out.push('\n');
            out.push_str(&t.render());
        }
        out
    }
}

/// The consumer protocol's assignment (`ConsumerProtocolAssignment`: a version, then topics with
/// partitions); newer versions than the crate knows are read as its newest, as Kafka does.
pub fn decode_assignment(bytes: &Bytes) -> Vec<Assigned> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, ConsumerProtocolAssignment::VERSIONS.max);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolAssignment::decode(&mut body, version) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| Assigned {
                topic: tp.topic.0.to_string(),
                partitions: tp.partitions,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// What DescribeGroups says about one group.
struct GroupState {
    coordinator: i32,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

async fn describe_state(client: &mut Client, group: &str) -> Result<GroupState> {
    let coordinator = client.coordinator(group).await?;
    let conn = client.broker(coordinator).await?;
    let version = conn.version::<DescribeGroupsRequest>()?;
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let response = conn.send(&request, version).await?;
    let g = response
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group)
        .ok_or_else(|| CtlError::Protocol {
            addr: conn.addr().to_string(),
            api: "DescribeGroups".into(),
            reason: format!("no result for group {group}"),
        })?;
    if g.error_code == ResponseError::GroupIdNotFound.code() {
        return Err(CtlError::UnknownGroup(group.to_string()));
    }
    if g.error_code != 0 {
        return Err(CtlError::kafka(
            format!("describe group {group}"),
            g.error_code,
            g.error_message.as_deref(),
        ));
    }
    let consumer = g.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE;
    let members = g
        .members
        .into_iter()
        .map(|m| Member {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: if consumer {
                decode_assignment(&m.member_assignment)
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok(GroupState {
        coordinator,
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
    })
}

/// Metadata for the topics of `tps`; topics that no longer exist simply have no leader to ask.
async fn metadata_for(client: &mut Client, tps: &[TopicPartition]) -> Result<Metadata> {
    let topics: Vec<String> = tps
        .iter()
        .map(|tp| tp.topic.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    client.metadata(Some(&topics)).await
}

async fn describe(client: &mut Client, group: &str) -> Result<GroupDescription> {
    let state = describe_state(client, group).await?;
    let committed = committed(client, group, None).await?;
    if state.state == "Dead" && state.members.is_empty() && committed.is_empty() {
        return Err(CtlError::UnknownGroup(group.to_string()));
    }
    let mut owner: BTreeMap<TopicPartition, (String, String)> = BTreeMap::new();
    for m in &state.members {
        for a in &m.assignment {
            for &p in &a.partitions {
                owner.insert(
                    TopicPartition::new(&a.topic, p),
                    (m.member_id.clone(), m.client_id.clone()),
                );
            }
        }
    }
    let tps: Vec<TopicPartition> = committed
        .keys()
        .chain(owner.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends = if tps.is_empty() {
        BTreeMap::new()
    } else {
        let meta = metadata_for(client, &tps).await?;
        client.list_offsets(&meta, &tps, LATEST_TIMESTAMP).await?
    };
    let mut total_lag: i64 = 0;
    let offsets = tps
        .into_iter()
        .map(|tp| {
            let committed_offset = committed.get(&tp).copied();
            let log_end_offset = ends.get(&tp).and_then(|r| r.as_ref().ok()).copied();
            let lag = match (committed_offset, log_end_offset) {
                (Some(c), Some(e)) => Some(e.saturating_sub(c).max(0)),
                _ => None,
            };
            total_lag = lag.map_or(total_lag, |l| total_lag.saturating_add(l));
            let (member_id, client_id) = owner.get(&tp).cloned().unzip();
            OffsetRow {
                topic: tp.topic,
                partition: tp.partition,
                committed_offset,
                log_end_offset,
                lag,
                member_id,
                client_id,
            }
        })
        .collect();
    Ok(GroupDescription {
        group: group.to_string(),
        state: state.state,
        protocol_type: state.protocol_type,
        protocol: state.protocol,
        coordinator: state.coordinator,
        members: state.members,
        offsets,
        total_lag,
    })
}

// ---------------------------------------------------------------------------------------------
// reset-offsets

#[derive(Debug, Serialize)]
pub struct ResetRow {
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub new_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

#[derive(Debug, Serialize)]
pub struct ResetPlan {
    pub group: String,
    /// Whether the new offsets were committed (`--execute`) or only shown.
    pub executed: bool,
    pub partitions: Vec<ResetRow>,
}

impl Report for ResetPlan {
    fn text(&self) -> String {
        let mut t = Table::new(&[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
            "LOG-START",
            "LOG-END",
        ]);
        for r in &self.partitions {
            t.row(vec![
                r.topic.clone(),
                r.partition.to_string(),
                dash(r.current_offset),
                r.new_offset.to_string(),
                r.log_start_offset.to_string(),
                r.log_end_offset.to_string(),
            ]);
        }
        t.render()
    }
}

/// The new offset of one partition, within its log.
fn target_offset(
    target: &ResetTarget,
    tp: &TopicPartition,
    current: Option<i64>,
    start: i64,
    end: i64,
    at_time: Option<i64>,
) -> Result<i64> {
    let wanted = if target.to_earliest {
        start
    } else if target.to_latest {
        end
    } else if let Some(o) = target.to_offset {
        o
    } else if target.to_datetime.is_some() {
        // No record at or after the time: the log end, as Kafka does.
        at_time.filter(|&o| o >= 0).unwrap_or(end)
    } else if let Some(n) = target.shift_by {
        let c = current
            .ok_or_else(|| CtlError::Refused(format!("cannot shift {tp}: the group has no committed offset for it")))?;
        c.saturating_add(n)
    } else {
        return Err(CtlError::InvalidArgument(
            "give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by".into(),
        ));
    };
    if wanted < start {
        warn(&format!("{tp}: offset {wanted} is before the log start; using {start}"));
        return Ok(start);
    }
    if wanted > end {
        warn(&format!("{tp}: offset {wanted} is past the log end; using {end}"));
        return Ok(end);
    }
    Ok(wanted)
}

async fn reset(client: &mut Client, args: &ResetArgs) -> Result<ResetPlan> {
    let group = args.group.as_str();
    let state = match describe_state(client, group).await {
        Ok(s) => Some(s),
        Err(CtlError::UnknownGroup(_)) => None,
        Err(e) => return Err(e),
    };
    if let Some(s) = state.as_ref().filter(|s| !s.members.is_empty()) {
        let message = format!(
            "group {group} is {} with {} active member(s): stop its consumers before resetting offsets",
            s.state,
            s.members.len()
        );
        if args.execute {
            return Err(CtlError::Refused(message));
        }
        warn(&message);
    }

    let names: Vec<String> = args.topics.iter().map(|s| s.topic.clone()).collect();
    let meta = client.metadata(Some(&names)).await?;
    let mut tps = Vec::new();
    for spec in &args.topics {
        let topic = meta
            .topic(&spec.topic)
            .ok_or_else(|| CtlError::UnknownTopic(spec.topic.clone()))?;
        check_topic_error(topic)?;
        let partitions: Vec<i32> = match &spec.partitions {
            Some(ps) => ps.clone(),
            None => topic.partitions.iter().map(|p| p.partition).collect(),
        };
        for p in partitions {
            if topic.partition(p).is_none() {
                return Err(CtlError::UnknownPartition {
                    topic: spec.topic.clone(),
                    partition: p,
                });
            }
            let tp = TopicPartition::new(&spec.topic, p);
            if !tps.contains(&tp) {
                tps.push(tp);
            }
        }
    }

    let total = tps.len() as u64;
    let mut progress = Progress::new("resetting offsets", "partitions", Some(total), tps.len() > RESET_CHUNK);
    let mut rows = Vec::with_capacity(tps.len());
    for chunk in tps.chunks(RESET_CHUNK) {
        let current = committed(client, group, Some(chunk)).await?;
        let starts = client.list_offsets(&meta, chunk, EARLIEST_TIMESTAMP).await?;
        let ends = client.list_offsets(&meta, chunk, LATEST_TIMESTAMP).await?;
        let at_time = match args.target.to_datetime {
            Some(ts) => Some(client.list_offsets(&meta, chunk, ts).await?),
            None => None,
        };
        let mut new_offsets = BTreeMap::new();
        for tp in chunk {
            let get = |m: &BTreeMap<TopicPartition, Result<i64>>| -> Result<i64> {
                match m.get(tp) {
                    Some(Ok(o)) => Ok(*o),
                    Some(Err(e)) => Err(CtlError::Refused(e.to_string())),
                    None => Err(CtlError::Refused(format!("no offsets for {tp}"))),
                }
            };
            let (start, end) = (get(&starts)?, get(&ends)?);
            let at = at_time.as_ref().map(get).transpose()?;
            let cur = current.get(tp).copied();
            let new = target_offset(&args.target, tp, cur, start, end, at)?;
            new_offsets.insert(tp.clone(), new);
            rows.push(ResetRow {
                topic: tp.topic.clone(),
                partition: tp.partition,
                current_offset: cur,
                new_offset: new,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        if args.execute {
            commit(client, group, &new_offsets).await?;
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    Ok(ResetPlan {
        group: group.to_string(),
        executed: args.execute,
        partitions: rows,
    })
}

// ---------------------------------------------------------------------------------------------
// delete

#[derive(Debug, Serialize)]
pub struct GroupsDeleted {
    pub deleted: Vec<String>,
}

impl Report for GroupsDeleted {
    fn text(&self) -> String {
        let mut t = Table::new(&["GROUP", "STATUS"]);
        for g in &self.deleted {
            t.row(vec![g.clone(), "deleted".into()]);
        }
        t.render()
    }
}

async fn delete_one(client: &mut Client, group: &str) -> Result<()> {
    let conn = client.coordinator_conn(group).await?;
    let version = conn.version::<DeleteGroupsRequest>()?;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let response = conn.send(&request, version).await?;
    let result = response
        .results
        .into_iter()
        .find(|r| r.group_id.0.as_str() == group)
        .ok_or_else(|| CtlError::Protocol {
            addr: conn.addr().to_string(),
            api: "DeleteGroups".into(),
            reason: format!("no result for group {group}"),
        })?;
    match result.error_code {
        0 => Ok(()),
        code if code == ResponseError::GroupIdNotFound.code() => Err(CtlError::UnknownGroup(group.to_string())),
        code => Err(CtlError::kafka(format!("delete group {group}"), code, None)),
    }
}

/// Deletes each group in turn; returns the ones deleted and the first failure.
async fn delete(client: &mut Client, groups: &[String]) -> (GroupsDeleted, Option<CtlError>) {
    let mut deleted = Vec::new();
    let mut error = None;
    for g in groups {
        match delete_one(client, g).await {
            Ok(()) => deleted.push(g.clone()),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (GroupsDeleted { deleted }, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn topic_specs_parse() {
        assert_eq!(
            parse_topic_spec("orders"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_spec("orders:0,2"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![0, 2])
            })
        );
        assert!(parse_topic_spec("orders:").is_err());
        assert!(parse_topic_spec("orders:x").is_err());
        assert!(parse_topic_spec(":1").is_err());
    }

    #[test]
    fn consumer_assignments_decode_at_their_own_version() {
        for version in 0..=3i16 {
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
                AssignedPartitions::default()
                    .with_topic(topic_name("orders"))
                    .with_partitions(vec![0, 2]),
            ]);
            let mut buf = bytes::BytesMut::new();
            buf.extend_from_slice(&version.to_be_bytes());
            a.encode(&mut buf, version).unwrap();
            let decoded = decode_assignment(&buf.freeze());
            assert_eq!(decoded.len(), 1);
            assert_eq!(
                (decoded[0].topic.as_str(), decoded[0].partitions.clone()),
                ("orders", vec![0, 2])
            );
        }
        assert!(decode_assignment(&Bytes::from_static(b"\x00")).is_empty());
        assert!(decode_assignment(&Bytes::from_static(b"\x00\x00\xff")).is_empty());
    }

    fn target(f: impl FnOnce(&mut ResetTarget)) -> ResetTarget {
        let mut t = ResetTarget {
            to_earliest: false,
            to_latest: false,
            to_offset: None,
            to_datetime: None,
            shift_by: None,
        };
        f(&mut t);
        t
    }

    #[test]
    fn reset_targets_stay_within_the_log() {
        let tp = TopicPartition::new("t", 0);
        let at = |t: &ResetTarget, cur, time| target_offset(t, &tp, cur, 10, 50, time);
        assert_eq!(at(&target(|t| t.to_earliest = true), Some(30), None).unwrap(), 10);
        assert_eq!(at(&target(|t| t.to_latest = true), None, None).unwrap(), 50);
        assert_eq!(at(&target(|t| t.to_offset = Some(20)), None, None).unwrap(), 20);
        assert_eq!(at(&target(|t| t.to_offset = Some(5)), None, None).unwrap(), 10);
        assert_eq!(at(&target(|t| t.to_offset = Some(99)), None, None).unwrap(), 50);
        assert_eq!(at(&target(|t| t.shift_by = Some(-5)), Some(30), None).unwrap(), 25);
        assert_eq!(at(&target(|t| t.shift_by = Some(100)), Some(30), None).unwrap(), 50);
        assert!(at(&target(|t| t.shift_by = Some(1)), None, None).is_err());
        assert_eq!(at(&target(|t| t.to_datetime = Some(1)), None, Some(33)).unwrap(), 33);
        assert_eq!(at(&target(|t| t.to_datetime = Some(1)), None, Some(-1)).unwrap(), 50);
    }
}
