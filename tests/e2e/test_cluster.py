"""A real 3-broker cluster (three `skiff` processes started by deploy/local-cluster.sh, as a user starts one) under real
clients, with brokers killed -9 and restarted mid-stream. What every test checks is DESIGN.md's invariants: every record
acknowledged with acks=all (min.insync.replicas=2, RF 3) is present after the faults, exactly once, at the offset it was
acknowledged with, offsets are dense, and every replica that leads the partition serves the same records; a consumer
group never skips an offset.
"""

import time
from collections import defaultdict

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic

from e2e_util import admin, consume_range, kp_producer, producer, unique, wait_until, watermarks
from group_member import Ledger, Member, check_ledger, committed_offsets
from local_cluster import check_partitions, cluster_fixture, create_replicated, leaders, produce_through

NODES = 3
BOOTSTRAP = ",".join(f"localhost:{n}9092" for n in range(1, NODES + 1))
# A short lag window so that ISR shrinking is observable within a test; everything else is the production default.
CLUSTER_SETS = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "replica.lag.time.max.ms": "4000",
    "group.initial.rebalance.delay.ms": "0",
    # Retention looks every second instead of every 5 minutes.
    "log.retention.check.interval.ms": "1000",
    # A dead broker is fenced after 4 s instead of 9.
    "broker.session.timeout.ms": "4000",
}


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    yield from cluster_fixture(request, tmp_path_factory, NODES, CLUSTER_SETS)


def test_metadata_lists_every_broker_and_replica_set(cluster):
    client = admin(BOOTSTRAP)
    topic = unique("cl-md")
    create_replicated(client, topic, 6)
    md = client.list_topics(topic=topic, timeout=5)
    assert sorted(md.brokers) == [1, 2, 3]
    assert {b.port for b in md.brokers.values()} == {19092, 29092, 39092}
    parts = md.topics[topic].partitions
    for p in parts.values():
        assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isrs) == [1, 2, 3]
        assert p.leader in p.replicas
    # Preferred leaders (the first replica) are spread evenly: each broker is first for two of six partitions.
    firsts = defaultdict(int)
    for p in parts.values():
        firsts[p.replicas[0]] += 1
    assert sorted(firsts.values()) == [2, 2, 2], dict(firsts)
    # Every broker answers Metadata from its own applied state, identically.
    for n in range(1, NODES + 1):
        other = admin(f"localhost:{n}9092").list_topics(topic=topic, timeout=5).topics[topic].partitions
        assert {i: sorted(p.replicas) for i, p in other.items()} == {i: sorted(p.replicas) for i, p in parts.items()}


def test_replication_factor_above_live_brokers_is_refused(cluster):
    client = admin(BOOTSTRAP)
    topic = unique("cl-rf")
    fut = client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=4)], request_timeout=20)[topic]
    with pytest.raises(Exception) as info:
        fut.result(timeout=30)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_leader_kill_loses_no_acknowledged_record(cluster):
    """kill -9 the leader of partition 0 while an idempotent acks=all producer streams keyed events; restart it; every
    acknowledged event is there exactly once, where it was acknowledged, and the restarted broker rejoins the ISR."""
    client = admin(BOOTSTRAP)
    topic = unique("cl-kill")
    partitions = 3
    create_replicated(client, topic, partitions)
    victim = leaders(client, topic)[0]

    total = 30000
    acked = produce_through(cluster, topic, total, {8000: lambda: cluster.kill(victim),
                                                    20000: lambda: cluster.start(victim)})
    assert len(acked) == total

    # The restarted broker catches up and is back in every partition's ISR.
    wait_until(lambda: all(len(p.isrs) == 3 for p in
                           client.list_topics(topic=topic, timeout=5).topics[topic].partitions.values()),
               30, "the restarted broker back in the ISR of every partition")

    first_read = check_partitions(cluster, client, topic, partitions, acked, dead=())
    # Read again from other replicas: make each partition's current leader crash so that another replica leads it,
    # and check that it serves the very same records at the same offsets.
    moved = leaders(client, topic)[0]
    cluster.kill(moved)
    second_read = check_partitions(cluster, client, topic, partitions, acked, dead={moved})
    assert second_read == first_read, "two replicas disagree on what the offsets hold"
    cluster.start(moved)


