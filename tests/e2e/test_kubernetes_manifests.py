"""The Kubernetes manifests in deploy/kubernetes, checked against each other without a cluster.

A broker pod that cannot reach its voters, advertises a port nothing listens on, or writes its data to the
container's read-only root only fails once deployed; these tests catch such mismatches from the YAML alone.
With `kubectl` on PATH the kustomization is also rendered client-side (no cluster needed).
"""

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO_ROOT

K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
# The downward-API label that carries a StatefulSet pod's ordinal (Kubernetes >= 1.28).
POD_INDEX_FIELD = "metadata.labels['apps.kubernetes.io/pod-index']"
ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


# -- loading ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kustomization() -> dict:
    with open(K8S_DIR / KUSTOMIZATION) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def objects(kustomization) -> list[dict]:
    docs = []
    for name in kustomization["resources"]:
        with open(K8S_DIR / name) as f:
            docs += [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


@pytest.fixture(scope="module")
def namespace(kustomization) -> str:
    return kustomization["namespace"]


def only(objects: list[dict], kind: str, predicate=lambda o: True) -> dict:
    found = [o for o in objects if o.get("kind") == kind and predicate(o)]
    assert len(found) == 1, f"expected exactly one matching {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def statefulset(objects) -> dict:
    return only(objects, "StatefulSet")


@pytest.fixture(scope="module")
def headless(objects) -> dict:
    return only(objects, "Service", lambda s: s["spec"].get("clusterIP") == "None")


@pytest.fixture(scope="module")
def bootstrap(objects) -> dict:
    return only(objects, "Service", lambda s: s["spec"].get("clusterIP") != "None")


@pytest.fixture(scope="module")
def pod(statefulset) -> dict:
    return statefulset["spec"]["template"]


@pytest.fixture(scope="module")
def container(pod) -> dict:
    containers = pod["spec"]["containers"]
    assert len(containers) == 1, "the broker pod runs one container"
    return containers[0]


def env_entry(container: dict, name: str) -> dict:
    matches = [e for e in container.get("env", []) if e["name"] == name]
    assert len(matches) == 1, f"{name} must be set exactly once in the container env"
    return matches[0]


def env(container: dict, name: str) -> str:
    entry = env_entry(container, name)
    assert "value" in entry, f"{name} must be a literal value"
    return str(entry["value"])


def field_ref(container: dict, name: str) -> str:
    return env_entry(container, name)["valueFrom"]["fieldRef"]["fieldPath"]


def container_port(container: dict, port) -> int:
    """A port as a probe or Service targetPort names it (number or port name), as the container's port number."""
    for p in container.get("ports", []):
        if port == p.get("name") or port == p["containerPort"]:
            return p["containerPort"]
    raise AssertionError(f"port {port!r} is not one of the container's ports")


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), f"{address!r} is not host:port"
    return host, int(port)


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """Kafka-style NAME://host:port,... as {NAME: (host, port)}."""
    out = {}
    for entry in value.split(","):
        name, sep, address = entry.partition("://")
        assert sep and name, f"listener {entry!r} is not NAME://host:port"
        assert name.upper() not in out, f"listener {name} named twice"
        out[name.upper()] = host_port(address)
    return out


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def replication_config(container: dict, name: str) -> int:
    return int(env(container, "SKIFF_CONFIG_" + name.upper().replace(".", "_")))


# -- the files -------------------------------------------------------------------------------------------------------

def test_kustomization_lists_every_manifest(kustomization):
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    for name in resources:
        assert (K8S_DIR / name).is_file(), f"kustomization lists {name}, which does not exist"
    on_disk = {p.name for p in K8S_DIR.iterdir() if p.suffix in (".yaml", ".yml") and p.name != KUSTOMIZATION}
    assert set(resources) == on_disk, "every manifest in deploy/kubernetes is applied, and only those"


