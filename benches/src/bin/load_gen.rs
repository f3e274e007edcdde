//! `load_gen`: the end-to-end throughput benchmark, driven by a real Kafka client (librdkafka via
//! the `rdkafka` crate) against a broker that writes to disk. It produces N fixed-size events with
//! `acks=all` and idempotence on, keyed like the analytics workload (`user_<n % keys>`), measures
//! throughput and per-message delivery latency (send to delivery report), then consumes them all
//! back and checks that every sequence number arrives exactly once. One row per (broker, phase,
//! partition count).
//!
//! By default it starts its own broker (`target/release/skiff`) on a free loopback port with a fresh
//! data directory under `target/bench-tmp` (a real disk, so every acks=all produce waits for an
//! fsync), and stops it at the end. `--peer-bin` runs a second Kafka-compatible broker through the
//! same phases in the same run, so the two can be compared as a ratio on the same machine.
//!
//! ```text
//! cargo build --release -p skiff-broker && cargo build --release -p skiff-benches --bin load_gen
//! target/release/load_gen                       # 1 M x 100 B, 1 and 12 partitions
//! target/release/load_gen --brokers 127.0.0.1:9092 --messages 200000 --partitions 4
//! target/release/load_gen --cluster 3           # also a 3-broker cluster, RF 3, min.insync.replicas=2
//! ```
//!
//! `--cluster N` runs the same phases against N brokers started with `deploy/local-cluster.sh`
//! (topics with replication factor N, `min.insync.replicas=2`), prints the ratio to the single
//! node of the same run, and then measures failover: a producer sends one acks=all message every
//! `FAILOVER_SEND_EVERY` to a 1-partition topic, the partition leader is killed with SIGKILL, and
//! the time from the kill to the first acknowledged message sent after it is printed.
//!
//! Payload layout (`--size` bytes): the message's sequence number as a little-endian u64, then
//! filler. MB/s counts payload bytes only (10^6 bytes per MB). Latency is measured under full load
//! on every `--latency-sample-every`th message, so it includes the time a message waits in
//! librdkafka's queue behind earlier ones.
//!
//! Throughput is steady state: the producer first sends one warm-up message to another topic
//! (connection, metadata, InitProducerId; librdkafka retries the producer-id request on a 500 ms
//! timer), and the consumer's clock starts at its first message. Both start-up times are printed
//! in their own column. Worth knowing when reading the produce rows: with idempotence on,
//! librdkafka 2.12 keeps one ProduceRequest in flight per partition (it compares the partition's
//! in-flight *message* count with its limit of 5 in-flight requests, rdkafka_broker.c
//! `rd_kafka_toppar_producer_serve`), so one partition's rate is one batch per broker round trip
//! (fsync included) whatever the broker does with pipelining.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{ArgAction, Parser};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// librdkafka's `batch.size` default here: just under the broker's `message.max.bytes`
/// (1 MiB + 12) and equal to librdkafka's own `message.max.bytes` default (1,000,000), so a full
/// batch is always accepted.
const BATCH_SIZE_DEFAULT: u64 = 1_000_000;
/// Bytes at the start of every payload that carry the sequence number.
const SEQ_BYTES: usize = 8;
/// How long a started broker may take to accept connections.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped broker may take to close its logs after SIGTERM before it is killed.
const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// After the last expected message, how long the consumer keeps polling to catch duplicates.
const DUPLICATE_DRAIN: Duration = Duration::from_millis(500);
/// How often progress goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// librdkafka consumer `fetch.queue.backoff.ms` here. librdkafka's default (1000 ms) parks a
/// partition's fetcher for a whole second whenever its local queue is full, which measures the
/// client's back-off rather than the broker.
const CONSUMER_FETCH_QUEUE_BACKOFF_MS: &str = "10";
/// librdkafka consumer `queued.min.messages` here (default 100000): prefetch more per partition,
/// still bounded by `queued.max.messages.kbytes` (64 MiB).
const CONSUMER_QUEUED_MIN_MESSAGES: &str = "1000000";
/// `--cluster`: how often the failover producer sends.
const FAILOVER_SEND_EVERY: Duration = Duration::from_millis(5);
/// `--cluster`: how long the failover producer runs before the leader is killed.
const FAILOVER_WARMUP: Duration = Duration::from_secs(2);
/// Client-reported errors printed before the rest are only counted.
const MAX_PRINTED_CLIENT_ERRORS: u64 = 5;