def test_paused_leader_is_replaced_and_rejoins_as_follower(cluster):
    """SIGSTOP the leader of a partition (a hung broker: connections stay open, nothing answers) while acks=all events
    stream: the others elect a new leader and writes go on; after SIGCONT the old leader learns the new term, drops
    whatever it had not committed, catches up and rejoins the ISR; every replica serves the same records."""
    client = admin(BOOTSTRAP)
    topic = unique("cl-pause")
    create_replicated(client, topic, 1)
    victim = leaders(client, topic)[0]
    acked = produce_through(cluster, topic, 12000, {3000: lambda: cluster.run("pause", str(victim)),
                                                     9000: lambda: cluster.run("resume", str(victim))})
    wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 3, 30,
               "the resumed broker back in the ISR")
    first = check_partitions(cluster, client, topic, 1, acked, dead=())
    moved = leaders(client, topic)[0]
    cluster.kill(moved)
    try:
        assert check_partitions(cluster, client, topic, 1, acked, dead={moved}) == first, "replicas disagree"
    finally:
        cluster.start(moved)


def test_consumer_group_rides_through_a_leader_kill(cluster):
    """Two group members consume and commit while the coordinator's and a partition leader's broker is killed -9:
    no acknowledged offset is skipped, and committed ranges are read exactly once (group_member.check_ledger)."""
    client = admin(BOOTSTRAP)
    topic, group = unique("cl-grp"), unique("g-cl")
    partitions = 3
    create_replicated(client, topic, partitions)
    prod = producer(BOOTSTRAP, **{"enable.idempotence": True, "message.timeout.ms": 120000})
    reports = []
    for n in range(6000):
        prod.produce(topic, key=f"user-{n % 31}".encode(), value=f"v{n}".encode(),
                     on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset(), msg.value())))
        if n % 1000 == 0:
            prod.poll(0)
    assert prod.flush(60) == 0
    assert not [r for r in reports if r[0] is not None]
    acked = {(p, off): v for _, p, off, v in reports}

    ledger = Ledger()
    members = [Member(f"m{i}", BOOTSTRAP, group, topic, ledger) for i in range(2)]
    for m in members:
        m.start()
    ends = watermarks(BOOTSTRAP, topic, partitions)
    wait_until(lambda: len(ledger.reads) > 1000, 60, "the members to start reading")
    victim = leaders(client, topic)[0]
    cluster.kill(victim)
    time.sleep(2)
    cluster.start(victim)
    target = {p: hi for p, (_, hi) in ends.items()}

    def done():
        # The coordinator may be killed between writing a commit and answering it: the member then sees the commit fail
        # although it was applied, and has nothing left to read and commit again. The brokers' view decides.
        return ledger.committed_to(ends) or (
            ledger.attempted_to(ends) and committed_offsets(BOOTSTRAP, group, topic, partitions) == target)

    try:
        wait_until(done, 120, "the group to commit every partition's end", interval=0.5)
    except AssertionError as e:
        with ledger.lock:
            failed = [c for c in ledger.commits if not c[4]]
            last = {p: max((c[3] for c in ledger.commits if c[2] == p and c[4]), default=None) for p in ends}
            raise AssertionError(f"{e}; ends {ends}, last good commits {last}, errors {ledger.errors[:5]}, "
                                 f"failed commits {failed[-5:]}, reads {len(ledger.reads)}") from None
    for m in members:
        m.leave()
    final = committed_offsets(BOOTSTRAP, group, topic, partitions)
    assert final == target, f"committed offsets {final}, partition ends {target}"
    print(check_ledger(ledger, acked, final))


