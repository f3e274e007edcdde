"""ListOffsets: by timestamp (the first offset whose timestamp is >= t, KIP-79), earliest and latest (watermarks),
through confluent-kafka's offsets_for_times / get_watermark_offsets / AdminClient.list_offsets and kafka-python's
offsets_for_times / beginning_offsets / end_offsets; DeleteRecords moves the low watermark, and consumers that start
from earliest (or fall below it) start there."""

import time

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from e2e_util import (admin, consume_range, consumer, create_topic, error_code, kp_consume_range, kp_consumer,
                      producer, unique, wait_until, watermarks)


def produce_with_timestamps(bootstrap, topic, partition, timestamps, flush_every=None, codec="none"):
    """Record i gets CreateTime timestamps[i]; `flush_every` splits them into several batches."""
    p = producer(bootstrap, **{"compression.type": codec})
    for i, ts in enumerate(timestamps):
        p.produce(topic, value=f"v{i}".encode(), partition=partition, timestamp=ts)
        if flush_every and (i + 1) % flush_every == 0:
            assert p.flush(20) == 0
    assert p.flush(20) == 0


def expected_offset(timestamps, target, base=0):
    """Kafka's answer: the first offset whose timestamp is >= target, else none (-1)."""
    for i, ts in enumerate(timestamps):
        if ts >= target:
            return base + i
    return -1


def test_offsets_for_times_and_watermarks(module_broker):
    bootstrap = module_broker.bootstrap
    topic = unique("off-times")
    create_topic(bootstrap, topic, partitions=2)
    t0 = int(time.time() * 1000) - 10 * 60 * 1000
    # Partition 0: 100 increasing timestamps 10 ms apart, in zstd batches of 7 records (so the broker has to look
    # inside compressed batches for the exact record).
    ts0 = [t0 + 10 * i for i in range(100)]
    # Partition 1: out-of-order timestamps (a late event in the middle): the answer is the FIRST offset >= t.
    ts1 = [t0 + 100, t0 + 500, t0 + 200, t0 + 300, t0 + 300, t0 + 400, t0 + 600, t0 + 50]
    produce_with_timestamps(bootstrap, topic, 0, ts0, flush_every=7, codec="zstd")
    produce_with_timestamps(bootstrap, topic, 1, ts1)

    # Every record's own timestamp, every gap between two, and the edges.
    targets0 = ([0, t0 - 1] + [t0 + 10 * i for i in range(100)] + [t0 + 10 * i + 5 for i in range(100)]
                + [int(time.time() * 1000) + 60_000])
    targets1 = [t0, t0 + 100, t0 + 101, t0 + 250, t0 + 300, t0 + 450, t0 + 500, t0 + 501, t0 + 600, t0 + 601]

    # confluent-kafka Consumer.offsets_for_times and kafka-python KafkaConsumer.offsets_for_times; every wrong answer
    # is collected before failing.
    from kafka import TopicPartition as KTP

    wrong = []
    c = consumer(bootstrap)
    kc = kp_consumer(bootstrap)
    try:
        for part, ts, targets in ((0, ts0, targets0), (1, ts1, targets1)):
            for target in targets:
                want = expected_offset(ts, target)
                res = c.offsets_for_times([TopicPartition(topic, part, target)], timeout=10)[0]
                if res.error is not None or res.offset != (want if want >= 0 else OFFSET_END):
                    wrong.append(f"confluent p{part} t0{target - t0:+d}: got {res.offset} ({res.error}), want {want}")
                got = kc.offsets_for_times({KTP(topic, part): target}, timeout_ms=10000)[KTP(topic, part)]
                if want < 0 and got is not None or want >= 0 and (got is None or (got.offset, got.timestamp) !=
                                                                  (want, ts[want])):
                    wrong.append(f"kafka-python p{part} t0{target - t0:+d}: got {got}, want offset {want} "
                                 f"timestamp {ts[want] if want >= 0 else None}")
        assert not wrong, (f"{len(wrong)} offsets_for_times answers are not the first offset with timestamp >= t "
                           f"(p0: zstd batches of 7 records, p1: one uncompressed batch), e.g.:\n"
                           + "\n".join(wrong[:16]))
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 100)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10, cached=False) == (0, len(ts1))
        tps = [KTP(topic, 0), KTP(topic, 1)]
        assert kc.beginning_offsets(tps, timeout_ms=10000) == {tps[0]: 0, tps[1]: 0}
        assert kc.end_offsets(tps, timeout_ms=10000) == {tps[0]: 100, tps[1]: len(ts1)}
    finally:
        c.close()
        kc.close()

    # AdminClient.list_offsets: earliest, latest, for_timestamp
    a = admin(bootstrap)
    specs = {TopicPartition(topic, 0): OffsetSpec.earliest(), TopicPartition(topic, 1): OffsetSpec.latest()}
    res = {tp.partition: f.result(15).offset for tp, f in a.list_offsets(specs, request_timeout=10).items()}
    assert res == {0: 0, 1: len(ts1)}
    specs = {TopicPartition(topic, 0): OffsetSpec.for_timestamp(t0 + 505),
             TopicPartition(topic, 1): OffsetSpec.for_timestamp(t0 + 450)}
    res = {tp.partition: f.result(15) for tp, f in a.list_offsets(specs, request_timeout=10).items()}
    assert (res[0].offset, res[0].timestamp) == (51, ts0[51]), (res[0].offset, res[0].timestamp)
    assert (res[1].offset, res[1].timestamp) == (1, ts1[1]), (res[1].offset, res[1].timestamp)


