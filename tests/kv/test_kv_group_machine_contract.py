"""The StateMachine contract (kvorum.storage.contracts) for the KV store, over both keyspaces.

Every test runs against the in-memory keyspace (what the simulator runs) and the LMDB one
(what nodes run), through KVGroupMachine: applying entries and the applied index, skipping
what is already applied, no-ops and membership entries, snapshots, isolation between groups
sharing one keyspace, transactions spanning groups, crashes, and the housekeeping hook that
keeps an idle node from writing. A random workload checks that both keyspaces give the same
replies and the same state, and that counts and expiry index stay exact (audit_engine, whose
teeth are shown by a switch that breaks the index)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.core.raft.messages import ConfChange, ConfChangeKind, Entry, EntryKind
from kvorum.kv import memory_keyspace
from kvorum.kv.commands import check_command, encode_entry, encode_write
from kvorum.kv.engine import KeyOutsideSpanError, Keyspace
from kvorum.kv.group_machine import KVGroupMachine
from kvorum.kv.key_order import FULL_SPAN, HASH_ORDER, KeySpan
from kvorum.kv.keyspace_audit import audit_engine
from kvorum.kv.memory_keyspace import MemoryKeyspace
from kvorum.kv.replies import ErrorReply, Reply
from kvorum.storage import LmdbKeyspace
from kvorum.storage.contracts import StateMachine

NOW_MS = 1_000_000
LEFT, RIGHT = HASH_ORDER.even_spans(2)


def key_in(span: KeySpan, stem: str) -> bytes:
    """A key made from ``stem`` whose hash slot lies in ``span``."""
    for n in range(10_000):
        key = b"%s-%d" % (stem.encode(), n)
        if span.contains(HASH_ORDER.encode(key)):
            return key
    raise AssertionError("no key found")


def write(*words: str | bytes, now_ms: int = NOW_MS) -> bytes:
    args = [w.encode() if isinstance(w, str) else w for w in words]
    spec = check_command(args, now_ms)
    assert not isinstance(spec, ErrorReply), spec
    return encode_write(spec, args, now_ms)


def cmd(index: int, *words: str | bytes, now_ms: int = NOW_MS) -> Entry:
    """A log entry carrying one client write."""
    return Entry(1, index, encode_entry([write(*words, now_ms=now_ms)]))


def raw(index: int, *payloads: bytes) -> Entry:
    return Entry(1, index, encode_entry(list(payloads)))


def noop(index: int) -> Entry:
    return Entry(1, index)


def conf(index: int) -> Entry:
    change = ConfChange(ConfChangeKind.ADD_LEARNER, 4).encode()
    return Entry(1, index, change, EntryKind.CONF_CHANGE)


class Store:
    """One node's keyspace, of either kind, and what a crash does to it."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.keyspace: Keyspace = self._open()

    def _open(self) -> Keyspace:
        if self.kind == "memory":
            return MemoryKeyspace(HASH_ORDER)
        # The node's mode: nothing flushed at commit (a process crash loses nothing).
        return LmdbKeyspace(self.path, map_bytes=1 << 20, sync=False)

    def machine(self, group_id: int = 0, span: KeySpan = FULL_SPAN) -> KVGroupMachine:
        return KVGroupMachine(self.keyspace.open_group(group_id, span), sweep_keys=100)

    def crash(self) -> None:
        """The process dies (no flush, no clean close) and a new one opens the store."""
        if isinstance(self.keyspace, MemoryKeyspace):
            self.keyspace = self.keyspace.crash()  # survives_crash=True: as LMDB does
        else:
            self.keyspace.close()
            self.keyspace = self._open()

    def commits(self) -> int:
        """Write transactions committed so far (LMDB); the applied indexes' sum (memory)."""
        if isinstance(self.keyspace, LmdbKeyspace):
            txn_id: int = self.keyspace._env.info()["last_txnid"]
            return txn_id
        ks = self.keyspace
        return sum(ks.group(g).applied_index() for g in ks.group_ids())

    def close(self) -> None:
        self.keyspace.close()


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store(request.param, tmp_path / "kv")
    yield s
    s.close()