def test_acks_all_needs_min_insync_replicas(cluster):
    """With one of three replicas gone and the ISR shrunk to the other two, acks=all is refused with
    NOT_ENOUGH_REPLICAS (the topic's min.insync.replicas=3) while acks=1 is still accepted: the partition kept its
    majority, so it keeps a leader. (A partition that lost its majority has no leader at all: Raft's check-quorum
    makes the old one step down, see test_cluster_partition.py.)"""
    client = admin(BOOTSTRAP)
    topic = unique("cl-isr")
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3,
                                   config={"min.insync.replicas": "3"})],
                         request_timeout=20)[topic].result(timeout=30)
    wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 3, 30,
               "three in-sync replicas")
    part = client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0]
    follower = next(b for b in part.replicas if b != part.leader)
    cluster.kill(follower)
    try:
        wait_until(lambda: sorted(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs)
                   == sorted(b for b in part.replicas if b != follower), 30, "the ISR to shrink to two")
        from kafka.errors import NotEnoughReplicasError
        strict = kp_producer(BOOTSTRAP, acks="all", retries=0)
        with pytest.raises(NotEnoughReplicasError):
            strict.send(topic, b"refused").get(timeout=20)
        strict.close()
        relaxed = kp_producer(BOOTSTRAP, acks=1, retries=0)
        meta = relaxed.send(topic, b"accepted").get(timeout=20)
        assert meta.offset >= 0
        relaxed.close()
    finally:
        cluster.start(follower)


def test_elect_leaders_hands_partitions_back_to_their_preferred_replica(cluster):
    """After a failover the restarted broker leads nothing; ElectLeaders (PREFERRED) through the admin client hands
    its partitions back once it is in sync, and a second election is not needed."""
    from confluent_kafka import ElectionType, TopicPartition

    client = admin(BOOTSTRAP)
    topic = unique("cl-elect")
    create_replicated(client, topic, 3)
    parts = client.list_topics(topic=topic, timeout=5).topics[topic].partitions
    preferred = parts[0].replicas[0]
    # Whoever won the first election, the preferred replica surely leads nothing once it has restarted.
    cluster.kill(preferred)
    wait_until(lambda: leaders(client, topic)[0] not in (preferred, -1), 30, "a new leader for partition 0")
    cluster.start(preferred)
    wait_until(lambda: all(len(p.isrs) == 3 for p in
                           client.list_topics(topic=topic, timeout=5).topics[topic].partitions.values()),
               30, f"broker {preferred} back in sync")
    assert leaders(client, topic)[0] != preferred, "leadership came back without an election"

    tps = [TopicPartition(topic, p) for p in range(3)]
    result = client.elect_leaders(ElectionType.PREFERRED, tps).result(timeout=30)
    assert result[TopicPartition(topic, 0)] is None, result
    wait_until(lambda: leaders(client, topic)[0] == preferred, 10, f"broker {preferred} reported as leader")
    again = client.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0)]).result(timeout=30)
    assert again[TopicPartition(topic, 0)].code() == KafkaError.ELECTION_NOT_NEEDED, again
    # Leadership moved under a producer: it keeps writing, without errors.
    acked = produce_through(cluster, topic, 3000, {})
    assert len(acked) == 3000


