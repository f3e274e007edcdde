"""Brokers joining and leaving a running cluster (deploy/local-cluster.sh up 3, then `add`): a fourth broker joins as
a learner of the controller group, new topics place replicas on it, and it is decommissioned with skiffctl while an
idempotent acks=all producer keeps writing — its replicas move to the other brokers, it is unregistered, and no
acknowledged record is lost."""

import json
import subprocess
import threading

import pytest

from conftest import REPO_ROOT, skiffctl_bin
from e2e_util import admin, unique, wait_until
from local_cluster import RF3_CLUSTER_SETS, check_partitions, cluster_fixture, create_replicated, produce_through



@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    yield from cluster_fixture(request, tmp_path_factory, 3, RF3_CLUSTER_SETS)


def skiffctl(cluster, *args, timeout=180):
    return subprocess.run([str(skiffctl_bin()), "--brokers", cluster.bootstrap, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_broker_joins_takes_replicas_and_is_decommissioned_while_clients_produce(cluster):
    client = admin(cluster.bootstrap)
    assert cluster.run("add").strip() == "localhost:49092"
    cluster.nodes = 4
    wait_until(lambda: sorted(client.list_topics(timeout=5).brokers) == [1, 2, 3, 4], 30, "broker 4 listed")

    # New topics spread over every live broker, the new one included.
    topic, partitions = unique("joined"), 4
    create_replicated(client, topic, partitions, replicas=3)
    md = client.list_topics(topic=topic, timeout=5).topics[topic].partitions
    on_new = [p for p, m in md.items() if 4 in m.replicas]
    assert len(on_new) == 3, {p: m.replicas for p, m in md.items()}

    # Unregistering is refused while it holds replicas, and for a controller voter.
    held = skiffctl(cluster, "cluster", "unregister", "4")
    assert held.returncode == 1 and "still holds a replica" in held.stderr, held
    voter = skiffctl(cluster, "cluster", "unregister", "1")
    assert voter.returncode == 1 and "controller voter" in voter.stderr, voter

    done = {}

    def decommission():
        done["run"] = skiffctl(cluster, "--format", "json", "cluster", "decommission", "4", "--wait",
                               "--wait-timeout", "120")

    mover = threading.Thread(target=decommission)
    acked = produce_through(cluster, topic, 20000, {3000: mover.start})
    mover.join(180)
    run = done["run"]
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{cluster.log_tails()}"
    moves = json.loads(run.stdout)
    assert sorted(m["partition"] for m in moves if m["topic"] == topic) == sorted(on_new)
    assert all(m["result"] == "done" and 4 not in m["to"] for m in moves), moves

    md = client.list_topics(topic=topic, timeout=5).topics[topic].partitions
    assert all(4 not in m.replicas and len(m.replicas) == 3 for m in md.values()), md
    wait_until(lambda: not list((cluster.root / "node-4").glob(f"{topic}-*")), 30, "broker 4 deleted its replicas")

    unregistered = skiffctl(cluster, "cluster", "unregister", "4")
    assert unregistered.returncode == 0, unregistered
    cluster.run("stop", "4")
    wait_until(lambda: sorted(client.list_topics(timeout=5).brokers) == [1, 2, 3], 30, "broker 4 gone")
    check_partitions(cluster, client, topic, partitions, acked, dead={4})