def test_it_is_a_state_machine(store: Store) -> None:
    machine: StateMachine = store.machine()
    assert machine.applied_index() == 0


def test_entries_apply_in_order_and_record_their_index(store: Store) -> None:
    machine = store.machine()
    results = machine.apply(
        [cmd(1, "SET", "n", "5"), cmd(2, "INCR", "n"), cmd(3, "INCRBY", "n", "10")]
    )
    assert results == [["OK"], [6], [16]]
    assert machine.applied_index() == 3
    assert machine.kv.read([b"get", b"n"], NOW_MS) == b"16"
    two = raw(4, write("SET", "a", "1"), write("APPEND", "a", "2"))
    assert machine.apply([two]) == [["OK", 2]]  # one reply per write the entry carries


def test_entries_at_or_below_the_applied_index_are_skipped(store: Store) -> None:
    machine = store.machine()
    machine.apply([cmd(1, "SET", "n", "1"), cmd(2, "INCR", "n"), cmd(3, "INCR", "n")])
    again = machine.apply([cmd(2, "INCR", "n"), cmd(3, "INCR", "n"), cmd(4, "INCR", "n")])
    assert again == [None, None, [4]]  # 2 and 3 are not applied twice
    assert machine.applied_index() == 4
    with pytest.raises(ValueError, match="gap"):
        machine.apply([cmd(6, "INCR", "n")])
    assert machine.applied_index() == 4 and machine.kv.read([b"get", b"n"], NOW_MS) == b"4"


def test_no_ops_and_membership_changes_only_record_their_index(store: Store) -> None:
    machine = store.machine()
    results = machine.apply([noop(1), conf(2), cmd(3, "SET", "k", "v"), noop(4), conf(5)])
    assert results == [None, [], ["OK"], None, []]
    assert machine.applied_index() == 5
    assert machine.engine.count() == 1
    store.crash()
    assert store.machine().applied_index() == 5  # recorded durably, like any entry


def test_snapshot_and_restore_round_trip(store: Store, tmp_path: Path) -> None:
    machine = store.machine()
    machine.apply([cmd(i, "SET", f"k{i}", "v" * i) for i in range(1, 60)])
    machine.apply([cmd(60, "SET", "ttl", "v", "PX", "5000"), cmd(61, "DEL", "k7"), noop(62)])
    applied, chunks = machine.snapshot()
    machine.apply([cmd(63, "SET", "late", "x")])  # after the snapshot was taken
    other = Store(store.kind, tmp_path / "other")
    copy = other.machine()
    copy.apply([cmd(1, "SET", "stale", "gone")])
    copy.restore(chunks, applied)
    assert copy.applied_index() == 62
    assert copy.kv.read([b"get", b"late"], NOW_MS) is None
    assert copy.kv.read([b"get", b"stale"], NOW_MS) is None
    assert copy.kv.read([b"pttl", b"ttl"], NOW_MS) == 5000
    assert copy.kv.read([b"dbsize"], NOW_MS) == 59
    assert copy.engine.scan(b"", None, 1000) == [
        pair for pair in machine.engine.scan(b"", None, 1000) if pair[0] != b"late"
    ]
    assert audit_engine(copy.engine) == []
    assert copy.housekeeping(NOW_MS + 5000) is not None  # the restored TTL is indexed
    other.close()


