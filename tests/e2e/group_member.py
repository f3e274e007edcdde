"""A consumer-group member for the group and restart tests, and the checks on what the members did.

A member consumes a batch, records every read in a shared Ledger, and commits what it read synchronously right away;
on revoke it commits again. So a record is read twice only if the commit covering it failed (or was lost), and
check_ledger() asserts:
  * every read matches the value acknowledged at that offset;
  * at-least-once with zero gaps: every acknowledged offset of every partition is read;
  * within one ownership session of a partition, a member reads densely and in order;
  * exactly-once for committed ranges: every offset is covered by exactly one successful commit made in the session
    that read it (two would mean a member started below another's commit: a lost commit, or overlapping owners).
"""

import itertools
import threading
from collections import defaultdict

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from e2e_util import consumer

# Consumer error events that only say the broker is (briefly) away; the restart tests expect them.
BROKER_DOWN = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}


class Ledger:
    """Everything the members did, in one place, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reads = []  # (member, session, partition, offset, value)
        self.commits = []  # (member, session, partition, next_offset, ok, error)
        self.assignments = defaultdict(list)  # member -> [set of partitions], one per assignment
        self.sessions = itertools.count(1)
        self.errors = []  # consumer errors other than BROKER_DOWN
        self.broker_down = []  # BROKER_DOWN events (expected only while a broker restarts)

    def committed_to(self, ends: dict) -> bool:
        """Whether some member successfully committed the high watermark of every non-empty partition."""
        with self.lock:
            done = {(p, off) for _, _, p, off, ok, _ in self.commits if ok}
        return all((p, hi) in done for p, (_, hi) in ends.items() if hi > 0)

    def attempted_to(self, ends: dict) -> bool:
        """Whether some member tried to commit the high watermark of every non-empty partition (see check_ledger on
        commits that were applied although the client saw them fail)."""
        with self.lock:
            tried = {(p, off) for _, _, p, off, _, _ in self.commits}
        return all((p, hi) in tried for p, (_, hi) in ends.items() if hi > 0)


class Member(threading.Thread):
    """A group member: consume a batch, record it, commit it synchronously; commit on revoke; close on stop."""

    def __init__(self, name, bootstrap, group, topic, ledger: Ledger):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.bootstrap, self.group, self.topic, self.ledger = bootstrap, group, topic, ledger
        self.stop_event = threading.Event()
        self.session = {}  # partition -> session id of the current ownership
        self.pending = {}  # partition -> next offset to commit (read but not yet committed)
        self.owned = set()
        self.closed = threading.Event()

    def on_assign(self, c, partitions):
        with self.ledger.lock:
            for tp in partitions:
                self.session[tp.partition] = next(self.ledger.sessions)
            self.owned = {tp.partition for tp in partitions}
            self.ledger.assignments[self.member].append(set(self.owned))

    def on_revoke(self, c, partitions):
        self.commit(c)
        with self.ledger.lock:
            for tp in partitions:
                self.session.pop(tp.partition, None)
                self.pending.pop(tp.partition, None)
            self.owned -= {tp.partition for tp in partitions}

    def on_lost(self, c, partitions):
        with self.ledger.lock:
            for tp in partitions:
                self.session.pop(tp.partition, None)
                self.pending.pop(tp.partition, None)
            self.owned -= {tp.partition for tp in partitions}

    def commit(self, c):
        if not self.pending:
            return
        offsets = [TopicPartition(self.topic, p, off) for p, off in sorted(self.pending.items())]
        sessions = {p: self.session.get(p) for p in self.pending}
        try:
            result = c.commit(offsets=offsets, asynchronous=False)
            outcome = {tp.partition: tp.error for tp in result}
        except KafkaException as e:
            outcome = {tp.partition: e.args[0] for tp in offsets}
        with self.ledger.lock:
            for tp in offsets:
                err = outcome.get(tp.partition, "no result for partition")
                self.ledger.commits.append((self.member, sessions[tp.partition], tp.partition, tp.offset,
                                            err is None, None if err is None else str(err)))
                if err is None and self.pending.get(tp.partition) == tp.offset:
                    del self.pending[tp.partition]

    def run(self):
        c = consumer(self.bootstrap, self.group, **{"fetch.wait.max.ms": 100})
        try:
            c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)
            while not self.stop_event.is_set():
                msgs = c.consume(num_messages=100, timeout=0.1)
                with self.ledger.lock:
                    for m in msgs:
                        if m.error():
                            down = m.error().code() in BROKER_DOWN
                            (self.ledger.broker_down if down else self.ledger.errors).append(
                                (self.member, str(m.error())))
                            continue
                        self.ledger.reads.append((self.member, self.session.get(m.partition()), m.partition(),
                                                  m.offset(), m.value()))
                        self.pending[m.partition()] = m.offset() + 1
                self.commit(c)
            self.commit(c)
        except Exception as e:  # noqa: BLE001 - surfaced by the test through ledger.errors
            with self.ledger.lock:
                self.ledger.errors.append((self.member, repr(e)))
        finally:
            c.close()  # runs on_revoke (commit) and sends LeaveGroup
            self.closed.set()

    def leave(self, timeout=20):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), f"member {self.member} did not close within {timeout}s"


def committed_offsets(bootstrap, group, topic, partitions):
    c = consumer(bootstrap, group)
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def check_ledger(ledger: Ledger, acked: dict, committed: dict | None = None) -> str:
    """The checks in the module docstring; `acked` maps (partition, offset) -> value for every acknowledged record;
    `committed` (partition -> offset), the group's committed offsets read back from the brokers at the end, if known.
    Returns a one-line summary."""
    with ledger.lock:
        reads, commits, errors = list(ledger.reads), list(ledger.commits), list(ledger.errors)
    assert not errors, f"consumer errors: {errors[:10]}"

    for member, session, p, off, value in reads:
        assert session is not None, f"{member} read partition {p} offset {off} without owning it"
        assert acked.get((p, off)) == value, f"{member} read {value!r} at {p}/{off}, acked {acked.get((p, off))!r}"

    read_set = {(p, off) for _, _, p, off, _ in reads}
    missing = sorted(set(acked) - read_set)
    assert not missing, f"{len(missing)} acknowledged records never read, e.g. {missing[:20]}"

    by_session = defaultdict(list)
    for member, session, p, off, _ in reads:
        by_session[(member, session, p)].append(off)
    for (member, session, p), offs in by_session.items():
        assert offs == list(range(offs[0], offs[0] + len(offs))), (
            f"{member} session {session} read partition {p} with gaps or out of order: {offs[:30]}...")

    # A commit whose coordinator was killed after writing it but before answering is applied all the same, while the
    # client sees an error (the retry meets a coordinator that does not know the member yet). Such a commit counts when
    # the brokers show it applied: the partition's next session started at its offset, or it is the final commit.
    applied = {(p, offs[0]) for (_, _, p), offs in by_session.items()}
    applied |= set((committed or {}).items())
    best_commit = defaultdict(int)  # (member, session, partition) -> highest applied commit
    for member, session, p, off, ok, _ in commits:
        if ok or (p, off) in applied:
            best_commit[(member, session, p)] = max(best_commit[(member, session, p)], off)
    covered = defaultdict(list)
    for member, session, p, off, _ in reads:
        if best_commit[(member, session, p)] > off:
            covered[(p, off)].append(f"{member}/session {session}")
    twice = {k: v for k, v in covered.items() if len(v) > 1}
    assert not twice, (f"{len(twice)} records read and committed by more than one session (a commit was lost or "
                       f"two members owned a partition), e.g. {sorted(twice.items())[:10]}")
    uncovered = sorted(set(acked) - set(covered))
    failed_commits = [c for c in commits if not c[4]]
    if uncovered:
        p = uncovered[0][0]
        history = [(m, s, offs[0], offs[-1], best_commit[(m, s, q)]) for (m, s, q), offs in by_session.items() if q == p]
        raise AssertionError(
            f"{len(uncovered)} records never covered by a successful commit of the session that read them, e.g. "
            f"{uncovered[:10]}; failed commits: {failed_commits[:10]}; partition {p} sessions "
            f"(member, session, first read, last read, best commit): {history}; commits of partition {p}: "
            f"{[c for c in commits if c[2] == p][-12:]}")
    return (f"{len(reads)} reads, {len(reads) - len(read_set)} redeliveries, {len(commits)} commits "
            f"({len(failed_commits)} failed)")
