//! Storage benchmark: how fast Skiff's partition log (`skiff_storage::Log`) appends, scans and looks
//! up, each figure printed beside a raw baseline of the same machine measured in the same run.
//!
//! Measured: append throughput of ~16 KiB Kafka v2 batches of 1 KiB and of 100-byte records, with
//! no fsync and with an fsync every `--flush-every` batches; a sequential scan in 1 MiB reads; and
//! random offset and timestamp lookups on a log of `--records` 100-byte records. The baselines are
//! plain `std::fs::File` writes of the very same buffers with the same fsync cadence, plain 1 MiB
//! reads of the same segment files, and random batch-sized preads of them. They are measured in the
//! same run, in the same directory, alternating with the Skiff runs, because this machine is shared
//! and its disk speed drifts: a baseline from another day or another disk would make the ratio
//! meaningless. Each figure is the best of `--rounds` runs (noise only ever slows a run down), and
//! "ratio" compares the bests; "paired" is the median over rounds of Skiff / raw within one round,
//! which cancels slow drift of the machine. Reads and lookups run on a warm page cache. Progress
//! goes to stderr, with each timed run's share of time on a CPU and waiting for one, which tells a
//! run disturbed by other work on the machine from a slow one.

#[path = "../../../storage/tests/common/batches.rs"]
mod batches;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use kafka_protocol::records::Compression;
use skiff_storage::batch::{self, BatchHeader, HEADER_SIZE};
use skiff_storage::{Log, LogConfig};

/// Byte ranges of the v2 batch header fields rewritten when building the lookup log (see batch.rs).
const CRC_AT: usize = 17;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
/// First record timestamp of the lookup log; record at offset k has timestamp `LOOKUP_T0 + k`.
const LOOKUP_T0: i64 = 1_700_000_000_000;
const LEADER_EPOCH: i32 = 0;
/// Read size of the sequential scan, as a consumer's fetch.max.bytes-sized fetch would use.
const SCAN_READ: usize = 1 << 20;

#[derive(Debug, Parser)]
#[command(about = "Skiff storage benchmark: append, scan and lookup figures beside a raw-disk baseline")]
struct Args {
    /// Directory to create the temporary log directory in. It must be on the disk to measure
    /// (/tmp is often tmpfs); the temporary directory is removed at the end.
    #[arg(long, default_value = "target/bench-tmp")]
    dir: PathBuf,
    /// Bytes appended per run without fsync.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    bytes: u64,
    /// Bytes appended per run with fsyncs.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    flush_bytes: u64,
    /// Batches per fsync in the flushing runs (4 x 16 KiB = one fsync per 64 KiB).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    flush_every: u64,
    /// Largest size of one record batch; as many records as fit go in it.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    batch_bytes: u64,
    /// Runs of each measurement (Skiff and baseline alternate); the best is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Bytes read by each sequential scan (capped at the lookup log's size).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    scan_bytes: u64,
    /// Records (100 bytes each) in the log used for the scan and the lookups.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Lookups per lookup run.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    lookups: u64,
    /// Time limit of one lookup run in seconds (it stops early and reports what it did).
    #[arg(long, default_value_t = 20)]
    lookup_seconds: u64,
    /// Which measurements to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "append,scan,lookup")]
    phases: Vec<Phase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// The four append measurements.
    Append,
    /// The sequential scan (builds the lookup log).
    Scan,
    /// The random lookups (builds the lookup log).
    Lookup,
}

fn main() -> Result<()> {
    let args = Args::parse();
    fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("storage-bench-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("create a temporary directory in {}", args.dir.display()))?;
    let dir = tmp.path();
    let shown_dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());

    println!("skiff storage benchmark in {}", shown_dir.display());
    println!(
        "MB = 10^6 bytes; figures are the best of {} runs, Skiff and the raw baseline alternating; \
         ratio = skiff best / raw best; paired = median over rounds of skiff / raw in the same round",
        args.rounds
    );

    let shapes = [("1KiB", 1024usize), ("100B", 100usize)];
    let mut templates = Vec::new();
    for (name, value_len) in shapes {
        let (template, records) = fit_batch(value_len, args.batch_bytes as usize)?;
        println!(
            "batch of {name} records: {records} records of {value_len}-byte values (key \"user-<i>\"), {} bytes",
            template.len()
        );
        templates.push((name, template, records));
    }
    println!();

    let append_shapes = if args.phases.contains(&Phase::Append) {
        &templates[..]
    } else {
        &[]
    };
    for (name, template, records) in append_shapes {
        for flush_every in [None, Some(args.flush_every)] {
            let total = if flush_every.is_some() {
                args.flush_bytes
            } else {
                args.bytes
            };
            let label = match flush_every {
                None => format!("append {name} records, no flush"),
                Some(n) => format!("append {name} records, fsync/{n} batches"),
            };
            append_bench(dir, &label, template, *records, total, flush_every, args.rounds)?;
        }
    }

    if args.phases.contains(&Phase::Scan) || args.phases.contains(&Phase::Lookup) {
        let (log, lookup) = build_lookup_log(&dir.join("lookup-log"), args.records, args.batch_bytes as usize)?;
        if args.phases.contains(&Phase::Scan) {
            scan_bench(&log, args.scan_bytes, args.rounds)?;
        }
        if args.phases.contains(&Phase::Lookup) {
            lookup_bench(&log, &lookup, &args)?;
        }
        log.close(now_ms()?)?;
    }
    tmp.close().context("remove the temporary directory")?;
    Ok(())
}

