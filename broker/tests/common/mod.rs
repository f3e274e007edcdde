//! Helpers shared by the broker's integration tests: start the real `skiff` binary on a free
//! loopback port with a fresh data directory (killed on drop, its log printed when a test fails),
//! and a blocking Kafka client that speaks raw frames, so tests control every byte on the wire.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

#[path = "../../../storage/tests/common/batches.rs"]
mod batches;
use skiff_protocol::kafka_protocol;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse, RequestHeader, RequestKind,
    ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long the broker may take to accept connections after it is spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default read/write timeout of a test client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The real broker binary, running until dropped.
pub struct BrokerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Keeps the data directory alive as long as the broker.
    pub data: tempfile::TempDir,
    log_path: PathBuf,
}

impl BrokerProcess {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `skiff` with extra `--set NAME=VALUE` settings.
    pub fn start_with(settings: &[&str]) -> Self {
        let mut last_log = String::new();
        // A port found free can be taken by someone else before the broker binds it: retry.
        for _ in 0..5 {
            let data = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let log_path = data.path().join("broker.log");
            let log = File::create(&log_path).expect("broker log file");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
            cmd.arg("--data-dir")
                .arg(data.path().join("data"))
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--set")
                .arg("group.initial.rebalance.delay.ms=0");
            for s in settings {
                cmd.arg("--set").arg(s);
            }
            cmd.env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log));
            let child = cmd.spawn().expect("spawn skiff");
            let mut broker = BrokerProcess {
                child,
                addr,
                data,
                log_path,
            };
            if broker.wait_ready() {
                return broker;
            }
            last_log = broker.log();
            // Drop kills it; try another port.
        }
        panic!("the broker did not start; its last log:\n{last_log}");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return false;
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (not exited, not killed by a signal or an abort).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics if the broker has died (the log is printed when the broker is dropped).
    pub fn assert_alive(&mut self, after: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the broker died after {after} ({status})");
        }
    }

    /// Panics unless a fresh connection gets an ApiVersions answer: a broker that is aborting may
    /// still look alive for a moment, but it no longer answers.
    pub fn assert_responsive(&mut self, after: &str) {
        let mut c = self.connect();
        let answered = c.call_kind(
            ApiKey::ApiVersions,
            0,
            &RequestKind::ApiVersions(api_versions_request(0)),
        );
        if let Err(e) = answered {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && self.is_alive() {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.assert_alive(after);
            panic!("the broker stopped answering after {after}: {e}");
        }
    }

    /// Everything the broker wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Resident memory of the broker in KiB (`VmRSS` of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmRSS:")
    }

    /// Peak resident memory of the broker in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmHWM:")
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A fresh, well-behaved connection gets a correct ApiVersions and Metadata answer.
    pub fn assert_serving(&mut self, after: &str) {
        self.assert_alive(after);
        let mut c = self.connect();
        let (_, versions): (i32, ApiVersionsResponse) = c.call(ApiKey::ApiVersions, 3, &api_versions_request(3));
        assert_eq!(versions.error_code, 0, "ApiVersions after {after}");
        assert!(
            versions.api_keys.iter().any(|k| k.api_key == ApiKey::Metadata as i16),
            "ApiVersions after {after} lists Metadata"
        );
        let (_, metadata): (i32, MetadataResponse) = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
        assert_eq!(metadata.brokers.len(), 1, "Metadata after {after}: {metadata:?}");
        assert_eq!(
            metadata.brokers[0].port,
            i32::from(self.addr.port()),
            "Metadata after {after}"
        );
        self.assert_alive(after);
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- broker log ({}) -----\n{}", self.addr, self.log());
        }
    }
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// An ApiVersions request as a client sends it at `version` (the software name arrived in v3).
pub fn api_versions_request(version: i16) -> ApiVersionsRequest {
    if version >= 3 {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("skiff-tests"))
            .with_client_software_version(StrBytes::from_static_str("0"))
    } else {
        ApiVersionsRequest::default()
    }
}

/// One request frame, size prefix included.
pub fn encode_request<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
    frame(api, version, correlation_id, |buf| {
        body.encode(buf, version).map_err(|e| format!("{e:#}"))
    })
}