def test_groups_sharing_a_keyspace_are_isolated(store: Store) -> None:
    left, right = store.machine(1, LEFT), store.machine(2, RIGHT)
    a, b = key_in(LEFT, "a"), key_in(RIGHT, "b")
    left.apply([cmd(1, "SET", a, "1"), cmd(2, "SET", key_in(LEFT, "c"), "3", "EX", "9")])
    right.apply([cmd(1, "SET", b, "2")])
    assert (left.applied_index(), right.applied_index()) == (2, 1)
    assert (left.kv.read([b"dbsize"], NOW_MS), right.kv.read([b"dbsize"], NOW_MS)) == (2, 1)
    assert right.kv.read([b"scan", b"0", b"count", b"100"], NOW_MS) == [b"0", [b]]
    with pytest.raises(KeyOutsideSpanError):
        right.kv.read([b"get", a], NOW_MS)  # a routing bug, never an answer from another group
    with pytest.raises(KeyOutsideSpanError):
        right.apply([cmd(2, "SET", a, "x")])
    assert right.applied_index() == 1 and left.kv.read([b"get", a], NOW_MS) == b"1"
    # FLUSHDB empties one group only.
    right.apply([cmd(2, "FLUSHDB")])
    assert right.engine.count() == 0 and left.engine.count() == 2
    # A snapshot holds its own span only; restoring it leaves the other group intact.
    applied, chunks = left.snapshot()
    pairs = [pair for chunk in chunks for pair in msgpack.unpackb(chunk)]
    assert sorted(k for k, _ in pairs) == sorted([a, key_in(LEFT, "c")])
    right.apply([cmd(3, "SET", b, "again")])
    left.apply([cmd(3, "DEL", a)])
    left.restore(iter([msgpack.packb(pairs)]), applied)
    assert left.kv.read([b"get", a], NOW_MS) == b"1" and left.applied_index() == 2
    assert right.kv.read([b"get", b], NOW_MS) == b"again" and right.applied_index() == 3
    # ... and a snapshot of one group cannot be restored into another's span.
    with pytest.raises(KeyOutsideSpanError):
        right.restore(iter([msgpack.packb(pairs)]), 9)
    assert right.applied_index() == 3
    with pytest.raises(ValueError, match="overlaps"):
        store.keyspace.create_group(3, HASH_ORDER.slot_span(100, 200))
    for machine in (left, right):
        assert audit_engine(machine.engine) == []


def test_a_transaction_applies_many_groups_atomically(store: Store) -> None:
    left, right = store.machine(1, LEFT), store.machine(2, RIGHT)
    a, b = key_in(LEFT, "a"), key_in(RIGHT, "b")
    with store.keyspace.transaction():
        assert left.apply([cmd(1, "SET", a, "1"), cmd(2, "INCR", a)]) == [["OK"], [2]]
        assert right.apply([cmd(1, "SET", b, "x", "PX", "10")]) == [["OK"]]
    with pytest.raises(RuntimeError, match="boom"), store.keyspace.transaction():
        left.apply([cmd(3, "INCR", a)])
        right.apply([cmd(2, "DEL", b)])
        assert left.kv.read([b"get", a], NOW_MS) == b"3"  # reads see the open transaction
        raise RuntimeError("boom")
    # Both groups are back where they were: data, counts, index and applied index.
    assert (left.applied_index(), right.applied_index()) == (2, 1)
    assert left.kv.read([b"get", a], NOW_MS) == b"2"
    assert right.engine.count() == 1 and right.engine.expiring_count() == 1
    assert right.housekeeping(NOW_MS + 10) is not None
    store.crash()
    left, right = store.machine(1, LEFT), store.machine(2, RIGHT)
    assert (left.applied_index(), right.applied_index()) == (2, 1)
    assert left.kv.read([b"get", a], NOW_MS) == b"2"


def test_a_crash_keeps_every_committed_batch_and_nothing_else(store: Store) -> None:
    left, right = store.machine(1, LEFT), store.machine(2, RIGHT)
    a, b = key_in(LEFT, "a"), key_in(RIGHT, "b")
    left.apply([cmd(1, "SET", a, "1")])
    right.apply([cmd(1, "SET", b, "x", "EX", "100")])
    keyspace = store.keyspace
    with pytest.raises(ZeroDivisionError), keyspace.transaction():
        left.apply([cmd(2, "SET", a, "never")])
        1 / 0  # noqa: B018 - dies before the commit
    transaction = keyspace.transaction()
    transaction.__enter__()  # the process dies with this transaction open
    left.apply([cmd(2, "SET", a, "never either")])
    store.crash()
    left, right = store.machine(1, LEFT), store.machine(2, RIGHT)
    assert left.applied_index() == 1 and left.kv.read([b"get", a], NOW_MS) == b"1"
    assert right.applied_index() == 1 and right.kv.read([b"ttl", b], NOW_MS) == 100
    assert right.engine.next_expiry_ms() == NOW_MS + 100_000
    for machine in (left, right):
        assert audit_engine(machine.engine) == []


