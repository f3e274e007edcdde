//! `skiffctl topic`: create, list, describe, delete topics, change their configs, add partitions
//! and trim partitions, each through the Kafka API an admin client uses for it (CreateTopics,
//! Metadata + ListOffsets + DescribeLogDirs, DeleteTopics, IncrementalAlterConfigs,
//! CreatePartitions, DeleteRecords).

use std::collections::BTreeMap;

use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeLogDirsRequest,
    IncrementalAlterConfigsRequest,
};
use serde::Serialize;

use crate::client::{
    Client, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, TopicPartition, by_topic, kafka_uuid, str_bytes, topic_name,
};
use crate::error::{CtlError, Result};
use crate::output::{Format, Report, Table, dash, emit, fields, human_bytes, ids};
use crate::{Status, parse_key_value, timeout_ms};

/// `ConfigResource.Type.TOPIC` in DescribeConfigs / IncrementalAlterConfigs.
pub const RESOURCE_TYPE_TOPIC: i8 = 2;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition count and replication factor.
    List(ListArgs),
    /// Show a topic's partitions: leader, replicas, ISR, log start, high watermark and size.
    Describe(DescribeArgs),
    /// Delete topics and all their records.
    Delete(DeleteArgs),
    /// Set, delete, append to or subtract from a topic's configs.
    AlterConfig(AlterConfigArgs),
    /// Add partitions to a topic (keys may then map to other partitions).
    AddPartitions(AddPartitionsArgs),
    /// Delete the records of partitions before an offset (moves their log start offset).
    Trim(TrimArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new topic.
    pub name: String,
    /// Number of partitions [default: the broker's num.partitions].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replication factor [default: the broker's default.replication.factor].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(i16).range(1..))]
    pub replicas: Option<i16>,
    /// A topic config, e.g. -c retention.ms=86400000 -c cleanup.policy=compact (repeatable).
    #[arg(short, long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include internal topics such as __consumer_offsets.
    #[arg(short, long)]
    pub internal: bool,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Name of the topic.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topics to delete.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["set", "delete", "append", "subtract"])))]
pub struct AlterConfigArgs {
    /// Name of the topic.
    pub name: String,
    /// Set a config, e.g. --set retention.ms=3600000 (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Remove a config so the broker default applies again (repeatable).
    #[arg(long, value_name = "KEY")]
    pub delete: Vec<String>,
    /// Append to a list config, e.g. --append cleanup.policy=compact (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub append: Vec<(String, String)>,
    /// Remove a value from a list config (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub subtract: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct AddPartitionsArgs {
    /// Name of the topic.
    pub name: String,
    /// How many partitions to add.
    #[arg(short, long, value_name = "N", required_unless_present = "total", conflicts_with = "total",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub num: Option<i32>,
    /// The partition count to grow to instead (like kafka-topics.sh --alter --partitions).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub total: Option<i32>,
}

#[derive(Debug, Args)]
pub struct TrimArgs {
    /// Name of the topic.
    pub name: String,
    /// Partition to trim (repeatable).
    #[arg(short, long = "partition", value_name = "P", required = true)]
    pub partitions: Vec<i32>,
    /// Delete every record before this offset; -1 deletes up to the high watermark.
    #[arg(long, value_name = "O", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub offset: i64,
}

