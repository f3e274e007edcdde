"""A cluster of real `skiff` processes started by deploy/local-cluster.sh (as a user starts one), and the checks the
cluster tests share: DESIGN.md's invariants after faults — every record acknowledged with acks=all present exactly
once at the offset it was acknowledged with, offsets dense, every replica that leads a partition serving the same
records."""

import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from confluent_kafka.admin import NewTopic

from conftest import REPO_ROOT, skiff_bin
from e2e_util import admin, consume_range, producer, wait_until

SCRIPT = REPO_ROOT / "deploy" / "local-cluster.sh"
# How long the cluster may take to elect a new leader and let clients on (the target is < 3 s; clients add
# their own metadata refresh backoff on top).
FAILOVER_TIMEOUT_S = 30
# What the 3-broker fault tests run with: replication factor 3 everywhere, min.insync.replicas=2, and a short lag window
# so that ISR changes are observable within a test.
RF3_CLUSTER_SETS = {
    "default.replication.factor": "3",
    "offsets.topic.replication.factor": "3",
    "min.insync.replicas": "2",
    "replica.lag.time.max.ms": "4000",
    "group.initial.rebalance.delay.ms": "0",
}


class Cluster:
    """The brokers of deploy/local-cluster.sh in a private directory; broker i serves clients on localhost:<i>9092."""

    def __init__(self, root: Path, nodes: int):
        self.root = root
        self.nodes = nodes
        self.bootstrap = ",".join(f"localhost:{n}9092" for n in range(1, nodes + 1))
        self.env = dict(os.environ, SKIFF_CLUSTER_DIR=str(root), SKIFF_BIN=str(skiff_bin()), NO_COLOR="1",
                        RUST_LOG=os.environ.get("RUST_LOG", "info"))

    def run(self, *args: str) -> str:
        done = subprocess.run([str(SCRIPT), *args], env=self.env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"local-cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def up(self, sets: dict) -> None:
        extra = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
        assert self.run("up", str(self.nodes), "--", *extra).strip() == self.bootstrap
        client = admin(self.bootstrap)
        wait_until(lambda: len(client.list_topics(timeout=5).brokers) == self.nodes, 30, "all brokers registered")

    def kill(self, node: int) -> None:
        self.run("kill", str(node))

    def start(self, node: int) -> None:
        self.run("start", str(node))

    def wipe(self, node: int) -> None:
        """Loses a (stopped) broker's whole data dir, as a replaced disk does."""
        shutil.rmtree(self.root / f"node-{node}")

    def log_tails(self, lines: int = 80) -> str:
        out = []
        for n in range(1, self.nodes + 1):
            path = self.root / f"node-{n}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            out.append(f"--- broker {n} ({path}) ---\n" + "\n".join(text))
        return "\n".join(out)


def cluster_fixture(request, tmp_path_factory, nodes: int, sets: dict, prepare=None):
    """Body of a module-scoped fixture: the cluster up for the module; logs and data kept when a test failed.
    `prepare(root)` runs before the brokers start (e.g. to write per-node voters files)."""
    root = tmp_path_factory.mktemp(f"cluster{nodes}")
    if prepare is not None:
        prepare(root)
    c = Cluster(root, nodes)
    failed_before = request.session.testsfailed
    c.up(sets)
    yield c
    keep = request.session.testsfailed > failed_before
    c.run("down", *([] if keep else ["--purge"]))
    if keep:
        print(f"kept the cluster's logs and data in {root}")


def leaders(client, topic: str) -> dict:
    md = client.list_topics(topic=topic, timeout=5).topics[topic]
    return {p: m.leader for p, m in md.partitions.items()}


def isr_sizes(client, topic: str) -> dict:
    md = client.list_topics(topic=topic, timeout=5).topics[topic]
    return {p: len(m.isrs) for p, m in md.partitions.items()}


def create_replicated(client, topic: str, partitions: int, replicas: int = 3) -> None:
    client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replicas)],
                         request_timeout=20)[topic].result(timeout=30)

    def ready():
        md = client.list_topics(topic=topic, timeout=5).topics.get(topic)
        return (md is not None and md.error is None and len(md.partitions) == partitions
                and all(p.leader >= 1 and len(p.isrs) == replicas for p in md.partitions.values()))
    wait_until(ready, 30, f"{topic}: every partition led, with {replicas} in-sync replicas")


def produce_through(cluster: Cluster, topic: str, total: int, faults: dict) -> dict:
    """Streams `total` keyed events with an idempotent acks=all producer, running `faults[n]()` before event n; asserts
    every event was acknowledged, each at its own offset. Returns {(partition, offset): value}."""
    prod = producer(cluster.bootstrap, **{"enable.idempotence": True, "message.timeout.ms": 120000, "linger.ms": 5})
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.value()))

    for n in range(total):
        if n in faults:
            faults[n]()
        value = f"event-{n}".encode()
        while True:
            try:
                prod.produce(topic, key=f"user-{n % 97}".encode(), value=value, on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    assert prod.flush(120) == 0, "the producer could not deliver everything"
    errors = [r for r in reports if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}\n{cluster.log_tails()}"
    assert len(reports) == total
    acked = {(p, off): v for _, p, off, v in reports}
    if len(acked) != total:
        at = defaultdict(list)
        for _, p, off, v in reports:
            at[(p, off)].append(v)
        twice = {k: v for k, v in at.items() if len(v) > 1}
        raise AssertionError(f"{len(twice)} offsets acknowledged for two records, e.g. {list(twice.items())[:5]}\n"
                             f"{cluster.log_tails()}")
    return acked


def check_partitions(cluster: Cluster, client, topic: str, partitions: int, acked: dict, dead=()) -> dict:
    """Reads every partition to its high watermark once each has a leader outside `dead`; asserts dense offsets, no
    duplicates, every acknowledged record at its offset. Returns {(partition, offset): value}."""
    dead = set(dead) | {-1}
    wait_until(lambda: all(b not in dead for b in leaders(client, topic).values()), FAILOVER_TIMEOUT_S,
               f"a live leader for every partition of {topic}")
    msgs = wait_until(lambda: consume_range(cluster.bootstrap, topic, partitions, timeout=60), 60,
                      f"a complete read of {topic}", interval=0.5)
    seen = {}
    per_partition = defaultdict(list)
    for m in msgs:
        per_partition[m.partition()].append(m.offset())
        seen[(m.partition(), m.offset())] = m.value()
    for p, offsets in per_partition.items():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), f"partition {p}: offsets not dense"
    missing = [k for k, v in acked.items() if seen.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged records missing or changed, e.g. {missing[:5]}"
    values = list(seen.values())
    assert len(values) == len(set(values)), "a record appears twice"
    return seen
