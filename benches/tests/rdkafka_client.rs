//! The real `skiff` binary against librdkafka (the `rdkafka` crate): what a Rust or
//! confluent-kafka user sees. Each test starts its own broker on a free loopback port with a temp
//! data directory and checks exact round trips: keys, null values, headers (including null and
//! empty header values), timestamps, partitions and offsets, under every compression codec; an
//! idempotent producer (KIP-98); and a consumer group member that commits, followed by a second
//! member of the same group that resumes from the committed offset.
//!
//! The broker binary is `target/debug/skiff`, built on first use with `cargo build -p
//! skiff-broker` (a no-op when it is fresh), or `$SKIFF_BIN` when set. Every test runs under a
//! deadline, so a broker that never answers fails the test instead of hanging it.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, Timestamp, TopicPartitionList};

/// Upper bound on one test's client work; the whole file stays well under 30 s when it passes.
const TEST_DEADLINE: Duration = Duration::from_secs(25);
/// How long a started broker may take to accept connections.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The broker under test

/// Path of the debug `skiff` binary, built once per test process unless `$SKIFF_BIN` names one.
fn skiff_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SKIFF_BIN") {
            return PathBuf::from(bin);
        }
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "skiff-broker", "--bin", "skiff"])
            .current_dir(workspace)
            .status()
            .expect("running cargo build -p skiff-broker");
        assert!(status.success(), "cargo build -p skiff-broker failed");
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/skiff"))
    })
    .clone()
}

/// A `skiff` process on a free loopback port with its own temp data directory; killed on drop.
/// When the test failed, the tail of the broker's log is printed.
struct Broker {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let bin = skiff_bin();
        assert!(bin.exists(), "{} does not exist", bin.display());
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("skiff.log")).expect("log file");
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &addr.to_string()])
            .args(["--set", "group.initial.rebalance.delay.ms=0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting skiff");
        let mut broker = Broker { child, addr, dir };
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("skiff exited at start with {status}");
            }
            assert!(Instant::now() < deadline, "skiff did not listen on {addr} in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(log) = std::fs::File::open(self.dir.path().join("skiff.log"))
        {
            let lines: Vec<String> = BufReader::new(log).lines().map_while(Result::ok).collect();
            eprintln!("---- last lines of the skiff log ----");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Runs `body` on its own thread and fails the test if it takes longer than `TEST_DEADLINE`
/// (librdkafka calls such as a consumer's close can otherwise wait forever). Panics inside
/// `body` are re-raised here, so the broker (owned by the caller) is dropped on this thread.
fn bounded<F: FnOnce() + Send + 'static>(body: F) {
    let (done, finished) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(TEST_DEADLINE) {
        Ok(()) => handle.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body ends by sending or panicking"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {TEST_DEADLINE:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Client helpers

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options)).expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(name, code)| panic!("CreateTopics {name}: {code:?}"));
    }
}

/// One record to produce, and what a consumer must see again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// A consumed record with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    offset: i64,
    rec: Rec,
}

/// A delivery report: `Ok((partition, offset))` or the error.
type Delivery = Result<(i32, i64), String>;

/// Delivery reports by record index.
struct Reports(Mutex<Vec<Option<Delivery>>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().expect("reports")[index] = Some(outcome);
    }
}

/// Produces `records` in order with the given extra producer settings and returns each one's
/// (partition, offset) from its delivery report; every delivery must succeed.
fn produce(bootstrap: &str, topic: &str, settings: &[(&str, &str)], records: &[Rec]) -> Vec<(i32, i64)> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "15000");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let producer: BaseProducer<Reports> = config
        .create_with_context(Reports(Mutex::new(vec![None; records.len()])))
        .expect("producer");
    for (i, r) in records.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record = BaseRecord::with_opaque_to(topic, i)
            .partition(r.partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        producer.send(record).map_err(|(e, _)| e).expect("send");
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(15)).expect("flush");
    if let Some((code, reason)) = producer.client().fatal_error() {
        panic!("producer fatal error {code:?}: {reason}");
    }
    let reports = producer.context().0.lock().expect("reports").clone();
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(Ok(at)) => at,
            Some(Err(e)) => panic!("record {i} was not delivered: {e}"),
            None => panic!("record {i} has no delivery report"),
        })
        .collect()
}

fn got(m: &BorrowedMessage<'_>) -> Got {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    let timestamp = match m.timestamp() {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
        Timestamp::NotAvailable => -1,
    };
    Got {
        offset: m.offset(),
        rec: Rec {
            partition: m.partition(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp,
        },
    }
}

/// Reads partitions `0..partitions` of `topic` from the beginning (assign, no group protocol)
/// until `count` records arrived, then a little longer to catch any extra ones.
fn consume_assigned(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("assign-only-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count} records from {topic}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(got(&m)),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    let drain = Instant::now() + Duration::from_millis(300);
    while Instant::now() < drain {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            out.push(got(&m));
        }
    }
    out
}

/// Records spread over `partitions`, with every shape a client can send: keyed and null keys,
/// null, empty and compressible values, headers with values, empty values and null values.
fn mixed_records(n: usize, partitions: i32) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            partition: i as i32 % partitions,
            key: (i % 5 != 4).then(|| format!("user_{i}").into_bytes()),
            value: match i % 4 {
                3 => None,
                2 => Some(Vec::new()),
                _ => Some(format!("event {i} clicked {}", "page-view ".repeat(i % 17)).into_bytes()),
            },
            headers: if i % 2 == 0 {
                vec![
                    ("trace-id".to_string(), Some(format!("t-{i}").into_bytes())),
                    ("empty".to_string(), Some(Vec::new())),
                    ("null".to_string(), None),
                ]
            } else {
                Vec::new()
            },
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

