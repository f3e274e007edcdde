"""Keyed events over 8 partitions (the analytics use case in DESIGN.md): every key stays in one partition, each key's
events come back in the order they were produced, and every event comes back exactly once at the offset the broker
acknowledged."""

from collections import Counter, defaultdict

from e2e_util import assert_all_delivered, consume_range, create_topic, produce_all, producer, unique

PARTITIONS = 8
EVENTS = 2000
USERS = 50


def test_key_to_partition_stability_and_per_key_order(module_broker):
    bootstrap = module_broker.bootstrap
    topic = unique("clicks")
    create_topic(bootstrap, topic, partitions=PARTITIONS)

    records = [(f"user_{n % USERS}".encode(), f"{n}".encode(), [("n", str(n).encode())]) for n in range(EVENTS)]
    p = producer(bootstrap, **{"enable.idempotence": True})
    reports = produce_all(p, topic, records)
    assert_all_delivered(reports, EVENTS)
    acked = {idx: (part, off) for idx, part, off, _ in reports}

    msgs = consume_range(bootstrap, topic, PARTITIONS)
    # Counts exact: every event once, nothing else.
    seqs = [int(m.value()) for m in msgs]
    dupes = [n for n, c in Counter(seqs).items() if c > 1]
    assert not dupes, f"events read more than once: {dupes[:20]}"
    assert sorted(seqs) == list(range(EVENTS)), f"read {len(seqs)} events, missing {sorted(set(range(EVENTS)) - set(seqs))[:20]}"

    partitions_of_key = defaultdict(set)
    order_of_key = defaultdict(list)
    for m in msgs:  # consume_range yields each partition in offset order
        n = int(m.value())
        key = m.key().decode()
        assert key == f"user_{n % USERS}", f"event {n} came back with key {key}"
        assert m.headers() == [("n", str(n).encode())], f"event {n} came back with headers {m.headers()}"
        assert (m.partition(), m.offset()) == acked[n], (
            f"event {n} read at partition {m.partition()} offset {m.offset()}, acknowledged at {acked[n]}")
        partitions_of_key[key].add(m.partition())
        order_of_key[key].append(n)

    split = {k: sorted(ps) for k, ps in partitions_of_key.items() if len(ps) != 1}
    assert not split, f"keys spread over several partitions: {split}"
    for key, ns in order_of_key.items():
        assert ns == sorted(ns), f"{key}: events out of produce order: {ns}"
        assert len(ns) == EVENTS // USERS, f"{key}: {len(ns)} events, want {EVENTS // USERS}"
    used = {next(iter(ps)) for ps in partitions_of_key.values()}
    # 50 keys hashed over 8 partitions: a real 8-partition topic gets keys in (nearly) all of them.
    assert len(used) >= 6, f"50 keys landed in only partitions {sorted(used)} of 8"

    # Per partition, offsets are dense 0..n-1 and the high watermark says n.
    per_partition = defaultdict(list)
    for m in msgs:
        per_partition[m.partition()].append(m.offset())
    for part, offs in per_partition.items():
        assert offs == list(range(len(offs))), f"partition {part}: offsets not dense from 0: {offs[:20]}..."