pub async fn run(command: &TopicCommand, client: &mut Client, format: &Format) -> Result<Status> {
    match command {
        TopicCommand::Create(a) => emit(&create(client, a).await?, format)?,
        TopicCommand::List(a) => emit(&list(client, a).await?, format)?,
        TopicCommand::Describe(a) => emit(&describe(client, &a.name).await?, format)?,
        TopicCommand::Delete(a) => {
            let (report, error) = delete(client, &a.names).await?;
            if !report.deleted.is_empty() || error.is_none() {
                emit(&report, format)?;
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
        TopicCommand::AlterConfig(a) => emit(&alter_config(client, a).await?, format)?,
        TopicCommand::AddPartitions(a) => emit(&add_partitions(client, a).await?, format)?,
        TopicCommand::Trim(a) => emit(&trim(client, a).await?, format)?,
    }
    Ok(Status::Ok)
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub topic: String,
    /// Kafka's base64 form; absent when the broker does not say (CreateTopics < v7).
    pub topic_id: Option<String>,
    /// -1 when the broker chose and did not say (CreateTopics < v5).
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

impl Report for Created {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "STATUS", "PARTITIONS", "REPLICATION-FACTOR", "ID"]);
        t.row(vec![
            self.topic.clone(),
            "created".into(),
            if self.partitions < 0 {
                "-".into()
            } else {
                self.partitions.to_string()
            },
            if self.replication_factor < 0 {
                "-".into()
            } else {
                self.replication_factor.to_string()
            },
            dash(self.topic_id.as_deref()),
        ]);
        t.render()
    }
}