#[derive(Debug, Parser)]
#[command(
    name = "load_gen",
    about = "Produce and consume N events through a Kafka-compatible broker with librdkafka"
)]
struct Args {
    /// Bootstrap servers of an already running broker. Without it, load_gen starts `--skiff-bin`.
    #[arg(long)]
    brokers: Option<String>,
    /// The skiff binary to start when `--brokers` is not given.
    #[arg(long, default_value = "target/release/skiff")]
    skiff_bin: PathBuf,
    /// Messages per (phase, partition count).
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Payload bytes per message (at least 8: the sequence number).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partition counts to run, comma-separated; one topic per count.
    #[arg(long, value_delimiter = ',', default_value = "1,12")]
    partitions: Vec<i32>,
    /// librdkafka `linger.ms`.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// librdkafka `batch.size` in bytes.
    #[arg(long, default_value_t = BATCH_SIZE_DEFAULT)]
    batch_size: u64,
    /// Distinct keys (`user_<seq % keys>`); 0 sends unkeyed messages.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// librdkafka `enable.idempotence` (`--idempotence false` for a broker without InitProducerId).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    idempotence: bool,
    /// librdkafka `compression.type`: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Another Kafka-compatible broker binary to run through the same phases, for a ratio.
    #[arg(long)]
    peer_bin: Option<PathBuf>,
    /// Arguments of `--peer-bin`, split on whitespace; `{port}` and `{data_dir}` are substituted.
    #[arg(long, default_value = "--data-dir {data_dir} --listen 127.0.0.1:{port}")]
    peer_args: String,
    /// Name of the peer in the table.
    #[arg(long, default_value = "peer")]
    peer_name: String,
    /// Where started brokers keep their data (a fresh directory per broker, removed afterwards).
    #[arg(long, default_value = "target/bench-tmp")]
    tmp_dir: PathBuf,
    /// Keep the started brokers' data directories and logs.
    #[arg(long)]
    keep_data: bool,
    /// Latency is sampled on every Nth message (each sample costs two clock reads, which are
    /// slow enough on some VMs to show in the throughput); 1 samples every message.
    #[arg(long, default_value_t = 8)]
    latency_sample_every: u64,
    /// Extra librdkafka producer settings, `name=value`, repeatable (e.g. `queue.buffering.max.kbytes=65536`).
    #[arg(long = "producer-config", value_name = "NAME=VALUE")]
    producer_config: Vec<String>,
    /// Extra librdkafka consumer settings, `name=value`, repeatable (e.g. `fetch.queue.backoff.ms=10`).
    #[arg(long = "consumer-config", value_name = "NAME=VALUE")]
    consumer_config: Vec<String>,
    /// Also run the phases against a cluster of this many brokers (deploy/local-cluster.sh,
    /// replication factor = brokers, min.insync.replicas=2) and measure failover; 0: no cluster.
    #[arg(long, default_value_t = 0)]
    cluster: usize,
    /// Replication factor of the topics created on `--brokers` (e.g. 3 against a cluster started
    /// with `deploy/local-cluster.sh up 3`, to profile the brokers on their own).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Upper bound on each phase, in seconds (also librdkafka's `message.timeout.ms`).
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.size < SEQ_BYTES {
        bail!("--size must be at least {SEQ_BYTES} (the sequence number)");
    }
    if args.messages == 0 || args.partitions.is_empty() || args.partitions.iter().any(|&p| p < 1) {
        bail!("--messages and every --partitions count must be at least 1");
    }
    let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
    println!(
        "load_gen: {} msgs x {} B per phase, partitions {:?}, keys {}, acks=all, enable.idempotence={}, \
         linger.ms={}, batch.size={}, compression={}, librdkafka {librdkafka}; consumer \
         fetch.queue.backoff.ms={CONSUMER_FETCH_QUEUE_BACKOFF_MS} queued.min.messages={CONSUMER_QUEUED_MIN_MESSAGES}; \
         latency sampled on 1 in {} messages",
        args.messages,
        args.size,
        args.partitions,
        if args.keys == 0 {
            "none".to_string()
        } else {
            format!("user_<n % {}>", args.keys)
        },
        args.idempotence,
        args.linger_ms,
        args.batch_size,
        args.compression,
        args.latency_sample_every.max(1),
    );

    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let mut targets: Vec<(String, Option<ServerSpec>)> = Vec::new();
    match &args.brokers {
        Some(brokers) => targets.push((format!("skiff@{brokers}"), None)),
        None => targets.push((
            "skiff".to_string(),
            Some(ServerSpec {
                bin: args.skiff_bin.clone(),
                args: "--data-dir {data_dir} --listen 127.0.0.1:{port} --set group.initial.rebalance.delay.ms=0"
                    .to_string(),
            }),
        )),
    }
    if let Some(peer) = &args.peer_bin {
        targets.push((
            args.peer_name.clone(),
            Some(ServerSpec {
                bin: peer.clone(),
                args: args.peer_args.clone(),
            }),
        ));
    }
    let cluster_name = format!("skiff-{}node-rf{}", args.cluster, args.cluster);
    if args.cluster > 0 {
        targets.push((cluster_name.clone(), None));
    }

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut failover = None;
    for (name, spec) in &targets {
        let is_cluster = args.cluster > 0 && *name == cluster_name;
        let server = match spec {
            Some(spec) => Some(Server::start(
                spec,
                &args.tmp_dir,
                &format!("{name}-{run_id}"),
                args.keep_data,
            )?),
            None => None,
        };
        let cluster = if is_cluster {
            Some(LocalCluster::start(&args, &run_id)?)
        } else {
            None
        };
        let replication = if is_cluster {
            args.cluster as i32
        } else if args.brokers.is_some() {
            args.replication_factor
        } else {
            1
        };
        let brokers = match (&server, &cluster, &args.brokers) {
            (Some(s), _, _) => s.addr.to_string(),
            (None, Some(c), _) => c.bootstrap.clone(),
            (None, None, Some(b)) => b.clone(),
            (None, None, None) => bail!("no broker to run against"),
        };
        if let Some(c) = &cluster {
            eprintln!(
                "[{name}] started {} brokers on {brokers}, data in {}",
                args.cluster,
                c.dir.display()
            );
        }
        if let Some(s) = &server {
            eprintln!(
                "[{name}] started {} on {brokers}, data in {}",
                s.bin,
                s.data_dir.display()
            );
        }
        let warmup_topic = format!("load-gen-warmup-{run_id}");
        create_topic(&brokers, &warmup_topic, 1, replication, args.timeout_secs)?;
        for &partitions in &args.partitions {
            let topic = format!("load-gen-{partitions}p-{run_id}");
            create_topic(&brokers, &topic, partitions, replication, args.timeout_secs)?;
            let label = format!("{name} p={partitions}");
            let produced = produce(&args, &brokers, &topic, &warmup_topic, &label)?;
            if let Some(problem) = &produced.problem {
                failures.push(format!("{label} produce: {problem}"));
            }
            rows.push(Row {
                target: name.clone(),
                phase: "produce",
                partitions,
                result: produced,
            });
            let consumed = consume(&args, &brokers, &topic, partitions, &label, &run_id)?;
            if let Some(problem) = &consumed.problem {
                failures.push(format!("{label} consume: {problem}"));
            }
            rows.push(Row {
                target: name.clone(),
                phase: "consume",
                partitions,
                result: consumed,
            });
        }
        if let Some(c) = &cluster {
            let topic = format!("load-gen-failover-{run_id}");
            create_topic(&brokers, &topic, 1, replication, args.timeout_secs)?;
            failover = Some(measure_failover(&args, c, &topic)?);
        }
        if let Some(s) = server {
            s.stop();
        }
    }

