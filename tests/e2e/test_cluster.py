"""A real 3-broker cluster (three `skiff` processes started by deploy/local-cluster.sh, as a user starts one) under real
clients, with brokers killed -9 and restarted mid-stream. What every test checks is DESIGN.md's invariants: every record
acknowledged with acks=all (min.insync.replicas=2, RF 3) is present after the faults, exactly once, at the offset it was
acknowledged with, offsets are dense, and every replica that leads the partition serves the same records; a consumer
group never skips an offset.
"""

import os
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import REPO_ROOT, skiff_bin
from e2e_util import (admin, assert_all_delivered, consume_range, kp_producer, producer, unique, wait_until,
                      watermarks)
from group_member import Ledger, Member, check_ledger

SCRIPT = REPO_ROOT / "deploy" / "local-cluster.sh"
NODES = 3
BOOTSTRAP = ",".join(f"localhost:{n}9092" for n in range(1, NODES + 1))
# A short lag window so that ISR shrinking is observable within a test; everything else is the production default.
CLUSTER_SETS = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "replica.lag.time.max.ms": "4000",
    "group.initial.rebalance.delay.ms": "0",
}
# How long the cluster may take to elect a new leader and let clients on (the target is < 3 s; clients add
# their own metadata refresh backoff on top).
FAILOVER_TIMEOUT_S = 30


class Cluster:
    """The brokers of deploy/local-cluster.sh in a private directory."""

    def __init__(self, root: Path):
        self.root = root
        self.env = dict(os.environ, SKIFF_CLUSTER_DIR=str(root), SKIFF_BIN=str(skiff_bin()), NO_COLOR="1",
                        RUST_LOG=os.environ.get("RUST_LOG", "info"))

    def run(self, *args: str) -> str:
        done = subprocess.run([str(SCRIPT), *args], env=self.env, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"local-cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def up(self) -> str:
        extra = [a for k, v in CLUSTER_SETS.items() for a in ("--set", f"{k}={v}")]
        return self.run("up", str(NODES), "--", *extra).strip()

    def kill(self, node: int) -> None:
        self.run("kill", str(node))

    def start(self, node: int) -> None:
        self.run("start", str(node))

    def log_tails(self, lines: int = 80) -> str:
        out = []
        for n in range(1, NODES + 1):
            path = self.root / f"node-{n}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            out.append(f"--- broker {n} ({path}) ---\n" + "\n".join(text))
        return "\n".join(out)


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    c = Cluster(root)
    failed_before = request.session.testsfailed
    assert c.up() == BOOTSTRAP
    client = admin(BOOTSTRAP)
    wait_until(lambda: len(client.list_topics(timeout=5).brokers) == NODES, 30, "all brokers registered")
    yield c
    # The brokers' logs and data of a failed run stay for inspection.
    keep = request.session.testsfailed > failed_before
    c.run("down", *([] if keep else ["--purge"]))
    if keep:
        print(f"kept the cluster's logs and data in {root}")


def leaders(client, topic: str) -> dict:
    md = client.list_topics(topic=topic, timeout=5).topics[topic]
    return {p: m.leader for p, m in md.partitions.items()}


def create_replicated(client, topic: str, partitions: int) -> None:
    client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)],
                         request_timeout=20)[topic].result(timeout=30)

    def ready():
        md = client.list_topics(topic=topic, timeout=5).topics.get(topic)
        return (md is not None and md.error is None and len(md.partitions) == partitions
                and all(p.leader >= 1 and len(p.isrs) == 3 for p in md.partitions.values()))
    wait_until(ready, 30, f"{topic}: every partition led, with 3 in-sync replicas")


