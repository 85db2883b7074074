"""One LMDB environment per node holding every group's keys: the durable keyspace.

Theory of operation. LMDB is a copy-on-write B+tree in one memory-mapped file: a write
transaction is atomic, and a read transaction sees the tree exactly as of its start for as
long as it stays open, while writers carry on. Three named databases live in the environment:

* ``data`` — every group's keys under their *positions* (:mod:`kvorum.kv.key_order`: for the
  hash order, the Redis Cluster slot as 2 big-endian bytes, then the key), so a group's span is
  one contiguous run of the B+tree and splitting a span later changes metadata only;
* ``expires`` — the expiry index (:mod:`kvorum.kv.expiry_index`): ``bucket + expire time`` to
  the positions expiring then, as sorted duplicates (a position is at most 511 bytes, which a
  duplicate may be; the index key alone could not also hold it);
* ``meta`` — the format version, the key order, and per group (keyed by group id) its span and
  its applied index, key count and expiring-key count.

A group's :class:`LmdbGroupView` is its :class:`~kvorum.kv.engine.Engine`. Every batch it
applies writes the keys, their index entries and the group's counts *in the same write
transaction*, so after any crash a group's data, index, counts and applied index agree.
:meth:`LmdbKeyspace.transaction` makes one write transaction of every batch applied inside
it, by any groups (a host applies a whole drive round with one commit); reads by the views
inside it go through the same transaction, so they see its writes.

Snapshots and restores are per group. :meth:`LmdbGroupView.snapshot_chunks` opens a read
transaction at the call and streams the span's pairs from it in msgpack chunks (each chunk one
array of ``[key, value]`` pairs with user keys, the format the in-memory views use), so a
snapshot is a point-in-time copy however long writing it takes. :meth:`LmdbGroupView.restore`
first spools the incoming chunks to a temporary file (so a bad or truncated stream is found
before anything changes, and the transaction can be retried after growing the map), then
replaces the span's keys, index entries and metadata in one write transaction; other groups
are untouched.

The map grows by doubling: a write that hits ``MapFullError`` aborts, grows the map, and
replays what its transaction had done (the batches of a transaction are kept until it
commits), and the map is also doubled early once it is three-quarters used. LMDB forbids
resizing while any transaction of this process is open, so a resize waits for open snapshot
readers to finish and holds off short reads (a long snapshot read also keeps old pages alive,
which is why the early growth matters).

Durability. With ``fsync_commits=True`` (the default) every commit is fully synced. With
False, LMDB's ``metasync`` is off: data pages are still flushed but the meta page is not, which
keeps the database consistent (LMDB documents this mode as preserving atomicity, consistency
and isolation) while a power loss may undo the *last* commits. Recovery is still correct
because each group's applied index is committed with the data it describes: after a crash
every group is exactly in the state after some earlier batch and says which. The node keeps
every entry after its latest snapshot in the WAL, so it re-applies from
``applied_index() + 1``, first restoring the group from its snapshot if LMDB fell behind it.

The map is opened writable (``writemap``): a transaction's dirty pages live in the shared
map, not in process memory, so restoring a large snapshot in one transaction does not need
memory the size of the data. Durability is the same in every mode, since LMDB still commits
by flipping its meta page.

LMDB's ``sync=False`` (nothing flushed at commit) is offered for one use only. It survives a
*process* crash intact — committed pages are in the operating system's page cache, which the
next process sees — but after an *operating-system* crash the file may be corrupt. A node uses
it because its WAL already makes every entry durable before it is applied, and it discards
and rebuilds the keyspace from its snapshots and WAL after a crash across a reboot
(:mod:`kvorum.runtime.node`). :meth:`LmdbKeyspace.flush` forces everything to disk.

Format (details in :mod:`kvorum.storage._lmdb_layout`). ``meta`` records
:data:`FORMAT_VERSION`. A folder of the single-group layout kvorum used before (format 1: one
``data`` database of the whole store, no version) is refused with :class:`KeyspaceFormatError`
rather than converted: a node rebuilds its keyspace from its snapshot and log when the folder
is deleted, a path that already exists and is tested, where a converter would be new code
run once per node.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from kvorum.core.shape import GroupId
from kvorum.kv.engine import EngineClosedError
from kvorum.kv.key_order import (
    HASH_ORDER,
    MAX_KEY_BYTES,
    MAX_PREFIX_BYTES,
    ORDERS,
    KeyOrder,
    KeySpan,
)
from kvorum.kv.view_checks import check_new_group
from kvorum.storage._lmdb_layout import (
    COUNTS,
    DATABASES,
    FORMAT_KEY,
    FORMAT_VERSION,
    ORDER_KEY,
    SPAN_PREFIX,
    VERSION,
    GroupRecord,
    counts_key,
    group_of_span_key,
    span_key,
)
from kvorum.storage.lmdb_group import LmdbGroupView

__all__ = [
    "DEFAULT_MAP_BYTES",
    "FORMAT_VERSION",
    "EngineClosedError",
    "KeyspaceFormatError",
    "LmdbGroupView",
    "LmdbKeyspace",
]

DEFAULT_MAP_BYTES = 64 * 1024 * 1024
RESIZE_WAIT_S = 30.0
"""How long a full map waits for snapshot readers to finish before giving up."""


class KeyspaceFormatError(RuntimeError):
    """The folder holds a keyspace this version cannot use (another format or key order)."""


@dataclass(slots=True)
class _Round:
    """The open write transaction: the batches it holds (replayed after the map grows) and
    the groups they touched."""

    txn: Any
    thread: int
    ops: list[Callable[[Any], None]]
    touched: dict[GroupId, GroupRecord]


class LmdbKeyspace:
    """Every group's keys in one LMDB environment; see :class:`kvorum.kv.engine.Keyspace`.

    Writes (batches, transactions, restores, new groups) come from one thread at a time;
    reads may come from any thread, and snapshot iterators may be consumed on another thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        order: KeyOrder | None = None,
        map_bytes: int = DEFAULT_MAP_BYTES,
        fsync_commits: bool = True,
        sync: bool = True,
    ) -> None:
        """Open (or create) the keyspace in directory ``path``.

        ``order`` is the key order of a new keyspace (default: hash); an existing one keeps
        its own, and asking for another raises :class:`KeyspaceFormatError`, as does a folder
        of another format. ``sync=False`` flushes nothing at commit (see "Durability" above):
        only for a node that rebuilds the keyspace from its snapshots and WAL after an
        operating-system crash.
        """
        if map_bytes <= 0:
            raise ValueError(f"map_bytes must be positive, got {map_bytes}")
        self._path = Path(path)
        self._path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.Environment(
            str(self._path),
            map_size=map_bytes,
            subdir=True,
            max_dbs=len(DATABASES),
            sync=sync,
            metasync=fsync_commits and sync,
            # Dirty pages go straight into the shared map. Without it LMDB holds every page a
            # transaction dirties in malloc'd memory until commit, and restoring a snapshot is
            # one transaction: a follower catching up peaked at 92 MB of anonymous memory for
            # a 45 MB snapshot, 55 MB with it. Commits are cheaper too (no pwrite per page).
            writemap=True,
        )
        try:
            if self._env.max_key_size() - MAX_PREFIX_BYTES < MAX_KEY_BYTES:
                raise RuntimeError(
                    f"this LMDB build takes keys of at most {self._env.max_key_size()} bytes; "
                    f"kvorum needs {MAX_KEY_BYTES + MAX_PREFIX_BYTES}"
                )
            self._order = self._open_format(order)
        except BaseException:
            self._env.close()
            raise
        self._data = self._env.open_db(b"data")
        self._expires = self._env.open_db(b"expires", dupsort=True)
        self._meta = self._env.open_db(b"meta")
        self._groups: dict[GroupId, GroupRecord] = {}
        self._views: dict[GroupId, LmdbGroupView] = {}
        self._load_groups()
        self._round: _Round | None = None
        self._writer = threading.Lock()
        """Held by the thread writing (a transaction, a restore, a new group)."""
        self._short_reads = threading.Lock()
        """Held by a short read while its transaction is open, and by a resize."""
        self._readers = 0
        """Open snapshot iterators (each holds a read transaction)."""
        self._readers_changed = threading.Condition()
        self._closed = False

    def _open_format(self, order: KeyOrder | None) -> KeyOrder:
        """Check (or, for an empty folder, write) the format version and the key order."""
        with self._env.begin() as txn:
            names = {bytes(name) for name, _ in txn.cursor()}
        if not names:
            chosen = order or HASH_ORDER
            with self._env.begin(write=True) as txn:
                meta = self._env.open_db(b"meta", txn=txn)
                txn.put(FORMAT_KEY, VERSION.pack(FORMAT_VERSION), db=meta)
                txn.put(ORDER_KEY, chosen.name.encode(), db=meta)
                self._env.open_db(b"data", txn=txn)
                self._env.open_db(b"expires", txn=txn, dupsort=True)
            return chosen
        if b"meta" not in names or not names <= set(DATABASES):
            raise KeyspaceFormatError(f"{self._path} does not hold a kvorum keyspace")
        meta = self._env.open_db(b"meta", create=False)
        with self._env.begin(db=meta) as txn:
            raw_version = txn.get(FORMAT_KEY)
            raw_order = txn.get(ORDER_KEY)
        if raw_version is None:
            raise KeyspaceFormatError(
                f"{self._path} holds the single-group layout of an older kvorum (format 1), "
                f"which this version does not read; delete that folder and the node rebuilds "
                f"it from its snapshot and log"
            )
        (version,) = VERSION.unpack(raw_version)
        if version != FORMAT_VERSION:
            raise KeyspaceFormatError(
                f"{self._path} holds keyspace format {version}; this kvorum reads format "
                f"{FORMAT_VERSION}"
            )
        stored = ORDERS.get(bytes(raw_order or b"").decode("ascii", "replace"))
        if stored is None:
            raise KeyspaceFormatError(f"{self._path} records an unknown key order {raw_order!r}")
        if order is not None and order.name != stored.name:
            raise KeyspaceFormatError(
                f"{self._path} holds keys in {stored.name} order; asked for {order.name} order"
            )
        return stored

    def _load_groups(self) -> None:
        with self._env.begin(db=self._meta) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(SPAN_PREFIX):
                return
            for key, raw in cursor:
                if not key.startswith(SPAN_PREFIX):
                    break
                group_id = group_of_span_key(key)
                start, end = msgpack.unpackb(raw)
                record_key = counts_key(group_id)
                raw_counts = txn.get(record_key)
                if raw_counts is None:
                    raise KeyspaceFormatError(f"{self._path}: group {group_id} has no counts")
                group = GroupRecord(KeySpan(start, end), record_key, *COUNTS.unpack(raw_counts))
                group.commit()
                self._groups[group_id] = group

    # --- the environment -------------------------------------------------------------------

    @property
    def order(self) -> KeyOrder:
        return self._order

    @property
    def path(self) -> Path:
        return self._path

    @property
    def map_bytes(self) -> int:
        """The current size of the memory map (grows on demand)."""
        size: int = self._env.info()["map_size"]
        return size

    def flush(self) -> None:
        """Force every committed transaction to disk (for ``sync=False`` keyspaces)."""
        self._check_open()
        self._env.sync(True)

    def close(self) -> None:
        """Close the environment (an open transaction is abandoned, as in a crash); further
        use raises :class:`EngineClosedError`."""
        if not self._closed:
            self._closed = True
            self._env.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError(f"LMDB keyspace at {self._path} used after close()")

    # --- groups --------------------------------------------------------------------------

    def group_ids(self) -> list[GroupId]:
        return sorted(self._groups)

    def span_of(self, group_id: GroupId) -> KeySpan:
        return self._groups[group_id].span

    def create_group(self, group_id: GroupId, span: KeySpan) -> LmdbGroupView:
        """A new, empty group owning ``span``, committed before this returns."""
        self._check_open()
        check_new_group(group_id, span, {g: s.span for g, s in self._groups.items()})
        record_key = counts_key(group_id)

        def create(txn: Any) -> None:
            txn.put(span_key(group_id), msgpack.packb([span.start, span.end]), db=self._meta)
            txn.put(record_key, COUNTS.pack(0, 0, 0), db=self._meta)

        self._write_alone(create, "create a group")
        self._groups[group_id] = GroupRecord(span, record_key, floor_known=True)
        return self.group(group_id)

    def open_group(self, group_id: GroupId, span: KeySpan) -> LmdbGroupView:
        """The group's view, creating the group with ``span`` if it is new; ValueError if it
        exists with another span."""
        if group_id not in self._groups:
            return self.create_group(group_id, span)
        if self._groups[group_id].span != span:
            raise ValueError(f"group {group_id} owns {self._groups[group_id].span}, not {span}")
        return self.group(group_id)

    def group(self, group_id: GroupId) -> LmdbGroupView:
        self._check_open()
        view = self._views.get(group_id)
        if view is None or view._closed:  # one view per group, a fresh one after close()
            view = LmdbGroupView(self, group_id, self._groups[group_id])
            self._views[group_id] = view
        return view

    # --- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction for every batch applied inside the block; see
        :meth:`kvorum.kv.engine.Keyspace.transaction`."""
        self._check_open()
        round_ = self._round
        if round_ is not None and round_.thread == threading.get_ident():
            yield  # nested: part of the outer transaction
            return
        with self._writer:
            round_ = _Round(self._env.begin(write=True), threading.get_ident(), [], {})
            self._round = round_
            try:
                yield
                while True:
                    try:
                        round_.txn.commit()
                        break
                    except lmdb.MapFullError:
                        self._restart(round_)
            except BaseException:
                with contextlib.suppress(lmdb.Error):
                    round_.txn.abort()
                for group in round_.touched.values():
                    group.roll_back()
                raise
            finally:
                self._round = None
            for group in round_.touched.values():
                group.commit()
        self._grow_early()

    def _apply(self, group_id: GroupId, group: GroupRecord, op: Callable[[Any], None]) -> None:
        """Run ``op`` (a batch's writes) in the open transaction, or in one of its own."""
        round_ = self._round
        if round_ is None or round_.thread != threading.get_ident():
            with self.transaction():
                self._apply(group_id, group, op)
            return
        round_.touched.setdefault(group_id, group)
        while True:
            try:
                op(round_.txn)
                break
            except lmdb.MapFullError:
                self._restart(round_)
        round_.ops.append(op)

    def _restart(self, round_: _Round) -> None:
        """The map is full: abort, grow it, and replay the transaction's batches so far."""
        while True:
            with contextlib.suppress(lmdb.Error):
                round_.txn.abort()
            self._grow(wait_for_readers=True)
            round_.txn = self._env.begin(write=True)
            for group in round_.touched.values():
                group.roll_back()
            try:
                for op in round_.ops:
                    op(round_.txn)
                return
            except lmdb.MapFullError:
                continue

    def _write_alone(self, body: Callable[[Any], None], what: str) -> None:
        """Run ``body`` in a write transaction of its own, growing the map and retrying
        while it is full. Not inside :meth:`transaction`."""
        round_ = self._round
        if round_ is not None and round_.thread == threading.get_ident():
            raise RuntimeError(f"cannot {what} inside a transaction")
        with self._writer:
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        body(txn)
                    break
                except lmdb.MapFullError:
                    self._grow(wait_for_readers=True)
        self._grow_early()

    def _grow(self, *, wait_for_readers: bool) -> bool:
        with self._short_reads, self._readers_changed:
            if self._readers:
                if not wait_for_readers:
                    return False
                if not self._readers_changed.wait_for(
                    lambda: self._readers == 0, timeout=RESIZE_WAIT_S
                ):
                    raise lmdb.MapFullError(
                        f"LMDB map in {self._path} is full and {self._readers} snapshot "
                        f"reader(s) stayed open for {RESIZE_WAIT_S} s, so it cannot grow"
                    )
            self._env.set_mapsize(self.map_bytes * 2)
            return True

    def _grow_early(self) -> None:
        info = self._env.info()
        used_bytes = (info["last_pgno"] + 1) * self._env.stat()["psize"]
        if used_bytes * 4 > info["map_size"] * 3:
            self._grow(wait_for_readers=False)

    # --- reading -----------------------------------------------------------------------------

    def _read(self, body: Callable[[Any], Any]) -> Any:
        """``body(txn)`` in the open write transaction if this thread holds one (it sees that
        transaction's writes), else in a short read transaction."""
        round_ = self._round
        if round_ is not None and round_.thread == threading.get_ident():
            return body(round_.txn)
        with self._short_reads, self._env.begin() as txn:
            return body(txn)

    def _reader_done(self) -> None:
        with self._readers_changed:
            self._readers -= 1
            self._readers_changed.notify_all()


