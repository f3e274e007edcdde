//! `skiffctl produce TOPIC`: one record per line of stdin, for quick checks and shell pipelines.
//! Lines are gathered into record batches (built with the `kafka-protocol` crate's encoder, as a
//! client builds them) per partition and sent to each partition's leader. A keyed record goes to
//! the partition Kafka's default partitioner picks (murmur2 of the key), so keys land where Java,
//! librdkafka's `consistent_random` and kafka-python put them; unkeyed records fill one partition's
//! batch, then the next (the sticky partitioner). A batch goes out when it is full or when stdin
//! has been quiet for [`LINGER`], so typing lines by hand sends them as you go.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::{Args, ValueEnum};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::client::{Client, Metadata, TopicMeta, TopicPartition, str_bytes, topic_name};
use crate::error::{CtlError, Result};
use crate::output::{Format, Report, Table, dash, emit};
use crate::progress::Progress;
use crate::time::now_ms;
use crate::{Status, parse_key_value, timeout_ms};

/// How long stdin may be quiet before a partial batch is sent (Kafka's `linger.ms` is 5 by default;
/// a person typing is slower than a pipe, and a pipe fills batches long before this).
const LINGER: Duration = Duration::from_millis(100);
/// Records per batch at most (librdkafka's `batch.num.messages` default is 10000).
const BATCH_RECORDS_MAX: usize = 10_000;
/// Bytes of keys and values per batch at most, well under `max.message.bytes` (1 MiB by default).
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// How often a partition's send is retried after a leader change (Kafka's `retries` is effectively unbounded
/// within `delivery.timeout.ms`; an admin tool gives up sooner).
const SEND_ATTEMPTS: u32 = 5;
/// Lines buffered between the stdin reader thread and the sender.
const LINE_CHANNEL: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

/// `--acks`: `all` (or -1), `1`, `0`.
pub fn parse_acks(s: &str) -> std::result::Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        other => Err(format!("expected all, -1, 1 or 0, got {other:?}")),
    }
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic to write to (it must exist).
    pub topic: String,
    /// Split each line at the first SEP into key and value (without it, lines are values).
    #[arg(short = 'K', long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Acknowledgements to wait for: all (every in-sync replica), 1 (the leader), 0 (none).
    #[arg(long, default_value = "all", value_name = "all|1|0", allow_hyphen_values = true, value_parser = parse_acks)]
    pub acks: i16,
    /// Compression of the record batches.
    #[arg(short = 'z', long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Write every record to this partition instead of choosing by key.
    #[arg(short, long, value_name = "P")]
    pub partition: Option<i32>,
    /// A header to add to every record (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), the default partitioner's hash.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a key: `toPositive(murmur2(key)) % numPartitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[derive(Debug, Default, Serialize)]
pub struct PartitionSummary {
    pub partition: i32,
    pub records: u64,
    /// Absent with acks=0, which gets no answer.
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Produced {
    pub topic: String,
    pub records: u64,
    pub partitions: Vec<PartitionSummary>,
}

impl Report for Produced {
    fn text(&self) -> String {
        let mut t = Table::new(&["TOPIC", "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
        for p in &self.partitions {
            t.row(vec![
                self.topic.clone(),
                p.partition.to_string(),
                p.records.to_string(),
                dash(p.first_offset),
                dash(p.last_offset),
            ]);
        }
        t.render()
    }
}

/// Records waiting to be sent, per partition.
#[derive(Debug, Default)]
struct Pending {
    records: BTreeMap<i32, Vec<Record>>,
    count: usize,
    bytes: usize,
}

/// The sender's state across batches.
struct Producer<'a> {
    client: &'a mut Client,
    args: &'a ProduceArgs,
    meta: Metadata,
    topic: TopicMeta,
    summary: BTreeMap<i32, PartitionSummary>,
    /// The partition unkeyed records currently stick to.
    sticky: i32,
}

pub async fn run(args: &ProduceArgs, client: &mut Client, format: &Format) -> Result<Status> {
    let (meta, topic) = client.topic(&args.topic).await?;
    if let Some(p) = args.partition.filter(|&p| topic.partition(p).is_none()) {
        return Err(CtlError::UnknownPartition {
            topic: args.topic.clone(),
            partition: p,
        });
    }
    if topic.partitions.is_empty() {
        return Err(CtlError::Refused(format!("topic {} has no partitions", args.topic)));
    }
    let mut producer = Producer {
        client,
        args,
        meta,
        topic,
        summary: BTreeMap::new(),
        sticky: 0,
    };

    // std's stdin is read on its own thread: tokio's would block a runtime thread anyway, and a
    // channel makes "wait for a line or for the linger to pass" cancel-safe.
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(LINE_CHANNEL);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });

