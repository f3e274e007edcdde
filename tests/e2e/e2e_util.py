"""Helpers shared by the e2e tests: client configs, topic creation, produce/consume-everything loops.

Every loop here is bounded in time and fails with a message that says what was missing.
"""

import logging
import re
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Short client timeouts so that a broken broker fails a test quickly instead of hanging it.
CK_COMMON = {
    "socket.timeout.ms": 10000,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "topic.metadata.refresh.interval.ms": 5000,
    "metadata.max.age.ms": 10000,
    # librdkafka's log lines go to Python logging, which pytest captures and shows only for failing tests (a client
    # left over from a finished test would otherwise print connection errors into the whole run).
    "logger": logging.getLogger("librdkafka"),
}

GROUP_TIMEOUTS = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "max.poll.interval.ms": 30000,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling; report the last error on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# -- confluent-kafka -----------------------------------------------------------------------------------------------


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **CK_COMMON})


def producer(bootstrap: str, **conf) -> Producer:
    base = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 20000,
            **CK_COMMON}
    base.update(conf)
    return Producer(base)


def consumer(bootstrap: str, group: str | None = None, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        # confluent-kafka insists on a group.id even for assign()-only consumers; such consumers never commit.
        "group.id": group or unique("nogroup"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        **GROUP_TIMEOUTS,
        **CK_COMMON,
    }
    base.update(conf)
    return Consumer(base)


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None,
                 client: AdminClient | None = None) -> None:
    client = client or admin(bootstrap)
    fut = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
                               operation_timeout=10, request_timeout=15)[name]
    fut.result(timeout=20)
    wait_for_topic(client, name, partitions)


def wait_for_topic(client: AdminClient, name: str, partitions: int, timeout: float = 15.0) -> None:
    def ready():
        md = client.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        return (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader == 0 for p in t.partitions.values()))
    wait_until(ready, timeout, f"topic {name} with {partitions} partitions led by broker 0 in Metadata")


def produce_all(prod: Producer, topic: str, records, timeout: float = 30.0, partition=None):
    """Produces (key, value, headers) tuples in order; returns the delivery reports as a list of
    (index, partition, offset, error) in delivery order. Fails if flush does not finish in time."""
    reports = []

    def on_delivery(idx):
        def cb(err, msg):
            reports.append((idx, msg.partition(), msg.offset(), err))
        return cb

    for i, rec in enumerate(records):
        key, value, headers = rec[0], rec[1], (rec[2] if len(rec) > 2 else None)
        kwargs = {"key": key, "value": value, "on_delivery": on_delivery(i)}
        if headers is not None:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                prod.produce(topic, **kwargs)
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    remaining = prod.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after flush({timeout})"
    return reports


def assert_all_delivered(reports, count: int):
    errors = [(i, err) for i, _, _, err in reports if err is not None]
    assert not errors, f"delivery errors: {errors[:10]} ({len(errors)} in all)"
    assert len(reports) == count, f"{len(reports)} delivery reports for {count} messages"


def watermarks(bootstrap: str, topic: str, partitions: int, cons: Consumer | None = None) -> dict:
    own = cons is None
    cons = cons or consumer(bootstrap)
    try:
        return {p: cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                for p in range(partitions)}
    finally:
        if own:
            cons.close()


def consume_range(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0, start=OFFSET_BEGINNING,
                  **conf):
    """Reads every partition of `topic` from `start` up to its high watermark at call time with an assign()-only
    confluent consumer. Returns the messages in per-partition order (list of confluent Message)."""
    cons = consumer(bootstrap, **conf)
    try:
        marks = watermarks(bootstrap, topic, partitions, cons)
        pending = {p for p, (lo, hi) in marks.items() if hi > lo}
        cons.assign([TopicPartition(topic, p, start) for p in range(partitions)])
        out = []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"timed out reading {topic}: got {len(out)} messages, partitions {sorted(pending)} not at their "
                f"high watermark {marks}")
            for msg in cons.consume(num_messages=500, timeout=0.2):
                if msg.error():
                    raise KafkaException(msg.error())
                out.append(msg)
                if msg.offset() + 1 >= marks[msg.partition()][1]:
                    pending.discard(msg.partition())
        return out
    finally:
        cons.close()


def by_partition(messages):
    out = {}
    for m in messages:
        out.setdefault(m.partition(), []).append(m)
    return out


def partition_dirs(data_dir: Path, topic: str) -> list[Path]:
    """Partition directories `<topic>-<n>` anywhere under the data dir (DESIGN.md: storage layout)."""
    pat = re.compile(re.escape(topic) + r"-\d+")
    return [p for p in data_dir.rglob("*") if p.is_dir() and pat.fullmatch(p.name)]


def error_code(exc) -> int | None:
    """The Kafka error code inside a confluent KafkaException (or KafkaError), else None."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    return err.code() if isinstance(err, KafkaError) else None


# -- kafka-python --------------------------------------------------------------------------------------------------


def kp_producer(bootstrap: str, **conf):
    from kafka import KafkaProducer

    base = {"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 5, "request_timeout_ms": 10000,
            "delivery_timeout_ms": 30000, "max_block_ms": 20000, "reconnect_backoff_max_ms": 500}
    base.update(conf)
    return KafkaProducer(**base)


def kp_consumer(bootstrap: str, **conf):
    from kafka import KafkaConsumer

    base = {"bootstrap_servers": bootstrap, "enable_auto_commit": False, "auto_offset_reset": "earliest",
            "request_timeout_ms": 10000, "reconnect_backoff_max_ms": 500, "fetch_max_wait_ms": 200}
    base.update(conf)
    return KafkaConsumer(**base)


def kp_consume_range(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0, **conf):
    """kafka-python twin of consume_range: assign all partitions, seek to beginning, read to the high watermark.
    Returns ConsumerRecords in per-partition order."""
    from kafka import TopicPartition as KTP

    cons = kp_consumer(bootstrap, **conf)
    try:
        tps = [KTP(topic, p) for p in range(partitions)]
        cons.assign(tps)
        ends = cons.end_offsets(tps, timeout_ms=10000)
        begins = cons.beginning_offsets(tps, timeout_ms=10000)
        cons.seek_to_beginning(*tps)
        pending = {tp.partition for tp in tps if ends[tp] > begins[tp]}
        out = []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"kafka-python timed out reading {topic}: got {len(out)} records, partitions {sorted(pending)} "
                f"short of {ends}")
            for tp, recs in cons.poll(timeout_ms=200).items():
                out.extend(recs)
                if recs and recs[-1].offset + 1 >= ends[KTP(topic, tp.partition)]:
                    pending.discard(tp.partition)
        return out
    finally:
        cons.close()
