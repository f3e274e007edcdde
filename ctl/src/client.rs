//! A small Kafka client: just enough for an admin tool, and nothing Skiff-specific, so `skiffctl`
//! works against Apache Kafka too.
//!
//! A [`Connection`] is one TCP connection to one broker: on connect it asks ApiVersions (falling
//! back to the version the broker offers when it does not know ours, as Kafka's clients do), then
//! sends each request at the highest version both sides support, with a fresh correlation id,
//! framed by a 4-byte big-endian length. A [`Client`] bootstraps from the `--brokers` list, reads
//! Metadata, and routes: partition requests to the partition's leader, group requests to the
//! group's coordinator (FindCoordinator), everything else to whichever broker answered first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FindCoordinatorRequest, GroupId, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::error::{CtlError, Result};

/// The client id every request carries (Kafka's `client.id`).
pub const CLIENT_ID: &str = "skiffctl";
/// Kafka's `request.timeout.ms` default for clients, in seconds; `--timeout` overrides it.
pub const REQUEST_TIMEOUT_SECS_DEFAULT: u64 = 30;
/// The largest response this tool accepts (Kafka's `fetch.max.bytes` default is 50 MiB; leave room).
const RESPONSE_MAX_BYTES: usize = 128 * 1024 * 1024;
/// How often FindCoordinator is retried while the coordinator is still loading or being created.
const COORDINATOR_RETRIES: u32 = 40;
/// Wait between FindCoordinator retries (Kafka's `retry.backoff.ms` default is 100).
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// `ListOffsets` timestamps with a special meaning.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// The versions this tool speaks are the `kafka-protocol` crate's, capped where a newer version
/// changes the shape of a request in a way the commands do not handle: Produce and Fetch name
/// topics by id instead of by name from v13.
fn client_max(key: ApiKey) -> Option<i16> {
    match key {
        ApiKey::Produce | ApiKey::Fetch => Some(12),
        _ => None,
    }
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

pub fn group_id(s: &str) -> GroupId {
    GroupId(str_bytes(s))
}

/// A topic and a partition of it; displays as Kafka does, `orders-0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One TCP connection to one broker, with the API versions it announced.
#[derive(Debug)]
pub struct Connection {
    /// host:port, for error messages.
    addr: String,
    stream: TcpStream,
    /// The broker's (min, max) version per API key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: i32,
    timeout: Duration,
    /// Set when a request failed half-way: the stream may hold a stale response, so it is not reused.
    broken: bool,
}

impl Connection {
    /// Connects and negotiates API versions.
    pub async fn open(addr: &str, timeout: Duration) -> Result<Self> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(CtlError::Connection {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(CtlError::Connection {
                    addr: addr.to_string(),
                    reason: format!("no connection within {} s", timeout.as_secs()),
                });
            }
        };
        // Small requests, answered one at a time: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            versions: HashMap::new(),
            next_correlation_id: 0,
            timeout,
            broken: false,
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// ApiVersions at our highest version; a broker that does not know it answers at v0 with
    /// UNSUPPORTED_VERSION and its own range, and we ask again at the highest version it offers.
    async fn negotiate(&mut self) -> Result<()> {
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for _ in 0..2 {
            let request = if version >= 3 {
                ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
                    .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
            } else {
                ApiVersionsRequest::default()
            };
            let body = self.roundtrip::<ApiVersionsRequest>(&request, version).await?;
            let response = match ApiVersionsResponse::decode(&mut body.clone(), version) {
                Ok(r) if r.error_code == 0 => r,
                _ => {
                    let fallback = ApiVersionsResponse::decode(&mut body.clone(), 0)
                        .map_err(|e| self.protocol_error(ApiKey::ApiVersions as i16, e))?;
                    let offered = fallback
                        .api_keys
                        .iter()
                        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                        .map(|k| k.max_version);
                    match offered {
                        Some(max)
                            if fallback.error_code == ResponseError::UnsupportedVersion.code() && max < version =>
                        {
                            version = max;
                            continue;
                        }
                        _ => {
                            return Err(CtlError::kafka(
                                format!("ApiVersions from {}", self.addr),
                                fallback.error_code,
                                None,
                            ));
                        }
                    }
                }
            };
            self.versions = response
                .api_keys
                .iter()
                .map(|k: &ApiVersion| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            return Ok(());
        }
        Err(CtlError::Unsupported {
            addr: self.addr.clone(),
            api: "ApiVersions".into(),
            detail: " at any version this tool speaks".into(),
        })
    }

    /// The version to send `R` at: the highest that both this tool and the broker support.
    pub fn version<R: Request>(&self) -> Result<i16> {
        let key = R::KEY;
        let ours_max = ApiKey::try_from(key)
            .ok()
            .and_then(client_max)
            .map_or(R::VERSIONS.max, |cap| cap.min(R::VERSIONS.max));
        let Some(&(their_min, their_max)) = self.versions.get(&key) else {
            return Err(CtlError::Unsupported {
                addr: self.addr.clone(),
                api: api_name(key),
                detail: String::new(),
            });
        };
        let max = ours_max.min(their_max);
        if max < R::VERSIONS.min.max(their_min) {
            return Err(CtlError::Unsupported {
                addr: self.addr.clone(),
                api: api_name(key),
                detail: format!(
                    " at a version this tool speaks (broker: v{their_min}-v{their_max}, skiffctl: v{}-v{ours_max})",
                    R::VERSIONS.min
                ),
            });
        }
        Ok(max)
    }

    /// Whether the broker serves `R` at a version this tool speaks.
    pub fn supports<R: Request>(&self) -> bool {
        self.version::<R>().is_ok()
    }

    /// Sends `request` at `version` (which the caller got from [`Connection::version`] and built
    /// the request for) and decodes the response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let mut body = self.roundtrip(request, version).await?;
        R::Response::decode(&mut body, version).map_err(|e| self.protocol_error(R::KEY, e))
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_oneway<R: Request>(&mut self, request: &R, version: i16) -> Result<()> {
        let frame = self.frame(request, version)?;
        self.write_frame(R::KEY, &frame).await
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> Result<(i32, BytesMut)> {
        if self.broken {
            return Err(CtlError::Connection {
                addr: self.addr.clone(),
                reason: "connection is unusable after an earlier failure".into(),
            });
        }
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| self.protocol_error(R::KEY, e))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| self.protocol_error(R::KEY, e))?;
        let len = i32::try_from(buf.len() - 4).map_err(|_| CtlError::Protocol {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
            reason: "request too large".into(),
        })?;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        Ok((correlation_id, buf))
    }

    async fn write_frame(&mut self, key: i16, frame: &(i32, BytesMut)) -> Result<()> {
        let result = tokio::time::timeout(self.timeout, self.stream.write_all(&frame.1)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io_error(e)),
            Err(_) => Err(self.timeout_error(key)),
        }
    }

    /// Writes one request and reads its response; returns the body after the response header.
    async fn roundtrip<R: Request>(&mut self, request: &R, version: i16) -> Result<Bytes> {
        let frame = self.frame(request, version)?;
        self.write_frame(R::KEY, &frame).await?;
        let read = tokio::time::timeout(self.timeout, async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let len = i32::from_be_bytes(len);
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= RESPONSE_MAX_BYTES)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("response size {len}")))?;
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Bytes::from(body))
        })
        .await;
        let mut body = match read {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(self.io_error(e)),
            Err(_) => return Err(self.timeout_error(R::KEY)),
        };
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version)).map_err(|e| {
            self.broken = true;
            self.protocol_error(R::KEY, e)
        })?;
        if header.correlation_id != frame.0 {
            self.broken = true;
            return Err(CtlError::Protocol {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
                reason: format!(
                    "response to correlation id {} instead of {}",
                    header.correlation_id, frame.0
                ),
            });
        }
        Ok(body)
    }

    fn io_error(&mut self, e: std::io::Error) -> CtlError {
        self.broken = true;
        let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "the broker closed the connection".to_string()
        } else {
            e.to_string()
        };
        CtlError::Connection {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn timeout_error(&mut self, key: i16) -> CtlError {
        self.broken = true;
        CtlError::Timeout {
            addr: self.addr.clone(),
            api: api_name(key),
            secs: self.timeout.as_secs(),
        }
    }

    fn protocol_error(&self, key: i16, e: impl fmt::Display) -> CtlError {
        CtlError::Protocol {
            addr: self.addr.clone(),
            api: api_name(key),
            reason: e.to_string(),
        }
    }
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone)]
pub struct BrokerMeta {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionMeta {
    pub partition: i32,
    pub error: i16,
    /// -1 when the partition has no leader.
    pub leader: i32,
    /// -1 when the broker does not say (Metadata < v7).
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicMeta {
    pub name: String,
    /// Nil when the broker does not say (Metadata < v10).
    pub id: Uuid,
    pub internal: bool,
    pub error: i16,
    pub partitions: Vec<PartitionMeta>,
}

impl TopicMeta {
    pub fn partition(&self, p: i32) -> Option<&PartitionMeta> {
        self.partitions.iter().find(|m| m.partition == p)
    }