/// Like [`encode_request`] for a request held as a `RequestKind`.
pub fn encode_request_kind(api: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Bytes {
    frame(api, version, correlation_id, |buf| {
        body.encode(buf, version).map_err(|e| format!("{e:#}"))
    })
}

fn frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut BytesMut) -> Result<(), String>,
) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("skiff-tests")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap_or_else(|e| panic!("encoding the {api:?} v{version} request header: {e:#}"));
    body(&mut buf).unwrap_or_else(|e| panic!("encoding the {api:?} v{version} request body: {e}"));
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

/// A blocking connection that sends frames and reads whole response frames.
pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the broker");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, body: &R) -> i32 {
        let id = self.next_correlation_id();
        let frame = encode_request(api, version, id, body);
        self.stream
            .write_all(&frame)
            .unwrap_or_else(|e| panic!("sending {api:?} v{version}: {e}"));
        id
    }

    /// Reads one whole response frame (without its size prefix).
    pub fn recv_frame(&mut self) -> io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if !(0..=256 * 1024 * 1024).contains(&size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response size {size}"),
            ));
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Reads a response frame and decodes its header and body at `version`: (correlation id, body).
    pub fn recv<T: Decodable>(&mut self, api: ApiKey, version: i16) -> (i32, T) {
        let mut frame = self
            .recv_frame()
            .unwrap_or_else(|e| panic!("reading the {api:?} v{version} response: {e}"));
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .unwrap_or_else(|e| panic!("decoding the {api:?} v{version} response header: {e:#}"));
        let body = T::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decoding the {api:?} v{version} response: {e:#}"));
        assert!(
            frame.is_empty(),
            "{api:?} v{version} response has {} trailing bytes",
            frame.len()
        );
        (header.correlation_id, body)
    }

    /// Sends a request and reads its response, checking the correlation id.
    pub fn call<R: Encodable, T: Decodable>(&mut self, api: ApiKey, version: i16, body: &R) -> (i32, T) {
        let id = self.send(api, version, body);
        let (corr, resp) = self.recv(api, version);
        assert_eq!(corr, id, "{api:?} v{version}: correlation id");
        (corr, resp)
    }

    /// Sends a `RequestKind` and decodes the answer as a `ResponseKind` at the same version.
    pub fn call_kind(&mut self, api: ApiKey, version: i16, body: &RequestKind) -> io::Result<ResponseKind> {
        let id = self.next_correlation_id();
        let frame = encode_request_kind(api, version, id, body);
        self.stream.write_all(&frame)?;
        let mut frame = self.recv_frame()?;
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("response header: {e:#}")))?;
        if header.correlation_id != id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("correlation id {} instead of {id}", header.correlation_id),
            ));
        }
        let body = ResponseKind::decode(api, &mut frame, version)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("response body: {e:#}")))?;
        if !frame.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} trailing bytes after the response", frame.len()),
            ));
        }
        Ok(body)
    }

    /// Whether the broker closes this connection within `within` (EOF or reset), discarding
    /// anything it sends first. `false` if the connection is still open when time is up.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut sink = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("read timeout");
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// One uncompressed record batch of `records` records with `value_len`-byte values, byte for byte
/// what a client sends.
pub fn record_batch(records: usize, value_len: usize) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    batches::build(records, value_len, now, kafka_protocol::records::Compression::None).freeze()
}

/// Creates a topic with CreateTopics v7 (1 replica); it is fine if it exists already.
pub fn create_topic(client: &mut Client, name: &str, partitions: i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let (_, response): (i32, CreateTopicsResponse) = client.call(ApiKey::CreateTopics, 7, &request);
    let code = response.topics.first().map(|t| t.error_code);
    assert!(matches!(code, Some(0) | Some(36)), "creating {name}: {response:?}");
}

/// Produces one batch to partition 0 of `topic` with Produce v9 and acks=all; returns the base offset.
pub fn produce(client: &mut Client, topic: &str, batch: &Bytes) -> i64 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.clone())),
                ]),
        ]);
    let (_, response): (i32, ProduceResponse) = client.call(ApiKey::Produce, 9, &request);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "producing to {topic}: {response:?}");
    p.base_offset
}

/// A Fetch v11 request for partition 0 of `topic` from `offset` (no wait).
pub fn fetch_request(topic: &str, offset: i64, partition_max_bytes: i32) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ])
}