def test_a_memory_keyspace_can_lose_everything_in_a_crash() -> None:
    keyspace = MemoryKeyspace(HASH_ORDER, survives_crash=False)
    machine = KVGroupMachine(keyspace.open_group(0, FULL_SPAN))
    machine.apply([cmd(1, "SET", "k", "v")])
    after = keyspace.crash()
    assert after.group_ids() == []  # as a node that rebuilds from its snapshot and log
    assert KVGroupMachine(after.open_group(0, FULL_SPAN)).applied_index() == 0
    with pytest.raises(RuntimeError, match="crash"):
        machine.applied_index() + machine.engine.count()


def test_housekeeping_proposes_nothing_until_a_key_may_be_due(store: Store) -> None:
    machine = store.machine()
    assert machine.housekeeping(NOW_MS) is None  # empty
    machine.apply([cmd(i, "SET", f"k{i}", "v") for i in range(1, 50)])
    commits = store.commits()
    for tick in range(100):
        assert machine.housekeeping(NOW_MS + tick * 1000) is None  # no TTL anywhere
    assert store.commits() == commits  # asking wrote nothing
    machine.apply([cmd(50, "SET", "soon", "v", "PX", "300"), cmd(51, "EXPIRE", "k1", "2")])
    assert machine.housekeeping(NOW_MS + 299) is None  # nothing due yet
    sweep = machine.housekeeping(NOW_MS + 300)
    assert sweep is not None
    assert machine.apply([raw(52, sweep)]) == [[1]]
    assert machine.kv.read([b"exists", b"soon"], NOW_MS) == 0  # gone from the store
    assert machine.housekeeping(NOW_MS + 1999) is None  # k1 is not due before 2000 ms
    sweep = machine.housekeeping(NOW_MS + 2000)
    assert sweep is not None and machine.apply([raw(53, sweep)]) == [[1]]
    assert machine.engine.expiring_count() == 0 and machine.engine.count() == 48
    commits = store.commits()
    assert machine.housekeeping(NOW_MS + 10**9) is None
    assert store.commits() == commits


def test_a_sweep_is_bounded_and_a_stale_hint_costs_one_empty_sweep(store: Store) -> None:
    machine = store.machine()
    machine.apply([cmd(i, "SET", f"k{i}", "v", "PX", "10") for i in range(1, 251)])
    index = 250
    deleted = []
    while (sweep := machine.housekeeping(NOW_MS + 10)) is not None:
        index += 1
        (replies,) = machine.apply([raw(index, sweep)])
        assert replies is not None
        deleted.append(replies[0])
    assert deleted == [100, 100, 50]  # sweep_keys=100 per entry
    machine.apply([cmd(index + 1, "SET", "x", "v", "PX", "10"), cmd(index + 2, "DEL", "x")])
    # The hint may still say "maybe" for a key deleted since; one sweep finds nothing, then
    # the hint is exact again.
    sweep = machine.housekeeping(NOW_MS + 10)
    if sweep is not None:
        assert machine.apply([raw(index + 3, sweep)]) == [[0]]
    assert machine.housekeeping(NOW_MS + 10) is None


def test_the_audit_has_teeth(monkeypatch: pytest.MonkeyPatch) -> None:
    keyspace = MemoryKeyspace(HASH_ORDER)
    machine = KVGroupMachine(keyspace.open_group(0, FULL_SPAN))
    machine.apply([cmd(1, "SET", "a", "v", "EX", "5"), cmd(2, "SET", "b", "v", "EX", "5")])
    assert audit_engine(machine.engine) == []
    monkeypatch.setattr(memory_keyspace, "BREAK_INDEX_ON_DELETE", True)
    machine.apply([cmd(3, "DEL", "a")])
    problems = audit_engine(machine.engine)
    assert any("stale [b'a']" in p for p in problems), problems