    /// The replication factor: replicas of the first partition (Kafka's tools show the same).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// The cluster as one Metadata response describes it.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    /// -1 when the broker does not say.
    pub controller: i32,
    pub brokers: Vec<BrokerMeta>,
    pub topics: Vec<TopicMeta>,
}

impl Metadata {
    fn from_response(r: MetadataResponse) -> Self {
        let mut brokers: Vec<BrokerMeta> = r
            .brokers
            .into_iter()
            .map(|b| BrokerMeta {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        let topics = r
            .topics
            .into_iter()
            .map(|t| {
                let mut partitions: Vec<PartitionMeta> = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionMeta {
                        partition: p.partition_index,
                        error: p.error_code,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                        offline: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicMeta {
                    name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                    id: t.topic_id,
                    internal: t.is_internal,
                    error: t.error_code,
                    partitions,
                }
            })
            .collect();
        Metadata {
            cluster_id: r.cluster_id.map(|c| c.to_string()),
            controller: r.controller_id.0,
            brokers,
            topics,
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.iter().find(|t| t.name == name)
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerMeta> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// The leader of a partition, or why there is none.
    pub fn leader(&self, tp: &TopicPartition) -> Result<i32> {
        let topic = self
            .topic(&tp.topic)
            .ok_or_else(|| CtlError::UnknownTopic(tp.topic.clone()))?;
        let p = topic
            .partition(tp.partition)
            .ok_or_else(|| CtlError::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })?;
        if p.leader < 0 {
            let code = if p.error != 0 {
                p.error
            } else {
                ResponseError::LeaderNotAvailable.code()
            };
            return Err(CtlError::kafka(format!("leader of {tp}"), code, None));
        }
        Ok(p.leader)
    }

    /// Groups partitions by their leader; partitions without one come back separately with the reason.
    pub fn by_leader<'a>(
        &self,
        wanted: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> (BTreeMap<i32, Vec<TopicPartition>>, Unroutable) {
        let mut routed: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut failed = Vec::new();
        for tp in wanted {
            match self.leader(tp) {
                Ok(leader) => routed.entry(leader).or_default().push(tp.clone()),
                Err(e) => failed.push((tp.clone(), e)),
            }
        }
        (routed, failed)
    }
}

/// Partitions that have no leader to send to, each with the reason.
pub type Unroutable = Vec<(TopicPartition, CtlError)>;

/// Groups topic-partitions by topic, keeping the order of partitions.
pub fn by_topic<'a>(tps: impl IntoIterator<Item = &'a TopicPartition>) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        out.entry(tp.topic.clone()).or_default().push(tp.partition);
    }
    out
}

/// Connections to a cluster, opened as requests need them.
#[derive(Debug)]
pub struct Client {
    /// The first `--brokers` address that answered; serves every request that any broker can answer.
    any: Connection,
    /// Connections by broker id, opened on first use.
    brokers: HashMap<i32, Connection>,
    /// host:port of each broker id, from the latest Metadata (and FindCoordinator).
    addresses: HashMap<i32, String>,
    timeout: Duration,
}

impl Client {
    /// Connects to the first reachable address of `bootstrap`.
    pub async fn connect(bootstrap: &[String], timeout: Duration) -> Result<Self> {
        let mut last = String::from("no broker address given");
        for addr in bootstrap.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
            let addr = if addr.contains(':') {
                addr.to_string()
            } else {
                format!("{addr}:9092")
            };
            match Connection::open(&addr, timeout).await {
                Ok(any) => {
                    return Ok(Client {
                        any,
                        brokers: HashMap::new(),
                        addresses: HashMap::new(),
                        timeout,
                    });
                }
                Err(CtlError::Connection { reason, .. }) => last = reason,
                Err(e) => last = e.to_string(),
            }
        }
        Err(CtlError::Unreachable {
            brokers: bootstrap.join(","),
            reason: last,
        })
    }