/// The largest batch of `value_len`-byte records that fits in `limit` bytes, and its record count.
fn fit_batch(value_len: usize, limit: usize) -> Result<(Vec<u8>, u64)> {
    let build = |n: usize| batches::build(n, value_len, now_ms().unwrap_or(0), Compression::None);
    let mut n = 1;
    let mut best = build(n);
    ensure!(
        best.len() <= limit,
        "one record of {value_len} bytes ({} bytes as a batch) does not fit in --batch-bytes {limit}",
        best.len()
    );
    loop {
        let next = build(n + 1);
        if next.len() > limit {
            break;
        }
        (n, best) = (n + 1, next);
    }
    batch::validate(&best).context("the encoder's batch does not validate")?;
    Ok((best.to_vec(), n as u64))
}

/// A byte count with an optional unit: `1GiB`, `256MiB`, `16KiB`, `64M`, `1000000`, `1GB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} (use KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(unit_bytes).ok_or_else(|| format!("{s:?} is too large"))
}

fn now_ms() -> Result<i64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64)
}

/// Wall time of a timed loop, with this thread's time on a CPU and waiting for one (Linux
/// schedstat) when the kernel reports them: a run that waited for a CPU was disturbed by other work
/// on the machine, and wall time neither on a CPU nor waiting for one was spent asleep in the kernel
/// (I/O, writeback throttling).
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: Duration,
    sched: Option<(u64, u64)>,
}

/// Where a `Timing` started.
type TimingStart = (Instant, Option<(u64, u64)>);

impl Timing {
    fn start() -> TimingStart {
        (Instant::now(), sched_ns())
    }

    fn stop((start, sched): TimingStart) -> Timing {
        let wall = start.elapsed();
        let sched = sched
            .zip(sched_ns())
            .map(|((cpu0, wait0), (cpu1, wait1))| (cpu1.saturating_sub(cpu0), wait1.saturating_sub(wait0)));
        Timing { wall, sched }
    }

    /// The shares of the wall time spent on a CPU and waiting for one, or nothing.
    fn describe(&self) -> String {
        let wall = self.wall.as_nanos().max(1) as f64;
        match self.sched {
            Some((cpu, wait)) => format!(
                "(on cpu {:>3.0}%, waiting for cpu {:>2.0}%)",
                100.0 * cpu as f64 / wall,
                100.0 * wait as f64 / wall
            ),
            None => String::new(),
        }
    }
}

/// Nanoseconds this thread has spent on a CPU and waiting in a run queue, if the kernel says.
fn sched_ns() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Rates (higher is better) of the Skiff and the raw runs, one of each per round.
#[derive(Debug, Default)]
struct Rounds {
    skiff: Vec<f64>,
    raw: Vec<f64>,
}

impl Rounds {
    fn push(&mut self, raw: bool, rate: f64) {
        if raw { &mut self.raw } else { &mut self.skiff }.push(rate);
    }

    fn best(v: &[f64]) -> f64 {
        v.iter().copied().fold(0.0, f64::max)
    }

    fn skiff_best(&self) -> f64 {
        Self::best(&self.skiff)
    }

    fn raw_best(&self) -> f64 {
        Self::best(&self.raw)
    }

    /// Skiff's best over the baseline's best, in percent.
    fn ratio(&self) -> f64 {
        100.0 * self.skiff_best() / self.raw_best()
    }

