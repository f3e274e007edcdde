//! DescribeLogDirs: the one data directory and the on-disk size of each partition in it, which is
//! what `skiffctl topic describe` and `kafka-log-dirs.sh` show as a partition's size.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use skiff_protocol::kafka_protocol;

use super::{Ctx, str_bytes, topic_name};

pub fn handle(ctx: &Ctx<'_>, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let broker = ctx.broker;
    // A null topic list asks for every partition; listed partitions this broker lacks are left out,
    // as Kafka does.
    let wanted: Vec<(String, Vec<i32>)> = match request.topics {
        None => broker
            .topics()
            .into_iter()
            .map(|t| (t.name, (0..t.partitions).collect()))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(name, partitions)| {
            let partitions: Vec<DescribeLogDirsPartition> = partitions
                .into_iter()
                .filter_map(|p| broker.partition(&name, p).map(|part| (p, part)))
                .map(|(p, part)| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p)
                        .with_partition_size(part.with_log(|l| l.size_bytes()) as i64)
                        .with_offset_lag(0)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = broker
        .config
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| broker.config.data_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(&dir.display().to_string()))
            .with_topics(topics),
    ])
}