async fn create(client: &mut Client, args: &CreateArgs) -> Result<Created> {
    let timeout = timeout_ms(client);
    let conn = client.any();
    let version = conn.version::<CreateTopicsRequest>()?;
    if version < 4 && (args.partitions.is_none() || args.replicas.is_none()) {
        return Err(CtlError::InvalidArgument(format!(
            "broker {} needs both -p and -r (CreateTopics v{version} has no broker defaults)",
            conn.addr()
        )));
    }
    let topic = CreatableTopic::default()
        .with_name(topic_name(&args.name))
        .with_num_partitions(args.partitions.unwrap_or(-1))
        .with_replication_factor(args.replicas.unwrap_or(-1))
        .with_configs(
            args.configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(timeout);
    let response = conn.send(&request, version).await?;
    let result = response
        .topics
        .into_iter()
        .find(|t| t.name.0.as_str() == args.name)
        .ok_or_else(|| CtlError::Protocol {
            addr: conn.addr().to_string(),
            api: "CreateTopics".into(),
            reason: format!("no result for topic {}", args.name),
        })?;
    if result.error_code != 0 {
        return Err(CtlError::kafka(
            format!("create topic {}", args.name),
            result.error_code,
            result.error_message.as_deref(),
        ));
    }
    let (partitions, replication_factor) = if version >= 5 {
        (result.num_partitions, result.replication_factor)
    } else {
        (args.partitions.unwrap_or(-1), args.replicas.unwrap_or(-1))
    };
    Ok(Created {
        topic: args.name.clone(),
        topic_id: (version >= 7 && !result.topic_id.is_nil()).then(|| kafka_uuid(&result.topic_id)),
        partitions,
        replication_factor,
        configs: args.configs.iter().cloned().collect(),
    })
}

#[derive(Debug, Serialize)]
pub struct TopicRow {
    pub name: String,
    pub topic_id: Option<String>,
    pub partitions: usize,
    pub replication_factor: usize,
    pub internal: bool,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct TopicList(pub Vec<TopicRow>);

impl Report for TopicList {
    fn text(&self) -> String {
        let mut t = Table::new(&["NAME", "PARTITIONS", "REPLICATION-FACTOR", "ID"]);
        for r in &self.0 {
            t.row(vec![
                r.name.clone(),
                r.partitions.to_string(),
                r.replication_factor.to_string(),
                dash(r.topic_id.as_deref()),
            ]);
        }
        t.render()
    }
}

async fn list(client: &mut Client, args: &ListArgs) -> Result<TopicList> {
    let meta = client.metadata(None).await?;
    let mut rows: Vec<TopicRow> = meta
        .topics
        .iter()
        .filter(|t| args.internal || !t.internal)
        .map(|t| TopicRow {
            name: t.name.clone(),
            topic_id: (!t.id.is_nil()).then(|| kafka_uuid(&t.id)),
            partitions: t.partitions.len(),
            replication_factor: t.replication_factor(),
            internal: t.internal,
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TopicList(rows))
}

#[derive(Debug, Serialize)]
pub struct PartitionRow {
    pub partition: i32,
    pub leader: Option<i32>,
    pub leader_epoch: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub log_start_offset: Option<i64>,
    pub high_watermark: Option<i64>,
    /// Bytes on the leader's disk; absent when the broker does not serve DescribeLogDirs.
    pub size_bytes: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: Option<String>,
    pub internal: bool,
    pub replication_factor: usize,
    pub partitions: Vec<PartitionRow>,
}

impl Report for TopicDescription {
    fn text(&self) -> String {
        let mut out = fields(&[
            ("Name", self.name.clone()),
            ("ID", dash(self.topic_id.as_deref())),
            ("Internal", if self.internal { "yes" } else { "no" }.into()),
            ("Partitions", self.partitions.len().to_string()),
            ("Replication factor", self.replication_factor.to_string()),
        ]);
        let mut t = Table::new(&[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "LOG-START",
            "HIGH-WATERMARK",
            "SIZE",
        ]);
        for p in &self.partitions {
            t.row(vec![
                p.partition.to_string(),
                dash(p.leader),
                dash(p.leader_epoch),
                ids(&p.replicas),
                ids(&p.isr),
                dash(p.log_start_offset),
                dash(p.high_watermark),
                p.size_bytes.map_or_else(|| "-".into(), human_bytes),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
        out
    }
}

async fn describe(client: &mut Client, name: &str) -> Result<TopicDescription> {
    let (meta, topic) = client.topic(name).await?;
    let tps: Vec<TopicPartition> = topic
        .partitions
        .iter()
        .map(|p| TopicPartition::new(name, p.partition))
        .collect();
    let starts = client.list_offsets(&meta, &tps, EARLIEST_TIMESTAMP).await?;
    let ends = client.list_offsets(&meta, &tps, LATEST_TIMESTAMP).await?;
    let sizes = partition_sizes(client, &meta, &tps).await;
    let offset = |m: &BTreeMap<TopicPartition, Result<i64>>, tp: &TopicPartition| {
        m.get(tp).and_then(|r| r.as_ref().ok()).copied()
    };
    let partitions = topic
        .partitions
        .iter()
        .zip(&tps)
        .map(|(p, tp)| PartitionRow {
            partition: p.partition,
            leader: (p.leader >= 0).then_some(p.leader),
            leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            offline_replicas: p.offline.clone(),
            log_start_offset: offset(&starts, tp),
            high_watermark: offset(&ends, tp),
            size_bytes: sizes.get(tp).copied(),
        })
        .collect();
    Ok(TopicDescription {
        name: topic.name.clone(),
        topic_id: (!topic.id.is_nil()).then(|| kafka_uuid(&topic.id)),
        internal: topic.internal,
        replication_factor: topic.replication_factor(),
        partitions,
    })
}

/// Each partition's size on its leader, from DescribeLogDirs where the leader serves it; a
/// partition whose leader does not (or fails) is left out, and shows as `-`.
async fn partition_sizes(
    client: &mut Client,
    meta: &crate::client::Metadata,
    tps: &[TopicPartition],
) -> BTreeMap<TopicPartition, i64> {
    let mut sizes = BTreeMap::new();
    let (routed, _) = meta.by_leader(tps);
    for (leader, tps) in routed {
        let Ok(conn) = client.broker(leader).await else {
            continue;
        };
        let Ok(version) = conn.version::<DescribeLogDirsRequest>() else {
            continue;
        };
        let topics = by_topic(&tps)
            .into_iter()
            .map(|(t, ps)| {
                DescribableLogDirTopic::default()
                    .with_topic(topic_name(&t))
                    .with_partitions(ps)
            })
            .collect();
        let request = DescribeLogDirsRequest::default().with_topics(Some(topics));
        let Ok(response) = conn.send(&request, version).await else {
            continue;
        };
        if response.error_code != 0 {
            continue;
        }
        for dir in response.results.into_iter().filter(|d| d.error_code == 0) {
            for t in dir.topics {
                for p in t.partitions.into_iter().filter(|p| !p.is_future_key) {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    if tps.contains(&tp) {
                        *sizes.entry(tp).or_insert(0) += p.partition_size;
                    }
                }
            }
        }
    }
    sizes
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub deleted: Vec<String>,
}

impl Report for Deleted {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "STATUS"]);
        for name in &self.deleted {
            t.row(vec![name.clone(), "deleted".into()]);
        }
        t.render()
    }
}

/// Deletes the topics in one request; returns the ones deleted and the first failure.
async fn delete(client: &mut Client, names: &[String]) -> Result<(Deleted, Option<CtlError>)> {
    let timeout = timeout_ms(client);
    let conn = client.any();
    let version = conn.version::<DeleteTopicsRequest>()?;
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(timeout);
    if version >= 6 {
        request = request.with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect(),
        );
    } else {
        request = request.with_topic_names(names.iter().map(|n| topic_name(n)).collect());
    }
    let response = conn.send(&request, version).await?;
    let mut deleted = Vec::new();
    let mut first_error = None;
    for name in names {
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name));
        match result {
            Some(r) if r.error_code == 0 => deleted.push(name.clone()),
            Some(r) if r.error_code == ResponseError::UnknownTopicOrPartition.code() => {
                first_error.get_or_insert(CtlError::UnknownTopic(name.clone()));
            }
            Some(r) => {
                first_error.get_or_insert(CtlError::kafka(
                    format!("delete topic {name}"),
                    r.error_code,
                    r.error_message.as_deref(),
                ));
            }
            None => {
                first_error.get_or_insert(CtlError::Protocol {
                    addr: conn.addr().to_string(),
                    api: "DeleteTopics".into(),
                    reason: format!("no result for topic {name}"),
                });
            }
        }
    }
    Ok((Deleted { deleted }, first_error))
}

