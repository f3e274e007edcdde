"""A network cut between local broker processes: every broker reaches every other through its own TCP proxy (one per
ordered pair, set up by writing deploy/local-cluster.sh's per-node voters files), and `cut(n)` makes every proxy to
and from broker n hold its traffic, as a partitioned network does: nothing arrives, nothing fails at once. `heal()`
drops the connections that were held (their bytes are lost, as after a long outage) and lets new ones through.
Clients still reach every broker directly: only broker-to-broker traffic is cut."""

import socket
import threading
import time

HOLD_POLL_S = 0.05


def peer_port(node: int) -> int:
    return int(f"{node}9093")


class _Pair:
    """Broker `src`'s way to broker `dst`: listens on an ephemeral port, forwards to dst's replication port."""

    def __init__(self, owner, src: int, dst: int):
        self.owner, self.src, self.dst = owner, src, dst
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def held(self) -> bool:
        return self.src in self.owner.cut_nodes or self.dst in self.owner.cut_nodes

    def _accept(self):
        while not self.owner.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", peer_port(self.dst)), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.owner.lock:
                self.conns.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                while self.held():
                    if self.owner.closed:
                        return
                    time.sleep(HOLD_POLL_S)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def drop_connections(self):
        with self.owner.lock:
            conns, self.conns = self.conns, []
        for pair in conns:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass


class PairProxies:
    def __init__(self, nodes: int):
        self.nodes = nodes
        self.cut_nodes = set()
        self.closed = False
        self.lock = threading.Lock()
        self.pairs = {(a, b): _Pair(self, a, b) for a in range(1, nodes + 1) for b in range(1, nodes + 1) if a != b}

    def voters_for(self, node: int) -> str:
        """Broker `node`'s controller.quorum.voters: itself directly, every other broker through its proxy."""
        return ",".join(f"{v}@127.0.0.1:{peer_port(v) if v == node else self.pairs[(node, v)].port}"
                        for v in range(1, self.nodes + 1))

    def write_voters_files(self, cluster_dir) -> None:
        cluster_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, self.nodes + 1):
            (cluster_dir / f"node-{n}.voters").write_text(self.voters_for(n))

    def cut(self, node: int) -> None:
        self.cut_nodes.add(node)

    def heal(self) -> None:
        for p in [p for p in self.pairs.values() if p.held()]:
            p.drop_connections()
        self.cut_nodes.clear()

    def close(self) -> None:
        self.closed = True
        for p in self.pairs.values():
            p.listener.close()
            p.drop_connections()