def test_topic_config_changes_reach_every_broker(cluster):
    """IncrementalAlterConfigs on a replicated topic goes through the metadata log: every broker describes the new
    value, and a removed override falls back to the default everywhere."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    client = admin(BOOTSTRAP)
    topic = unique("cl-cfg")
    create_replicated(client, topic, 1)

    def alter(op, value=None):
        entry = ConfigEntry("retention.ms", value, incremental_operation=op)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        for f in client.incremental_alter_configs([resource]).values():
            f.result(timeout=30)

    # A client per broker, bootstrapped at that broker alone (librdkafka may still ask another broker).
    per_broker = {node: admin(f"localhost:{node}9092") for node in range(1, NODES + 1)}

    def described(node: int) -> str:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        (f,) = per_broker[node].describe_configs([resource]).values()
        return f.result(timeout=30)["retention.ms"].value

    alter(AlterConfigOpType.SET, "3600000")
    for node in range(1, NODES + 1):
        wait_until(lambda: described(node) == "3600000", 10, f"broker {node} to describe retention.ms=3600000")
    alter(AlterConfigOpType.DELETE)
    for node in range(1, NODES + 1):
        wait_until(lambda: described(node) == "604800000", 10, f"broker {node} to fall back to the default")


def test_partitions_added_to_a_replicated_topic_are_replicated_and_writable(cluster):
    from confluent_kafka.admin import NewPartitions

    client = admin(BOOTSTRAP)
    topic = unique("cl-grow")
    create_replicated(client, topic, 2)
    client.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=30)
    wait_until(lambda: (len(parts := client.list_topics(topic=topic, timeout=5).topics[topic].partitions) == 4
                        and all(p.leader >= 1 and len(p.isrs) == 3 for p in parts.values())), 30,
               f"{topic}: 4 partitions, each led with 3 in-sync replicas")
    acked = produce_through(cluster, topic, 4000, {})
    assert {p for p, _ in acked} == {0, 1, 2, 3}, "keys spread over the new partitions too"
    check_partitions(cluster, client, topic, 4, acked)
    with pytest.raises(Exception) as info:
        client.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=30)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_describe_topic_partitions_pages_and_a_dead_broker_is_fenced(cluster):
    """DescribeTopicPartitions (kafka-python's describe_topic_partitions, KIP-966) pages through partitions with a
    cursor and agrees with Metadata; a broker the controller no longer hears from is fenced after
    broker.session.timeout.ms: Metadata stops listing it and its replicas show as offline, until it is back."""
    from kafka.admin import KafkaAdminClient
    client = admin(BOOTSTRAP)
    topic = unique("cl-dtp")
    create_replicated(client, topic, 5)
    kadmin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","), request_timeout_ms=30000)
    try:
        def describe_all():
            parts, cursor, pages = [], None, 0
            while True:
                r = kadmin.describe_topic_partitions([topic], response_partition_limit=2, cursor=cursor)
                pages += 1
                parts += [p for t in r["topics"] if t["name"] == topic for p in t["partitions"]]
                cursor = r["next_cursor"]
                if cursor is None:
                    return parts, pages
        parts, pages = describe_all()
        assert [p["partition_index"] for p in parts] == list(range(5)) and pages == 3

        def agree():
            # Each broker answers from its own view; a new partition's leader reports its ISR within half a second.
            md = client.list_topics(topic=topic, timeout=5).topics[topic].partitions
            return all((p["leader_id"], sorted(p["replica_nodes"]), sorted(p["isr_nodes"]), p["offline_replicas"]) == (
                md[p["partition_index"]].leader, sorted(md[p["partition_index"]].replicas),
                sorted(md[p["partition_index"]].isrs), []) for p in describe_all()[0])
        wait_until(agree, 10, "DescribeTopicPartitions and Metadata agreeing", interval=0.2)
        unknown = kadmin.describe_topic_partitions([unique("missing")])["topics"][0]
        assert unknown["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION

        victim = next(b for b in range(1, NODES + 1) if b != leaders(client, topic)[0])
        cluster.kill(victim)
        try:
            wait_until(lambda: victim not in client.list_topics(timeout=5).brokers, 30, f"broker {victim} fenced")
            wait_until(lambda: all(p["offline_replicas"] == [victim] and victim not in p["isr_nodes"]
                                   for p in describe_all()[0]), 30, f"broker {victim}'s replicas offline, out of the ISR")
        finally:
            cluster.start(victim)
        wait_until(lambda: victim in client.list_topics(timeout=5).brokers, 30, f"broker {victim} unfenced")
        wait_until(lambda: all(p["offline_replicas"] == [] and len(p["isr_nodes"]) == 3 for p in describe_all()[0]),
                   60, "every replica online and in sync again")
    finally:
        kadmin.close()


def test_deleted_records_and_retention_reach_every_replica_and_a_wiped_broker_rebuilds(cluster):
    """DeleteRecords and retention on a replicated partition move its log start on every replica (the partition log is
    the Raft log: its start moves with a Raft snapshot); a broker that comes back with an empty data dir installs the
    leader's snapshot, starts its log at the same offset and serves the same records once it leads."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    client = admin(BOOTSTRAP)
    topic = unique("cl-trim")
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3, config={"segment.bytes": "16384"})],
                         request_timeout=20)[topic].result(timeout=30)
    wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 3, 30,
               "three in-sync replicas")
    prod = producer(BOOTSTRAP, **{"enable.idempotence": True, "linger.ms": 5})
    values = [f"record-{i:06d}-".encode() * 4 for i in range(6000)]
    for v in values[:4000]:
        prod.produce(topic, value=v, partition=0)
        prod.poll(0)
    assert prod.flush(60) == 0

    tp = TopicPartition(topic, 0, 1500)
    deleted = client.delete_records([tp], request_timeout=30)[tp].result(timeout=30)
    assert deleted.low_watermark == 1500
    assert watermarks(BOOTSTRAP, topic, 1)[0] == (1500, 4000)

    # A follower loses its whole data dir while more records arrive, and comes back.
    leader = leaders(client, topic)[0]
    wiped = next(b for b in range(1, NODES + 1) if b != leader)
    cluster.kill(wiped)
    cluster.wipe(wiped)
    for v in values[4000:]:
        prod.produce(topic, value=v, partition=0)
        prod.poll(0)
    assert prod.flush(60) == 0
    cluster.start(wiped)
    wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 3, 60,
               f"broker {wiped} (rebuilt from an empty disk) back in the ISR", interval=0.5)

    def read_all():
        msgs = consume_range(BOOTSTRAP, topic, 1, timeout=60)
        return [(m.offset(), m.value()) for m in msgs if m.offset() >= 1500]
    expected = [(i, values[i]) for i in range(1500, 6000)]
    assert read_all() == expected
    # Every replica applied the deletion: each leads in turn (killing the current leader keeps a majority), and
    # answers the same log start and the same records.
    led = {leaders(client, topic)[0]}
    # Which of the two survivors wins each election is chance: enough rounds that a broker is left out only with odds
    # of about 1 in 2000 (6 rounds left one out about 1 time in 30).
    for _ in range(12):
        if led == set(range(1, NODES + 1)):
            break
        current = leaders(client, topic)[0]
        cluster.kill(current)
        wait_until(lambda: leaders(client, topic)[0] not in (current, -1), 30, f"a leader other than {current}")
        now = leaders(client, topic)[0]
        led.add(now)
        assert watermarks(BOOTSTRAP, topic, 1)[0] == (1500, 6000), f"broker {now} leading"
        assert read_all() == expected, f"broker {now} leading"
        cluster.start(current)
        wait_until(lambda: len(client.list_topics(topic=topic, timeout=5).topics[topic].partitions[0].isrs) == 3,
                   60, f"broker {current} back in the ISR", interval=0.5)
    assert led == set(range(1, NODES + 1)), f"only brokers {led} led"

    # Retention (retention.bytes) deletes whole old segments on every replica on its own. More records, in small
    # batches, so that every replica rolls segments (a replica writes what one Raft append carries into one segment).
    small = producer(BOOTSTRAP, **{"enable.idempotence": True, "linger.ms": 0, "batch.size": 4096})
    more = [f"later-{i:06d}-".encode() * 4 for i in range(3000)]
    for v in more:
        small.produce(topic, value=v, partition=0)
        small.poll(0)
    assert small.flush(60) == 0
    values += more
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "100000", incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([resource])[resource].result(timeout=30)

    def first_segment(node):
        bases = [int(p.stem) for p in (cluster.root / f"node-{node}").glob(f"{topic}-0.group-*/*.log")]
        return min(bases) if bases else -1
    wait_until(lambda: all(first_segment(n) >= 6000 for n in range(1, NODES + 1)), 30,
               "every replica deleting the segments below the last 100000 bytes")
    low, high = watermarks(BOOTSTRAP, topic, 1)[0]
    assert low >= 6000 and high == 9000, (low, high)
    msgs = consume_range(BOOTSTRAP, topic, 1, timeout=60)
    assert [(m.offset(), m.value()) for m in msgs if m.offset() >= low] == [(i, values[i]) for i in range(low, 9000)]


def test_producer_ids_are_unique_across_brokers_and_lost_data_dirs(cluster):
    """Every broker answers InitProducerId from blocks of ids the metadata log hands out: two producers never share an
    id (they would be deduplicated against each other), not even after a broker lost its data dir."""
    from rawkafka import RawClient

    def ids_from(node, n=3):
        with RawClient(f"localhost:{node}9092") as raw:
            return [raw.init_producer_id()[0] for _ in range(n)]
    seen = [pid for node in range(1, NODES + 1) for pid in ids_from(node)]
    assert len(set(seen)) == len(seen), seen
    cluster.kill(NODES)
    cluster.wipe(NODES)
    cluster.start(NODES)
    again = ids_from(NODES) + ids_from(1)
    assert not set(again) & set(seen) and len(set(again)) == len(again), (seen, again)