/// IncrementalAlterConfigs operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigOp {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

#[derive(Debug, Serialize)]
pub struct ConfigChange {
    pub name: String,
    pub operation: ConfigOp,
    pub value: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Altered {
    pub topic: String,
    pub changes: Vec<ConfigChange>,
}

impl Report for Altered {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "CONFIG", "OPERATION", "VALUE"]);
        for c in &self.changes {
            let op = match c.operation {
                ConfigOp::Set => "set",
                ConfigOp::Delete => "delete",
                ConfigOp::Append => "append",
                ConfigOp::Subtract => "subtract",
            };
            t.row(vec![
                self.topic.clone(),
                c.name.clone(),
                op.into(),
                dash(c.value.as_deref()),
            ]);
        }
        t.render()
    }
}

async fn alter_config(client: &mut Client, args: &AlterConfigArgs) -> Result<Altered> {
    let mut changes = Vec::new();
    let mut add = |list: &[(String, String)], operation| {
        for (k, v) in list {
            changes.push(ConfigChange {
                name: k.clone(),
                operation,
                value: Some(v.clone()),
            });
        }
    };
    add(&args.set, ConfigOp::Set);
    add(&args.append, ConfigOp::Append);
    add(&args.subtract, ConfigOp::Subtract);
    for k in &args.delete {
        changes.push(ConfigChange {
            name: k.clone(),
            operation: ConfigOp::Delete,
            value: None,
        });
    }
    let conn = client.any();
    let version = conn.version::<IncrementalAlterConfigsRequest>()?;
    let resource = AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TYPE_TOPIC)
        .with_resource_name(str_bytes(&args.name))
        .with_configs(
            changes
                .iter()
                .map(|c| {
                    AlterableConfig::default()
                        .with_name(str_bytes(&c.name))
                        .with_config_operation(c.operation as i8)
                        .with_value(c.value.as_deref().map(str_bytes))
                })
                .collect(),
        );
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let response = conn.send(&request, version).await?;
    for r in &response.responses {
        if r.error_code == ResponseError::UnknownTopicOrPartition.code() {
            return Err(CtlError::UnknownTopic(args.name.clone()));
        }
        if r.error_code != 0 {
            return Err(CtlError::kafka(
                format!("alter config of topic {}", args.name),
                r.error_code,
                r.error_message.as_deref(),
            ));
        }
    }
    Ok(Altered {
        topic: args.name.clone(),
        changes,
    })
}

