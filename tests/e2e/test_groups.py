"""Consumer groups with confluent-kafka (classic protocol, eager range/roundrobin assignors): members joining and
leaving mid-stream, commits, resuming from committed offsets, and the group admin APIs. The rebalance test's members
and checks (at-least-once with zero gaps, exactly-once for committed ranges) are in group_member.py."""

import threading
import time
from collections import defaultdict

from confluent_kafka import ConsumerGroupState, TopicPartition

from e2e_util import (admin, assert_all_delivered, consumer, create_topic, kp_consumer, produce_all, producer, unique,
                      wait_until, watermarks)
from group_member import Ledger, Member, check_ledger, committed_offsets

PARTITIONS = 6
MAX_CHUNKS = 300


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

    wait_until(lambda: ledger.committed_to(ends), 60, "the remaining member (m3) to read and commit every partition to its end")
    members["m3"].leave()

    with ledger.lock:
        assignments = {m: list(a) for m, a in ledger.assignments.items()}

    # The scenario really rebalanced: all three members owned partitions, and m3 ended up owning them all.
    for m in ("m1", "m2", "m3"):
        assert any(assignments.get(m, [])), f"{m} never got a partition: {assignments}"
    assert assignments["m3"][-1] == set(range(PARTITIONS)), f"m3's last assignment {assignments['m3'][-1]}"
    assert len(chunks) < MAX_CHUNKS, "the producer ran out of records before the membership changes were over"

    assert not ledger.broker_down, f"broker-down errors without a restart: {ledger.broker_down[:5]}"
    summary = check_ledger(ledger, acked)
    print(f"{summary}, assignments {assignments}")

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
