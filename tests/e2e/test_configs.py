"""Topic configs: CreateTopics with configs, DescribeConfigs (values and sources: DYNAMIC_TOPIC_CONFIG for what was
set on the topic, DEFAULT_CONFIG for Kafka's defaults), AlterConfigs (replaces the whole set), IncrementalAlterConfigs
(SET / DELETE), INVALID_CONFIG for bad values and names, and max.message.bytes enforced with MSG_SIZE_TOO_LARGE."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic, ResourceType

from e2e_util import admin, create_topic, error_code, kp_producer, producer, unique, watermarks

DYNAMIC = ConfigSource.DYNAMIC_TOPIC_CONFIG
DEFAULT = ConfigSource.DEFAULT_CONFIG
# Apache Kafka's defaults for topic configs (LogConfig / ServerLogConfigs).
KAFKA_DEFAULTS = {
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "max.message.bytes": "1048588",
    "compression.type": "producer",
}


def describe(a, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([res], request_timeout=10)[res].result(15)


def entry(configs, name):
    assert name in configs, f"DescribeConfigs has no {name}; it has {sorted(configs)}"
    e = configs[name]
    # confluent-kafka hands ConfigEntry.source over as a bare int; make it the enum so failures read well.
    return e.value, ConfigSource(e.source)


def incremental(a, topic, *ops, validate_only=False):
    entries = [ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops]
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    return a.incremental_alter_configs([res], request_timeout=10, validate_only=validate_only)[res].result(15)


def expect_error(code, fn, *args, **kwargs):
    with pytest.raises(KafkaException) as info:
        fn(*args, **kwargs)
    assert error_code(info.value) == code, f"expected error {code}, got {info.value}"


def test_create_describe_alter_round_trip(module_broker):
    bootstrap = module_broker.bootstrap
    a = admin(bootstrap)
    topic = unique("cfg")
    set_on_create = {"retention.ms": "3600000", "cleanup.policy": "compact", "max.message.bytes": "20000"}
    create_topic(bootstrap, topic, partitions=1, config=set_on_create, client=a)

    cfg = describe(a, topic)
    for name, value in set_on_create.items():
        assert entry(cfg, name) == (value, DYNAMIC), name
        assert not cfg[name].is_default, name
    for name in ("retention.bytes", "compression.type"):
        assert entry(cfg, name) == (KAFKA_DEFAULTS[name], DEFAULT), name
        assert cfg[name].is_default, name
    assert entry(cfg, "segment.bytes")[1] == DEFAULT

    # IncrementalAlterConfigs: SET one, DELETE one (back to the default), leave one alone.
    incremental(a, topic, ("retention.ms", "7200000", AlterConfigOpType.SET),
                ("cleanup.policy", None, AlterConfigOpType.DELETE))
    cfg = describe(a, topic)
    assert entry(cfg, "retention.ms") == ("7200000", DYNAMIC)
    assert entry(cfg, "cleanup.policy") == ("delete", DEFAULT)
    assert entry(cfg, "max.message.bytes") == ("20000", DYNAMIC)

    # validate_only changes nothing.
    incremental(a, topic, ("retention.ms", "1", AlterConfigOpType.SET), validate_only=True)
    assert entry(describe(a, topic), "retention.ms") == ("7200000", DYNAMIC)

    # AlterConfigs (legacy) replaces the topic's whole config set: what it does not name reverts to the default.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "1000000", "cleanup.policy": "compact"})
    a.alter_configs([res], request_timeout=10)[res].result(15)
    cfg = describe(a, topic)
    assert entry(cfg, "retention.ms") == ("1000000", DYNAMIC)
    assert entry(cfg, "cleanup.policy") == ("compact", DYNAMIC)
    assert entry(cfg, "max.message.bytes") == (KAFKA_DEFAULTS["max.message.bytes"], DEFAULT)


def test_invalid_configs_are_refused(module_broker):
    bootstrap = module_broker.bootstrap
    a = admin(bootstrap)
    topic = unique("cfg-bad")
    create_topic(bootstrap, topic, partitions=1, config={"retention.ms": "3600000"}, client=a)
    for name, value in (("retention.ms", "abc"), ("cleanup.policy", "bogus"), ("max.message.bytes", "-5"),
                        ("no.such.config", "1")):
        expect_error(KafkaError.INVALID_CONFIG, incremental, a, topic, (name, value, AlterConfigOpType.SET))
        res = ConfigResource(ResourceType.TOPIC, topic, set_config={name: value})
        expect_error(KafkaError.INVALID_CONFIG, lambda: a.alter_configs([res], request_timeout=10)[res].result(15))
    # Nothing changed.
    cfg = describe(a, topic)
    assert entry(cfg, "retention.ms") == ("3600000", DYNAMIC)
    assert entry(cfg, "cleanup.policy") == ("delete", DEFAULT)

    # CreateTopics with an invalid config fails with INVALID_CONFIG and creates nothing.
    bad_topic = unique("cfg-bad-create")
    fut = a.create_topics([NewTopic(bad_topic, 1, 1, config={"retention.ms": "forever"})],
                          operation_timeout=10, request_timeout=15)[bad_topic]
    expect_error(KafkaError.INVALID_CONFIG, fut.result, 20)
    assert bad_topic not in a.list_topics(timeout=10).topics

    # DescribeConfigs of a topic that does not exist.
    res = ConfigResource(ResourceType.TOPIC, unique("cfg-missing"))
    expect_error(KafkaError.UNKNOWN_TOPIC_OR_PART, lambda: a.describe_configs([res], request_timeout=10)[res].result(15))


def test_max_message_bytes_is_enforced(module_broker):
    bootstrap = module_broker.bootstrap
    a = admin(bootstrap)
    topic = unique("cfg-size")
    create_topic(bootstrap, topic, partitions=1, config={"max.message.bytes": "20000"}, client=a)

    reports = []
    p = producer(bootstrap, **{"compression.type": "none", "linger.ms": 0})
    cb = lambda err, msg: reports.append((len(msg.value()), err))  # noqa: E731
    p.produce(topic, value=b"x" * 30000, on_delivery=cb)
    assert p.flush(20) == 0
    p.produce(topic, value=b"y" * 10000, on_delivery=cb)
    assert p.flush(20) == 0
    assert reports[0][1] is not None and reports[0][1].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports
    assert reports[1] == (10000, None), reports
    assert watermarks(bootstrap, topic, 1) == {0: (0, 1)}, "the refused record must not be appended"

    # kafka-python sees the same refusal.
    from kafka.errors import MessageSizeTooLargeError

    kp = kp_producer(bootstrap, compression_type=None)
    try:
        with pytest.raises(MessageSizeTooLargeError):
            kp.send(topic, value=b"z" * 30000).get(timeout=20)
    finally:
        kp.close(timeout=10)
    assert watermarks(bootstrap, topic, 1) == {0: (0, 1)}

    # Raising the limit takes effect for the next produce.
    incremental(a, topic, ("max.message.bytes", "100000", AlterConfigOpType.SET))
    p.produce(topic, value=b"x" * 30000, on_delivery=cb)
    assert p.flush(20) == 0
    assert reports[2] == (30000, None), reports
    assert watermarks(bootstrap, topic, 1) == {0: (0, 2)}
