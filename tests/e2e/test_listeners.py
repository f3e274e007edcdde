"""Named listeners (Kafka's listeners / advertised.listeners) and configuration from the environment, as a container
runs the broker: every client is told the addresses of the listener it connected to, and SKIFF_CONFIG_<NAME> sets
broker configs. The broker is started the way deploy/docker-compose.yml starts it: flags and environment only."""

import os
import subprocess

import pytest
from confluent_kafka.admin import NewTopic

from conftest import free_port, port_accepts, skiff_bin
from e2e_util import admin, wait_until


def start(tmp_path, env: dict, args: list[str]) -> subprocess.Popen:
    log = open(tmp_path / "skiff.log", "ab")
    full_env = {**os.environ, "NO_COLOR": "1", "SKIFF_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.Popen([str(skiff_bin()), *args], stdout=log, stderr=log, env=full_env)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_each_listener_advertises_its_own_address_and_env_sets_configs(tmp_path):
    inside, outside = free_port(), free_port()
    proc = start(tmp_path, {
        "SKIFF_LISTENERS": f"INTERNAL://127.0.0.1:{inside},EXTERNAL://127.0.0.1:{outside}",
        # What a container would advertise: its name on the private network, the host's port mapping outside.
        "SKIFF_ADVERTISED_LISTENERS": f"INTERNAL://127.0.0.1:{inside},EXTERNAL://localhost:{outside}",
        "SKIFF_CONFIG_NUM_PARTITIONS": "5",
    }, [])
    try:
        wait_until(lambda: port_accepts(inside) and port_accepts(outside), 20, "both listeners accepting")
        for port, host in ((inside, "127.0.0.1"), (outside, "localhost")):
            md = admin(f"127.0.0.1:{port}").list_topics(timeout=10)
            assert [(b.host, b.port) for b in md.brokers.values()] == [(host, port)], f"listener on {port}"
        client = admin(f"127.0.0.1:{inside}")
        client.create_topics([NewTopic("from-env")])["from-env"].result(timeout=20)
        assert len(client.list_topics(topic="from-env", timeout=10).topics["from-env"].partitions) == 5
    finally:
        stop(proc)


@pytest.mark.parametrize("env,args,message", [
    ({"SKIFF_CONFIG_NUM_PARTITIONS": "many"}, [], "SKIFF_CONFIG_NUM_PARTITIONS"),
    ({"SKIFF_CONFIG_NO_SUCH_SETTING": "1"}, [], "SKIFF_CONFIG_NO_SUCH_SETTING"),
    ({}, ["--listeners", "127.0.0.1:9092"], "NAME://host:port"),
    ({}, ["--listeners", "A://127.0.0.1:0", "--advertised-listeners", "B://h:1"], "advertised listener B"),
])
def test_bad_configuration_is_refused_with_a_clear_message(tmp_path, env, args, message):
    proc = start(tmp_path, env, args)
    try:
        code = proc.wait(20)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert code != 0
    log = (tmp_path / "skiff.log").read_text()
    assert message in log, log[-2000:]
    # Refused before the data dir was created.
    assert not (tmp_path / "data").exists()