    let mut pending = Pending::default();
    let mut line_no: u64 = 0;
    // Progress only for piped input: someone typing lines sees them go out anyway.
    let mut progress = Progress::new("producing", "records", None, !std::io::stdin().is_terminal());
    loop {
        let next = if pending.count == 0 {
            rx.recv().await
        } else {
            match tokio::time::timeout(LINGER, rx.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    producer.flush(&mut pending).await?;
                    progress.set(producer.sent());
                    continue;
                }
            }
        };
        let Some(line) = next else { break };
        let mut line = line.map_err(|source| CtlError::Io {
            context: "reading stdin",
            source,
        })?;
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = split_key(&line, args.key_separator.as_deref(), line_no)?;
        producer.add(&mut pending, key, value);
        if pending.count >= BATCH_RECORDS_MAX || pending.bytes >= BATCH_BYTES_MAX {
            producer.flush(&mut pending).await?;
            progress.set(producer.sent());
        }
    }
    producer.flush(&mut pending).await?;
    progress.finish();
    let partitions: Vec<PartitionSummary> = producer.summary.into_values().collect();
    let report = Produced {
        topic: args.topic.clone(),
        records: partitions.iter().map(|p| p.records).sum(),
        partitions,
    };
    emit(&report, format)?;
    Ok(Status::Ok)
}

/// Splits a line into key and value at the first separator.
fn split_key(line: &[u8], separator: Option<&str>, line_no: u64) -> Result<(Option<Bytes>, Bytes)> {
    let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return Ok((None, Bytes::copy_from_slice(line)));
    };
    let at = line.windows(sep.len()).position(|w| w == sep).ok_or_else(|| {
        CtlError::BadInput(format!(
            "line {line_no} has no key separator {:?}",
            String::from_utf8_lossy(sep)
        ))
    })?;
    Ok((
        Some(Bytes::copy_from_slice(&line[..at])),
        Bytes::copy_from_slice(&line[at + sep.len()..]),
    ))
}

