"""The docker compose cluster a user starts with deploy/docker-compose.yml: the image built by deploy/build-image.sh
(FROM scratch, static binaries), three brokers on their own network, RF 3 and min.insync.replicas=2, reached from the
host through the EXTERNAL listeners. Faults are what an operator sees: `docker compose kill` of a partition leader, then
a broker disconnected from the compose network and connected again. Nothing acknowledged may be missing or duplicated.

Needs a Docker engine and docker compose (v2 plugin or v1 docker-compose); skipped, with the reason, without them.
Building the image compiles a release build (minutes on 2 cores).
"""

import json
import shutil
import subprocess
import time
from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import REPO_ROOT
from e2e_util import admin, consumer, producer, unique, wait_until

COMPOSE_FILE = REPO_ROOT / "deploy" / "docker-compose.yml"
PROJECT = "skiff-e2e"
NETWORK = f"{PROJECT}_skiff"
SUBNET_PREFIX = "172.29.53"
BROKERS = {1: 19092, 2: 29092, 3: 39092}
BOOTSTRAP = ",".join(f"localhost:{p}" for p in BROKERS.values())
EVENTS = 100_000
KILL_AT = 40_000
CUT_EVENTS = 10_000
HEALTHY_TIMEOUT_S = 180
BUILD_TIMEOUT_S = 1800


def compose_command() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        if subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            return cmd
    return None