    /// Median over rounds of Skiff / raw measured in the same round, in percent.
    fn paired(&self) -> f64 {
        let mut v: Vec<f64> = self.skiff.iter().zip(&self.raw).map(|(s, r)| 100.0 * s / r).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn ratios(&self) -> String {
        format!("ratio {:>5.1}%   paired {:>5.1}%", self.ratio(), self.paired())
    }
}

/// Skiff first on odd rounds, the baseline first on even ones, so neither always runs on the
/// colder (or hotter) machine.
fn raw_first(round: u64) -> bool {
    round.is_multiple_of(2)
}

fn append_bench(
    dir: &Path,
    label: &str,
    template: &[u8],
    records_per_batch: u64,
    total_bytes: u64,
    flush_every: Option<u64>,
    rounds: u64,
) -> Result<()> {
    let group = flush_every.unwrap_or(1);
    let batches = (total_bytes / template.len() as u64) / group * group;
    ensure!(batches > 0, "{label}: {total_bytes} bytes is less than one batch group");
    let bytes = batches * template.len() as u64;
    // An untimed write first: the first large write after a pause is often much slower on this
    // (virtual) machine, whoever does it.
    let t = append_raw(&dir.join("raw-append"), template, batches, flush_every)?;
    eprintln!("  [{label}] warm-up      {:>8.1} MB/s", mb_per_s(bytes, t.wall));
    let mut rounds_out = Rounds::default();
    for round in 0..rounds {
        for raw_turn in [raw_first(round), !raw_first(round)] {
            let (who, t) = if raw_turn {
                (
                    "raw",
                    append_raw(&dir.join("raw-append"), template, batches, flush_every)?,
                )
            } else {
                let log_dir = dir.join("skiff-append");
                (
                    "skiff",
                    append_skiff(&log_dir, template, records_per_batch, batches, flush_every)?,
                )
            };
            let rate = mb_per_s(bytes, t.wall);
            rounds_out.push(raw_turn, rate);
            eprintln!(
                "  [{label}] round {}/{rounds} {who:<5} {rate:>8.1} MB/s  {}",
                round + 1,
                t.describe()
            );
        }
    }
    let records_per_byte = (batches * records_per_batch) as f64 / bytes as f64;
    println!(
        "{label:<38} skiff {:>8.1} MB/s {:>6.2} M rec/s   raw {:>8.1} MB/s   {}",
        rounds_out.skiff_best(),
        rounds_out.skiff_best() * records_per_byte,
        rounds_out.raw_best(),
        rounds_out.ratios(),
    );
    Ok(())
}

/// Plain sequential writes of the same buffer, `sync_data` every `flush_every` writes. The final
/// fsync (which leaves no dirty pages behind for the next run) is not timed.
fn append_raw(path: &Path, template: &[u8], batches: u64, flush_every: Option<u64>) -> Result<Timing> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let start = Timing::start();
    for i in 1..=batches {
        file.write_all(template).context("raw write")?;
        if flush_every.is_some_and(|n| i % n == 0) {
            file.sync_data().context("raw fsync")?;
        }
    }
    let elapsed = Timing::stop(start);
    file.sync_data().context("raw fsync")?;
    drop(file);
    fs::remove_file(path).with_context(|| format!("remove {}", path.display()))?;
    Ok(elapsed)
}

/// `Log::append` of the same buffer (the log restamps its base offset in place each time, which
/// the CRC does not cover), `Log::flush` every `flush_every` appends. Opening the log and the
/// closing flush are not timed.
fn append_skiff(
    dir: &Path,
    template: &[u8],
    records_per_batch: u64,
    batches: u64,
    flush_every: Option<u64>,
) -> Result<Timing> {
    let mut log = Log::open(dir, LogConfig::default())?;
    let mut buf = template.to_vec();
    let now = now_ms()?;
    let start = Timing::start();
    for i in 1..=batches {
        log.append(&mut buf, LEADER_EPOCH, now)?;
        if flush_every.is_some_and(|n| i % n == 0) {
            log.flush(now)?;
        }
    }
    let elapsed = Timing::stop(start);
    ensure!(
        log.log_end_offset() == batches * records_per_batch,
        "log end offset {} after {batches} batches of {records_per_batch} records",
        log.log_end_offset()
    );
    log.close(now)?;
    fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(elapsed)
}

/// The log the scan and lookups run on: batches of 100-byte records, record at offset k stamped
/// `LOOKUP_T0 + k`.
#[derive(Debug)]
struct LookupLog {
    records: u64,
    batch_len: u64,
}

