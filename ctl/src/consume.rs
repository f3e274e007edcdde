//! `skiffctl consume TOPIC`: print records for quick checks and shell pipelines. Fetches from
//! each partition's leader (read_uncommitted, like `kafka-console-consumer.sh`), skips control
//! records, and prints each record as its value (the default), as a JSON object per line
//! (`--format json`), or through a template (`--format '{partition}:{offset} {key}={value}'`).
//!
//! Where it starts: `--offset`, else the group's committed offset (`--group`), else the log start
//! (`--from-beginning`) or the log end. With `--group` it is a "simple" consumer, without group
//! membership: it reads the committed offsets with OffsetFetch and commits what it printed with
//! generation -1 and no member id, which Kafka accepts while the group has no active members.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde::Serialize;

use crate::client::{Client, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, Metadata, TopicPartition, topic_name};
use crate::error::{CtlError, Result};
use crate::group;
use crate::output::{Format, write_stdout_bytes};
use crate::progress::Progress;
use crate::{Status, warn};

/// Kafka's `fetch.max.wait.ms` default: how long the leader may hold a fetch that found no data.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Kafka's `fetch.max.bytes` default.
const FETCH_MAX_BYTES: i32 = 50 * 1024 * 1024;
/// Kafka's `max.partition.fetch.bytes` default.
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Pause before asking again after a round that hit errors (Kafka's `retry.backoff.ms` is 100).
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The record batch header up to `lastOffsetDelta`: baseOffset(8) batchLength(4)
/// partitionLeaderEpoch(4) magic(1) crc(4) attributes(2) lastOffsetDelta(4).
const BATCH_HEADER_TO_LAST_OFFSET_DELTA: usize = 27;
const MAGIC_OFFSET: usize = 16;

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Start at the group's committed offsets and commit what was printed (without joining the
    /// group: its consumers must be stopped).
    #[arg(short, long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Start at the log start of partitions without a committed offset (default: the log end).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset in every partition read; a negative O starts that many records before the end.
    #[arg(short, long, value_name = "O", allow_negative_numbers = true)]
    pub offset: Option<i64>,
    /// Read only this partition (repeatable; default: all).
    #[arg(short, long = "partition", value_name = "P")]
    pub partitions: Vec<i32>,
    /// Stop after COUNT records.
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    pub count: Option<u64>,
    /// Stop once every partition is read up to where it ended when consume started.
    #[arg(short, long)]
    pub exit_at_end: bool,
}

/// One piece of a `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
}

/// How each record is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renderer {
    Json,
    Template(Vec<Piece>),
}

impl Renderer {
    /// The renderer for `--format`; a template with an unknown `{field}` is a usage error.
    pub fn new(format: &Format) -> Result<Self> {
        match format {
            Format::Table => Ok(Renderer::Template(vec![Piece::Value])),
            Format::Json => Ok(Renderer::Json),
            Format::Template(t) => parse_template(t).map(Renderer::Template),
        }
    }

    fn render(&self, out: &mut Vec<u8>, topic: &str, partition: i32, r: &Record) {
        match self {
            Renderer::Json => {
                let json = JsonRecord {
                    topic,
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.as_deref().map(lossy),
                    value: r.value.as_deref().map(lossy),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.as_deref().map(lossy)))
                        .collect(),
                };
                // Serializing strings and numbers cannot fail.
                if let Ok(s) = serde_json::to_string(&json) {
                    out.extend_from_slice(s.as_bytes());
                }
            }
            Renderer::Template(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.extend_from_slice(t),
                        Piece::Topic => out.extend_from_slice(topic.as_bytes()),
                        Piece::Partition => out.extend_from_slice(partition.to_string().as_bytes()),
                        Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                        Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                        Piece::Key => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                        Piece::Value => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                        Piece::Headers => {
                            let hs: Vec<String> = r
                                .headers
                                .iter()
                                .map(|(k, v)| format!("{k}={}", v.as_deref().map(lossy).unwrap_or_default()))
                                .collect();
                            out.extend_from_slice(hs.join(",").as_bytes());
                        }
                    }
                }
            }
        }
        out.push(b'\n');
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: BTreeMap<String, Option<String>>,
}

