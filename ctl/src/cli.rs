//! The command line: global options (`--brokers`, `--format`, `--timeout`), one subcommand group
//! per module, and [`execute`], which checks what can be checked without a broker, connects, and
//! runs the command.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{Client, REQUEST_TIMEOUT_SECS_DEFAULT};
use crate::cluster::ClusterCommand;
use crate::configs::ConfigsCommand;
use crate::consume::{ConsumeArgs, Renderer};
use crate::error::{CtlError, Result};
use crate::group::GroupCommand;
use crate::output::Format;
use crate::partition::PartitionCommand;
use crate::produce::ProduceArgs;
use crate::topic::TopicCommand;
use crate::{Status, cluster, configs, consume, group, partition, produce, topic};

const AFTER_HELP: &str = "\
Exit status: 0 success, 1 error (unreachable broker, unknown topic, Kafka error), 2 bad usage,
3 cluster unhealthy (cluster health). Errors are one line on stderr.

Examples:
  skiffctl topic create orders -p 3 -c retention.ms=86400000
  printf 'user-1:clicked\\nuser-2:viewed\\n' | skiffctl produce orders -K :
  skiffctl consume orders --from-beginning -n 2 --format '{partition}:{offset} {key}={value}'
  skiffctl group describe billing --format json
  skiffctl group reset-offsets billing --topic orders --to-earliest --execute
  skiffctl partition move orders:0,1 --to 2,3,4 --wait
  skiffctl cluster decommission 3 --dry-run";

const CONSUME_AFTER_HELP: &str = "\
Output: each record's value by default; --format json prints one JSON object per record and line
(topic, partition, offset, timestamp, key, value, headers); a template prints a line per record
with {key} {value} {partition} {offset} {timestamp} {headers} {topic} filled in (\\t and \\n work).

Examples:
  skiffctl consume orders --from-beginning -e
  skiffctl consume orders -p 0 --offset -10 --format '{offset} {timestamp} {key}={value} {headers}'
  skiffctl consume orders --group audit -n 100 --format json | jq .value";

#[derive(Debug, Parser)]
#[command(
    name = "skiffctl",
    version,
    about = "Administer a Skiff cluster (or any Kafka cluster) over the Kafka protocol",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Brokers to bootstrap from.
    #[arg(
        short,
        long,
        global = true,
        env = "SKIFF_BROKERS",
        default_value = "localhost:9092",
        value_delimiter = ',',
        value_name = "HOST:PORT,…",
        help_heading = "Global options"
    )]
    pub brokers: Vec<String>,
    /// Output: table (for people), json (for scripts), or, for consume, a template like '{key}={value}'.
    #[arg(
        short,
        long,
        global = true,
        default_value = "table",
        value_name = "table|json|TEMPLATE",
        help_heading = "Global options"
    )]
    pub format: Format,
    /// Seconds to wait for a connection, or for the answer to a request.
    #[arg(long, global = true, default_value_t = REQUEST_TIMEOUT_SECS_DEFAULT, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..), help_heading = "Global options")]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster id, brokers and controller; cluster health; decommission a broker.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, list, describe, delete, alter and trim topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Consumer groups: list, describe with lag, reset offsets, delete.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Write stdin to a topic, one record per line.
    Produce(ProduceArgs),
    /// Print a topic's records, one per line.
    #[command(after_help = CONSUME_AFTER_HELP)]
    Consume(ConsumeArgs),
    /// Broker and topic configs with their sources.
    #[command(subcommand)]
    Configs(ConfigsCommand),
    /// Move partitions between brokers, follow the moves, cancel them.
    #[command(subcommand)]
    Partition(PartitionCommand),
}

/// Runs the command line.
pub async fn execute(cli: &Cli) -> Result<Status> {
    // What can be refused without a broker is refused before connecting.
    match (&cli.command, &cli.format) {
        (Command::Consume(_), f) => {
            Renderer::new(f)?;
        }
        (_, Format::Template(_)) => {
            return Err(CtlError::InvalidArgument(
                "a --format template only applies to consume; use table or json".into(),
            ));
        }
        _ => {}
    }
    let mut client = Client::connect(&cli.brokers, Duration::from_secs(cli.timeout)).await?;
    let format = &cli.format;
    match &cli.command {
        Command::Cluster(c) => cluster::run(c, &mut client, format).await,
        Command::Topic(c) => topic::run(c, &mut client, format).await,
        Command::Group(c) => group::run(c, &mut client, format).await,
        Command::Produce(a) => produce::run(a, &mut client, format).await,
        Command::Consume(a) => consume::run(a, &mut client, format).await,
        Command::Configs(c) => configs::run(c, &mut client, format).await,
        Command::Partition(c) => partition::run(c, &mut client, format).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "{path} has no help text");
                walk(sub, &path);
            }
        }
        walk(&Cli::command(), "skiffctl");
    }

    #[test]
    fn brokers_split_at_commas_and_reset_targets_exclude_each_other() {
        let cli = Cli::try_parse_from(["skiffctl", "-b", "a:1,b:2", "cluster", "info"]).unwrap();
        assert_eq!(cli.brokers, vec!["a:1", "b:2"]);
        let err = Cli::try_parse_from([
            "skiffctl",
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let cli = Cli::try_parse_from([
            "skiffctl",
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t:0,1",
            "--shift-by",
            "-3",
        ])
        .unwrap();
        let Command::Group(GroupCommand::ResetOffsets(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.target.shift_by, Some(-3));
        assert!(!a.execute);
    }
}
