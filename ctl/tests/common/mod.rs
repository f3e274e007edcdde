//! Shared by the end-to-end tests: start a real `skiff` broker on a free port with its own data
//! directory, and run the `skiffctl` binary against it as a subprocess with a bounded wait,
//! capturing its exit status, stdout and stderr.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The broker binary the tests run.
pub const SKIFF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/skiff");
/// The binary under test.
pub const SKIFFCTL: &str = env!("CARGO_BIN_EXE_skiffctl");
/// Upper bound on one skiffctl run.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// Upper bound on a broker's start.
const START_LIMIT: Duration = Duration::from_secs(15);

static BUILD: Mutex<()> = Mutex::new(());

/// Builds the broker when it is missing (a fresh checkout that ran only this crate's tests).
fn ensure_broker_binary() {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(SKIFF).exists() {
        return;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "skiff-broker"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("run cargo build -p skiff-broker");
    assert!(status.success(), "cargo build -p skiff-broker failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `skiff` broker for one test; killed when dropped.
pub struct Broker {
    child: Child,
    pub addr: String,
    pub data_dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `--set name=value` settings.
    pub fn start_with(settings: &[&str]) -> Broker {
        ensure_broker_binary();
        let data_dir = tempfile::tempdir().unwrap();
        // A port can be taken between probing and binding: try a few.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut cmd = Command::new(SKIFF);
            cmd.arg("--data-dir").arg(data_dir.path()).args([
                "--listen",
                &addr,
                "--set",
                "group.initial.rebalance.delay.ms=0",
            ]);
            for s in settings {
                cmd.args(["--set", s]);
            }
            let mut child = cmd
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start skiff");
            let started = Instant::now();
            while started.elapsed() < START_LIMIT {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return Broker { child, addr, data_dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("skiff did not start");
    }

    /// Runs `skiffctl -b <this broker> args…`.
    pub fn ctl(&self, args: &[&str]) -> Run {
        ctl_at(&self.addr, args, None)
    }

    /// Runs `skiffctl -b <this broker> args…` with `input` on stdin.
    pub fn ctl_stdin(&self, args: &[&str], input: &str) -> Run {
        ctl_at(&self.addr, args, Some(input))
    }

    /// Like [`Broker::ctl`] and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.ctl(args);
        run.assert_ok(args);
        run.stdout
    }

    /// Like [`Broker::ok`] with `--format json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Writes `lines` to `topic` with `produce`, keys split at `:` when `keyed`.
    pub fn produce(&self, topic: &str, lines: &[String], keyed: bool) {
        let mut input = lines.join("\n");
        input.push('\n');
        let mut args = vec!["produce", topic];
        if keyed {
            args.extend(["-K", ":"]);
        }
        let run = self.ctl_stdin(&args, &input);
        run.assert_ok(&args);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one skiffctl run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_ok(&self, args: &[&str]) {
        assert_eq!(self.code, Some(0), "skiffctl {args:?} failed: {self:#?}");
    }

    /// Asserts a failure with `code` and a one-line stderr containing `needle`.
    pub fn assert_fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {self:#?}");
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "error is not one line: {self:#?}"
        );
        assert!(self.stderr.starts_with("skiffctl: "), "{self:#?}");
    }
}

/// Runs skiffctl against `addr` (no `-b` when `addr` is empty), killing it past [`RUN_LIMIT`].
pub fn ctl_at(addr: &str, args: &[&str], input: Option<&str>) -> Run {
    let mut cmd = Command::new(SKIFFCTL);
    if !addr.is_empty() {
        cmd.args(["-b", addr]);
    }
    cmd.args(args)
        .env_remove("SKIFF_BROKERS")
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start skiffctl");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    // Read the pipes on threads so a full pipe cannot stall the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skiffctl {args:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// A unique-enough name for a topic or group.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("{prefix}-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The rows of a table (header first), split into columns on runs of two or more spaces.
pub fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The last table in `text` (after the last blank line).
pub fn last_table(text: &str) -> Vec<Vec<String>> {
    let tail = text.trim_end().rsplit("\n\n").next().unwrap_or("");
    table(tail)
}

/// The value of `Key:  value` in a fields block.
pub fn field(text: &str, key: &str) -> String {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key:?} in {text}"))
}

// --- scripted stand-in brokers (for what one real broker cannot show) ---

/// An ApiVersions entry the stand-in offers: versions 0 to `max`.
pub fn api(key: ApiKey, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(0)
        .with_max_version(max)
}

/// The next length-prefixed request frame on a stand-in's connection; `None` once it closes.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(len)).ok()?];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

/// Sends a response built after a 4-byte placeholder, filling in its length; false once the
/// connection is gone.
pub fn write_frame(stream: &mut TcpStream, mut out: bytes::BytesMut) -> bool {
    let len = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&out).is_ok()
}