    print_table(&rows, args.size);
    print_ratios(&rows, &targets);
    if let Some((leader, took)) = failover {
        println!();
        println!(
            "{cluster_name} failover: leader broker {leader} killed (SIGKILL) -> first acks=all write acknowledged \
             after {} ms (default timeouts: election 1-2 s)",
            took.as_millis()
        );
    }
    println!();
    println!("Reference points from the issue (NOT measured in this run, other hardware):");
    println!("  Tansu 0.6.0 in-memory storage: 2.0-2.7 M msgs/s");
    println!("  Tansu 0.6.0 SQLite storage:    44.5 k msgs/s");
    println!("  Skiff target:                  >= 1 M msgs/s produced, >= 1.5 M msgs/s consumed");
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        bail!("{} phase(s) failed verification", failures.len());
    }
    Ok(())
}

/// What one phase measured.
#[derive(Debug)]
struct PhaseResult {
    messages: u64,
    /// Until the steady state starts, not counted in `elapsed`: for produce, connecting and
    /// acquiring a producer id (one warm-up message to another topic); for consume, from
    /// assign to the first message (connect, ListOffsets, first fetch).
    startup: Duration,
    /// Produce: first send to last delivery report. Consume: first to last message.
    elapsed: Duration,
    /// Delivery latency percentiles (produce only).
    p50: Option<Duration>,
    p99: Option<Duration>,
    /// What went wrong, if the phase did not deliver/see every message exactly once.
    problem: Option<String>,
}

#[derive(Debug)]
struct Row {
    target: String,
    phase: &'static str,
    partitions: i32,
    result: PhaseResult,
}

// ---------------------------------------------------------------------------------------------
// Producing