fn build_lookup_log(dir: &Path, records: u64, batch_bytes: usize) -> Result<(Log, LookupLog)> {
    let (mut buf, per_batch) = fit_batch(100, batch_bytes)?;
    let batches = records.div_ceil(per_batch);
    let mut log = Log::open(dir, LogConfig::default())?;
    let now = now_ms()?;
    eprintln!(
        "building the lookup log: {batches} batches of {per_batch} records ({:.2} GB)",
        (batches * buf.len() as u64) as f64 / 1e9
    );
    let start = Instant::now();
    for b in 0..batches {
        // Records carry timestamp deltas from the base timestamp, so moving the base timestamp (and
        // the max with it) moves every record; both sit under the CRC, which is recomputed.
        let base_ts = LOOKUP_T0 + (b * per_batch) as i64;
        buf[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&base_ts.to_be_bytes());
        let max_ts = base_ts + per_batch as i64 - 1;
        buf[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_ts.to_be_bytes());
        let crc = batch::compute_crc(&buf);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        log.append(&mut buf, LEADER_EPOCH, now)?;
        if (b + 1) % (batches / 10).max(1) == 0 {
            eprintln!("  {:>3}% ({} records)", 100 * (b + 1) / batches, log.log_end_offset());
        }
    }
    log.flush(now)?;
    let total = batches * per_batch;
    ensure!(
        log.log_end_offset() == total,
        "lookup log ends at {}",
        log.log_end_offset()
    );
    eprintln!(
        "  built and flushed in {:.1} s ({} segments)",
        start.elapsed().as_secs_f64(),
        log.segment_count()
    );
    println!(
        "lookup log: {total} records of 100 bytes, {batches} batches of {} bytes, {:.2} GB, {} segments",
        buf.len(),
        log.size_bytes() as f64 / 1e9,
        log.segment_count()
    );
    let lookup = LookupLog {
        records: total,
        batch_len: buf.len() as u64,
    };
    Ok((log, lookup))
}

/// The log's segment files in offset order, opened for reading, with their sizes.
fn segment_files(log: &Log) -> Result<Vec<(File, u64)>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(log.dir())
        .context("list the log directory")?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .context("list the log directory")?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "log"));
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let f = File::open(p).with_context(|| format!("open {}", p.display()))?;
            let len = f.metadata().with_context(|| format!("stat {}", p.display()))?.len();
            Ok((f, len))
        })
        .collect()
}

fn scan_bench(log: &Log, scan_bytes: u64, rounds: u64) -> Result<()> {
    let limit = scan_bytes.min(log.size_bytes());
    let files = segment_files(log)?;
    let label = format!("scan {:.2} GB, 1 MiB reads (warm cache)", limit as f64 / 1e9);
    let mut rounds_out = Rounds::default();
    // One untimed pass so that the first timed run does not pay for faulting the cache in.
    scan_raw(&files, limit)?;
    for round in 0..rounds {
        for raw_turn in [raw_first(round), !raw_first(round)] {
            let (who, (bytes, t)) = if raw_turn {
                ("raw", scan_raw(&files, limit)?)
            } else {
                ("skiff", scan_skiff(log, limit)?)
            };
            let rate = mb_per_s(bytes, t.wall);
            rounds_out.push(raw_turn, rate);
            eprintln!(
                "  [scan] round {}/{rounds} {who:<5} {rate:>8.1} MB/s  {}",
                round + 1,
                t.describe()
            );
        }
    }
    println!(
        "{label:<38} skiff {:>8.1} MB/s                raw {:>8.1} MB/s   {}",
        rounds_out.skiff_best(),
        rounds_out.raw_best(),
        rounds_out.ratios(),
    );
    Ok(())
}

/// `Log::read(offset, 1 MiB, u64::MAX)` from the log start, each read continuing after the last
/// whole batch the previous one returned.
fn scan_skiff(log: &Log, limit: u64) -> Result<(u64, Timing)> {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut bytes = 0u64;
    let start = Timing::start();
    while bytes < limit && offset < end {
        let data = log.read(offset, SCAN_READ, u64::MAX)?;
        let next = after_last_batch(&data)?;
        ensure!(next > offset, "read at offset {offset} did not move forward");
        offset = next;
        bytes += data.len() as u64;
    }
    Ok((bytes, Timing::stop(start)))
}

/// The offset after the last batch in a read's result.
fn after_last_batch(data: &[u8]) -> Result<u64> {
    let mut at = 0;
    let mut last = None;
    while at + HEADER_SIZE <= data.len() {
        let h = BatchHeader::parse(&data[at..])?;
        at += h.total_size();
        last = Some(h);
    }
    match last {
        Some(h) if at == data.len() => Ok(h.last_offset() as u64 + 1),
        _ => bail!("a read returned {} bytes that are not whole batches", data.len()),
    }
}