    /// The bootstrap connection, for requests any broker answers.
    pub fn any(&mut self) -> &mut Connection {
        &mut self.any
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection to broker `id`, opened on first use.
    pub async fn broker(&mut self, id: i32) -> Result<&mut Connection> {
        if !self.brokers.contains_key(&id) {
            if !self.addresses.contains_key(&id) {
                self.metadata(Some(&[])).await?;
            }
            let addr = self.addresses.get(&id).cloned().ok_or_else(|| CtlError::Connection {
                addr: format!("broker {id}"),
                reason: "not in the cluster metadata".into(),
            })?;
            let conn = Connection::open(&addr, self.timeout).await?;
            self.brokers.insert(id, conn);
        }
        self.brokers.get_mut(&id).ok_or_else(|| CtlError::Connection {
            addr: format!("broker {id}"),
            reason: "connection lost".into(),
        })
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: none, brokers only). Never creates
    /// a topic: `allow_auto_topic_creation` is false (v4+; this tool asks at v4 or later whenever
    /// the broker allows).
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<Metadata> {
        let version = self.any.version::<MetadataRequest>()?;
        let mut request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }));
        if version >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        let response = self.any.send(&request, version).await?;
        let meta = Metadata::from_response(response);
        for b in &meta.brokers {
            self.addresses.insert(b.id, format!("{}:{}", b.host, b.port));
        }
        Ok(meta)
    }

