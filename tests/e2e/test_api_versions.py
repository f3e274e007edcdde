"""What the broker advertises in ApiVersions, and what the clients make of it. librdkafka enables features from the
advertised versions and silently degrades when one is missing (for example it sends LZ4 batches uncompressed unless
FindCoordinator is advertised, and refuses groups without the classic group APIs); kafka-python falls back to other
requests when an API is not advertised (its describe_cluster uses Metadata then). So the contract is checked here
directly, and through each librdkafka's own feature detection (confluent-kafka's bundled one and kcat's Debian one)."""

import logging
import shutil
import subprocess

from confluent_kafka import Producer

from rawkafka import RawClient

# The APIs of the broker contract (api key -> name).
CONTRACT = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups",
    16: "ListGroups", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords",
    22: "InitProducerId", 23: "OffsetForLeaderEpoch", 32: "DescribeConfigs", 33: "AlterConfigs",
    37: "CreatePartitions", 42: "DeleteGroups", 44: "IncrementalAlterConfigs", 47: "OffsetDelete",
    60: "DescribeCluster", 61: "DescribeProducers",
}
# Versions the clients here need to be inside the advertised range: librdkafka's MsgVer2 (Produce 3, Fetch 4) and
# ZSTD (Produce 7, Fetch 10) features; timestamps in ListOffsets (v1).
NEEDED_VERSIONS = {0: (3, 7), 1: (4, 10), 2: (1,)}
# librdkafka features the clients' behaviour depends on (MsgVer1 and ThrottleTime are superseded by MsgVer2 and not
# needed). kcat's librdkafka 2.0 checks exact old versions: LZ4 and group coordination need FindCoordinator v0,
# balanced consumers JoinGroup/SyncGroup/Heartbeat/LeaveGroup v0, OffsetCommit v1..2 and OffsetFetch v1, the
# idempotent producer InitProducerId v0. (Apache Kafka 4.0 dropped some of these with KIP-896, and with it kcat 2.0
# silently loses LZ4 and -G; Skiff names kcat 2.0 as a client, so it must keep them.)
FEATURES = ["ApiVersion", "MsgVer2", "OffsetTime", "LZ4", "ZSTD", "IdempotentProducer", "BrokerGroupCoordinator",
            "BrokerBalancedConsumer"]


def test_api_versions_advertise_the_contract(module_broker):
    with RawClient(module_broker.bootstrap) as raw:
        versions = raw.api_versions()
    missing = {k: name for k, name in CONTRACT.items() if k not in versions}
    assert not missing, f"ApiVersions does not advertise {sorted(missing.values())}; it advertises {versions}"
    for key, needed in NEEDED_VERSIONS.items():
        lo, hi = versions[key]
        for v in needed:
            assert lo <= v <= hi, f"{CONTRACT[key]} advertises {lo}..{hi}, clients need v{v}"
    for key, (lo, hi) in versions.items():
        assert 0 <= lo <= hi, f"api {key}: bad range {lo}..{hi}"


def feature_verdicts(lines):
    """{feature: enabled}. librdkafka may check a feature against several alternative API sets (2.16 checks
    BrokerBalancedConsumer for the classic protocol and then for KIP-848) and enables it if any set is supported."""
    verdicts = {}
    for line in lines:
        for verb, on in (("Enabling feature ", True), ("Disabling feature ", False)):
            if verb in line:
                name = line.split(verb, 1)[1].split()[0]
                verdicts[name] = verdicts.get(name, False) or on
    return verdicts


def why_not(lines, off):
    """The distinct 'Feature X: Api (a..b) NOT supported' reasons for the disabled features."""
    reasons = set()
    for line in lines:
        if "NOT supported" in line and any(f"Feature {f}:" in line for f in off):
            reasons.add("Feature " + line.split("Feature ", 1)[1].strip())
    return "\n".join(sorted(reasons))


def test_confluent_kafka_librdkafka_enables_features(module_broker):
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log = logging.getLogger("librdkafka-features")
    log.addHandler(Collect())
    log.setLevel(logging.DEBUG)
    p = Producer({"bootstrap.servers": module_broker.bootstrap, "debug": "feature", "logger": log})
    p.list_topics(timeout=10)
    for _ in range(5):
        p.poll(0.05)
    verdicts = feature_verdicts(lines)
    off = [f for f in FEATURES if verdicts.get(f) is not True]
    assert not off, f"librdkafka 2.16 disables {off} against this broker:\n{why_not(lines, off)}"


def test_kcat_librdkafka_enables_features(module_broker):
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (test.sh installs the Debian package)"
    proc = subprocess.run([kcat, "-b", module_broker.bootstrap, "-d", "feature", "-L", "-m", "10"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    verdicts = feature_verdicts(proc.stderr.splitlines())
    off = [f for f in FEATURES if verdicts.get(f) is not True]
    assert not off, f"kcat's librdkafka 2.0 disables {off} against this broker:\n{why_not(proc.stderr.splitlines(), off)}"

