"""Fixtures for the end-to-end suite: a real `skiff` broker process per test (or per module).

The broker binary is `$SKIFF_BIN`, else `target/debug/skiff` at the repo root (`cargo build -p skiff-broker`).
Each broker gets a free port on 127.0.0.1 and a fresh temporary data dir; its stderr goes to a log file that is
attached to the report of every failing test that used it. Every wait here is bounded in time.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 300

# Defaults every test broker gets; a test may override or extend them with `sets=`.
DEFAULT_SETS = {"group.initial.rebalance.delay.ms": "0"}


def skiff_bin() -> Path:
    path = Path(os.environ.get("SKIFF_BIN") or REPO_ROOT / "target" / "debug" / "skiff")
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def skiffctl_bin() -> Path:
    path = Path(os.environ.get("SKIFFCTL_BIN") or REPO_ROOT / "target" / "debug" / "skiffctl")
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """One skiff process on a fixed port and data dir, restartable in place."""

    def __init__(self, root: Path, sets: dict | None = None):
        self.root = root
        # The data dir holds only what the broker writes; the captured stderr sits beside it so the broker never
        # finds a foreign file among its partitions.
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "skiff.stderr.log"
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sets = dict(DEFAULT_SETS)
        self.sets.update(sets or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [
            str(skiff_bin()),
            "--data-dir", str(self.data_dir),
            "--listen", self.bootstrap,
            "--advertised", self.bootstrap,
            "--node-id", "0",
        ]
        for key, value in self.sets.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd

    def start(self) -> None:
        binary = skiff_bin()
        if not binary.exists():
            pytest.fail(f"broker binary {binary} does not exist: run `cargo build -p skiff-broker` (or set SKIFF_BIN)")
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            env = dict(os.environ)
            env.setdefault("RUST_LOG", "info")
            env.setdefault("RUST_BACKTRACE", "1")
            env.setdefault("NO_COLOR", "1")
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=str(self.root)
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"broker exited with code {self.proc.returncode} before accepting connections\n{self.log_tail()}"
                )
            if port_accepts(self.port):
                return
            time.sleep(0.05)
        self._kill_hard()
        raise AssertionError(f"broker did not accept connections on {self.bootstrap} within {START_TIMEOUT_S}s\n"
                             f"{self.log_tail()}")

    def stop(self, kill: bool = False) -> int | None:
        """SIGTERM (clean shutdown) or SIGKILL (crash); returns the exit code. A SIGTERM that is not honoured within
        STOP_TIMEOUT_S is a broker bug: the process is then killed and the stop fails."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        if kill:
            self.proc.send_signal(signal.SIGKILL)
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill_hard()
            raise AssertionError(f"broker ignored SIGTERM for {STOP_TIMEOUT_S}s (killed it)\n{self.log_tail()}")

    def restart(self, kill: bool = False) -> None:
        code = self.stop(kill=kill)
        if not kill:
            # A clean shutdown exits 0 (the shell convention 128+15 is also accepted as "terminated by SIGTERM").
            assert code in (0, None, -signal.SIGTERM, 128 + signal.SIGTERM), (
                f"broker exited with code {code} on SIGTERM\n{self.log_tail()}")
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _kill_hard(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass

    # -- diagnostics -------------------------------------------------------------------------------------------------

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no broker log)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def __repr__(self) -> str:
        return f"Broker({self.bootstrap}, data_dir={self.data_dir})"


class BrokerFactory:
    """Starts brokers on demand (for tests that need special `--set` configs); stops them all at teardown."""

    def __init__(self, base: Path):
        self.base = base
        self.brokers: list[Broker] = []

    def __call__(self, sets: dict | None = None, start: bool = True) -> Broker:
        root = Path(tempfile.mkdtemp(prefix="skiff-e2e-", dir=self.base))
        broker = Broker(root, sets)
        self.brokers.append(broker)
        if start:
            broker.start()
        return broker

    def close(self) -> None:
        for broker in self.brokers:
            try:
                broker.stop()
            except AssertionError as e:  # a broker that ignores SIGTERM: report, but still clean up
                print(e)
            finally:
                broker._kill_hard()


def _tmp_base() -> Path:
    return Path(tempfile.mkdtemp(prefix="skiff-e2e-"))


def _cleanup(base: Path, failed: bool) -> None:
    # Keep the data of a failed test for inspection unless told otherwise; always remove a passing test's data.
    if failed and os.environ.get("SKIFF_E2E_KEEP_FAILED", "1") == "1":
        print(f"kept broker data of the failed test in {base}")
        return
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def broker_factory(request):
    base = _tmp_base()
    factory = BrokerFactory(base)
    request.node._skiff_brokers = factory.brokers
    yield factory
    factory.close()
    _cleanup(base, _failed(request.node))


@pytest.fixture
def broker(broker_factory):
    """A fresh broker for this test only."""
    return broker_factory()


@pytest.fixture(scope="module")
def module_broker(request):
    """One broker shared by the tests of a module; such tests use distinct topic and group names."""
    base = _tmp_base()
    factory = BrokerFactory(base)
    factory()
    yield factory.brokers[0]
    factory.close()
    failed = any(getattr(item, "_skiff_failed", False) for item in request.session.items
                 if item.module is request.module)
    _cleanup(base, failed)


def _failed(node) -> bool:
    return getattr(node, "_skiff_failed", False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item._skiff_failed = True
        brokers = list(getattr(item, "_skiff_brokers", []))
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Broker) and value not in brokers:
                brokers.append(value)
        for b in brokers:
            report.sections.append((f"skiff broker {b.bootstrap} log ({report.when})", b.log_tail()))