def test_metadata_lists_every_broker_and_replica_set(cluster):
    client = admin(BOOTSTRAP)
    topic = unique("cl-md")
    create_replicated(client, topic, 6)
    md = client.list_topics(topic=topic, timeout=5)
    assert sorted(md.brokers) == [1, 2, 3]
    assert {b.port for b in md.brokers.values()} == {19092, 29092, 39092}
    parts = md.topics[topic].partitions
    for p in parts.values():
        assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3]
        assert p.leader in p.replicas
    # Preferred leaders (the first replica) are spread evenly: each broker is first for two of six partitions.
    firsts = defaultdict(int)
    for p in parts.values():
        firsts[p.replicas[0]] += 1
    assert sorted(firsts.values()) == [2, 2, 2], dict(firsts)
    # Every broker answers Metadata from its own applied state, identically.
    for n in range(1, NODES + 1):
        other = admin(f"localhost:{n}9092").list_topics(topic=topic, timeout=5).topics[topic].partitions
        assert {i: sorted(p.replicas) for i, p in other.items()} == {i: sorted(p.replicas) for i, p in parts.items()}


def test_replication_factor_above_live_brokers_is_refused(cluster):
    client = admin(BOOTSTRAP)
    topic = unique("cl-rf")
    fut = client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=4)], request_timeout=20)[topic]
    with pytest.raises(Exception) as info:
        fut.result(timeout=30)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_leader_kill_loses_no_acknowledged_record(cluster):
    """kill -9 the leader of partition 0 while an idempotent acks=all producer streams keyed events; restart it; every
    acknowledged event is there exactly once, where it was acknowledged, and the restarted broker rejoins the ISR."""
    client = admin(BOOTSTRAP)
    topic = unique("cl-kill")
    partitions = 3
    create_replicated(client, topic, partitions)
    victim = leaders(client, topic)[0]

    total = 30000
    acked = produce_through(cluster, topic, total, {8000: lambda: cluster.kill(victim),
                                                    20000: lambda: cluster.start(victim)})
    assert len(acked) == total

    # The restarted broker catches up and is back in every partition's ISR.
    wait_until(lambda: all(len(p.isrs) == 3 for p in
                           client.list_topics(topic=topic, timeout=5).topics[topic].partitions.values()),
               30, "the restarted broker back in the ISR of every partition")

    first_read = check_partitions(client, topic, partitions, acked, dead=None)
    # Read again from other replicas: make each partition's current leader crash so that another replica leads it,
    # and check that it serves the very same records at the same offsets.
    moved = leaders(client, topic)[0]
    cluster.kill(moved)
    second_read = check_partitions(client, topic, partitions, acked, dead=moved)
    assert second_read == first_read, "two replicas disagree on what the offsets hold"
    cluster.start(moved)


def produce_through(cluster, topic: str, total: int, faults: dict) -> dict:
    """Streams `total` keyed events with an idempotent acks=all producer, running `faults[n]()` before event n; asserts
    every event was acknowledged, each at its own offset. Returns {(partition, offset): value}."""
    prod = producer(BOOTSTRAP, **{"enable.idempotence": True, "message.timeout.ms": 120000, "linger.ms": 5})
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
    assert len(acked) == total, "two records were acknowledged at the same offset"
    return acked


def test_paused_leader_is_replaced_and_rejoins_as_follower(cluster):
    """SIGSTOP the leader of a partition (a hung broker: connections stay open, nothing answers) while acks=all events
    stream: the others elect a new leader and writes go on; after SIGCONT the old leader learns the new term, drops
    whatever it had not committed, catches up and rejoins the ISR; every replica serves the same records."""
    client = admin(BOOTSTRAP)
    topic = unique("cl-pause")
    create_replicated(client, topic, 1)
    victim = leaders(client, topic)[0]
    acked = produce_through(cluster, topic, 12000, {3000: lambda: cluster.run("pause", str(victim)),
                                                     9000: lambda: cluster.run("resume", str(victim))})
    wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 3, 30,
               "the resumed broker back in the ISR")
    first = check_partitions(client, topic, 1, acked, dead=None)
    moved = leaders(client, topic)[0]
    cluster.kill(moved)
    try:
        assert check_partitions(client, topic, 1, acked, dead=moved) == first, "replicas disagree"
    finally:
        cluster.start(moved)


