//! `skiffctl configs describe broker|topic NAME`: every config of a broker or a topic with its
//! value and where the value comes from (DescribeConfigs), like `kafka-configs.sh --describe --all`.

use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use serde::Serialize;

use crate::Status;
use crate::client::{Client, str_bytes};
use crate::error::{CtlError, Result};
use crate::output::{Format, Report, Table, emit};
use crate::topic::RESOURCE_TYPE_TOPIC;

/// `ConfigResource.Type.BROKER`.
const RESOURCE_TYPE_BROKER: i8 = 4;

#[derive(Debug, Subcommand)]
pub enum ConfigsCommand {
    /// Show every config of a broker or a topic, with its value and source.
    Describe(DescribeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Broker,
    Topic,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// What to describe.
    #[arg(value_enum)]
    pub kind: ResourceKind,
    /// The topic name, or the broker id [default for brokers: the controller].
    pub name: Option<String>,
    /// Show only configs that differ from the default (source other than DEFAULT_CONFIG).
    #[arg(long)]
    pub changed: bool,
}

pub async fn run(command: &ConfigsCommand, client: &mut Client, format: &Format) -> Result<Status> {
    match command {
        ConfigsCommand::Describe(args) => emit(&describe(client, args).await?, format)?,
    }
    Ok(Status::Ok)
}

#[derive(Debug, Serialize)]
pub struct ConfigEntry {
    pub name: String,
    /// Absent for sensitive configs, which brokers never reveal.
    pub value: Option<String>,
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

#[derive(Debug, Serialize)]
pub struct Configs {
    pub resource_type: ResourceKind,
    pub name: String,
    pub configs: Vec<ConfigEntry>,
}

impl Report for Configs {
    fn text(&self) -> String {
        let mut t = Table::new(&["NAME", "VALUE", "SOURCE", "READ-ONLY"]);
        for c in &self.configs {
            let value = match (&c.value, c.sensitive) {
                (_, true) => "(sensitive)".to_string(),
                (Some(v), false) => v.clone(),
                (None, false) => "-".to_string(),
            };
            t.row(vec![
                c.name.clone(),
                value,
                c.source.to_string(),
                if c.read_only { "yes" } else { "no" }.to_string(),
            ]);
        }
        t.render()
    }
}

/// Kafka's names for `DescribeConfigsResponse.ConfigSource`.
pub fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

async fn describe(client: &mut Client, args: &DescribeArgs) -> Result<Configs> {
    let (resource_type, name, conn) = match args.kind {
        ResourceKind::Topic => {
            let name = args
                .name
                .clone()
                .ok_or_else(|| CtlError::InvalidArgument("configs describe topic needs the topic name".into()))?;
            (RESOURCE_TYPE_TOPIC, name, client.any())
        }
        ResourceKind::Broker => {
            let id = match &args.name {
                Some(n) => n
                    .parse::<i32>()
                    .map_err(|_| CtlError::InvalidArgument(format!("broker id {n:?} is not a number")))?,
                None => {
                    let meta = client.metadata(Some(&[])).await?;
                    if meta.controller >= 0 {
                        meta.controller
                    } else {
                        meta.brokers.first().map(|b| b.id).ok_or_else(|| CtlError::Connection {
                            addr: "cluster".into(),
                            reason: "Metadata lists no broker".into(),
                        })?
                    }
                }
            };
            // A broker's own configs are answered by that broker (Kafka's AdminClient routes them so).
            (RESOURCE_TYPE_BROKER, id.to_string(), client.broker(id).await?)
        }
    };
    let version = conn.version::<DescribeConfigsRequest>()?;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(&name))
            .with_configuration_keys(None),
    ]);
    let response = conn.send(&request, version).await?;
    let result = response.results.into_iter().next().ok_or_else(|| CtlError::Protocol {
        addr: conn.addr().to_string(),
        api: "DescribeConfigs".into(),
        reason: "no result".into(),
    })?;
    if result.error_code == ResponseError::UnknownTopicOrPartition.code() && args.kind == ResourceKind::Topic {
        return Err(CtlError::UnknownTopic(name));
    }
    if result.error_code != 0 {
        let what = match args.kind {
            ResourceKind::Topic => "topic",
            ResourceKind::Broker => "broker",
        };
        return Err(CtlError::kafka(
            format!("describe configs of {what} {name}"),
            result.error_code,
            result.error_message.as_deref(),
        ));
    }
    let mut configs: Vec<ConfigEntry> = result
        .configs
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: if c.is_sensitive {
                None
            } else {
                c.value.map(|v| v.to_string())
            },
            source: source_name(c.config_source),
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .filter(|c| !args.changed || c.source != "DEFAULT_CONFIG")
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Configs {
        resource_type: args.kind,
        name,
        configs,
    })
}