/// Collects delivery reports. Callbacks run on the thread that polls the producer (ours).
#[derive(Debug)]
struct DeliveryStats {
    start: Instant,
    /// Send-to-delivery latency of each delivered message, in microseconds.
    latencies_us: Mutex<Vec<u32>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    client_errors: AtomicU64,
}

impl DeliveryStats {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl ClientContext for DeliveryStats {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.client_errors.fetch_add(1, Ordering::Relaxed) < MAX_PRINTED_CLIENT_ERRORS {
            eprintln!("  librdkafka producer error: {error}: {reason}");
        }
    }

    /// librdkafka's own log lines (warnings, and everything `--producer-config debug=...` asks for).
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("  librdkafka producer {level:?} {fac}: {message}");
    }
}

impl ProducerContext for DeliveryStats {
    /// For a sampled message, 1 + nanoseconds since `start` at the moment of `send`; else 0.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        match result {
            Ok(_) => {
                if sent != 0 {
                    let sent_ns = sent as u64 - 1;
                    let latency_us = self.now_ns().saturating_sub(sent_ns) / 1_000;
                    if let Ok(mut l) = self.latencies_us.lock() {
                        l.push(u32::try_from(latency_us).unwrap_or(u32::MAX));
                    }
                }
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0
                    && let Ok(mut f) = self.first_failure.lock()
                {
                    *f = Some(e.to_string());
                }
            }
        }
    }
}

fn produce(args: &Args, brokers: &str, topic: &str, warmup_topic: &str, label: &str) -> anyhow::Result<PhaseResult> {
    let n = args.messages;
    let timeout = Duration::from_secs(args.timeout_secs);
    let stats = DeliveryStats {
        start: Instant::now(),
        latencies_us: Mutex::new(Vec::with_capacity(usize::try_from(n).unwrap_or(0))),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
        client_errors: AtomicU64::new(0),
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "skiff-load-gen")
        .set("acks", "all")
        .set("enable.idempotence", args.idempotence.to_string())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        // Let batch.size alone decide how full a batch gets.
        .set("batch.num.messages", "1000000")
        .set("compression.type", &args.compression)
        .set("message.timeout.ms", (timeout.as_millis()).to_string());
    apply_settings(&mut config, &args.producer_config)?;
    let producer: BaseProducer<DeliveryStats> = config.create_with_context(stats).context("creating the producer")?;
    let stats = producer.context().clone();

    let mut payload = vec![b'x'; args.size];
    let mut key = String::with_capacity(16);
    let deadline = Instant::now() + timeout;
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    let check = |what: &str| -> anyhow::Result<()> {
        if let Some((code, reason)) = producer.client().fatal_error() {
            bail!(
                "[{label}] producer fatal error {code:?}: {reason}{}",
                if args.idempotence {
                    " (if the broker lacks InitProducerId, rerun with --idempotence false)"
                } else {
                    ""
                }
            );
        }
        if Instant::now() > deadline {
            bail!("[{label}] produce timed out after {timeout:?} while {what}");
        }
        Ok(())
    };

    // Warm-up: one message to another topic, so the connection, the metadata and (with
    // idempotence) InitProducerId are done before the clock starts. librdkafka retries the
    // producer-id request on a 500 ms timer when it is not connected yet, which alone would
    // add ~0.5 s to every run.
    let warmup = Instant::now();
    producer
        .send(BaseRecord::<[u8], [u8], usize>::with_opaque_to(warmup_topic, 0).payload(&b"warm-up"[..]))
        .map_err(|(e, _)| e)
        .context("sending the warm-up message")?;
    while stats.delivered.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed) < 1 {
        producer.poll(Duration::from_millis(10));
        check("warming up")?;
    }
    if stats.failed.load(Ordering::Relaxed) > 0 {
        let first = stats
            .first_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        bail!("[{label}] the warm-up message failed: {first}");
    }
    let startup = warmup.elapsed();
    stats.delivered.store(0, Ordering::Relaxed);

    let sample_every = args.latency_sample_every.max(1);
    let start = Instant::now();
    for seq in 0..n {
        payload[..SEQ_BYTES].copy_from_slice(&seq.to_le_bytes());
        if args.keys > 0 {
            key.clear();
            let _ = write!(key, "user_{}", seq % args.keys);
        }
        loop {
            let sent = if seq % sample_every == 0 {
                usize::try_from(stats.now_ns().saturating_add(1)).unwrap_or(usize::MAX)
            } else {
                0
            };
            let mut record = BaseRecord::with_opaque_to(topic, sent).payload(&payload[..]);
            if args.keys > 0 {
                record = record.key(key.as_bytes());
            }
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                    check("waiting for queue space")?;
                }
                Err((e, _)) => bail!("[{label}] send failed: {e}"),
            }
        }
        if seq % 4096 == 0 {
            producer.poll(Duration::ZERO);
            check("sending")?;
            if Instant::now() >= next_progress {
                next_progress += PROGRESS_EVERY;
                eprintln!(
                    "  [{label}] produce: {seq} sent, {} delivered",
                    stats.delivered.load(Ordering::Relaxed)
                );
            }
        }
    }
    while stats.delivered.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed) < n {
        producer.poll(Duration::from_millis(50));
        check("waiting for delivery reports")?;
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            eprintln!(
                "  [{label}] produce: all sent, {} delivered",
                stats.delivered.load(Ordering::Relaxed)
            );
        }
    }
    let elapsed = start.elapsed();

    let failed = stats.failed.load(Ordering::Relaxed);
    let mut latencies = stats.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
    let problem = (failed > 0).then(|| {
        let first = stats
            .first_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        format!("{failed} of {n} deliveries failed (first: {first})")
    });
    eprintln!(
        "  [{label}] produce: {} delivered, {failed} failed in {:.2} s",
        stats.delivered.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    Ok(PhaseResult {
        messages: n,
        startup,
        elapsed,
        p50: percentile(&mut latencies, 50.0),
        p99: percentile(&mut latencies, 99.0),
        problem,
    })
}

