"""The LMDB keyspace: what only LMDB has to get right — the format and its version, the key
limit, map growth (also in the middle of a many-group transaction), snapshots read while
writes go on, and kill -9 in the middle of a stream of many-group transactions. The contract
every keyspace keeps is tested in tests/kv/test_kv_group_machine_contract.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb
import msgpack
import pytest

from kvorum.kv.key_order import FULL_SPAN, HASH_ORDER, MAX_KEY_BYTES, RANGE_ORDER, KeySpan
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.values import pack_value
from kvorum.sharding import key_slot
from kvorum.storage import EngineClosedError, KeyspaceFormatError, LmdbKeyspace

HALVES = HASH_ORDER.even_spans(2)


def key_in(span: KeySpan, stem: bytes) -> bytes:
    """A key made from ``stem`` whose hash slot lies in ``span``."""
    for n in range(10_000):
        key = b"%s-%d" % (stem, n)
        if span.contains(HASH_ORDER.encode(key)):
            return key
    raise AssertionError("no key found")


@pytest.fixture
def keyspace(tmp_path: Path) -> Iterator[LmdbKeyspace]:
    ks = LmdbKeyspace(tmp_path / "kv", map_bytes=1 << 20)
    yield ks
    ks.close()


def test_groups_and_their_counts_survive_reopening(keyspace: LmdbKeyspace, tmp_path: Path) -> None:
    left = keyspace.create_group(1, HALVES[0])
    right = keyspace.create_group(2, HALVES[1])
    a, b = key_in(HALVES[0], b"a"), key_in(HALVES[1], b"b")
    left.apply_batch([(a, b"1"), (b"{%s}x" % a, pack_value(b"v", 99))], 7)
    right.apply_batch([(b, b"2")], 3)
    keyspace.close()
    again = LmdbKeyspace(tmp_path / "kv")
    assert again.group_ids() == [1, 2] and again.order is HASH_ORDER
    assert (again.span_of(1), again.span_of(2)) == (HALVES[0], HALVES[1])
    left, right = again.group(1), again.group(2)
    assert (left.applied_index(), left.count(), left.expiring_count()) == (7, 2, 1)
    assert (right.applied_index(), right.count(), right.get(b)) == (3, 1, b"2")
    assert left.next_expiry_ms() == 99
    with pytest.raises(ValueError, match="owns"):
        again.open_group(1, HALVES[1])
    assert again.open_group(1, HALVES[0]) is left
    again.close()


def test_keys_are_stored_by_hash_slot(keyspace: LmdbKeyspace) -> None:
    view = keyspace.create_group(0, FULL_SPAN)
    keys = [b"foo", b"bar", b"hello", b"", b"{user1000}.a", b"{user1000}.b"]
    view.apply_batch([(k, b"v") for k in keys], 1)
    scanned = [k for k, _ in view.scan(b"", None, 100)]
    assert scanned == sorted(keys, key=lambda k: (key_slot(k), k))
    # Resuming at a returned key continues in slot order.
    assert [k for k, _ in view.scan(scanned[2], None, 100)] == scanned[2:]


def test_the_key_limit_is_the_same_at_admission_and_in_the_store(keyspace: LmdbKeyspace) -> None:
    from kvorum.kv.commands import check_command
    from kvorum.kv.replies import ERR_KEY_TOO_LONG

    view = keyspace.create_group(0, FULL_SPAN)
    longest = b"k" * MAX_KEY_BYTES
    view.apply_batch([(longest, b"fits")], 1)  # with its 2-byte slot: LMDB's 511 exactly
    assert view.get(longest) == b"fits"
    with pytest.raises(ValueError, match=f"LMDB's limit of {MAX_KEY_BYTES}"):
        view.apply_batch([(b"a", b"2"), (longest + b"k", b"x")], 2)
    assert view.get(longest + b"k") is None and view.get(b"a") is None
    assert check_command([b"SET", longest + b"k", b"v"], 1) == ERR_KEY_TOO_LONG
    assert f"at most {MAX_KEY_BYTES} bytes" in ERR_KEY_TOO_LONG.message


def test_a_refused_batch_changes_nothing(keyspace: LmdbKeyspace) -> None:
    view = keyspace.create_group(0, FULL_SPAN)
    view.apply_batch([(b"a", b"1")], 5)
    with pytest.raises(ValueError, match="backwards"):
        view.apply_batch([(b"a", b"2")], 4)
    with pytest.raises(ValueError, match=r"\(bytes, bytes \| None\)"):
        view.apply_batch([(b"a", b"2"), ("text", b"x")], 6)  # type: ignore[list-item]
    assert (view.get(b"a"), view.applied_index(), view.count()) == (b"1", 5, 1)


def test_snapshot_is_a_point_in_time_view_while_writes_go_on(keyspace: LmdbKeyspace) -> None:
    view = keyspace.create_group(0, FULL_SPAN)
    view.apply_batch([(b"k%04d" % i, b"old") for i in range(3000)], 10)
    applied, chunks = view.snapshot_chunks()
    writer_done = threading.Event()

    def writer() -> None:
        for n in range(11, 31):
            view.apply_batch([(b"k%04d" % (n * 7), b"new"), (b"extra%d" % n, b"x")], n)
        writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    pairs = [pair for chunk in chunks for pair in msgpack.unpackb(chunk)]
    thread.join()
    assert writer_done.is_set()
    assert applied == 10
    assert len(pairs) == 3000 and {v for _, v in pairs} == {b"old"}
    assert view.applied_index() == 30 and view.get(b"k0077") == b"new"


def test_snapshots_are_interchangeable_with_the_memory_engine(keyspace: LmdbKeyspace) -> None:
    view = keyspace.create_group(0, FULL_SPAN)
    memory = MemoryEngine()
    memory.apply_batch([(b"m%05d" % i, b"%d" % i) for i in range(10_000)], 12)
    applied, chunks = memory.snapshot_chunks()
    view.restore(chunks, applied)
    assert view.count() == 10_000 and view.get(b"m09999") == b"9999"
    back = MemoryEngine()
    applied, chunks = view.snapshot_chunks()
    back.restore(chunks, applied)
    assert back.scan(b"", None, 20_000) == memory.scan(b"", None, 20_000)


def test_a_bad_snapshot_stream_leaves_the_store_untouched(keyspace: LmdbKeyspace) -> None:
    view = keyspace.create_group(0, FULL_SPAN)
    view.apply_batch([(b"keep", b"me")], 2)

    def failing() -> Iterator[bytes]:
        yield msgpack.packb([[b"a", b"b"]])
        raise OSError("checksum mismatch at the end of the stream")

    with pytest.raises(OSError):
        view.restore(failing(), 9)
    with pytest.raises(ValueError, match="mid-object"):
        view.restore(iter([msgpack.packb([[b"a", b"b"]])[:-1]]), 9)
    with pytest.raises(ValueError, match="not"):
        view.restore(iter([msgpack.packb([[b"a", 3]])]), 9)
    with pytest.raises(ValueError, match="too long"):
        view.restore(iter([msgpack.packb([[b"k" * 600, b"v"]])]), 9)
    assert (view.get(b"keep"), view.count(), view.applied_index()) == (b"me", 1, 2)


def test_the_map_grows_when_full(tmp_path: Path) -> None:
    keyspace = LmdbKeyspace(tmp_path / "kv", map_bytes=64 * 1024)
    view = keyspace.create_group(0, FULL_SPAN)
    start = keyspace.map_bytes
    value = b"v" * 4000
    for batch in range(1, 41):
        view.apply_batch([(b"k%d-%d" % (batch, i), value) for i in range(10)], batch)
    assert keyspace.map_bytes > start
    assert view.count() == 400 and view.applied_index() == 40
    # a restore that does not fit grows the map too, and is still atomic
    big = LmdbKeyspace(tmp_path / "big", map_bytes=64 * 1024)
    big_view = big.create_group(0, FULL_SPAN)
    big_view.restore(view.snapshot_chunks()[1], 40)
    assert big_view.count() == 400 and big_view.get(b"k40-9") == value
    keyspace.close()
    big.close()


def test_the_map_grows_in_the_middle_of_a_many_group_transaction(tmp_path: Path) -> None:
    keyspace = LmdbKeyspace(tmp_path / "kv", map_bytes=64 * 1024)
    left, right = keyspace.create_group(1, HALVES[0]), keyspace.create_group(2, HALVES[1])
    a, b = key_in(HALVES[0], b"a"), key_in(HALVES[1], b"b")
    start = keyspace.map_bytes
    value = pack_value(b"v" * 3000, 10_000)
    with keyspace.transaction():
        for index in range(1, 61):
            left.apply_batch([(b"{%s}%d" % (a, index), value)], index)
            right.apply_batch([(b"{%s}%d" % (b, index), value), (b, b"%d" % index)], index)
            assert right.get(b) == b"%d" % index  # reads see the open transaction
    assert keyspace.map_bytes > start
    for view, count in ((left, 60), (right, 61)):
        assert (view.applied_index(), view.count(), view.expiring_count()) == (60, count, 60)
        assert len(view.expired_keys(10_000, 1000)) == 60
    keyspace.close()
    again = LmdbKeyspace(tmp_path / "kv")
    assert again.group(2).get(b) == b"60" and again.group(1).count() == 60
    again.close()


def test_use_after_close_is_an_error(tmp_path: Path) -> None:
    keyspace = LmdbKeyspace(tmp_path / "kv")
    view = keyspace.create_group(0, FULL_SPAN)
    _, chunks = view.snapshot_chunks()
    keyspace.close()
    with pytest.raises(EngineClosedError):
        view.get(b"a")
    del chunks  # releasing a reader after close must not crash
    with pytest.raises(ValueError, match="map_bytes"):
        LmdbKeyspace(tmp_path / "other", map_bytes=0)


def test_a_folder_of_the_single_group_layout_is_refused(tmp_path: Path) -> None:
    # What kvorum wrote before: one `data` database of b"k" + key, the applied index in `meta`.
    env = lmdb.open(str(tmp_path / "kv"), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"kuser:1", b"\x00v", db=env.open_db(b"data", txn=txn))
        txn.put(b"applied_index", (42).to_bytes(8, "big"), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(KeyspaceFormatError, match=r"format 1.*delete that folder"):
        LmdbKeyspace(tmp_path / "kv")


def test_another_format_version_or_order_is_refused(tmp_path: Path) -> None:
    LmdbKeyspace(tmp_path / "kv", order=RANGE_ORDER).close()
    with pytest.raises(KeyspaceFormatError, match="range order; asked for hash"):
        LmdbKeyspace(tmp_path / "kv", order=HASH_ORDER)
    reopened = LmdbKeyspace(tmp_path / "kv")  # no order asked: the stored one
    assert reopened.order is RANGE_ORDER
    reopened.close()
    env = lmdb.open(str(tmp_path / "kv"), max_dbs=3)
    with env.begin(write=True) as txn:
        txn.put(b"format", (3).to_bytes(4, "big"), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(KeyspaceFormatError, match="format 3"):
        LmdbKeyspace(tmp_path / "kv")


# kill -9 in the middle of many-group transactions, with LMDB flushing nothing at commit (the
# node's mode): a process crash must leave every group at one batch boundary, all groups at
# the same one (they commit together), and nothing acknowledged lost.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kvorum.kv.key_order import HASH_ORDER
    from kvorum.storage import LmdbKeyspace

    ks = LmdbKeyspace(Path(sys.argv[1]), map_bytes=256 * 1024, sync=False)
    tags = sys.argv[2:]
    views = [ks.open_group(g, span) for g, span in enumerate(HASH_ORDER.even_spans(len(tags)))]
    index = views[0].applied_index()
    while True:
        index += 1
        with ks.transaction():
            for view, tag in zip(views, tags):
                key = b"{%s}%d" % (tag.encode(), index)
                view.apply_batch([(key, b"x" * (index % 300)), (b"{%s}last" % tag.encode(),
                                  b"%d" % index)], index)
        print("ack", index, flush=True)
    """
)


def test_every_group_is_at_the_same_batch_boundary_after_kill_9(tmp_path: Path) -> None:
    tags = [key_in(span, b"t").decode() for span in HASH_ORDER.even_spans(3)]
    acked = 0
    for target in (700, 1500):  # crash, recover, write more (growing the map), crash again
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / "kv"), *tags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for line in child.stdout:
            acked = max(acked, int(line.split()[1]))
            if acked >= target:
                break
        os.kill(child.pid, signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, errors
        for line in rest.splitlines():
            acked = max(acked, int(line.split()[1]))
        keyspace = LmdbKeyspace(tmp_path / "kv")
        applied = {keyspace.group(g).applied_index() for g in keyspace.group_ids()}
        assert len(applied) == 1  # one transaction per round: never a round half applied
        (index,) = applied
        assert index >= acked
        for group_id, tag in enumerate(tags):
            view = keyspace.group(group_id)
            assert view.count() == index + 1  # index keys, plus "last"
            assert view.get(b"{%s}last" % tag.encode()) == b"%d" % index
            assert view.get(b"{%s}%d" % (tag.encode(), index)) == b"x" * (index % 300)
            assert view.get(b"{%s}%d" % (tag.encode(), index + 1)) is None
        keyspace.close()
