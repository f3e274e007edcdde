"""Five `skiff` processes (deploy/local-cluster.sh up 5) with replication factor 5 and min.insync.replicas=3: any two
brokers may fail at once. One of the two comes back with its data dir lost and rebuilds every log — the metadata log
and its partition replicas — from the leaders."""

import time

import pytest

from e2e_util import admin, unique, wait_until
from local_cluster import check_partitions, cluster_fixture, create_replicated, isr_sizes, leaders, produce_through

NODES = 5
CLUSTER_SETS = {
    "default.replication.factor": "5",
    "offsets.topic.replication.factor": "5",
    "min.insync.replicas": "3",
    "replica.lag.time.max.ms": "4000",
    "group.initial.rebalance.delay.ms": "0",
    # Leaders look for partitions to hand back every 2 s instead of every 5 minutes.
    "leader.imbalance.check.interval.seconds": "2",
}


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    yield from cluster_fixture(request, tmp_path_factory, NODES, CLUSTER_SETS)


def test_two_brokers_lost_one_rebuilt_from_an_empty_disk(cluster):
    client = admin(cluster.bootstrap)
    topic, partitions = unique("cl5"), 2
    create_replicated(client, topic, partitions, replicas=NODES)
    leader = leaders(client, topic)[0]
    other = next(b for b in range(1, NODES + 1) if b not in leaders(client, topic).values())

    def lose_disk():
        cluster.wipe(other)
        cluster.start(other)

    acked = produce_through(cluster, topic, 20000, {
        4000: lambda: cluster.kill(leader),
        6000: lambda: cluster.kill(other),
        12000: lose_disk,
        15000: lambda: cluster.start(leader),
    })
    wait_until(lambda: all(n == NODES for n in isr_sizes(client, topic).values()), 60,
               f"brokers {leader} (restarted) and {other} (rebuilt from nothing) back in every ISR", interval=0.5)
    first = check_partitions(cluster, client, topic, partitions, acked)
    # The rebuilt broker applied the whole metadata log again: it answers Metadata like the others.
    rebuilt = admin(f"localhost:{other}9092").list_topics(topic=topic, timeout=10).topics[topic].partitions
    assert sorted(rebuilt) == list(range(partitions))
    assert all(sorted(p.replicas) == list(range(1, NODES + 1)) for p in rebuilt.values())
    # Other replicas, made leaders by killing the current ones (two at most: a majority stays), serve the same.
    dead = set()
    for _ in range(2):
        current = leaders(client, topic)[0]
        cluster.kill(current)
        dead.add(current)
        assert check_partitions(cluster, client, topic, partitions, acked, dead=dead) == first, (
            f"replicas disagree after brokers {sorted(dead)} died")
    for b in dead:
        cluster.start(b)

    # auto.leader.rebalance.enable: once every broker is back in sync, every partition returns to its preferred
    # replica without anyone asking.
    def balanced():
        md = client.list_topics(topic=topic, timeout=5).topics[topic].partitions
        return all(len(p.isrs) == NODES and p.leader == p.replicas[0] for p in md.values())
    wait_until(balanced, 60, "every partition led by its preferred replica again", interval=0.5)