/// Applies `name=value` settings given on the command line on top of load_gen's own.
fn apply_settings(config: &mut ClientConfig, settings: &[String]) -> anyhow::Result<()> {
    for setting in settings {
        let (name, value) = setting
            .split_once('=')
            .with_context(|| format!("{setting}: expected NAME=VALUE"))?;
        config.set(name.trim(), value.trim());
    }
    Ok(())
}

/// The `pct` percentile (nearest rank) of microsecond samples.
fn percentile(samples_us: &mut [u32], pct: f64) -> Option<Duration> {
    if samples_us.is_empty() {
        return None;
    }
    let rank = ((pct / 100.0) * samples_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, samples_us.len()) - 1;
    let (_, v, _) = samples_us.select_nth_unstable(index);
    Some(Duration::from_micros(u64::from(*v)))
}

// ---------------------------------------------------------------------------------------------
// Consuming

/// Prints the first few client errors the consumer reports.
#[derive(Debug, Default)]
struct ConsumerErrors {
    count: AtomicU64,
}

impl ClientContext for ConsumerErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.count.fetch_add(1, Ordering::Relaxed) < MAX_PRINTED_CLIENT_ERRORS {
            eprintln!("  librdkafka consumer error: {error}: {reason}");
        }
    }

    /// librdkafka's own log lines (warnings, and everything `--consumer-config debug=...` asks for).
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("  librdkafka consumer {level:?} {fac}: {message}");
    }
}

impl rdkafka::consumer::ConsumerContext for ConsumerErrors {}

fn consume(
    args: &Args,
    brokers: &str,
    topic: &str,
    partitions: i32,
    label: &str,
    run_id: &str,
) -> anyhow::Result<PhaseResult> {
    let n = args.messages;
    let timeout = Duration::from_secs(args.timeout_secs);
    // A group id is required by librdkafka's assign(); no group protocol runs (assign, not
    // subscribe) and nothing is committed.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "skiff-load-gen")
        .set("group.id", format!("load-gen-{run_id}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.queue.backoff.ms", CONSUMER_FETCH_QUEUE_BACKOFF_MS)
        .set("queued.min.messages", CONSUMER_QUEUED_MIN_MESSAGES);
    apply_settings(&mut config, &args.consumer_config)?;
    let consumer: BaseConsumer<ConsumerErrors> = config
        .create_with_context(ConsumerErrors::default())
        .context("creating the consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }

    let mut tally = Tally::new(n, args.size, args.keys)?;
    let mut poll_errors = 0u64;
    let start = Instant::now();
    consumer.assign(&assignment).context("assigning partitions")?;
    let deadline = start + timeout;
    let mut next_progress = start + PROGRESS_EVERY;
    let mut last_error = None;
    let mut first = None;
    // The clock is read every CLOCK_EVERY messages, not per message: it is not free on every VM.
    const CLOCK_EVERY: u32 = 256;
    let mut since_clock = 0u32;
    while tally.unique < n {
        since_clock += 1;
        if since_clock >= CLOCK_EVERY {
            since_clock = 0;
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_progress {
                next_progress += PROGRESS_EVERY;
                eprintln!("  [{label}] consume: {} of {n}", tally.unique);
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                tally.inspect(&m)
            }
            Some(Err(e)) => {
                poll_errors += 1;
                if poll_errors <= MAX_PRINTED_CLIENT_ERRORS {
                    eprintln!("  [{label}] consume error: {e}");
                }
                last_error = Some(e.to_string());
            }
            None => since_clock = CLOCK_EVERY,
        }
    }
    let end = Instant::now();
    let first = first.unwrap_or(end);
    let (startup, elapsed) = (first - start, end - first);
    // Anything after the last expected message is a duplicate (or a stray); look briefly.
    let drain_until = Instant::now() + DUPLICATE_DRAIN;
    while Instant::now() < drain_until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            tally.inspect(&m);
        }
    }
    eprintln!(
        "  [{label}] consume: {} unique, {} duplicates in {:.2} s",
        tally.unique,
        tally.duplicates,
        elapsed.as_secs_f64()
    );

    let Tally {
        unique,
        duplicates,
        malformed,
        wrong_key,
        ..
    } = tally;
    let mut problems = Vec::new();
    if unique < n {
        problems.push(format!(
            "{} of {n} missing after {timeout:?}{}",
            n - unique,
            last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
        ));
    }
    if duplicates > 0 {
        problems.push(format!("{duplicates} duplicates"));
    }
    if malformed > 0 {
        problems.push(format!("{malformed} malformed payloads"));
    }
    if wrong_key > 0 {
        problems.push(format!("{wrong_key} wrong keys"));
    }
    Ok(PhaseResult {
        messages: unique,
        startup,
        elapsed,
        p50: None,
        p99: None,
        problem: (!problems.is_empty()).then(|| problems.join(", ")),
    })
}