/// Checks that `consumed` is exactly `records` at the offsets their delivery reports gave, with
/// each partition's offsets running 0, 1, 2, … in send order.
fn assert_exact(records: &[Rec], delivered: &[(i32, i64)], mut consumed: Vec<Got>) {
    let mut next_offset = std::collections::HashMap::new();
    let mut expected: Vec<Got> = Vec::new();
    for (r, &(partition, offset)) in records.iter().zip(delivered) {
        assert_eq!(partition, r.partition, "delivery report partition of {r:?}");
        let next = next_offset.entry(partition).or_insert(0i64);
        assert_eq!(
            offset, *next,
            "offsets of partition {partition} must run in send order from 0"
        );
        *next += 1;
        expected.push(Got { offset, rec: r.clone() });
    }
    let order = |g: &Got| (g.rec.partition, g.offset);
    consumed.sort_by_key(order);
    expected.sort_by_key(order);
    assert_eq!(consumed.len(), expected.len(), "record count");
    for (c, e) in consumed.iter().zip(&expected) {
        assert_eq!(c, e);
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

fn codec_round_trip(codec: &'static str) {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    bounded(move || {
        let topic = format!("codec-{codec}");
        create_topic(&bootstrap, &topic, 3);
        let records = mixed_records(60, 3);
        let delivered = produce(&bootstrap, &topic, &[("compression.type", codec)], &records);
        let consumed = consume_assigned(&bootstrap, &topic, 3, records.len());
        assert_exact(&records, &delivered, consumed);
    });
}

#[test]
fn round_trip_is_exact_uncompressed() {
    codec_round_trip("none");
}

#[test]
fn round_trip_is_exact_with_gzip() {
    codec_round_trip("gzip");
}

#[test]
fn round_trip_is_exact_with_snappy() {
    codec_round_trip("snappy");
}

#[test]
fn round_trip_is_exact_with_lz4() {
    codec_round_trip("lz4");
}

#[test]
fn round_trip_is_exact_with_zstd() {
    codec_round_trip("zstd");
}

/// KIP-98: with `enable.idempotence=true` librdkafka gets a producer id (InitProducerId) and
/// numbers every batch; every record must land once, offsets contiguous per partition.
#[test]
fn idempotent_producer_writes_each_record_once() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    bounded(move || {
        let topic = "idempotent";
        create_topic(&bootstrap, topic, 2);
        let records: Vec<Rec> = (0..2000)
            .map(|i| Rec {
                partition: i % 2,
                key: Some(format!("user_{}", i % 97).into_bytes()),
                value: Some(format!("seq-{i}").into_bytes()),
                headers: Vec::new(),
                timestamp: 1_700_000_000_000 + i64::from(i),
            })
            .collect();
        let delivered = produce(
            &bootstrap,
            topic,
            &[
                ("enable.idempotence", "true"),
                ("max.in.flight.requests.per.connection", "5"),
                ("batch.num.messages", "100"),
            ],
            &records,
        );
        let consumed = consume_assigned(&bootstrap, topic, 2, records.len());
        assert_exact(&records, &delivered, consumed);
    });
}

/// Classic consumer group protocol: a member that commits offset 10 and leaves, then a new member
/// of the same group starts exactly at offset 10 (the committed offset is the next one to read).
#[test]
fn group_member_resumes_from_the_committed_offset() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    bounded(move || {
        let topic = "group-resume";
        let group = "resume-group";
        create_topic(&bootstrap, topic, 1);
        let records: Vec<Rec> = (0..20)
            .map(|i| Rec {
                partition: 0,
                key: Some(format!("k{i}").into_bytes()),
                value: Some(format!("v{i}").into_bytes()),
                headers: Vec::new(),
                timestamp: 1_700_000_000_000 + i64::from(i),
            })
            .collect();
        produce(&bootstrap, topic, &[], &records);

        let member = || -> BaseConsumer {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500")
                .set("enable.partition.eof", "false")
                .create()
                .expect("consumer");
            consumer.subscribe(&[topic]).expect("subscribe");
            consumer
        };
        let next = |consumer: &BaseConsumer, deadline: Instant| -> Got {
            loop {
                assert!(
                    Instant::now() < deadline,
                    "no record from the group consumer in time (FindCoordinator, JoinGroup, SyncGroup and OffsetCommit must be served)"
                );
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => return got(&m),
                    Some(Err(e)) => panic!("group consumer error: {e}"),
                    None => {}
                }
            }
        };

        let first = member();
        let deadline = Instant::now() + Duration::from_secs(10);
        for expected in 0..10 {
            let g = next(&first, deadline);
            assert_eq!(g.offset, expected);
            assert_eq!(g.rec, records[expected as usize]);
        }
        let mut commit = TopicPartitionList::new();
        commit.add_partition_offset(topic, 0, Offset::Offset(10)).expect("tpl");
        first.commit(&commit, CommitMode::Sync).expect("OffsetCommit");
        let committed = first.committed(Duration::from_secs(5)).expect("OffsetFetch");
        assert_eq!(
            committed.find_partition(topic, 0).map(|p| p.offset()),
            Some(Offset::Offset(10)),
            "OffsetFetch after the commit"
        );
        // A partition list librdkafka filled in keeps references to its partitions; destroying
        // the consumer while one is alive hangs rd_kafka_destroy (librdkafka #3796). Drop first.
        drop(committed);
        drop(commit);
        drop(first); // closes the consumer: LeaveGroup

        let second = member();
        let deadline = Instant::now() + Duration::from_secs(10);
        for expected in 10..20 {
            let g = next(&second, deadline);
            assert_eq!(
                g.offset, expected,
                "the second member must resume at the committed offset"
            );
            assert_eq!(g.rec, records[expected as usize]);
        }
    });
}
