"""A network cut between local broker processes (pair_proxy.py): three `skiff` processes reach each other only
through proxies the test controls, while clients reach every broker directly. The leader of a partition is cut off
from the other two in the middle of an idempotent acks=all stream: it must stop leading (so the clients that still
reach it move to the leader the majority elects) and acknowledge nothing it cannot commit; after the cut heals it
rejoins as a follower, and every replica holds the same records, each acknowledged one exactly once."""

import pytest

from e2e_util import admin, unique, wait_until
from local_cluster import (FAILOVER_TIMEOUT_S, RF3_CLUSTER_SETS, check_partitions, cluster_fixture, create_replicated,
                           isr_sizes, leaders, produce_through)
from pair_proxy import PairProxies
from rawkafka import RawClient

NODES = 3


@pytest.fixture(scope="module")
def proxies():
    p = PairProxies(NODES)
    yield p
    p.close()


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory, proxies):
    yield from cluster_fixture(request, tmp_path_factory, NODES, RF3_CLUSTER_SETS, prepare=proxies.write_voters_files)


def test_a_leader_cut_off_from_its_peers_steps_down_and_loses_nothing(cluster, proxies):
    client = admin(cluster.bootstrap)
    topic, partitions = unique("cut"), 2
    create_replicated(client, topic, partitions, replicas=NODES)
    cut = leaders(client, topic)[0]
    majority = [n for n in range(1, NODES + 1) if n != cut]

    def leader_seen_by(node: int) -> int:
        with RawClient(f"localhost:{node}9092") as raw:
            return raw.partition_leaders(topic)[0]

    def cut_off():
        proxies.cut(cut)
        # The majority elects another leader, and the cut-off broker itself stops claiming the partition: clients
        # asking it are sent on instead of waiting on writes that cannot commit.
        wait_until(lambda: all(leader_seen_by(n) not in (cut, -1) for n in majority),
                   FAILOVER_TIMEOUT_S, f"a new leader of partition 0 on brokers {majority}")
        wait_until(lambda: leader_seen_by(cut) != cut, FAILOVER_TIMEOUT_S,
                   f"broker {cut} no longer claiming partition 0")

    def heal():
        proxies.heal()

    acked = produce_through(cluster, topic, 20000, {4000: cut_off, 12000: heal})
    wait_until(lambda: all(n == NODES for n in isr_sizes(client, topic).values()), 60,
               f"broker {cut} back in every ISR after the cut healed", interval=0.5)
    first = check_partitions(cluster, client, topic, partitions, acked)
    # The broker that was cut off serves the same records once it leads again: kill the others' leaders in turn.
    current = leaders(client, topic)[0]
    if current != cut:
        cluster.kill(current)
        assert check_partitions(cluster, client, topic, partitions, acked, dead={current}) == first
        cluster.start(current)