def test_every_object_is_named_and_in_the_namespace(objects, namespace):
    assert {o.get("kind") for o in objects} >= {"Namespace", "Service", "StatefulSet", "PodDisruptionBudget"}
    for o in objects:
        what = f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"
        for key in ("apiVersion", "kind"):
            assert isinstance(o.get(key), str) and o[key], f"{what} has no {key}"
        assert isinstance(o["metadata"].get("name"), str) and o["metadata"]["name"], f"{what} has no name"
        if o["kind"] == "Namespace":
            assert o["metadata"]["name"] == namespace
        else:
            assert o["metadata"].get("namespace") == namespace, f"{what} is not in namespace {namespace}"


# -- services and selectors ------------------------------------------------------------------------------------------

def test_statefulset_is_governed_by_the_headless_service(statefulset, headless):
    assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
    # Voters must resolve each other before any of them is Ready.
    assert headless["spec"].get("publishNotReadyAddresses") is True
    assert statefulset["spec"].get("podManagementPolicy") == "Parallel"


def test_selectors_match_the_broker_pods(objects, statefulset, pod):
    labels = pod["metadata"]["labels"]
    assert selects(statefulset["spec"]["selector"]["matchLabels"], labels)
    services = [o for o in objects if o["kind"] == "Service"]
    assert len(services) == 2
    for svc in services:
        assert selects(svc["spec"].get("selector"), labels), f"Service {svc['metadata']['name']} selects no broker"
    for spread in pod["spec"].get("topologySpreadConstraints", []):
        assert selects(spread["labelSelector"]["matchLabels"], labels)


def test_service_ports_reach_the_container(headless, bootstrap, container):
    kafka = container_port(container, "kafka")
    raft = container_port(container, "raft")
    for svc in (headless, bootstrap):
        for p in svc["spec"]["ports"]:
            assert container_port(container, p.get("targetPort", p["port"])) == p["port"], (
                f"Service {svc['metadata']['name']} port {p['name']} maps to another port number")
    assert {p["port"] for p in headless["spec"]["ports"]} == {kafka, raft}
    assert [p["port"] for p in bootstrap["spec"]["ports"]] == [kafka]


# -- broker identity and addresses -----------------------------------------------------------------------------------

def test_voters_are_the_statefulset_pods(statefulset, headless, container, namespace):
    replicas = statefulset["spec"]["replicas"]
    sts, svc = statefulset["metadata"]["name"], headless["metadata"]["name"]
    raft = container_port(container, "raft")
    _, peer_port = host_port(env(container, "SKIFF_PEER_LISTEN"))
    assert peer_port == raft
    voters = env(container, "SKIFF_VOTERS").split(",")
    assert len(voters) == replicas, "SKIFF_VOTERS must name every replica, and only those"
    for i, voter in enumerate(voters):
        node_id, sep, address = voter.partition("@")
        assert sep and node_id == str(i), f"voter {i} is {voter!r}, expected id {i}"
        host, port = host_port(address)
        labels = host.split(".")
        assert labels[:2] == [f"{sts}-{i}", svc], f"voter {i} host {host} is not pod {sts}-{i} of Service {svc}"
        assert labels[2] in (namespace, "$(POD_NAMESPACE)"), f"voter {i} host {host} is outside {namespace}"
        assert port == raft, f"voter {i} port {port} is not the raft port {raft}"
    # Node ids 0..replicas-1 only line up with the voters when they are the pod ordinals.
    assert field_ref(container, "SKIFF_NODE_ID") == POD_INDEX_FIELD


def test_advertised_listeners_match_listeners_and_ports(container, headless):
    bound = listeners(env(container, "SKIFF_LISTENERS"))
    advertised = listeners(env(container, "SKIFF_ADVERTISED_LISTENERS"))
    ports = {p["containerPort"] for p in container["ports"]}
    assert advertised, "brokers must advertise an address"
    for name, (host, port) in advertised.items():
        assert name in bound, f"advertised listener {name} is not in SKIFF_LISTENERS"
        assert bound[name][1] == port, f"listener {name} binds port {bound[name][1]} but advertises {port}"
        assert port in ports, f"listener {name} port {port} is not a container port"
        # The pod's own name under the headless Service, which resolves for other pods.
        assert host.startswith(f"$(POD_NAME).{headless['metadata']['name']}."), host
    assert field_ref(container, "POD_NAME") == "metadata.name"
    assert field_ref(container, "POD_NAMESPACE") == "metadata.namespace"