#[derive(Debug, Serialize)]
pub struct PartitionsAdded {
    pub topic: String,
    pub partitions_before: usize,
    pub partitions_after: i32,
}

impl Report for PartitionsAdded {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "PARTITIONS-BEFORE", "PARTITIONS-AFTER"]);
        t.row(vec![
            self.topic.clone(),
            self.partitions_before.to_string(),
            self.partitions_after.to_string(),
        ]);
        t.render()
    }
}

async fn add_partitions(client: &mut Client, args: &AddPartitionsArgs) -> Result<PartitionsAdded> {
    let timeout = timeout_ms(client);
    let (_, topic) = client.topic(&args.name).await?;
    let before = topic.partitions.len();
    let current = i32::try_from(before).unwrap_or(i32::MAX);
    let total = match (args.num, args.total) {
        (Some(n), _) => current.saturating_add(n),
        (None, Some(t)) => t,
        (None, None) => return Err(CtlError::InvalidArgument("give --num or --total".into())),
    };
    let conn = client.any();
    let version = conn.version::<CreatePartitionsRequest>()?;
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(&args.name))
                .with_count(total)
                .with_assignments(None),
        ])
        .with_timeout_ms(timeout);
    let response = conn.send(&request, version).await?;
    for r in &response.results {
        if r.error_code != 0 {
            return Err(CtlError::kafka(
                format!("add partitions to topic {}", args.name),
                r.error_code,
                r.error_message.as_deref(),
            ));
        }
    }
    Ok(PartitionsAdded {
        topic: args.name.clone(),
        partitions_before: before,
        partitions_after: total,
    })
}

#[derive(Debug, Serialize)]
pub struct Trimmed {
    pub topic: String,
    pub partitions: Vec<TrimmedPartition>,
}

#[derive(Debug, Serialize)]
pub struct TrimmedPartition {
    pub partition: i32,
    /// The new log start offset (Kafka's low watermark).
    pub log_start_offset: i64,
}

impl Report for Trimmed {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "PARTITION", "LOG-START"]);
        for p in &self.partitions {
            t.row(vec![
                self.topic.clone(),
                p.partition.to_string(),
                p.log_start_offset.to_string(),
            ]);
        }
        t.render()
    }
}

async fn trim(client: &mut Client, args: &TrimArgs) -> Result<Trimmed> {
    let timeout = timeout_ms(client);
    let (meta, topic) = client.topic(&args.name).await?;
    let mut tps = Vec::new();
    for &p in &args.partitions {
        if topic.partition(p).is_none() {
            return Err(CtlError::UnknownPartition {
                topic: args.name.clone(),
                partition: p,
            });
        }
        let tp = TopicPartition::new(&args.name, p);
        if !tps.contains(&tp) {
            tps.push(tp);
        }
    }
    let (routed, failed) = meta.by_leader(&tps);
    if let Some((_, e)) = failed.into_iter().next() {
        return Err(e);
    }
    let mut partitions = Vec::new();
    for (leader, tps) in routed {
        let conn = client.broker(leader).await?;
        let version = conn.version::<DeleteRecordsRequest>()?;
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(topic_name(&args.name))
                    .with_partitions(
                        tps.iter()
                            .map(|tp| {
                                DeleteRecordsPartition::default()
                                    .with_partition_index(tp.partition)
                                    .with_offset(args.offset)
                            })
                            .collect(),
                    ),
            ])
            .with_timeout_ms(timeout);
        let response = conn.send(&request, version).await?;
        for t in response.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(CtlError::kafka(
                        format!("trim {}-{} at offset {}", args.name, p.partition_index, args.offset),
                        p.error_code,
                        None,
                    ));
                }
                partitions.push(TrimmedPartition {
                    partition: p.partition_index,
                    log_start_offset: p.low_watermark,
                });
            }
        }
    }
    partitions.sort_by_key(|p| p.partition);
    Ok(Trimmed {
        topic: args.name.clone(),
        partitions,
    })
}