/// Parses `{partition}:{offset}\t{value}`: fields in braces, `\n`, `\t` and `\\` escapes.
fn parse_template(t: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => text.push(b'\n'),
                Some('t') => text.push(b'\t'),
                Some('\\') => text.push(b'\\'),
                Some(other) => {
                    text.push(b'\\');
                    let mut buf = [0u8; 4];
                    text.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
                None => text.push(b'\\'),
            },
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => {
                            return Err(CtlError::InvalidArgument(format!("unclosed {{ in --format {t:?}")));
                        }
                    }
                }
                let piece = match name.as_str() {
                    "topic" => Piece::Topic,
                    "partition" => Piece::Partition,
                    "offset" => Piece::Offset,
                    "timestamp" => Piece::Timestamp,
                    "key" => Piece::Key,
                    "value" => Piece::Value,
                    "headers" => Piece::Headers,
                    other => {
                        return Err(CtlError::InvalidArgument(format!(
                            "unknown field {{{other}}} in --format: use {{key}}, {{value}}, {{partition}}, {{offset}}, {{timestamp}}, {{headers}}, {{topic}}"
                        )));
                    }
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            c => {
                let mut buf = [0u8; 4];
                text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Splits a fetched record set into whole batches; a partial batch at the end (Kafka may cut
/// one at the size limit) is left out.
fn split_batches(mut data: Bytes) -> Vec<Bytes> {
    let mut batches = Vec::new();
    while data.len() >= 12 {
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let Some(total) = usize::try_from(len).ok().and_then(|l| l.checked_add(12)) else {
            break;
        };
        if data.len() < total {
            break;
        }
        batches.push(data.split_to(total));
    }
    batches
}

/// One partition's part of a fetch response.
struct Fetched {
    partition: i32,
    error: i16,
    records: Option<Bytes>,
}

/// What reading a partition's records did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Progressed {
    printed: u64,
    /// Whether `-n` was reached inside this partition's records.
    stopped: bool,
}

/// Prints the records of `data` at or after `*position`, moving `*position` past every batch read
/// (control batches included) and stopping after `limit` records.
fn take_records(
    renderer: &Renderer,
    topic: &str,
    partition: i32,
    data: Bytes,
    position: &mut i64,
    limit: Option<u64>,
    out: &mut Vec<u8>,
) -> Result<Progressed> {
    let mut progressed = Progressed::default();
    for batch in split_batches(data) {
        if batch.len() < BATCH_HEADER_TO_LAST_OFFSET_DELTA {
            break;
        }
        let base_offset = (&batch[0..8]).get_i64();
        let last_offset_delta = (&batch[23..27]).get_i32();
        let magic = batch[MAGIC_OFFSET];
        if magic != 2 {
            return Err(CtlError::Protocol {
                addr: topic.to_string(),
                api: "Fetch".into(),
                reason: format!("record batch format v{magic} is not supported (only v2)"),
            });
        }
        let last_offset = base_offset.saturating_add(i64::from(last_offset_delta));
        if last_offset < *position {
            continue;
        }
        let mut buf = batch.clone();
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| CtlError::Protocol {
            addr: format!("{topic}-{partition}"),
            api: "Fetch".into(),
            reason: format!("bad record batch at offset {base_offset}: {e}"),
        })?;
        for record in set.records {
            if record.offset < *position || record.control {
                continue;
            }
            if limit.is_some_and(|l| progressed.printed >= l) {
                progressed.stopped = true;
                return Ok(progressed);
            }
            renderer.render(out, topic, partition, &record);
            *position = record.offset.saturating_add(1);
            progressed.printed += 1;
        }
        *position = (*position).max(last_offset.saturating_add(1));
        if limit.is_some_and(|l| progressed.printed >= l) {
            progressed.stopped = true;
            return Ok(progressed);
        }
    }
    Ok(progressed)
}

pub async fn run(args: &ConsumeArgs, client: &mut Client, format: &Format) -> Result<Status> {
    let renderer = Renderer::new(format)?;
    let (mut meta, topic) = client.topic(&args.topic).await?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        topic.partitions.iter().map(|p| p.partition).collect()
    } else {
        for &p in &args.partitions {
            if topic.partition(p).is_none() {
                return Err(CtlError::UnknownPartition {
                    topic: args.topic.clone(),
                    partition: p,
                });
            }
        }
        args.partitions.clone()
    };
    let tps: Vec<TopicPartition> = partitions
        .iter()
        .map(|&p| TopicPartition::new(&args.topic, p))
        .collect();
    let (mut positions, committed) = start_positions(client, &meta, &tps, args).await?;
    let ends: Option<BTreeMap<i32, i64>> = if args.exit_at_end {
        let latest = client.list_offsets(&meta, &tps, LATEST_TIMESTAMP).await?;
        let mut ends = BTreeMap::new();
        for (tp, r) in latest {
            ends.insert(tp.partition, r?);
        }
        Some(ends)
    } else {
        None
    };

    // With --group, every partition read gets its position committed (as Kafka's consumers
    // commit every assigned partition), so the group shows lag for all of them.
    let mut committed_at = committed;
    let mut printed: u64 = 0;
    let mut progress = Progress::new("consuming", "records", args.count, !std::io::stdout().is_terminal());
    let deadline_after_errors = client.timeout();
    let mut failing_since: Option<tokio::time::Instant> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    'rounds: loop {
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        let active: Vec<TopicPartition> = positions
            .iter()
            .filter(|&(p, pos)| ends.as_ref().is_none_or(|e| e.get(p).is_some_and(|end| pos < end)))
            .map(|(&p, _)| TopicPartition::new(&args.topic, p))
            .collect();
        if active.is_empty() {
            break;
        }
        let (routed, failed) = meta.by_leader(&active);
        let mut trouble = failed.into_iter().next().map(|(_, e)| e);
        for (leader, tps) in routed {
            let wanted: Vec<(i32, i64)> = tps
                .iter()
                .filter_map(|tp| positions.get(&tp.partition).map(|&pos| (tp.partition, pos)))
                .collect();
            let fetched = tokio::select! {
                r = fetch(client, leader, &args.topic, &wanted) => r,
                _ = &mut ctrl_c => break 'rounds,
            };
            let fetched = match fetched {
                Ok(f) => f,
                Err(e @ (CtlError::Connection { .. } | CtlError::Timeout { .. })) => {
                    trouble = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut out = Vec::new();
            for f in fetched {
                let Some(position) = positions.get_mut(&f.partition) else {
                    continue;
                };
                if f.error == ResponseError::OffsetOutOfRange.code() {
                    let tp = TopicPartition::new(&args.topic, f.partition);
                    let moved = reset_position(client, &meta, &tp, *position).await?;
                    warn(&format!(
                        "{tp}: offset {} is out of range; continuing at {moved}",
                        *position
                    ));
                    *position = moved;
                    continue;
                }
                if f.error != 0 {
                    let e = CtlError::kafka(format!("fetch {}-{}", args.topic, f.partition), f.error, None);
                    let retriable = ResponseError::try_from_code(f.error).is_some_and(|c| c.is_retriable());
                    if !retriable {
                        return Err(e);
                    }
                    trouble = Some(e);
                    continue;
                }
                let Some(data) = f.records else { continue };
                let limit = args.count.map(|n| n.saturating_sub(printed));
                let done = take_records(&renderer, &args.topic, f.partition, data, position, limit, &mut out)?;
                printed += done.printed;
                if done.stopped {
                    break;
                }
            }
            write_stdout_bytes(&out)?;
            progress.set(printed);
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
        }
        if let Some(g) = &args.group {
            commit_moved(client, g, &args.topic, &positions, &mut committed_at).await?;
        }
        match trouble {
            None => failing_since = None,
            Some(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > deadline_after_errors {
                    return Err(e);
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
                meta = client.topic(&args.topic).await?.0;
            }
        }
    }
    progress.finish();
    if let Some(g) = &args.group {
        commit_moved(client, g, &args.topic, &positions, &mut committed_at).await?;
    }
    Ok(Status::Ok)
}

/// Commits the partitions whose position moved since the last commit.
async fn commit_moved(
    client: &mut Client,
    group_name: &str,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    committed_at: &mut BTreeMap<i32, i64>,
) -> Result<()> {
    let moved: BTreeMap<TopicPartition, i64> = positions
        .iter()
        .filter(|&(p, pos)| committed_at.get(p) != Some(pos))
        .map(|(&p, &pos)| (TopicPartition::new(topic, p), pos))
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    group::commit(client, group_name, &moved).await?;
    for (tp, pos) in moved {
        committed_at.insert(tp.partition, pos);
    }
    Ok(())
}

/// Where each partition starts, and the group's committed offsets (by partition) when it has any.
async fn start_positions(
    client: &mut Client,
    meta: &Metadata,
    tps: &[TopicPartition],
    args: &ConsumeArgs,
) -> Result<(BTreeMap<i32, i64>, BTreeMap<i32, i64>)> {
    let starts = client.list_offsets(meta, tps, EARLIEST_TIMESTAMP).await?;
    let ends = client.list_offsets(meta, tps, LATEST_TIMESTAMP).await?;
    let committed = match (&args.group, args.offset) {
        (Some(g), None) => group::committed(client, g, Some(tps)).await?,
        _ => BTreeMap::new(),
    };
    let mut positions = BTreeMap::new();
    for tp in tps {
        let offset_of = |m: &BTreeMap<TopicPartition, Result<i64>>| -> Result<i64> {
            match m.get(tp) {
                Some(Ok(o)) => Ok(*o),
                Some(Err(e)) => Err(CtlError::Refused(e.to_string())),
                None => Err(CtlError::Refused(format!("no offsets for {tp}"))),
            }
        };
        let (start, end) = (offset_of(&starts)?, offset_of(&ends)?);
        let position = match args.offset {
            Some(o) if o >= 0 => o,
            Some(back) => end.saturating_add(back).max(start),
            None => match committed.get(tp) {
                Some(&c) => c,
                None if args.from_beginning => start,
                None => end,
            },
        };
        positions.insert(tp.partition, position);
    }
    let committed = committed.into_iter().map(|(tp, o)| (tp.partition, o)).collect();
    Ok((positions, committed))
}

/// After OFFSET_OUT_OF_RANGE: the log start if we were before it, else the log end.
async fn reset_position(client: &mut Client, meta: &Metadata, tp: &TopicPartition, position: i64) -> Result<i64> {
    let wanted = std::slice::from_ref(tp);
    let start = client.list_offsets(meta, wanted, EARLIEST_TIMESTAMP).await?.remove(tp);
    let start = start.ok_or_else(|| CtlError::Refused(format!("no log start for {tp}")))??;
    if position < start {
        return Ok(start);
    }
    let end = client.list_offsets(meta, wanted, LATEST_TIMESTAMP).await?.remove(tp);
    end.ok_or_else(|| CtlError::Refused(format!("no log end for {tp}")))?
}

/// One Fetch request to `leader` for `wanted` (partition, position) pairs.
async fn fetch(client: &mut Client, leader: i32, topic: &str, wanted: &[(i32, i64)]) -> Result<Vec<Fetched>> {
    let conn = client.broker(leader).await?;
    let version = conn.version::<FetchRequest>()?;
    // replica_id stays -1 (a consumer); session id 0 and epoch -1: a full fetch without a session.
    let request = FetchRequest::default()
        .with_max_wait_ms(FETCH_MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(0)
        .with_topics(vec![
            FetchTopic::default().with_topic(topic_name(topic)).with_partitions(
                wanted
                    .iter()
                    .map(|&(p, pos)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(pos)
                            .with_partition_max_bytes(PARTITION_MAX_BYTES)
                    })
                    .collect(),
            ),
        ]);
    let response = conn.send(&request, version).await?;
    if response.error_code != 0 {
        return Err(CtlError::kafka(
            format!("fetch from {topic}"),
            response.error_code,
            None,
        ));
    }
    Ok(response
        .responses
        .into_iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .map(|p| Fetched {
            partition: p.partition_index,
            error: p.error_code,
            records: p.records,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn batch(base: i64, values: &[&str]) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: base as i32 + i as i32 - 1,
                timestamp: 1000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn templates_parse_fields_and_escapes() {
        let r = Renderer::new(&Format::Template("{partition}:{offset}\\t{key}={value}".into())).unwrap();
        let rec = RecordBatchDecoder::decode(&mut batch(5, &["v"]))
            .unwrap()
            .records
            .remove(0);
        let mut out = Vec::new();
        r.render(&mut out, "t", 2, &rec);
        assert_eq!(out, b"2:5\tk0=v\n");
        assert!(Renderer::new(&Format::Template("{nope}".into())).is_err());
        assert!(Renderer::new(&Format::Template("{key".into())).is_err());
    }

    #[test]
    fn json_lines_carry_every_field() {
        let rec = RecordBatchDecoder::decode(&mut batch(0, &["hello"]))
            .unwrap()
            .records
            .remove(0);
        let mut out = Vec::new();
        Renderer::Json.render(&mut out, "t", 0, &rec);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["value"], "hello");
        assert_eq!(v["key"], "k0");
        assert_eq!(v["offset"], 0);
        assert_eq!(v["timestamp"], 1000);
        assert!(v["headers"].as_object().unwrap().is_empty());
    }

    #[test]
    fn records_before_the_position_are_skipped_and_partial_batches_ignored() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, &["a", "b", "c"]));
        data.extend_from_slice(&batch(3, &["d", "e"]));
        let partial = batch(5, &["f"]);
        data.extend_from_slice(&partial[..partial.len() - 3]);
        let renderer = Renderer::new(&Format::Table).unwrap();
        let mut pos = 1;
        let mut out = Vec::new();
        let done = take_records(&renderer, "t", 0, data.clone().freeze(), &mut pos, None, &mut out).unwrap();
        assert_eq!(out, b"b\nc\nd\ne\n");
        assert_eq!((done.printed, pos), (4, 5));

        let mut pos = 0;
        let mut out = Vec::new();
        let done = take_records(&renderer, "t", 0, data.freeze(), &mut pos, Some(2), &mut out).unwrap();
        assert_eq!(out, b"a\nb\n");
        assert_eq!((done.printed, done.stopped, pos), (2, true, 2));
    }
}