    /// Metadata of one topic; an unknown topic is an error.
    pub async fn topic(&mut self, name: &str) -> Result<(Metadata, TopicMeta)> {
        let meta = self.metadata(Some(&[name.to_string()])).await?;
        let topic = meta
            .topic(name)
            .cloned()
            .ok_or_else(|| CtlError::UnknownTopic(name.to_string()))?;
        check_topic_error(&topic)?;
        Ok((meta, topic))
    }

    /// The broker id of the coordinator of `group` (FindCoordinator, retried while the
    /// coordinator is not yet available, as Kafka's clients do).
    pub async fn coordinator(&mut self, group: &str) -> Result<i32> {
        let version = self.any.version::<FindCoordinatorRequest>()?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = if version >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes(group)])
            } else {
                FindCoordinatorRequest::default().with_key(str_bytes(group))
            };
            let response = self.any.send(&request, version).await?;
            let (code, message, node, host, port) = if version >= 4 {
                match response.coordinators.into_iter().next() {
                    Some(c) => (c.error_code, c.error_message, c.node_id.0, c.host, c.port),
                    None => {
                        return Err(CtlError::Protocol {
                            addr: self.any.addr().to_string(),
                            api: "FindCoordinator".into(),
                            reason: "no coordinator in the response".into(),
                        });
                    }
                }
            } else {
                (
                    response.error_code,
                    response.error_message,
                    response.node_id.0,
                    response.host,
                    response.port,
                )
            };
            if code == 0 {
                self.addresses.insert(node, format!("{host}:{port}"));
                return Ok(node);
            }
            let retriable = code == ResponseError::CoordinatorNotAvailable.code()
                || code == ResponseError::CoordinatorLoadInProgress.code();
            if !retriable || attempt >= COORDINATOR_RETRIES || tokio::time::Instant::now() + RETRY_BACKOFF > deadline {
                return Err(CtlError::kafka(
                    format!("find coordinator of group {group}"),
                    code,
                    message.as_deref(),
                ));
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// The connection to the coordinator of `group`.
    pub async fn coordinator_conn(&mut self, group: &str) -> Result<&mut Connection> {
        let id = self.coordinator(group).await?;
        self.broker(id).await
    }

    /// ListOffsets for each partition in `wanted` at `timestamp` (a time in ms, or
    /// [`LATEST_TIMESTAMP`] / [`EARLIEST_TIMESTAMP`]), one request per leader. Each partition gets
    /// its offset (-1 when no record has that timestamp or later) or its own error.
    pub async fn list_offsets(
        &mut self,
        meta: &Metadata,
        wanted: &[TopicPartition],
        timestamp: i64,
    ) -> Result<BTreeMap<TopicPartition, Result<i64>>> {
        let (routed, failed) = meta.by_leader(wanted);
        let mut out: BTreeMap<TopicPartition, Result<i64>> = failed.into_iter().map(|(tp, e)| (tp, Err(e))).collect();
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        for (leader, tps) in routed {
            let conn = match self.broker(leader).await {
                Ok(c) => c,
                Err(e) => {
                    let reason = e.to_string();
                    for tp in tps {
                        out.insert(
                            tp,
                            Err(CtlError::Connection {
                                addr: format!("leader {leader}"),
                                reason: reason.clone(),
                            }),
                        );
                    }
                    continue;
                }
            };
            let version = conn.version::<ListOffsetsRequest>()?;
            let topics = by_topic(&tps)
                .into_iter()
                .map(|(topic, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect();
            // replica_id -1: a consumer, not a follower (the crate's default is 0).
            let mut request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(topics);
            if version >= 10 {
                request = request.with_timeout_ms(timeout_ms);
            }
            let response = conn.send(&request, version).await?;
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    let result = if p.error_code == 0 {
                        Ok(p.offset)
                    } else {
                        Err(CtlError::kafka(format!("list offsets of {tp}"), p.error_code, None))
                    };
                    out.insert(tp, result);
                }
            }
            for tp in tps {
                out.entry(tp.clone()).or_insert_with(|| {
                    Err(CtlError::Protocol {
                        addr: format!("leader {leader}"),
                        api: "ListOffsets".into(),
                        reason: format!("no answer for {tp}"),
                    })
                });
            }
        }
        Ok(out)
    }
}