def test_env_references_are_defined_earlier(container):
    defined: set[str] = set()
    for entry in container["env"]:
        assert entry["name"] not in defined, f"{entry['name']} is set twice"
        # `$$(X)` is Kubernetes' escape for a literal `$(X)`.
        for ref in ENV_REF.findall(str(entry.get("value", "")).replace("$$", "")):
            assert ref in defined, f"{entry['name']} uses $({ref}), which is not defined above it (left unexpanded)"
        defined.add(entry["name"])


def test_data_dir_is_a_persistent_volume(statefulset, container):
    data_dir = env(container, "SKIFF_DATA_DIR")
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
    assert len(mounts) == 1, f"SKIFF_DATA_DIR {data_dir} is not a volume mount (the root filesystem is read-only)"
    claims = {c["metadata"]["name"]: c for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert mounts[0]["name"] in claims, "the data volume must be a volumeClaimTemplate, or data dies with the pod"
    claim = claims[mounts[0]["name"]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert claim["resources"]["requests"]["storage"] == "10Gi"


# -- pod settings ----------------------------------------------------------------------------------------------------

def test_probes_check_this_broker_without_a_shell(container):
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        assert probe, f"no {kind}"
        if "tcpSocket" in probe:
            container_port(container, probe["tcpSocket"]["port"])
        else:
            command = probe["exec"]["command"]
            # The image is FROM scratch: only its own binaries exist.
            assert command[0] in ("skiffctl", "/usr/local/bin/skiffctl"), command
            # Cluster-wide health as readiness would take every broker out of service for one failure.
            assert "health" not in command, f"{kind} must judge this broker, not the cluster"
    assert "tcpSocket" in container["livenessProbe"], "liveness is 'accepts connections'"
    assert container["livenessProbe"].get("failureThreshold", 3) >= 3


def test_runs_unprivileged(pod, container):
    ctx = pod["spec"]["securityContext"]
    assert ctx.get("runAsNonRoot") is True
    assert ctx.get("runAsUser") == 10001 and ctx.get("fsGroup") == 10001
    cctx = container["securityContext"]
    assert cctx.get("runAsUser", 10001) == 10001
    assert cctx.get("readOnlyRootFilesystem") is True
    assert cctx.get("allowPrivilegeEscalation") is False
    assert cctx["capabilities"]["drop"] == ["ALL"] and not cctx["capabilities"].get("add")
    # The bootstrap Service's links would add SKIFF_* variables to the broker's environment.
    assert pod["spec"].get("enableServiceLinks") is False


def test_image_and_resources(pod, container):
    assert container["image"] == "skiff:local" and container["imagePullPolicy"] == "IfNotPresent"
    for key in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][key]), f"resources.{key} needs cpu and memory"
    assert 10 <= pod["spec"]["terminationGracePeriodSeconds"] <= 120


# -- availability ----------------------------------------------------------------------------------------------------

def test_replication_settings_fit_the_cluster(statefulset, container):
    replicas = statefulset["spec"]["replicas"]
    rf = replication_config(container, "default.replication.factor")
    min_isr = replication_config(container, "min.insync.replicas")
    assert 1 <= min_isr < rf <= replicas


def test_pdb_lets_one_broker_down(objects, pod, container):
    pdb = only(objects, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"]
    # A disruption the PDB allows must leave min.insync.replicas of every partition up.
    rf = replication_config(container, "default.replication.factor")
    assert pdb["spec"]["maxUnavailable"] <= rf - replication_config(container, "min.insync.replicas")


# -- rendering -------------------------------------------------------------------------------------------------------

def test_kubectl_kustomize_renders(objects):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: the client-side kustomize render is not checked")
    done = subprocess.run([kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize failed:\n{done.stderr}"
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d is not None]

    def ids(docs):
        return sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")) for d in docs)

    assert ids(rendered) == ids(objects)