/// Plain 1 MiB reads of the segment files into one reused buffer.
fn scan_raw(files: &[(File, u64)], limit: u64) -> Result<(u64, Timing)> {
    let mut buf = vec![0u8; SCAN_READ];
    let mut bytes = 0u64;
    let start = Timing::start();
    'files: for (file, len) in files {
        let mut pos = 0u64;
        while pos < *len {
            if bytes >= limit {
                break 'files;
            }
            let n = (SCAN_READ as u64).min(len - pos) as usize;
            file.read_exact_at(&mut buf[..n], pos).context("raw read")?;
            pos += n as u64;
            bytes += n as u64;
        }
    }
    Ok((bytes, Timing::stop(start)))
}

/// A small, fast, seedable PRNG (SplitMix64) so runs pick the same random offsets.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Runs `op` up to `count` times or until `cap` has passed; returns how many ran and how long.
fn timed_ops(count: u64, cap: Duration, mut op: impl FnMut() -> Result<()>) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        op()?;
        done += 1;
        if done % 1024 == 0 && start.elapsed() > cap {
            break;
        }
    }
    Ok((done, start.elapsed()))
}

fn lookup_bench(log: &Log, lookup: &LookupLog, args: &Args) -> Result<()> {
    let cap = Duration::from_secs(args.lookup_seconds);
    let files = segment_files(log)?;
    let file_batches: Vec<u64> = files.iter().map(|(_, len)| len / lookup.batch_len).collect();
    let all_batches: u64 = file_batches.iter().sum();
    ensure!(all_batches > 0, "the lookup log has no batches");
    let records = lookup.records;
    let mut buf = vec![0u8; lookup.batch_len as usize];

    let per_s = |(n, d): (u64, Duration)| n as f64 / d.as_secs_f64();
    let (mut by_offset, mut by_time) = (Rounds::default(), Vec::new());
    for round in 0..args.rounds {
        let seed = 0x5EED + round;
        let mut rng = SplitMix64(seed);
        let mut raw_run = || {
            timed_ops(args.lookups, cap, || {
                let mut b = rng.below(all_batches);
                for ((file, _), &n) in files.iter().zip(&file_batches) {
                    if b < n {
                        file.read_exact_at(&mut buf, b * lookup.batch_len)
                            .context("raw pread")?;
                        return Ok(());
                    }
                    b -= n;
                }
                bail!("batch index out of range")
            })
        };
        let raw_now = raw_first(round);
        if raw_now {
            by_offset.raw.push(per_s(raw_run()?));
        }
        let mut rng = SplitMix64(seed);
        by_offset.skiff.push(per_s(timed_ops(args.lookups, cap, || {
            let offset = rng.below(records);
            let data = log.read(offset, 1, u64::MAX)?;
            let h = BatchHeader::parse(&data)?;
            ensure!(
                h.base_offset as u64 <= offset && offset <= h.last_offset() as u64,
                "read({offset}) returned the batch {}..={}",
                h.base_offset,
                h.last_offset()
            );
            Ok(())
        })?));
        if !raw_now {
            by_offset.raw.push(per_s(raw_run()?));
        }
        let mut rng = SplitMix64(seed);
        by_time.push(per_s(timed_ops(args.lookups, cap, || {
            let offset = rng.below(records);
            let ts = LOOKUP_T0 + offset as i64;
            let found = log.offset_for_timestamp(ts, &|_: &[u8]| None)?;
            ensure!(
                found == Some((offset, ts)),
                "offset_for_timestamp({ts}) = {found:?}, expected offset {offset}"
            );
            Ok(())
        })?));
        for (who, runs) in [
            ("raw", &by_offset.raw),
            ("offset", &by_offset.skiff),
            ("time", &by_time),
        ] {
            if let Some(rate) = runs.last() {
                eprintln!(
                    "  [lookups] round {}/{} {who:<6} {rate:>10.0} /s",
                    round + 1,
                    args.rounds
                );
            }
        }
    }
    let (o_best, t_best) = (by_offset.skiff_best(), Rounds::best(&by_time));
    println!(
        "{:<38} skiff {o_best:>8.0} /s  {:>6.1} us/op     raw {:>8.0} /s     {}",
        "random offset lookup, read(o, 1 byte)",
        1e6 / o_best,
        by_offset.raw_best(),
        by_offset.ratios(),
    );
    println!(
        "{:<38} skiff {t_best:>8.0} /s  {:>6.1} us/op     (raw: random {}-byte preads of whole batches)",
        "random timestamp lookup",
        1e6 / t_best,
        lookup.batch_len,
    );
    Ok(())
}