def test_replicas_move_between_brokers_while_clients_produce(cluster):
    """AlterPartitionReassignments (kafka-python's admin client, as a user's tooling sends it): replicas move to other
    brokers through Raft learners and a joint configuration while an idempotent acks=all producer keeps writing. Every
    acknowledged record is on the new replicas, the brokers that left delete their copy, and a move towards a broker
    that is down stays listed until it is cancelled."""
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient

    client = admin(cluster.bootstrap)
    topic, partitions = unique("move"), 2
    create_replicated(client, topic, partitions, replicas=3)
    before = {p: list(m.replicas) for p, m in client.list_topics(topic=topic, timeout=5).topics[topic].partitions.items()}
    everyone = set(range(1, NODES + 1))
    # Partition 0 keeps one replica (not its leader) and gains the two brokers it lacked; partition 1 swaps one.
    targets = {
        0: sorted(everyone - set(before[0])) + [before[0][-1]],
        1: [before[1][1], before[1][2], min(everyone - set(before[1]))],
    }
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","), request_timeout_ms=30000)
    try:
        def move():
            results = kadmin.alter_partition_reassignments({KTP(topic, p): t for p, t in targets.items()})
            assert results == {KTP(topic, p): None for p in targets}, results

        acked = produce_through(cluster, topic, 20000, {3000: move})

        def moved():
            if kadmin.list_partition_reassignments():
                return False
            md = client.list_topics(topic=topic, timeout=5).topics[topic].partitions
            return all(list(md[p].replicas) == t and sorted(md[p].isrs) == sorted(t) for p, t in targets.items())
        wait_until(moved, 90, f"replicas of {topic} moved to {targets} and in sync", interval=0.5)
        first = check_partitions(cluster, client, topic, partitions, acked)

        # A broker that left a partition deleted its replica; a broker that joined holds one.
        for p in range(partitions):
            for b in everyone:
                dirs = list((cluster.root / f"node-{b}").glob(f"{topic}-{p}.group-*"))
                assert bool(dirs) == (b in targets[p]), f"broker {b}, partition {p}: {dirs}"
        # The new replica sets alone serve the same records: kill each partition's leader in turn.
        killed = leaders(client, topic)[0]
        cluster.kill(killed)
        assert check_partitions(cluster, client, topic, partitions, acked, dead={killed}) == first
        cluster.start(killed)
        wait_until(lambda: all(n == 3 for n in isr_sizes(client, topic).values()), 60, "full ISRs again")

        # A move towards a dead broker waits for it (it can never catch up) and is listed until cancelled.
        down = min(everyone - set(targets[1]))
        cluster.kill(down)
        # kafka-python sends these to the controller it last saw, which may be the broker just killed: a new client
        # once the cluster names another controller.
        alive = [f"localhost:{n}9092" for n in sorted(everyone - {down})]
        # Every live broker, since the new client may ask any of them; a follower names the dead controller until it
        # hears from the new one. And until the controller fenced the dead broker (broker.session.timeout.ms), every
        # broker still lists it, as Kafka does: kafka-python may then ask it for the controller, and gives up on the
        # refused connection.
        def settled():
            views = [admin(b).list_topics(timeout=5) for b in alive]
            return all(md.controller_id not in (down, -1) and down not in md.brokers for md in views)
        wait_until(settled, 45, "a live controller named by every live broker, and the dead one no longer listed",
                   interval=0.5)
        kadmin.close()
        kadmin = KafkaAdminClient(bootstrap_servers=alive, request_timeout_ms=30000)
        stuck = [down] + targets[1][1:]
        assert kadmin.alter_partition_reassignments({KTP(topic, 1): stuck}) == {KTP(topic, 1): None}
        time.sleep(2)
        listed = kadmin.list_partition_reassignments()
        assert listed.get(KTP(topic, 1), {}).get("adding_replicas") == [down], listed
        assert kadmin.alter_partition_reassignments({KTP(topic, 1): None}) == {KTP(topic, 1): None}
        wait_until(lambda: not kadmin.list_partition_reassignments(), 30, "the cancelled move gone")
        md = client.list_topics(topic=topic, timeout=5).topics[topic].partitions[1]
        assert sorted(md.replicas) == sorted(targets[1])
        cluster.start(down)
        # Cancelling what is not moving is Kafka's NO_REASSIGNMENT_IN_PROGRESS (85).
        result = kadmin.alter_partition_reassignments({KTP(topic, 0): None})[KTP(topic, 0)]
        assert result is not None and result.errno == 85, result
        assert check_partitions(cluster, client, topic, partitions, acked) == first
    finally:
        kadmin.close()
