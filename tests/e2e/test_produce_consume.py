"""Produce and consume with real clients: keys, headers, null keys/values, and every compression codec, written by
confluent-kafka (librdkafka) and by kafka-python and read back by both. The broker must keep records byte-exact and
in order, and keep the producer's compression on the wire (DESIGN.md: batches stay opaque)."""

import json
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from e2e_util import (assert_all_delivered, consume_range, consumer, create_topic, kp_consume_range, kp_producer,
                      produce_all, producer, unique, wait_until)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 300


def make_records(n: int = N):
    """(key, value, headers) with null keys, null values, empty values, repeated and empty headers. Values are
    repetitive so every codec shrinks them a lot."""
    out = []
    for i in range(n):
        # Null keys and null values, never both: kafka-python refuses a record with neither ("Need at least one").
        key = None if i % 11 == 5 and i % 13 != 0 else f"user_{i % 7}".encode()
        if i % 13 == 0:
            value = None
        elif i % 17 == 0:
            value = b""
        else:
            value = (f"event {i} " + "click-view-payload " * 30 + f"end {i}").encode()
        if i % 5 == 0:
            headers = []
        else:
            headers = [("seq", str(i).encode()), ("kind", b"click" if i % 2 else b"view"), ("empty", b""),
                       ("seq", b"repeated-key")]
        out.append((key, value, headers))
    return out


def raw_size(records) -> int:
    return sum(len(k or b"") + len(v or b"") + sum(len(hk) + len(hv) for hk, hv in h) for k, v, h in records)


def produce_confluent(bootstrap, topic, records, codec):
    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20})
    reports = produce_all(p, topic, records)
    assert_all_delivered(reports, len(records))
    return sorted((r[0], r[2]) for r in reports)


def produce_kafka_python(bootstrap, topic, records, codec):
    p = kp_producer(bootstrap, compression_type=None if codec == "none" else codec, linger_ms=20)
    try:
        futures = [p.send(topic, key=k, value=v, headers=h) for k, v, h in records]
        p.flush(timeout=30)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)
    return [(i, m.offset) for i, m in enumerate(metas)]


def norm_headers(h):
    return [(k, bytes(v) if v is not None else None) for k, v in (h or [])]


def confluent_read_with_wire_bytes(bootstrap, topic, count):
    """Consumes `count` messages of partition 0 and returns (messages, bytes received from the broker on the wire)
    taken from librdkafka's statistics."""
    stats = []
    c = consumer(bootstrap, **{"statistics.interval.ms": 200, "stats_cb": stats.append,
                               "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        msgs = []
        deadline = time.monotonic() + 30
        while len(msgs) < count:
            assert time.monotonic() < deadline, f"read {len(msgs)} of {count} messages from {topic} in 30s"
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                msgs.append(m)
        seen_before = len(stats)
        # Statistics are cumulative; one snapshot taken after everything was read bounds the bytes it took.
        wait_until(lambda: c.poll(0.1) is None and len(stats) > seen_before, 5, "a librdkafka statistics snapshot")
        rx = json.loads(stats[-1])["rx_bytes"]
        return msgs, rx
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_records_round_trip_with_every_codec(module_broker, client, codec):
    """Keys, values (null and empty too) and headers (repeated and empty too) come back exactly, in produce order,
    at offsets 0..N-1, to both clients, whichever client and codec wrote them."""
    bootstrap = module_broker.bootstrap
    topic = unique(f"pc-{client}-{codec}")
    create_topic(bootstrap, topic, partitions=1)
    records = make_records()
    if client == "confluent":
        acked = produce_confluent(bootstrap, topic, records, codec)
    else:
        acked = produce_kafka_python(bootstrap, topic, records, codec)
    # One partition and one producer: record i is acknowledged at offset i.
    assert acked == [(i, i) for i in range(N)], f"acknowledged offsets are not 0..{N - 1}: {acked[:10]}..."

    msgs, rx_bytes = confluent_read_with_wire_bytes(bootstrap, topic, N)
    got = [(m.offset(), m.key(), m.value(), norm_headers(m.headers())) for m in msgs]
    want = [(i, k, v, h) for i, (k, v, h) in enumerate(records)]
    assert got == want, first_difference(got, want)
    if codec != "none":
        raw = raw_size(records)
        assert rx_bytes < raw // 3, (
            f"{codec}: consumer received {rx_bytes} bytes for {raw} bytes of highly compressible records: the "
            f"broker does not serve the producer's compressed batches")

    kmsgs = kp_consume_range(bootstrap, topic, 1)
    kgot = [(r.offset, r.key, r.value, norm_headers(r.headers)) for r in kmsgs]
    assert kgot == want, first_difference(kgot, want)

    # A fetch from the middle of a (compressed) batch: the broker returns the batch holding that offset.
    mid = [(m.offset(), m.value()) for m in consume_range(bootstrap, topic, 1, start=N // 2)]
    assert mid == [(i, v) for i, (_, v, _) in enumerate(records)][N // 2:], first_difference(
        mid, [(i, v) for i, (_, v, _) in enumerate(records)][N // 2:])


def first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"first difference at index {i}: got {g!r}, want {w!r} (got {len(got)}, want {len(want)})"
    return f"lengths differ: got {len(got)}, want {len(want)}"


def test_explicit_partitions_and_timestamps(module_broker):
    """Records sent to an explicit partition land there, in order, with the producer's CreateTime timestamps."""
    bootstrap = module_broker.bootstrap
    topic = unique("pc-parts")
    create_topic(bootstrap, topic, partitions=4)
    base_ts = int(time.time() * 1000) - 3_600_000
    p = producer(bootstrap)
    for i in range(200):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 4, timestamp=base_ts + i)
    assert p.flush(30) == 0
    msgs = consume_range(bootstrap, topic, 4)
    assert len(msgs) == 200
    for m in msgs:
        i = int(m.value()[1:])
        assert m.partition() == i % 4, f"record {i} read from partition {m.partition()}"
        assert m.offset() == i // 4, f"record {i} at offset {m.offset()} of partition {m.partition()}"
        assert m.key() == f"k{i}".encode()
        ts_type, ts = m.timestamp()
        assert ts_type == 1 and ts == base_ts + i, f"record {i}: timestamp {(ts_type, ts)}, want (1, {base_ts + i})"

