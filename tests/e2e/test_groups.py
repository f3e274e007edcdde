"""Consumer groups with confluent-kafka (classic protocol, eager range/roundrobin assignors): members joining and
leaving mid-stream, commits, resuming from committed offsets, and the group admin APIs.

The rebalance test commits synchronously right after processing each batch and again when partitions are revoked,
so a record may be read twice only if the commit that covered it failed; it checks:
  * at-least-once overall with zero gaps: every acknowledged offset of every partition is read, with its value;
  * exactly-once for committed ranges: every offset is covered by exactly one successful commit of the member
    session that read it (a second covered read would mean a member started before or past another's commit);
  * within one member's ownership of a partition, offsets are read densely in order.
"""

import itertools
import threading
import time
from collections import defaultdict

from confluent_kafka import ConsumerGroupState, KafkaException, TopicPartition

from e2e_util import (admin, assert_all_delivered, consumer, create_topic, kp_consumer, produce_all, producer, unique,
                      wait_until, watermarks)

PARTITIONS = 6
MAX_CHUNKS = 300


class Ledger:
    """Everything the members did, in one place, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reads = []  # (member, session, partition, offset, value)
        self.commits = []  # (member, session, partition, next_offset, ok, error)
        self.assignments = defaultdict(list)  # member -> [set of partitions], one per assignment
        self.sessions = itertools.count(1)
        self.errors = []


class Member(threading.Thread):
    """A group member: consume a batch, record it, commit it synchronously; commit on revoke; close on stop."""

    def __init__(self, name, bootstrap, group, topic, ledger: Ledger):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.bootstrap, self.group, self.topic, self.ledger = bootstrap, group, topic, ledger
        self.stop_event = threading.Event()
        self.session = {}  # partition -> session id of the current ownership
        self.pending = {}  # partition -> next offset to commit (read but not yet committed)
        self.owned = set()
        self.closed = threading.Event()

    def on_assign(self, c, partitions):
        with self.ledger.lock:
            for tp in partitions:
                self.session[tp.partition] = next(self.ledger.sessions)
            self.owned = {tp.partition for tp in partitions}
            self.ledger.assignments[self.member].append(set(self.owned))

    def on_revoke(self, c, partitions):
        self.commit(c)
        with self.ledger.lock:
            for tp in partitions:
                self.session.pop(tp.partition, None)
                self.pending.pop(tp.partition, None)
            self.owned -= {tp.partition for tp in partitions}

    def on_lost(self, c, partitions):
        with self.ledger.lock:
            for tp in partitions:
                self.session.pop(tp.partition, None)
                self.pending.pop(tp.partition, None)
            self.owned -= {tp.partition for tp in partitions}

    def commit(self, c):
        if not self.pending:
            return
        offsets = [TopicPartition(self.topic, p, off) for p, off in sorted(self.pending.items())]
        sessions = {p: self.session.get(p) for p in self.pending}
        try:
            result = c.commit(offsets=offsets, asynchronous=False)
            outcome = {tp.partition: tp.error for tp in result}
        except KafkaException as e:
            outcome = {tp.partition: e.args[0] for tp in offsets}
        with self.ledger.lock:
            for tp in offsets:
                err = outcome.get(tp.partition, "no result for partition")
                self.ledger.commits.append((self.member, sessions[tp.partition], tp.partition, tp.offset,
                                            err is None, None if err is None else str(err)))
                if err is None and self.pending.get(tp.partition) == tp.offset:
                    del self.pending[tp.partition]

    def run(self):
        c = consumer(self.bootstrap, self.group, **{"fetch.wait.max.ms": 100})
        try:
            c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)
            while not self.stop_event.is_set():
                msgs = c.consume(num_messages=100, timeout=0.1)
                with self.ledger.lock:
                    for m in msgs:
                        if m.error():
                            self.ledger.errors.append((self.member, str(m.error())))
                            continue
                        self.ledger.reads.append((self.member, self.session.get(m.partition()), m.partition(),
                                                  m.offset(), m.value()))
                        self.pending[m.partition()] = m.offset() + 1
                self.commit(c)
            self.commit(c)
        except Exception as e:  # noqa: BLE001 - surfaced by the test through ledger.errors
            with self.ledger.lock:
                self.ledger.errors.append((self.member, repr(e)))
        finally:
            c.close()  # runs on_revoke (commit) and sends LeaveGroup
            self.closed.set()

    def leave(self, timeout=20):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), f"member {self.member} did not close within {timeout}s"


def committed_offsets(bootstrap, group, topic, partitions):
    c = consumer(bootstrap, group)
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def test_rebalance_as_members_join_and_leave_mid_stream(module_broker):
    bootstrap = module_broker.bootstrap
    topic, group = unique("grp-rebalance"), unique("g-rebalance")
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    ledger = Ledger()

    # Producer: chunks of 50 keyed records every ~0.1 s, acks=all, until the membership changes are over (at most
    # 300 chunks); the acknowledged (partition, offset) -> value is the truth.
    acked = {}
    produce_done, stop_producing = threading.Event(), threading.Event()
    produce_error = []
    chunks = []

    def produce():
        try:
            p = producer(bootstrap, **{"enable.idempotence": True})
            for chunk in range(MAX_CHUNKS):
                if stop_producing.is_set():
                    break
                recs = [(f"user_{n % 40}".encode(), f"{n}".encode()) for n in range(chunk * 50, chunk * 50 + 50)]
                reports = produce_all(p, topic, recs)
                assert_all_delivered(reports, len(recs))
                for idx, part, off, _ in reports:
                    acked[(part, off)] = recs[idx][1]
                chunks.append(chunk)
                time.sleep(0.1)
        except Exception as e:  # noqa: BLE001
            produce_error.append(repr(e))
        finally:
            produce_done.set()

    threading.Thread(target=produce, daemon=True).start()

    members = {}

    t0 = time.monotonic()
    timeline = []

    def join(name):
        timeline.append((round(time.monotonic() - t0, 2), f"{name} joins", len(acked)))
        members[name] = Member(name, bootstrap, group, topic, ledger)
        members[name].start()

    def leave(name):
        timeline.append((round(time.monotonic() - t0, 2), f"{name} leaves", len(acked)))
        members[name].leave()

    join("m1")
    wait_until(lambda: ledger.assignments["m1"], 20, "m1 to get an assignment")
    time.sleep(1.0)
    join("m2")
    wait_until(lambda: ledger.assignments["m2"], 20, "m2 to join the group and get an assignment")
    time.sleep(1.0)
    join("m3")
    wait_until(lambda: ledger.assignments["m3"], 20, "m3 to join the group and get an assignment")
    time.sleep(1.0)
    leave("m2")
    time.sleep(1.0)
    leave("m1")
    wait_until(lambda: members["m3"].owned == set(range(PARTITIONS)), 30, "m3 to own every partition")
    time.sleep(1.0)  # m3 alone reads records produced after it took over
    stop_producing.set()
    timeline.append((round(time.monotonic() - t0, 2), "producer stops", len(acked)))

    assert produce_done.wait(60), "producer did not finish in 60 s"
    print(f"timeline (seconds, event, records acknowledged so far): {timeline}")
    assert not produce_error, f"producer failed: {produce_error}"
    total = 50 * len(chunks)
    assert len(acked) == total

    ends = watermarks(bootstrap, topic, PARTITIONS)
    assert sum(hi for _, hi in ends.values()) == total, f"high watermarks {ends} do not add up to {total} records"

    def all_committed():
        with ledger.lock:
            done = {(p, off) for _, _, p, off, ok, _ in ledger.commits if ok}
        return all((p, ends[p][1]) in done for p in range(PARTITIONS) if ends[p][1] > 0)

    wait_until(all_committed, 60, "the remaining member (m3) to read and commit every partition to its end")
    members["m3"].leave()

    with ledger.lock:
        reads, commits, errors = list(ledger.reads), list(ledger.commits), list(ledger.errors)
        assignments = {m: list(a) for m, a in ledger.assignments.items()}
    assert not errors, f"consumer errors: {errors[:10]}"

    # The scenario really rebalanced: all three members owned partitions, and m3 ended up owning them all.
    for m in ("m1", "m2", "m3"):
        assert any(assignments.get(m, [])), f"{m} never got a partition: {assignments}"
    assert assignments["m3"][-1] == set(range(PARTITIONS)), f"m3's last assignment {assignments['m3'][-1]}"
    assert len(chunks) < MAX_CHUNKS, "the producer ran out of records before the membership changes were over"

    # Every read matches what was acknowledged at that offset (no phantom or changed records).
    for member, session, p, off, value in reads:
        assert session is not None, f"{member} read partition {p} offset {off} without owning it"
        assert acked.get((p, off)) == value, f"{member} read {value!r} at {p}/{off}, acked {acked.get((p, off))!r}"

    # At-least-once with zero gaps.
    read_set = {(p, off) for _, _, p, off, _ in reads}
    missing = sorted(set(acked) - read_set)
    assert not missing, f"{len(missing)} acknowledged records never read, e.g. {missing[:20]}"

    # Within one ownership session, a member reads its partition densely and in order.
    by_session = defaultdict(list)
    for member, session, p, off, _ in reads:
        by_session[(member, session, p)].append(off)
    for (member, session, p), offs in by_session.items():
        assert offs == list(range(offs[0], offs[0] + len(offs))), (
            f"{member} session {session} read partition {p} with gaps or out of order: {offs[:30]}...")

    # Exactly-once for committed ranges: each offset is covered by exactly one successful commit made in the
    # session that read it.
    best_commit = defaultdict(int)  # (member, session, partition) -> highest successful commit
    for member, session, p, off, ok, _ in commits:
        if ok:
            best_commit[(member, session, p)] = max(best_commit[(member, session, p)], off)
    covered = defaultdict(list)
    for member, session, p, off, _ in reads:
        if best_commit[(member, session, p)] > off:
            covered[(p, off)].append(member)
    twice = {k: v for k, v in covered.items() if len(v) > 1}
    assert not twice, f"records read and committed by more than one session: {sorted(twice.items())[:10]}"
    uncovered = sorted(set(acked) - set(covered))
    failed_commits = [c for c in commits if not c[4]]
    assert not uncovered, (f"{len(uncovered)} records never covered by a successful commit of the session that read "
                           f"them, e.g. {uncovered[:10]}; failed commits: {failed_commits[:10]}")
    redelivered = len(reads) - len(read_set)
    print(f"{len(reads)} reads, {redelivered} redeliveries, {len(commits)} commits ({len(failed_commits)} failed), "
          f"assignments {assignments}")

    # The group's committed offsets are the high watermarks.
    assert committed_offsets(bootstrap, group, topic, PARTITIONS) == {p: ends[p][1] for p in range(PARTITIONS)}


def test_consumer_resumes_at_committed_offsets(module_broker):
    """A new member of the group starts exactly at the committed offsets, for confluent-kafka and kafka-python."""
    bootstrap = module_broker.bootstrap
    topic, group = unique("grp-resume"), unique("g-resume")
    create_topic(bootstrap, topic, partitions=2)
    p = producer(bootstrap)
    for i in range(100):
        p.produce(topic, value=f"{i}".encode(), partition=i % 2)
    assert p.flush(20) == 0

    c1 = consumer(bootstrap, group)
    c1.subscribe([topic])
    seen = defaultdict(list)
    wait_until(lambda: [seen[m.partition()].append(m.offset()) for m in c1.consume(100, 0.2) if not m.error()]
               and all(len(seen[q]) >= 40 for q in (0, 1)), 20, "c1 to read 40 records of each partition")
    assert seen[0][:40] == list(range(40)) and seen[1][:40] == list(range(40))
    res = c1.commit(offsets=[TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 20)], asynchronous=False)
    assert all(tp.error is None for tp in res), res
    c1.close()

    assert committed_offsets(bootstrap, group, topic, 2) == {0: 30, 1: 20}

    c2 = consumer(bootstrap, group)
    c2.subscribe([topic])
    first = {}
    wait_until(lambda: [first.setdefault(m.partition(), m.offset()) for m in c2.consume(100, 0.2) if not m.error()]
               and len(first) == 2, 20, "c2 to read from both partitions")
    c2.close()
    assert first == {0: 30, 1: 20}, f"c2 started at {first}, committed were {{0: 30, 1: 20}}"

    # kafka-python, same group: the committed offsets read through its OffsetFetch, and its first records.
    from kafka import TopicPartition as KTP

    kc = kp_consumer(bootstrap, group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    try:
        assert kc.committed(KTP(topic, 0), timeout_ms=10000) == 30
        assert kc.committed(KTP(topic, 1), timeout_ms=10000) == 20
        kc.subscribe([topic])
        kfirst = {}
        deadline = time.monotonic() + 20
        while len(kfirst) < 2 and time.monotonic() < deadline:
            for tp, recs in kc.poll(timeout_ms=200).items():
                kfirst.setdefault(tp.partition, recs[0].offset)
        assert kfirst == {0: 30, 1: 20}, f"kafka-python started at {kfirst}"
    finally:
        kc.close(autocommit=False)


def test_three_members_split_partitions_and_group_admin(module_broker):
    """Three members share six partitions disjointly; ListGroups/DescribeGroups show them; after they leave the group
    is empty and DeleteGroups removes it."""
    bootstrap = module_broker.bootstrap
    topic, group = unique("grp-admin"), unique("g-admin")
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    ledger = Ledger()
    members = [Member(f"m{i}", bootstrap, group, topic, ledger) for i in range(3)]
    for m in members:
        m.start()
    a = admin(bootstrap)
    try:
        def split():
            with ledger.lock:
                owned = [set(m.owned) for m in members]
            everything = set().union(*owned)
            return (all(owned) and sum(len(o) for o in owned) == PARTITIONS
                    and everything == set(range(PARTITIONS))) and owned
        owned = wait_until(split, 30, "three members to own six partitions disjointly")

        def described():
            d = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
            return d if d.state == ConsumerGroupState.STABLE and len(d.members) == 3 else None
        desc = wait_until(described, 20, "DescribeGroups to show a stable group of 3")
        assert desc.group_id == group and not desc.is_simple_consumer_group
        assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        assert desc.coordinator.id == 0
        described_sets = sorted(sorted(tp.partition for tp in mem.assignment.topic_partitions) for mem in desc.members)
        assert described_sets == sorted(sorted(o) for o in owned), f"described {described_sets}, owned {owned}"

        listed = a.list_consumer_groups(request_timeout=10).result(timeout=15)
        assert not listed.errors, listed.errors
        assert group in {g.group_id for g in listed.valid}

        for m in members:
            m.leave()
        d = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert d.state == ConsumerGroupState.EMPTY and not d.members, (d.state, d.members)

        a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        listed = a.list_consumer_groups(request_timeout=10).result(timeout=15)
        assert group not in {g.group_id for g in listed.valid}
    finally:
        for m in members:
            m.stop_event.set()
        for m in members:
            m.join(20)
    assert not ledger.errors, ledger.errors
