"""Admin APIs with confluent-kafka's AdminClient (and kafka-python where it adds a second opinion): CreateTopics,
Metadata, DeleteTopics (the data goes; a re-created topic is empty and has a new topic id), CreatePartitions,
DescribeCluster, and automatic topic creation on produce and on Metadata with `num.partitions`."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import NewPartitions, NewTopic

from rawkafka import RawClient
from e2e_util import (admin, consume_range, create_topic, error_code, kp_producer, partition_dirs, produce_all,
                      producer, unique, wait_until, watermarks)


def create_error(a, topic: NewTopic):
    fut = a.create_topics([topic], operation_timeout=10, request_timeout=15)[topic.topic]
    with pytest.raises(KafkaException) as info:
        fut.result(20)
    return error_code(info.value)


def describe_topic(a, name):
    return a.describe_topics(TopicCollection([name]), request_timeout=10)[name].result(15)


def topic_id(a, name) -> str:
    tid = describe_topic(a, name).topic_id
    return f"{tid.get_most_significant_bits():016x}{tid.get_least_significant_bits() & (2**64 - 1):016x}"


def all_topics(a) -> dict:
    # list_topics() without a topic asks for all topics, which never auto-creates anything.
    return a.list_topics(timeout=10).topics


def test_create_list_describe_topics(module_broker):
    bootstrap = module_broker.bootstrap
    a = admin(bootstrap)
    topic = unique("adm-create")
    create_topic(bootstrap, topic, partitions=3, client=a)

    md = all_topics(a)[topic]
    assert md.error is None and sorted(md.partitions) == [0, 1, 2]
    for pm in md.partitions.values():
        assert (pm.leader, pm.replicas, pm.isrs) == (0, [0], [0]), (pm.id, pm.leader, pm.replicas, pm.isrs)
    desc = describe_topic(a, topic)
    assert desc.name == topic and not desc.is_internal and len(desc.partitions) == 3
    assert topic_id(a, topic) != "0" * 32, "a topic must have a non-zero topic id (Metadata v10+)"

    from kafka.admin import KafkaAdminClient

    ka = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        assert topic in ka.list_topics()
    finally:
        ka.close()

    assert create_error(a, NewTopic(topic, 3, 1)) == KafkaError.TOPIC_ALREADY_EXISTS
    assert create_error(a, NewTopic(unique("adm-rf"), 1, 3)) == KafkaError.INVALID_REPLICATION_FACTOR
    assert create_error(a, NewTopic("bad name!", 1, 1)) == KafkaError.TOPIC_EXCEPTION
    assert create_error(a, NewTopic("a" * 250, 1, 1)) == KafkaError.TOPIC_EXCEPTION
    assert "bad name!" not in all_topics(a)


def test_delete_topic_removes_data_and_recreate_is_empty_with_new_id(module_broker):
    bootstrap = module_broker.bootstrap
    a = admin(bootstrap)
    topic = unique("adm-delete")
    create_topic(bootstrap, topic, partitions=2, client=a)
    p = producer(bootstrap)
    produce_all(p, topic, [(b"k%d" % i, b"old-%d" % i) for i in range(50)])
    old_id = topic_id(a, topic)
    assert partition_dirs(module_broker.data_dir, topic), "no <topic>-<n> partition directories in the data dir"

    a.delete_topics([topic], operation_timeout=10, request_timeout=15)[topic].result(20)
    wait_until(lambda: topic not in all_topics(a), 15, f"{topic} to disappear from Metadata")
    wait_until(lambda: not partition_dirs(module_broker.data_dir, topic), 15,
               f"the partition directories of {topic} to be removed from {module_broker.data_dir}")
    fut = a.delete_topics([topic], operation_timeout=10, request_timeout=15)[topic]
    with pytest.raises(KafkaException) as info:
        fut.result(20)
    assert error_code(info.value) == KafkaError.UNKNOWN_TOPIC_OR_PART

    create_topic(bootstrap, topic, partitions=2, client=a)
    new_id = topic_id(a, topic)
    assert new_id != old_id, "a re-created topic must get a new topic id"
    assert watermarks(bootstrap, topic, 2) == {0: (0, 0), 1: (0, 0)}, "a re-created topic must be empty"
    produce_all(p, topic, [(b"k", b"new", None)], partition=1)
    msgs = consume_range(bootstrap, topic, 2)
    assert [(m.partition(), m.offset(), m.value()) for m in msgs] == [(1, 0, b"new")]


def test_create_partitions(module_broker):
    bootstrap = module_broker.bootstrap
    a = admin(bootstrap)
    topic = unique("adm-parts")
    create_topic(bootstrap, topic, partitions=2, client=a)
    p = producer(bootstrap)
    for part in (0, 1):
        produce_all(p, topic, [(None, b"before-%d" % part)], partition=part)

    a.create_partitions([NewPartitions(topic, 5)], operation_timeout=10, request_timeout=15)[topic].result(20)
    wait_until(lambda: len(all_topics(a)[topic].partitions) == 5, 15, "Metadata to show 5 partitions")
    assert len(describe_topic(a, topic).partitions) == 5
    # A producer refuses (locally, _UNKNOWN_PARTITION) a partition its cached metadata does not have yet: use a new one.
    reports = produce_all(producer(bootstrap), topic, [(None, b"after-4")], partition=4)
    assert [(r[1], r[2], r[3]) for r in reports] == [(4, 0, None)]
    assert watermarks(bootstrap, topic, 5) == {0: (0, 1), 1: (0, 1), 2: (0, 0), 3: (0, 0), 4: (0, 1)}
    msgs = consume_range(bootstrap, topic, 5)
    assert sorted((m.partition(), m.value()) for m in msgs) == [(0, b"before-0"), (1, b"before-1"), (4, b"after-4")]

    for count, code in ((3, KafkaError.INVALID_PARTITIONS), (5, KafkaError.INVALID_PARTITIONS)):
        fut = a.create_partitions([NewPartitions(topic, count)], operation_timeout=10, request_timeout=15)[topic]
        with pytest.raises(KafkaException) as info:
            fut.result(20)
        assert error_code(info.value) == code, (count, info.value)
    missing = unique("adm-parts-missing")
    fut = a.create_partitions([NewPartitions(missing, 3)], operation_timeout=10, request_timeout=15)[missing]
    with pytest.raises(KafkaException) as info:
        fut.result(20)
    assert error_code(info.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_cluster(module_broker):
    bootstrap = module_broker.bootstrap
    # librdkafka answers describe_cluster from Metadata; kafka-python sends DescribeCluster (key 60) only when it is
    # advertised, else it falls back to Metadata too. So first: it is advertised.
    with RawClient(bootstrap) as raw:
        assert 60 in raw.api_versions(), "DescribeCluster (key 60) is not advertised in ApiVersions"
    a = admin(bootstrap)
    cluster = a.describe_cluster(request_timeout=10).result(15)
    assert isinstance(cluster.cluster_id, str) and cluster.cluster_id, cluster.cluster_id
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(0, "127.0.0.1", module_broker.port)]
    assert cluster.controller is not None and cluster.controller.id == 0

    md = a.list_topics(timeout=10)
    assert md.cluster_id == cluster.cluster_id
    assert md.controller_id == 0
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {0: ("127.0.0.1", module_broker.port)}

    from kafka.admin import KafkaAdminClient

    ka = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        kc = ka.describe_cluster()
    finally:
        ka.close()
    assert kc["cluster_id"] == cluster.cluster_id, kc
    assert [(b["broker_id"], b["host"], b["port"]) for b in kc["brokers"]] == [(0, "127.0.0.1", module_broker.port)], kc
    assert kc["controller_id"] == 0, kc


def test_auto_topic_creation_on_produce_and_metadata(broker_factory):
    b = broker_factory(sets={"num.partitions": "3"})
    a = admin(b.bootstrap)

    # A producer's Metadata request for an unknown topic creates it with num.partitions partitions.
    topic = unique("adm-auto-produce")
    p = producer(b.bootstrap)
    reports = produce_all(p, topic, [(b"k", b"v")])
    assert reports[0][3] is None, reports
    wait_until(lambda: topic in all_topics(a), 10, f"{topic} in Metadata")
    assert len(all_topics(a)[topic].partitions) == 3

    # kafka-python's Metadata request (allow_auto_topic_creation=true) does the same.
    topic2 = unique("adm-auto-metadata")
    kp = kp_producer(b.bootstrap, enable_idempotence=False)
    try:
        parts = kp.partitions_for(topic2)
    finally:
        kp.close(timeout=10)
    assert parts == {0, 1, 2}
    assert len(all_topics(a)[topic2].partitions) == 3


def test_auto_topic_creation_default_is_one_partition(module_broker):
    a = admin(module_broker.bootstrap)
    topic = unique("adm-auto-default")
    reports = produce_all(producer(module_broker.bootstrap), topic, [(b"k", b"v")])
    assert reports[0][1:] == (0, 0, None), reports
    assert len(all_topics(a)[topic].partitions) == 1


def test_auto_topic_creation_disabled(broker_factory):
    b = broker_factory(sets={"auto.create.topics.enable": "false"})
    a = admin(b.bootstrap)
    topic = unique("adm-noauto")
    p = producer(b.bootstrap, **{"message.timeout.ms": 5000, "topic.metadata.propagation.max.ms": 2000})
    reports = []
    p.produce(topic, value=b"v", on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(15) == 0
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                 KafkaError._MSG_TIMED_OUT), reports[0]
    assert topic not in all_topics(a)
    md = a.list_topics(topic=topic, timeout=10).topics[topic]
    assert md.error is not None and md.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, md.error
    assert topic not in all_topics(a)
    # Explicit creation still works.
    create_topic(b.bootstrap, topic, partitions=2, client=a)
