"""Idempotent producer (KIP-98; DESIGN.md invariant 3): with retries forced by killing the broker under a producer
that has requests in flight, everything is delivered exactly once and in order per partition; a re-sent batch is
answered with its original offset (also after a crash), a sequence gap is refused with OUT_OF_ORDER_SEQUENCE_NUMBER,
and DescribeProducers shows the producer's state."""

import json
import time
from collections import Counter, defaultdict

from e2e_util import consume_range, create_topic, producer, unique, wait_until, watermarks
from rawkafka import RawClient, idempotent_batch

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
TOTAL = 4000


def test_idempotent_producer_exactly_once_through_broker_kills(broker):
    bootstrap = broker.bootstrap
    topic = unique("idem")
    create_topic(bootstrap, topic, partitions=3)
    stats = []
    p = producer(bootstrap, **{
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 90000,
        "linger.ms": 2,
        "batch.num.messages": 50,  # many small batches, so several requests are in flight when the broker dies
        "max.in.flight.requests.per.connection": 5,
        "statistics.interval.ms": 200,
        "stats_cb": stats.append,
    })
    reports = {}
    errors = []

    def cb(err, msg):
        n = int(msg.value().split(b"-")[1])
        if err is not None:
            errors.append((n, str(err)))
        else:
            assert n not in reports, f"two delivery reports for seq {n}"
            reports[n] = (msg.partition(), msg.offset())

    def send(lo, hi):
        for n in range(lo, hi):
            while True:
                try:
                    p.produce(topic, key=f"k{n % 20}".encode(), value=f"seq-{n}".encode(), on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)

    # Everything is queued up front; the broker is killed three times while thousands of messages are still pending
    # (with up to 5 produce requests in flight): early, in the middle and late. Each kill usually catches requests in
    # flight; three make it near certain that some were (the premise checked at the end).
    send(0, TOTAL)
    kills = 0
    for kill_after in (300, 1500, 2700):
        deadline = time.monotonic() + 60
        while len(reports) < kill_after:
            assert time.monotonic() < deadline, f"{len(reports)} deliveries in 60 s, errors {errors[:5]}"
            p.poll(0.001)
        pending = TOTAL - len(reports) - len(errors)
        assert pending > 0, "nothing pending when the broker was killed"
        broker.restart(kill=True)
        kills += 1
    remaining = p.flush(90)
    assert remaining == 0, f"{remaining} messages undelivered 90 s after the last kill; errors {errors[:10]}"
    assert not errors, f"{len(errors)} delivery errors, e.g. {errors[:10]}"
    assert sorted(reports) == list(range(TOTAL))
    assert kills == 3
    # The premise: the kills really forced retries (messages transmitted more than once), so the dedup was exercised.
    wait_until(lambda: p.poll(0.1) >= 0 and stats and json.loads(stats[-1])["txmsgs"] > TOTAL, 5,
               f"librdkafka statistics to show retransmitted messages (txmsgs > {TOTAL})")

    msgs = consume_range(bootstrap, topic, 3)
    seqs = [int(m.value().split(b"-")[1]) for m in msgs]
    dup = [n for n, c in Counter(seqs).items() if c > 1]
    assert not dup, f"{len(dup)} records written twice, e.g. {sorted(dup)[:20]}"
    assert sorted(seqs) == list(range(TOTAL)), f"missing {sorted(set(range(TOTAL)) - set(seqs))[:20]}"
    per_partition = defaultdict(list)
    for m, n in zip(msgs, seqs):
        assert (m.partition(), m.offset()) == reports[n], (
            f"seq {n} read at {m.partition()}/{m.offset()}, acknowledged at {reports[n]}")
        per_partition[m.partition()].append(n)
    for part, ns in per_partition.items():
        assert ns == sorted(ns), f"partition {part}: records out of produce order"
    marks = watermarks(bootstrap, topic, 3)
    assert sum(hi - lo for lo, hi in marks.values()) == TOTAL, f"watermarks {marks} hold more than {TOTAL} records"


def test_resent_batch_gets_original_offset_and_gaps_are_refused(broker):
    """Raw Produce v7 with explicit producer id / sequence numbers (what a client does on retry)."""
    bootstrap = broker.bootstrap
    topic = unique("idem-raw")
    create_topic(bootstrap, topic, partitions=1)
    vals = lambda lo, hi: [f"r{i}".encode() for i in range(lo, hi)]  # noqa: E731

    with RawClient(bootstrap) as raw:
        pid, epoch = raw.init_producer_id()
        assert pid >= 0 and epoch >= 0
        b0 = idempotent_batch(pid, epoch, 0, vals(0, 5))
        b5 = idempotent_batch(pid, epoch, 5, vals(5, 10))
        assert raw.produce(topic, 0, b0)[:2] == (0, 0)
        assert raw.produce(topic, 0, b0)[:2] == (0, 0), "a re-sent batch must be answered with its original offset"
        assert raw.produce(topic, 0, b5)[:2] == (0, 5)
        assert raw.produce(topic, 0, b0)[:2] == (0, 0), "a re-sent older batch (within the last 5) is a duplicate"
        err, _, _ = raw.produce(topic, 0, idempotent_batch(pid, epoch, 20, vals(20, 25)))
        assert err == OUT_OF_ORDER_SEQUENCE_NUMBER, f"sequence gap answered with error {err}"
        b10 = idempotent_batch(pid, epoch, 10, vals(10, 15))
        assert raw.produce(topic, 0, b10)[:2] == (0, 10)

    assert watermarks(bootstrap, topic, 1)[0] == (0, 15)
    assert [m.value() for m in consume_range(bootstrap, topic, 1)] == vals(0, 15)

    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient

    ka = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        state = ka.describe_producers([KTP(topic, 0)])[KTP(topic, 0)]
    finally:
        ka.close()
    mine = [s for s in state.active_producers if s.producer_id == pid]
    assert len(mine) == 1, f"DescribeProducers: {state}"
    assert (mine[0].producer_epoch, mine[0].last_sequence) == (epoch, 14), mine[0]

    # Producer state survives a crash: the last batch re-sent after SIGKILL is still a duplicate.
    broker.restart(kill=True)
    with RawClient(bootstrap) as raw:
        assert raw.produce(topic, 0, b10)[:2] == (0, 10), "duplicate not recognised after a crash"
        assert raw.produce(topic, 0, idempotent_batch(pid, epoch, 15, vals(15, 20)))[:2] == (0, 15)
    assert watermarks(bootstrap, topic, 1)[0] == (0, 20)
    assert [m.value() for m in consume_range(bootstrap, topic, 1)] == vals(0, 20)
