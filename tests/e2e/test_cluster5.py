"""Five `skiff` processes (deploy/local-cluster.sh up 5) with replication factor 5 and min.insync.replicas=3: any two
brokers may fail at once. One of the two comes back with its data dir lost and rebuilds every log — the metadata log
and its partition replicas — from the leaders."""

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