def test_empty_partition_watermarks_and_latest(module_broker):
    """An empty partition: low = high = 0; by-time lookups find nothing; after one record, latest = 1."""
    bootstrap = module_broker.bootstrap
    topic = unique("off-empty")
    create_topic(bootstrap, topic, partitions=1)
    assert watermarks(bootstrap, topic, 1) == {0: (0, 0)}
    c = consumer(bootstrap)
    try:
        res = c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)[0]
        assert res.error is None and res.offset == OFFSET_END, (res.offset, res.error)
    finally:
        c.close()
    p = producer(bootstrap)
    p.produce(topic, value=b"x")
    assert p.flush(10) == 0
    assert watermarks(bootstrap, topic, 1) == {0: (0, 1)}


def test_delete_records_moves_low_watermark(module_broker):
    bootstrap = module_broker.bootstrap
    topic = unique("off-delrec")
    create_topic(bootstrap, topic, partitions=2)
    p = producer(bootstrap)
    for i in range(100):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2)  # 50 per partition
        if i % 10 == 9:
            p.flush(10)  # several batches, so the cut falls inside one
    assert p.flush(20) == 0

    a = admin(bootstrap)
    tp0 = TopicPartition(topic, 0, 23)
    result = a.delete_records([tp0], request_timeout=15, operation_timeout=10)[tp0].result(15)
    assert result.low_watermark == 23
    assert watermarks(bootstrap, topic, 2) == {0: (23, 50), 1: (0, 50)}

    # ListOffsets earliest agrees, and a lookup by a timestamp older than everything finds the log start offset.
    res = a.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=10)
    assert next(iter(res.values())).result(15).offset == 23
    c = consumer(bootstrap)
    try:
        res = c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)[0]
        assert res.error is None and res.offset == 23, (res.offset, res.error)
    finally:
        c.close()

    # A consumer from earliest (new group) starts at 23 in partition 0 and 0 in partition 1.
    c = consumer(bootstrap, group=unique("g-delrec"))
    c.subscribe([topic])
    first = {}
    deadline = time.monotonic() + 20
    while len(first) < 2:
        assert time.monotonic() < deadline, f"first offsets so far {first}"
        for m in c.consume(100, 0.2):
            assert m.error() is None, m.error()
            first.setdefault(m.partition(), (m.offset(), m.value()))
    c.close()
    assert first == {0: (23, b"v46"), 1: (0, b"v1")}

    # Reading all of partition 0 from the beginning yields exactly offsets 23..49; same with kafka-python.
    msgs = [m for m in consume_range(bootstrap, topic, 2) if m.partition() == 0]
    assert [m.offset() for m in msgs] == list(range(23, 50))
    kmsgs = [r for r in kp_consume_range(bootstrap, topic, 2) if r.partition == 0]
    assert [r.offset for r in kmsgs] == list(range(23, 50))

    # An assign() below the log start offset is out of range; with auto.offset.reset=earliest it lands on 23.
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        m = wait_until(lambda: c.poll(0.2), 15, "a record after resetting an out-of-range offset")
        assert m.error() is None and m.offset() == 23, (m.error(), m.offset())
    finally:
        c.close()
    c = consumer(bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        m = wait_until(lambda: c.poll(0.2), 15, "an out-of-range error")
        assert m.error() is not None and m.error().code() in (KafkaError.OFFSET_OUT_OF_RANGE,
                                                              KafkaError._AUTO_OFFSET_RESET), m.error()
    finally:
        c.close()

    # Deleting past the high watermark is refused with OFFSET_OUT_OF_RANGE; deleting to OFFSET_END (-1) empties it.
    bad = TopicPartition(topic, 1, 51)
    try:
        a.delete_records([bad], request_timeout=15, operation_timeout=10)[bad].result(15)
        raise AssertionError("DeleteRecords past the high watermark succeeded")
    except KafkaException as e:
        assert error_code(e) == KafkaError.OFFSET_OUT_OF_RANGE, e
    end = TopicPartition(topic, 1, OFFSET_END)
    assert a.delete_records([end], request_timeout=15, operation_timeout=10)[end].result(15).low_watermark == 50
    assert watermarks(bootstrap, topic, 2) == {0: (23, 50), 1: (50, 50)}