def docker_unavailable() -> str | None:
    """Why the compose test cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker binary on PATH"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker engine reachable: {info.stderr.strip()[:200]}"
    if compose_command() is None:
        return "neither `docker compose` nor `docker-compose` works"
    return None


REASON = docker_unavailable()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=f"compose test skipped: {REASON}"),
    # The module fixture builds the release image first (minutes on a fresh checkout).
    pytest.mark.timeout(BUILD_TIMEOUT_S + 600),
]


class Compose:
    def __init__(self):
        self.cmd = [*compose_command(), "-p", PROJECT, "-f", str(COMPOSE_FILE)]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        env = {"SKIFF_SUBNET_PREFIX": SUBNET_PREFIX, "PATH": "/usr/local/bin:/usr/bin:/bin"}
        done = subprocess.run([*self.cmd, *args], capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=REPO_ROOT)
        if check:
            assert done.returncode == 0, f"compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def container(self, broker: int) -> str:
        return self.run("ps", "-q", f"skiff-{broker}").strip()

    def health(self, broker: int) -> str:
        cid = self.container(broker)
        if not cid:
            return "missing"
        out = subprocess.run(["docker", "inspect", "--format", "{{json .State}}", cid], capture_output=True,
                             text=True, check=True).stdout
        state = json.loads(out)
        return state.get("Health", {}).get("Status", state.get("Status", "unknown"))

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "60", check=False, timeout=60)


@pytest.fixture(scope="module")
def compose(request):
    build = subprocess.run([str(REPO_ROOT / "deploy" / "build-image.sh")], capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S, cwd=REPO_ROOT)
    assert build.returncode == 0, f"deploy/build-image.sh failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    c = Compose()
    c.run("down", "-v", "--remove-orphans", check=False)
    c.run("up", "-d")
    try:
        wait_until(lambda: all(c.health(b) == "healthy" for b in BROKERS), HEALTHY_TIMEOUT_S,
                   "every broker container healthy (skiffctl cluster health)", interval=1)
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        if request.session.testsfailed:
            print(c.logs())
        c.run("down", "-v", "--remove-orphans", check=False)
    # `down -v` removed the volumes too.
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={PROJECT}_"], capture_output=True,
                             text=True).stdout.split()
    assert not volumes, f"volumes left after down -v: {volumes}"


def partitions_of(client, topic: str) -> dict:
    return client.list_topics(topic=topic, timeout=10).topics[topic].partitions


def full_isr(client, topic: str) -> bool:
    parts = partitions_of(client, topic)
    return bool(parts) and all(p.leader in BROKERS and sorted(p.isrs) == sorted(BROKERS) for p in parts.values())


def produce(prod, topic: str, start: int, end: int, reports: list, fault=None) -> None:
    """Keyed events start..end-1 (key user-<n % 1000>, value event-<n>); `fault(n)` runs before event n."""
    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.value()))

    for n in range(start, end):
        if fault is not None:
            fault(n)
        while True:
            try:
                prod.produce(topic, key=f"user-{n % 1000}".encode(), value=f"event-{n}".encode(),
                             on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.05)
        if n % 1000 == 0:
            prod.poll(0)
    assert prod.flush(180) == 0, "the producer could not deliver everything"


def consume_group(topic: str, partitions: int, group: str, expected: int) -> list:
    """Reads `topic` through a consumer group until `expected` records arrived (and no more come); returns
    (partition, offset, value) of each."""
    cons = consumer(BOOTSTRAP, group=group, **{"auto.offset.reset": "earliest", "enable.auto.commit": True})
    cons.subscribe([topic])
    out = []
    deadline = time.monotonic() + 180
    try:
        quiet_since = None
        while time.monotonic() < deadline:
            msgs = cons.consume(num_messages=1000, timeout=0.5)
            for m in msgs:
                assert not m.error(), m.error()
                out.append((m.partition(), m.offset(), m.value()))
            if len(out) >= expected and not msgs:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 3:
                    break
            elif msgs:
                quiet_since = None
    finally:
        # close() commits what was read (enable.auto.commit) and leaves the group.
        cons.close()
    return out


def check(acked: dict, read: list) -> None:
    values = [v for _, _, v in read]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} records read twice"
    at = {(p, o): v for p, o, v in read}
    missing = [k for k, v in acked.items() if at.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged records missing or moved, e.g. {missing[:5]}"
    per_partition = defaultdict(list)
    for p, o, _ in read:
        per_partition[p].append(o)
    for p, offsets in per_partition.items():
        assert sorted(offsets) == list(range(min(offsets), min(offsets) + len(offsets))), f"partition {p}: gaps"


def acknowledged(reports: list) -> dict:
    errors = [r for r in reports if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    acked = {(p, o): v for _, p, o, v in reports}
    assert len(acked) == len(reports), "two records acknowledged at one offset"
    return acked


def test_compose_cluster_survives_a_leader_kill_and_a_network_cut(compose):
    client = admin(BOOTSTRAP)
    md = client.list_topics(timeout=10)
    assert sorted(md.brokers) == sorted(BROKERS)
    # From the host every broker is advertised on its EXTERNAL listener.
    assert {(b.host, b.port) for b in md.brokers.values()} == {("localhost", p) for p in BROKERS.values()}

    topic, partitions = unique("compose"), 3
    client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                         request_timeout=30)[topic].result(timeout=60)
    wait_until(lambda: full_isr(client, topic), 60, f"{topic} led with 3 in-sync replicas")

    # Inside the compose network the same cluster is advertised under the INTERNAL names.
    inside = subprocess.run(["docker", "exec", compose.container(1), "skiffctl", "--brokers", "localhost:9092",
                             "--format", "json", "cluster", "info"], capture_output=True, text=True, timeout=60)
    assert inside.returncode == 0, inside.stderr
    seen_inside = {(b["host"], b["port"]) for b in json.loads(inside.stdout)["brokers"]}
    assert seen_inside == {(f"skiff-{b}", 9092) for b in BROKERS}, inside.stdout

    prod = producer(BOOTSTRAP, **{"enable.idempotence": True, "message.timeout.ms": 180000, "linger.ms": 5})
    reports: list = []
    victim = partitions_of(client, topic)[0].leader

    def kill_leader(n: int) -> None:
        if n == KILL_AT:
            compose.run("kill", f"skiff-{victim}")

    produce(prod, topic, 0, EVENTS, reports, fault=kill_leader)
    acked = acknowledged(reports)
    assert len(acked) == EVENTS
    assert partitions_of(client, topic)[0].leader not in (victim, -1), "partition 0 has no new leader"

    read = consume_group(topic, partitions, unique("g-compose"), EVENTS)
    check(acked, read)
    assert len(read) == EVENTS

    compose.run("start", f"skiff-{victim}")
    wait_until(lambda: full_isr(client, topic), 120, f"broker {victim} back in every ISR", interval=1)

    # A network cut: the leader of partition 1 loses the compose network (its clients and peers) while events flow.
    cut = partitions_of(client, topic)[1].leader
    cid = compose.container(cut)
    reports2: list = []
    compose_net = subprocess.run(["docker", "network", "disconnect", NETWORK, cid], capture_output=True, text=True)
    assert compose_net.returncode == 0, compose_net.stderr
    try:
        wait_until(lambda: partitions_of(client, topic)[1].leader not in (cut, -1), 60,
                   f"partition 1 led by a broker other than the cut-off {cut}", interval=0.5)
        produce(prod, topic, EVENTS, EVENTS + CUT_EVENTS, reports2)
    finally:
        subprocess.run(["docker", "network", "connect", "--ip", f"{SUBNET_PREFIX}.1{cut}", NETWORK, cid],
                       check=True, capture_output=True)
    acked.update(acknowledged(reports2))
    wait_until(lambda: full_isr(client, topic), 120, f"broker {cut} back in every ISR after the cut", interval=1)
    wait_until(lambda: all(compose.health(b) == "healthy" for b in BROKERS), 120, "every container healthy again",
               interval=1)

    # Everything, read again by a new group from the beginning.
    read = consume_group(topic, partitions, unique("g-compose-all"), EVENTS + CUT_EVENTS)
    check(acked, read)
    assert len(read) == EVENTS + CUT_EVENTS
    marks = {p: None for p in range(partitions)}
    cons = consumer(BOOTSTRAP)
    try:
        for p in marks:
            marks[p] = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
    finally:
        cons.close()
    assert sum(hi - lo for lo, hi in marks.values()) == EVENTS + CUT_EVENTS, marks