impl Producer<'_> {
    fn sent(&self) -> u64 {
        self.summary.values().map(|s| s.records).sum()
    }

    fn add(&mut self, pending: &mut Pending, key: Option<Bytes>, value: Bytes) {
        let partitions = i32::try_from(self.topic.partitions.len()).unwrap_or(i32::MAX);
        let partition = match (self.args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => self.sticky,
        };
        pending.bytes += key.as_ref().map_or(0, Bytes::len) + value.len();
        pending.count += 1;
        let mut record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now_ms(),
            key,
            value: Some(value),
            headers: Default::default(),
        };
        for (k, v) in &self.args.headers {
            record
                .headers
                .insert(str_bytes(k), Some(Bytes::copy_from_slice(v.as_bytes())));
        }
        pending.records.entry(partition).or_default().push(record);
    }

    /// Sends every pending batch, each to its partition's leader, retrying after leader changes.
    async fn flush(&mut self, pending: &mut Pending) -> Result<()> {
        let records = std::mem::take(&mut pending.records);
        pending.count = 0;
        pending.bytes = 0;
        if records.is_empty() {
            return Ok(());
        }
        // The next unkeyed records stick to the next partition.
        let partitions = i32::try_from(self.topic.partitions.len()).unwrap_or(1).max(1);
        self.sticky = (self.sticky + 1) % partitions;

        let mut batches: BTreeMap<i32, (Bytes, u64)> = BTreeMap::new();
        for (partition, mut recs) in records {
            // The encoder keeps records in one batch while offset - sequence stays constant; a
            // non-idempotent batch has base sequence -1.
            for (i, r) in recs.iter_mut().enumerate() {
                r.offset = i as i64;
                r.sequence = i as i32 - 1;
            }
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &recs,
                &RecordEncodeOptions {
                    version: 2,
                    compression: self.args.compression.into(),
                },
            )
            .map_err(|e| CtlError::BadInput(format!("cannot encode a record batch: {e}")))?;
            batches.insert(partition, (buf.freeze(), recs.len() as u64));
        }

        let mut attempt = 0;
        while !batches.is_empty() {
            attempt += 1;
            let tps: Vec<TopicPartition> = batches
                .keys()
                .map(|&p| TopicPartition::new(&self.args.topic, p))
                .collect();
            let (routed, failed) = self.meta.by_leader(&tps);
            let mut retry = !failed.is_empty();
            if attempt >= SEND_ATTEMPTS
                && let Some((_, e)) = failed.into_iter().next()
            {
                return Err(e);
            }
            for (leader, tps) in routed {
                let parts: Vec<(i32, Bytes, u64)> = tps
                    .iter()
                    .filter_map(|tp| batches.get(&tp.partition).map(|(b, n)| (tp.partition, b.clone(), *n)))
                    .collect();
                let outcome = self.send(leader, &parts).await?;
                for (partition, result) in outcome {
                    match result {
                        Ok(base) => {
                            let n = batches.remove(&partition).map_or(0, |(_, n)| n);
                            let s = self.summary.entry(partition).or_insert_with(|| PartitionSummary {
                                partition,
                                ..Default::default()
                            });
                            s.records += n;
                            if let Some(base) = base {
                                s.first_offset.get_or_insert(base);
                                s.last_offset = Some(base.saturating_add(n as i64 - 1));
                            }
                        }
                        Err((code, message)) => {
                            let retriable = ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
                            if !retriable || attempt >= SEND_ATTEMPTS {
                                return Err(CtlError::kafka(
                                    format!("produce to {}-{partition}", self.args.topic),
                                    code,
                                    message.as_deref(),
                                ));
                            }
                            retry = true;
                        }
                    }
                }
            }
            if retry && !batches.is_empty() {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                let (meta, topic) = self.client.topic(&self.args.topic).await?;
                self.meta = meta;
                self.topic = topic;
            }
        }
        Ok(())
    }

    /// One Produce request to `leader`; per partition its base offset (None with acks=0) or its error.
    #[allow(clippy::type_complexity)]
    async fn send(
        &mut self,
        leader: i32,
        parts: &[(i32, Bytes, u64)],
    ) -> Result<Vec<(i32, std::result::Result<Option<i64>, (i16, Option<String>)>)>> {
        let timeout = timeout_ms(self.client);
        let conn = self.client.broker(leader).await?;
        let version = conn.version::<ProduceRequest>()?;
        let request = ProduceRequest::default()
            .with_acks(self.args.acks)
            .with_timeout_ms(timeout)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(&self.args.topic))
                    .with_partition_data(
                        parts
                            .iter()
                            .map(|(p, batch, _)| {
                                PartitionProduceData::default()
                                    .with_index(*p)
                                    .with_records(Some(batch.clone()))
                            })
                            .collect(),
                    ),
            ]);
        if self.args.acks == 0 {
            conn.send_oneway(&request, version).await?;
            return Ok(parts.iter().map(|(p, _, _)| (*p, Ok(None))).collect());
        }
        let response = conn.send(&request, version).await?;
        let mut out = Vec::new();
        for t in response.responses {
            for p in t.partition_responses {
                let result = if p.error_code == 0 {
                    Ok(Some(p.base_offset))
                } else {
                    Err((p.error_code, p.error_message.map(|m| m.to_string())))
                };
                out.push((p.index, result));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
        for p in 0..100 {
            let part = partition_for_key(format!("user-{p}").as_bytes(), 7);
            assert!((0..7).contains(&part));
        }
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let (k, v) = split_key(b"user-1:a:b", Some(":"), 1).unwrap();
        assert_eq!((k.as_deref(), &v[..]), (Some(&b"user-1"[..]), &b"a:b"[..]));
        let (k, v) = split_key(b"plain", None, 1).unwrap();
        assert_eq!((k, &v[..]), (None, &b"plain"[..]));
        let err = split_key(b"nokey", Some("::"), 7).unwrap_err();
        assert_eq!(err.to_string(), "line 7 has no key separator \"::\"");
    }

    #[test]
    fn acks_parse() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("-1"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }
}