/// What the consumer has seen: each sequence number's count, and what did not check out.
#[derive(Debug)]
struct Tally {
    n: u64,
    size: usize,
    keys: u64,
    seen: Vec<u8>,
    unique: u64,
    duplicates: u64,
    malformed: u64,
    wrong_key: u64,
    expected_key: String,
}

impl Tally {
    fn new(n: u64, size: usize, keys: u64) -> anyhow::Result<Tally> {
        let len = usize::try_from(n).context("--messages does not fit in memory")?;
        Ok(Tally {
            n,
            size,
            keys,
            seen: vec![0; len],
            unique: 0,
            duplicates: 0,
            malformed: 0,
            wrong_key: 0,
            expected_key: String::with_capacity(16),
        })
    }

    fn inspect(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let seq = m
            .payload()
            .filter(|p| p.len() == self.size)
            .and_then(|p| p.get(..SEQ_BYTES))
            .and_then(|b| <[u8; SEQ_BYTES]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .filter(|&s| s < self.n);
        let Some(seq) = seq else {
            self.malformed += 1;
            return;
        };
        if self.keys > 0 {
            self.expected_key.clear();
            let _ = write!(self.expected_key, "user_{}", seq % self.keys);
            if m.key() != Some(self.expected_key.as_bytes()) {
                self.wrong_key += 1;
            }
        }
        let Some(slot) = usize::try_from(seq).ok().and_then(|i| self.seen.get_mut(i)) else {
            self.malformed += 1;
            return;
        };
        if *slot == 0 {
            self.unique += 1;
        } else {
            self.duplicates += 1;
        }
        *slot = slot.saturating_add(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Topic setup

fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(timeout_secs.min(60))));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .with_context(|| format!("CreateTopics {topic}"))?;
    for r in results {
        if let Err((name, code)) = r {
            bail!("CreateTopics {name}: {code:?}");
        }
    }
    // Wait until metadata shows every partition with a leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .with_context(|| format!("Metadata for {topic}"))?;
        let ready = metadata.topics().iter().any(|t| {
            t.name() == topic
                && t.error().is_none()
                && t.partitions().len() == partitions as usize
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.isr().len() == replication as usize)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{topic} did not show {partitions} led partitions in metadata within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Broker processes

#[derive(Debug)]
struct ServerSpec {
    bin: PathBuf,
    /// Whitespace-separated arguments with `{port}` and `{data_dir}` placeholders.
    args: String,
}

/// A broker process this run started; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
struct Server {
    bin: String,
    child: Option<Child>,
    addr: SocketAddr,
    data_dir: PathBuf,
    keep_data: bool,
}

impl Server {
    fn start(spec: &ServerSpec, tmp_dir: &Path, name: &str, keep_data: bool) -> anyhow::Result<Server> {
        if !spec.bin.exists() {
            bail!(
                "{} does not exist (build it with `cargo build --release -p skiff-broker`, or pass --brokers)",
                spec.bin.display()
            );
        }
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let data_dir = tmp_dir.join(format!("load_gen-{name}"));
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).with_context(|| format!("clearing {}", data_dir.display()))?;
        }
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let log_path = tmp_dir.join(format!("load_gen-{name}.log"));
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let data = data_dir.to_string_lossy();
        let argv: Vec<String> = spec
            .args
            .split_whitespace()
            .map(|a| a.replace("{port}", &port.to_string()).replace("{data_dir}", &data))
            .collect();
        let child = Command::new(&spec.bin)
            .args(&argv)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        let mut server = Server {
            bin: spec.bin.display().to_string(),
            child: Some(child),
            addr,
            data_dir,
            keep_data,
        };
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "{} exited with {status} at start; see {}",
                    server.bin,
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not accept connections on {addr} within {BROKER_START_TIMEOUT:?}",
                    server.bin
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets the broker close its logs cleanly; std only offers SIGKILL.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + BROKER_STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
            if let Some(name) = self.data_dir.file_name() {
                let mut log = name.to_os_string();
                log.push(".log");
                let _ = std::fs::remove_file(self.data_dir.with_file_name(log));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A cluster started with `deploy/local-cluster.sh` in a directory of its own; stopped (and
/// removed unless `--keep-data`) when dropped.
#[derive(Debug)]
struct LocalCluster {
    script: PathBuf,
    dir: PathBuf,
    bin: PathBuf,
    bootstrap: String,
    keep_data: bool,
}

impl LocalCluster {
    fn start(args: &Args, run_id: &str) -> anyhow::Result<LocalCluster> {
        let script = PathBuf::from("deploy/local-cluster.sh");
        if !script.exists() {
            bail!("{} not found: run load_gen from the repository root", script.display());
        }
        let dir = args.tmp_dir.join(format!("load_gen-cluster-{run_id}"));
        let mut cluster = LocalCluster {
            script,
            dir,
            bin: args.skiff_bin.clone(),
            bootstrap: String::new(),
            keep_data: args.keep_data,
        };
        let n = args.cluster.to_string();
        let min_insync = format!("min.insync.replicas={}", args.cluster.min(2));
        let out = cluster.run(&[
            "up",
            &n,
            "--",
            "--set",
            "group.initial.rebalance.delay.ms=0",
            "--set",
            &min_insync,
        ])?;
        cluster.bootstrap = out.trim().to_string();
        Ok(cluster)
    }

    fn run(&self, argv: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.script)
            .args(argv)
            .env("SKIFF_CLUSTER_DIR", &self.dir)
            .env("SKIFF_BIN", &self.bin)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.script.display()))?;
        if !out.status.success() {
            bail!(
                "{} {argv:?} failed: {}",
                self.script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let purge: &[&str] = if self.keep_data {
            &["down"]
        } else {
            &["down", "--purge"]
        };
        if let Err(e) = self.run(purge) {
            eprintln!("stopping the cluster: {e}");
        }
    }
}

/// Delivery reports of the failover producer: when the first message sent after the kill was
/// acknowledged.
#[derive(Debug, Default)]
struct FailoverReports {
    killed_at: Mutex<Option<Instant>>,
    recovered_at: Mutex<Option<Instant>>,
}

impl ClientContext for FailoverReports {}

impl ProducerContext for FailoverReports {
    /// When the message was sent.
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        let killed = self.killed_at.lock().ok().and_then(|k| *k);
        if result.is_ok()
            && killed.is_some_and(|k| *sent >= k)
            && let Ok(mut r) = self.recovered_at.lock()
            && r.is_none()
        {
            *r = Some(Instant::now());
        }
    }
}

/// Kills the leader of `topic`'s only partition while acks=all messages flow; returns the killed
/// broker and the time until a message sent after the kill was acknowledged. The broker is
/// started again afterwards.
fn measure_failover(args: &Args, cluster: &LocalCluster, topic: &str) -> anyhow::Result<(i32, Duration)> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &cluster.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", (args.timeout_secs * 1000).to_string());
    let producer: BaseProducer<FailoverReports> = config
        .create_with_context(FailoverReports::default())
        .context("creating the failover producer")?;
    let mut leader = -1;
    let started = Instant::now();
    let deadline = started + FAILOVER_WARMUP + Duration::from_secs(args.timeout_secs);
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if now > deadline {
            bail!(
                "no acks=all write was acknowledged within {} s of the kill",
                args.timeout_secs
            );
        }
        let killed = producer.context().killed_at.lock().ok().and_then(|k| *k);
        if killed.is_none() && now.duration_since(started) >= FAILOVER_WARMUP {
            // Asked only now, after the warm-up: every broker must name the same leader, or
            // the broker killed might not be the one leading.
            let Some(agreed) = agreed_leader(cluster, topic)? else {
                producer.poll(FAILOVER_SEND_EVERY);
                continue;
            };
            leader = agreed;
            eprintln!("[failover] killing broker {leader}, the leader of {topic}");
            // The clock starts before the script: its SIGKILL goes out within milliseconds,
            // then it waits for the process to be gone.
            let kill_sent = Instant::now();
            cluster.run(&["kill", &leader.to_string()])?;
            if let Ok(mut k) = producer.context().killed_at.lock() {
                *k = Some(kill_sent);
            }
        }
        let recovered = producer.context().recovered_at.lock().ok().and_then(|r| *r);
        if let (Some(k), Some(r)) = (killed, recovered) {
            let _ = producer.flush(Duration::from_secs(args.timeout_secs));
            cluster.run(&["start", &leader.to_string()])?;
            return Ok((leader, r.duration_since(k)));
        }
        let payload = seq.to_le_bytes();
        let record = BaseRecord::<(), _, _>::with_opaque_to(topic, Box::new(Instant::now())).payload(&payload[..]);
        if producer.send(record).is_ok() {
            seq += 1;
        }
        producer.poll(FAILOVER_SEND_EVERY);
    }
}

/// The leader of `topic`'s only partition and its epoch, as every broker of the cluster reports
/// it; `None` while they disagree (an election settling).
fn agreed_leader(cluster: &LocalCluster, topic: &str) -> anyhow::Result<Option<i32>> {
    let mut seen = Vec::new();
    for broker in cluster.bootstrap.split(',') {
        let client: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", broker)
            .create()
            .context("creating a metadata client")?;
        let metadata = client.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let leader = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .and_then(|t| t.partitions().first().map(|p| p.leader()));
        seen.push(leader);
    }
    Ok(match seen.first() {
        Some(&Some(l)) if l > 0 && seen.iter().all(|s| *s == Some(l)) => Some(l),
        _ => None,
    })
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// Output

fn print_table(rows: &[Row], size: usize) {
    let header = [
        "broker",
        "phase",
        "partitions",
        "messages",
        "start ms",
        "seconds",
        "msgs/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "check",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let secs = r.result.elapsed.as_secs_f64().max(f64::EPSILON);
        let rate = r.result.messages as f64 / secs;
        let ms = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64() * 1e3));
        lines.push(vec![
            r.target.clone(),
            r.phase.to_string(),
            r.partitions.to_string(),
            r.result.messages.to_string(),
            format!("{:.0}", r.result.startup.as_secs_f64() * 1e3),
            format!("{secs:.2}"),
            format!("{rate:.0}"),
            format!("{:.1}", rate * size as f64 / 1e6),
            ms(r.result.p50),
            ms(r.result.p99),
            r.result.problem.clone().unwrap_or_else(|| "ok".to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    println!();
    println!(
        "seconds, msgs/s and MB/s (payload bytes, 10^6) exclude `start ms`: produce from the first send to the last \
         delivery report, after a warm-up message to another topic (connect, metadata, InitProducerId); consume from \
         the first to the last message, after assign-to-first-message. p50/p99: send to delivery report."
    );
    let mut out = std::io::stdout().lock();
    for line in &lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            // Text columns left-aligned, numbers right-aligned; the last column is not padded.
            if c + 1 == line.len() {
                text.push_str(cell);
            } else if c < 2 {
                let _ = write!(text, "{cell:<w$}  ", w = widths[c]);
            } else {
                let _ = write!(text, "{cell:>w$}  ", w = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
}

/// With a peer in the run, skiff's throughput as a multiple of the peer's, per (phase, partitions).
/// Ratios of the first target to every other (a cluster: the cluster to the first target).
fn print_ratios(rows: &[Row], targets: &[(String, Option<ServerSpec>)]) {
    let Some(((first, _), others)) = targets.split_first() else {
        return;
    };
    for (other, spec) in others {
        // A started cluster has no ServerSpec; its ratio reads "replicated / single node".
        let (num, den) = if spec.is_none() { (other, first) } else { (first, other) };
        println!();
        for r in rows.iter().filter(|r| &r.target == num) {
            let o = rows
                .iter()
                .find(|o| &o.target == den && o.phase == r.phase && o.partitions == r.partitions);
            if let Some(o) = o {
                let rate = |x: &Row| x.result.messages as f64 / x.result.elapsed.as_secs_f64().max(f64::EPSILON);
                println!(
                    "{num}/{den} {} p={}: {:.2}x msgs/s",
                    r.phase,
                    r.partitions,
                    rate(r) / rate(o).max(f64::EPSILON)
                );
            }
        }
    }
}
