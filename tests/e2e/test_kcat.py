"""kcat (Debian's kcat 1.7.1 on librdkafka 2.0.x, an older protocol mix than confluent-kafka's): metadata listing,
producing keyed lines with -K:, consuming to the end with -e and a -f format, and codecs across kcat and
confluent-kafka."""

import json
import shutil
import subprocess
from collections import defaultdict

import pytest

from e2e_util import consume_range, create_topic, produce_all, producer, unique

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat(*args, stdin: str | None = None, timeout: float = 30) -> str:
    assert KCAT, "kcat is not installed (test.sh installs the Debian package)"
    proc = subprocess.run([KCAT, "-m", "10", *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"kcat {' '.join(args)} exited {proc.returncode}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_kcat_metadata_list(module_broker):
    b = module_broker
    topic = unique("kcat-meta")
    create_topic(b.bootstrap, topic, partitions=3)

    md = json.loads(kcat("-b", b.bootstrap, "-L", "-J"))
    assert md["brokers"] == [{"id": 0, "name": b.bootstrap}], md["brokers"]
    assert md["controllerid"] == 0, md
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, sorted(topics)
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == 0 and p["replicas"] == [{"id": 0}] and p["isrs"] == [{"id": 0}], p

    text = kcat("-b", b.bootstrap, "-L")
    assert " 1 brokers:" in text and f"broker 0 at {b.bootstrap}" in text, text
    assert f'topic "{topic}" with 3 partitions:' in text, text
    assert "partition 0, leader 0, replicas: 0, isrs: 0" in text, text


def test_kcat_produce_keyed_and_consume_formatted(module_broker):
    b = module_broker
    topic = unique("kcat-keys")
    create_topic(b.bootstrap, topic, partitions=1)
    lines = [f"user_{i % 9}:event {i} {'x' * (i % 7)}" for i in range(200)]
    kcat("-b", b.bootstrap, "-P", "-t", topic, "-K:", stdin="\n".join(lines) + "\n")

    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k:%s\n")
    assert out.splitlines() == lines

    msgs = consume_range(b.bootstrap, topic, 1)
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == [
        (i, line.split(":", 1)[0].encode(), line.split(":", 1)[1].encode()) for i, line in enumerate(lines)]

    # With offsets: -f '%o %k %s'. Start in the middle with -o 150.
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-o", "150", "-e", "-f", "%o %k %s\n")
    assert out.splitlines() == [f"{i} {line.replace(':', ' ', 1)}" for i, line in enumerate(lines) if i >= 150]


def test_kcat_keys_over_partitions(module_broker):
    b = module_broker
    topic = unique("kcat-parts")
    create_topic(b.bootstrap, topic, partitions=4)
    lines = [f"user_{i % 13}:{i}" for i in range(400)]
    kcat("-b", b.bootstrap, "-P", "-t", topic, "-K:", stdin="\n".join(lines) + "\n")
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p %o %k %s\n")
    rows = [line.split(" ") for line in out.splitlines()]
    assert len(rows) == 400, f"kcat read {len(rows)} of 400 records"
    parts_of_key, order = defaultdict(set), defaultdict(list)
    per_partition = defaultdict(list)
    for p, o, k, v in rows:
        parts_of_key[k].add(p)
        order[k].append(int(v))
        per_partition[p].append(int(o))
    assert all(len(ps) == 1 for ps in parts_of_key.values()), dict(parts_of_key)
    assert all(vs == sorted(vs) for vs in order.values())
    assert sorted(int(v) for _, _, _, v in rows) == list(range(400))
    for p, offs in per_partition.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {p} offsets {offs[:20]}"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_and_confluent_codecs(module_broker, codec):
    """kcat writes with a codec, confluent-kafka reads; confluent-kafka writes with it, kcat reads."""
    b = module_broker
    topic = unique(f"kcat-{codec}")
    create_topic(b.bootstrap, topic, partitions=1)
    lines = [f"k{i}:{'value ' * 20}{i}" for i in range(100)]
    kcat("-b", b.bootstrap, "-P", "-t", topic, "-K:", "-X", f"compression.codec={codec}", stdin="\n".join(lines) + "\n")
    p = producer(b.bootstrap, **{"compression.type": codec})
    produce_all(p, topic, [(f"c{i}".encode(), f"confluent {i}".encode()) for i in range(100)])

    msgs = consume_range(b.bootstrap, topic, 1)
    assert len(msgs) == 200, len(msgs)
    assert [(m.key(), m.value()) for m in msgs[:100]] == [tuple(x.encode() for x in line.split(":", 1))
                                                          for line in lines]
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k:%s\n")
    assert out.splitlines() == lines + [f"c{i}:confluent {i}" for i in range(100)]