def check_partitions(client, topic: str, partitions: int, acked: dict, dead) -> dict:
    """Reads every partition to its high watermark once each has a live leader; asserts dense offsets, no duplicates,
    every acknowledged record at its offset. Returns {(partition, offset): value}."""
    wait_until(lambda: all(b not in (dead, -1) for b in leaders(client, topic).values()), FAILOVER_TIMEOUT_S,
               f"a live leader for every partition of {topic}")
    msgs = wait_until(lambda: consume_range(BOOTSTRAP, topic, partitions, timeout=60), 60,
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
    values = [v for v in seen.values()]
    assert len(values) == len(set(values)), "a record appears twice"
    return seen


def test_consumer_group_rides_through_a_leader_kill(cluster):
    """Two group members consume and commit while the coordinator's and a partition leader's broker is killed -9:
    no acknowledged offset is skipped, and committed ranges are read exactly once (group_member.check_ledger)."""
    client = admin(BOOTSTRAP)
    topic, group = unique("cl-grp"), unique("g-cl")
    partitions = 3
    create_replicated(client, topic, partitions)
    prod = producer(BOOTSTRAP, **{"enable.idempotence": True, "message.timeout.ms": 120000})
    reports = []
    for n in range(6000):
        prod.produce(topic, key=f"user-{n % 31}".encode(), value=f"v{n}".encode(),
                     on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset(), msg.value())))
        if n % 1000 == 0:
            prod.poll(0)
    assert prod.flush(60) == 0
    assert not [r for r in reports if r[0] is not None]
    acked = {(p, off): v for _, p, off, v in reports}

    ledger = Ledger()
    members = [Member(f"m{i}", BOOTSTRAP, group, topic, ledger) for i in range(2)]
    for m in members:
        m.start()
    ends = watermarks(BOOTSTRAP, topic, partitions)
    wait_until(lambda: len(ledger.reads) > 1000, 60, "the members to start reading")
    victim = leaders(client, topic)[0]
    cluster.kill(victim)
    time.sleep(2)
    cluster.start(victim)
    try:
        wait_until(lambda: ledger.committed_to(ends), 120, "the group to commit every partition's end")
    except AssertionError as e:
        with ledger.lock:
            failed = [c for c in ledger.commits if not c[4]]
            last = {p: max((c[3] for c in ledger.commits if c[2] == p and c[4]), default=None) for p in ends}
            raise AssertionError(f"{e}; ends {ends}, last good commits {last}, errors {ledger.errors[:5]}, "
                                 f"failed commits {failed[-5:]}, reads {len(ledger.reads)}") from None
    for m in members:
        m.leave()
    print(check_ledger(ledger, acked))


def test_acks_all_needs_min_insync_replicas(cluster):
    """With one of two replicas gone and the ISR shrunk to the leader alone, acks=all is refused with
    NOT_ENOUGH_REPLICAS (min.insync.replicas=2) while acks=1 is still accepted."""
    client = admin(BOOTSTRAP)
    topic = unique("cl-isr")
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=2)],
                         request_timeout=20)[topic].result(timeout=30)
    wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 2, 30,
               "two in-sync replicas")
    part = client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0]
    follower = next(b for b in part.replicas if b != part.leader)
    cluster.kill(follower)
    try:
        wait_until(lambda: client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs
                   == [part.leader], 30, "the ISR to shrink to the leader")
        from kafka.errors import NotEnoughReplicasError
        strict = kp_producer(BOOTSTRAP, acks="all", retries=0)
        with pytest.raises(NotEnoughReplicasError):
            strict.send(topic, b"refused").get(timeout=20)
        strict.close()
        relaxed = kp_producer(BOOTSTRAP, acks=1, retries=0)
        meta = relaxed.send(topic, b"accepted").get(timeout=20)
        assert meta.offset >= 0
        relaxed.close()
    finally:
        cluster.start(follower)
