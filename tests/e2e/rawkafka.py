"""A tiny blocking Kafka protocol client for the few cases a real client won't produce on demand: re-sending the very
same idempotent batch (a retry whose first answer was lost) and sequence gaps.

Encodes only non-flexible versions: request header v1, ApiVersions v0, InitProducerId v1, Produce v7 and Metadata v1
(responses with header v0). Metadata also answers what one particular broker believes, which a real client (it asks
whichever broker it likes) cannot.
Record batches (magic 2) come from kafka-python's DefaultRecordBatchBuilder, which computes the CRC32C.
"""

import socket
import struct
import time

from kafka.record.default_records import DefaultRecordBatchBuilder

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.correlation = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"broker closed the connection after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, api_version: int, body: bytes) -> Reader:
        self.correlation += 1
        header = struct.pack(">hhi", api_key, api_version, self.correlation) + _string("skiff-e2e-raw")
        payload = header + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", self._recv_exact(4))[0]
        r = Reader(self._recv_exact(size))
        corr = r.take(">i")
        assert corr == self.correlation, f"correlation id {corr}, sent {self.correlation}"
        return r

    def api_versions(self) -> dict[int, tuple[int, int]]:
        """ApiVersions v0: {api_key: (min_version, max_version)}."""
        r = self.request(API_VERSIONS, 0, b"")
        error = r.take(">h")
        assert error == 0, f"ApiVersions error {error}"
        return {key: (lo, hi) for key, lo, hi in (r.take(">hhh") for _ in range(r.take(">i")))}

    def init_producer_id(self) -> tuple[int, int]:
        """InitProducerId v1 for an idempotent (non-transactional) producer: returns (producer_id, epoch)."""
        r = self.request(API_INIT_PRODUCER_ID, 1, _string(None) + struct.pack(">i", 60000))
        _, error, pid, epoch = r.take(">i"), r.take(">h"), r.take(">q"), r.take(">h")
        assert error == 0, f"InitProducerId error {error}"
        return pid, epoch

    def partition_leaders(self, topic: str) -> dict[int, int]:
        """Metadata v1 for one topic, as this broker sees it: {partition: leader id} (-1 without a leader)."""
        r = self.request(API_METADATA, 1, struct.pack(">i", 1) + _string(topic))
        for _ in range(r.take(">i")):  # brokers: node id, host, port, rack
            r.take(">i"), r.string(), r.take(">i"), r.string()
        r.take(">i")  # controller id
        leaders = {}
        for _ in range(r.take(">i")):
            error, name, _internal = r.take(">h"), r.string(), r.take(">?")
            for _ in range(r.take(">i")):
                _perror, index, leader = r.take(">hii")
                for _ in range(2):  # replica nodes, isr nodes
                    [r.take(">i") for _ in range(r.take(">i"))]
                if name == topic and error == 0:
                    leaders[index] = leader
        return leaders

    def produce(self, topic: str, partition: int, batch: bytes, acks: int = -1) -> tuple[int, int, int]:
        """Produce v7 of one batch; returns (error_code, base_offset, log_start_offset)."""
        body = (_string(None) + struct.pack(">hi", acks, 10000) + struct.pack(">i", 1) + _string(topic)
                + struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(batch)) + bytes(batch))
        r = self.request(API_PRODUCE, 7, body)
        n_topics = r.take(">i")
        assert n_topics == 1, n_topics
        assert r.string() == topic
        assert r.take(">i") == 1
        index, error, base_offset, _append_time, log_start = r.take(">ihqqq")
        assert index == partition
        return error, base_offset, log_start


def idempotent_batch(pid: int, epoch: int, base_sequence: int, values: list[bytes]) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=pid,
                                        producer_epoch=epoch, base_sequence=base_sequence, batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, v in enumerate(values):
        builder.append(i, timestamp=now, key=None, value=v, headers=[])
    return bytes(builder.build())