# -- both keyspaces agree on a random workload ------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "{t}c", "{t}d", "e"])
_TTL = st.sampled_from(["1", "2", "50", "5000"])
_COMMANDS = st.one_of(
    st.tuples(st.just("SET"), _KEYS, st.sampled_from(["1", "x"])),
    st.tuples(st.just("SET"), _KEYS, st.just("v"), st.sampled_from(["PX", "EX"]), _TTL),
    st.tuples(st.sampled_from(["INCR", "PERSIST", "GETDEL"]), _KEYS),
    st.tuples(st.sampled_from(["PEXPIRE", "EXPIRE"]), _KEYS, _TTL),
    st.tuples(st.just("DEL"), _KEYS, _KEYS),
    st.tuples(st.just("APPEND"), _KEYS, st.just("z")),
    st.tuples(st.just("FLUSHDB")),
    st.tuples(st.just("SWEEP")),
    st.tuples(st.just("NOOP")),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_COMMANDS, st.integers(0, 700)), max_size=40))
def test_both_keyspaces_give_the_same_replies_and_state(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[tuple[str, ...], int]]
) -> None:
    stores = [Store("memory", Path()), Store("lmdb", tmp_path_factory.mktemp("kv"))]
    machines = [s.machine(1, LEFT) for s in stores] + [s.machine(2, RIGHT) for s in stores]
    now_ms = NOW_MS
    replies: list[list[list[Reply] | None]] = [[] for _ in machines]
    for index, (command, advance_ms) in enumerate(steps, start=1):
        now_ms += advance_ms
        for n, machine in enumerate(machines):
            if command[0] == "NOOP":
                entry = noop(index)
            elif command[0] == "SWEEP":
                sweep = machine.housekeeping(now_ms)
                entry = noop(index) if sweep is None else raw(index, sweep)
            else:
                span = LEFT if n < 2 else RIGHT
                words = [key_in(span, w) if w in ("a", "b", "e") else w for w in command]
                words = [
                    w if not (isinstance(w, str) and w.startswith("{t}")) else
                    b"{%s}%s" % (key_in(span, "t"), w[3:].encode())
                    for w in words
                ]
                entry = cmd(index, *words, now_ms=now_ms)
            replies[n].extend(machine.apply([entry]))
    assert replies[0] == replies[1] and replies[2] == replies[3]
    for one, other in ((machines[0], machines[1]), (machines[2], machines[3])):
        assert one.engine.scan(b"", None, 1000) == other.engine.scan(b"", None, 1000)
        assert one.applied_index() == other.applied_index() == len(steps)
        assert audit_engine(one.engine) == [] and audit_engine(other.engine) == []
    for s in stores:
        s.close()


def test_a_closed_view_is_closed_and_the_group_opens_again(store: Store) -> None:
    view = store.keyspace.open_group(0, FULL_SPAN)
    view.apply_batch([(b"k", b"\x00v")], 1)
    assert store.keyspace.group(0) is view  # one view per group
    view.close()
    with pytest.raises(RuntimeError, match="close"):
        view.get(b"k")
    again = store.keyspace.group(0)
    assert again is not view and again.get(b"k") == b"\x00v" and again.applied_index() == 1


def test_a_snapshot_restores_however_its_bytes_were_cut(store: Store, tmp_path: Path) -> None:
    # A snapshot that travelled to a follower arrives in transfer-sized pieces, not in the
    # chunks it was written in.
    machine = store.machine()
    machine.apply([cmd(i, "SET", f"k{i}", "v" * i, "EX", "60") for i in range(1, 40)])
    applied, chunks = machine.snapshot()
    data = b"".join(chunks)
    other = Store(store.kind, tmp_path / "other")
    copy = other.machine()
    copy.restore(iter([data[i : i + 7] for i in range(0, len(data), 7)]), applied)
    assert copy.engine.scan(b"", None, 100) == machine.engine.scan(b"", None, 100)
    assert audit_engine(copy.engine) == []
    with pytest.raises(ValueError, match="mid-object"):
        copy.restore(iter([data[:-1]]), applied + 1)
    assert copy.applied_index() == applied and copy.engine.count() == 39
    other.close()