/// A topic-level error in Metadata as an error of this tool.
pub fn check_topic_error(topic: &TopicMeta) -> Result<()> {
    match topic.error {
        0 => Ok(()),
        code if code == ResponseError::UnknownTopicOrPartition.code() => {
            Err(CtlError::UnknownTopic(topic.name.clone()))
        }
        code if code == ResponseError::InvalidTopicException.code() => {
            Err(CtlError::InvalidArgument(format!("invalid topic name: {}", topic.name)))
        }
        code => Err(CtlError::kafka(format!("metadata of topic {}", topic.name), code, None)),
    }
}

/// Kafka's textual form of a topic id: URL-safe base64 without padding (`Uuid.toString()`).
pub fn kafka_uuid(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_print_as_kafka_prints_them() {
        // Kafka's Uuid.ZERO_UUID prints as AAAAAAAAAAAAAAAAAAAAAA; METADATA_TOPIC_ID (0, 1) as AAAAAAAAAAAAAAAAAAAAAQ.
        assert_eq!(kafka_uuid(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(kafka_uuid(&Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(kafka_uuid(&Uuid::from_u128(u128::MAX)), "_____________________w");
    }

    #[test]
    fn topic_partitions_display_like_kafka() {
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
    }

    #[test]
    fn partitions_without_a_leader_are_reported_not_routed() {
        let meta = Metadata {
            cluster_id: None,
            controller: 0,
            brokers: vec![],
            topics: vec![TopicMeta {
                name: "t".into(),
                id: Uuid::nil(),
                internal: false,
                error: 0,
                partitions: vec![
                    PartitionMeta {
                        partition: 0,
                        error: 0,
                        leader: 1,
                        leader_epoch: 0,
                        replicas: vec![1],
                        isr: vec![1],
                        offline: vec![],
                    },
                    PartitionMeta {
                        partition: 1,
                        error: 5,
                        leader: -1,
                        leader_epoch: 0,
                        replicas: vec![2],
                        isr: vec![],
                        offline: vec![2],
                    },
                ],
            }],
        };
        let wanted = [
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 1),
            TopicPartition::new("t", 7),
            TopicPartition::new("u", 0),
        ];
        let (routed, failed) = meta.by_leader(&wanted);
        assert_eq!(routed.get(&1), Some(&vec![TopicPartition::new("t", 0)]));
        assert_eq!(failed.len(), 3);
        assert!(
            failed[0].1.to_string().contains("LEADER_NOT_AVAILABLE"),
            "{}",
            failed[0].1
        );
        assert!(matches!(failed[1].1, CtlError::UnknownPartition { .. }));
        assert!(matches!(failed[2].1, CtlError::UnknownTopic(_)));
    }
}
