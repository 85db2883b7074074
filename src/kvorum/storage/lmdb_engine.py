"""The KV :class:`~kvorum.kv.engine.Engine` on LMDB, for real nodes.

Theory of operation. LMDB is a copy-on-write B+tree in one memory-mapped file: a write
transaction is atomic, and a read transaction sees the tree exactly as of its start for as
long as it stays open, while writers carry on. Two named databases live in the environment:
``data`` (the user's keys, each stored with a one-byte prefix so that the empty key — legal in
Redis, not in LMDB — can be stored) and ``meta`` (the applied log index). Every
:meth:`LmdbEngine.apply_batch` is one write transaction holding the batch *and* the new
applied index, so after any crash the two agree. :meth:`LmdbEngine.snapshot_chunks` opens a
read transaction at the call and streams the pairs from it in msgpack chunks (each chunk one
array of ``[key, value]`` pairs, the same shape the in-memory engine uses), so a snapshot is a
point-in-time copy however long writing it takes. :meth:`LmdbEngine.restore` first spools the
incoming chunks to a temporary file (so a bad or truncated stream is found before anything
changes, and the transaction can be retried after growing the map), then replaces the data in
one write transaction.

The map grows by doubling: a write that hits ``MapFullError`` is retried after
``set_mapsize``, and the map is also doubled early once it is three-quarters used. LMDB
forbids resizing while any transaction of this process is open, so a resize waits for open
snapshot readers to finish (a long snapshot read also keeps old pages alive, which is why the
early growth matters).

Durability. With ``fsync_commits=True`` (the default) every commit is fully synced. With
False, LMDB's ``metasync`` is off: data pages are still flushed but the meta page is not, which
keeps the database consistent (LMDB documents this mode as preserving atomicity, consistency
and isolation) while a power loss may undo the *last* commits. Recovery is still correct
because the applied index is committed with the data it describes: after a crash the store
is exactly the state after some earlier batch and says which. The WAL keeps every entry after
the latest snapshot, so the node re-applies from ``applied_index() + 1``; and if LMDB fell
behind the snapshot itself (whose entries the WAL may have deleted) the node first restores it
from the snapshot file (:meth:`kvorum.storage.raft_log_store.RaftLogStore.
restore_engine_if_behind`).

The map is opened writable (``writemap``): a transaction's dirty pages live in the shared
map, not in process memory, so restoring a large snapshot in one transaction does not need
memory the size of the data. Durability is the same in every mode, since LMDB still commits
by flipping its meta page.

LMDB's ``sync=False`` (nothing flushed at commit) is offered for one use only. It survives a
*process* crash intact — committed pages are in the operating system's page cache, which the
next process sees — but after an *operating-system* crash the file may be corrupt. The node
uses it because its WAL already makes every entry durable before it is applied: it records
the machine's boot id while it runs, and when it finds it did not shut down cleanly under a
different boot, it discards the engine and rebuilds it from the snapshot and the WAL
(:mod:`kvorum.runtime.node`). :meth:`LmdbEngine.flush` forces everything to disk.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from kvorum.kv.commands import MAX_KEY_BYTES

DEFAULT_MAP_BYTES = 64 * 1024 * 1024
SNAPSHOT_CHUNK_BYTES = 1024 * 1024
"""A snapshot chunk is cut once its pairs add up to about this many bytes."""
RESIZE_WAIT_S = 30.0
"""How long a full map waits for snapshot readers to finish before giving up."""

_KEY_PREFIX = b"k"
_APPLIED_KEY = b"applied_index"
_U64 = struct.Struct(">Q")
_FRAME = struct.Struct("<I")


class EngineClosedError(RuntimeError):
    """The engine was used after :meth:`LmdbEngine.close`."""


class LmdbEngine:
    """An ordered byte-key store on LMDB; see :class:`kvorum.kv.engine.Engine`.

    Meant for the node's thread; snapshot iterators may be consumed on another thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        map_bytes: int = DEFAULT_MAP_BYTES,
        fsync_commits: bool = True,
        sync: bool = True,
    ) -> None:
        """Open (or create) the LMDB environment in directory ``path``.

        ``sync=False`` flushes nothing at commit (see "Durability" above): only for a node
        that rebuilds the engine from its snapshot and WAL after an operating-system crash.
        """
        if map_bytes <= 0:
            raise ValueError(f"map_bytes must be positive, got {map_bytes}")
        self._path = Path(path)
        self._path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.Environment(
            str(self._path),
            map_size=map_bytes,
            subdir=True,
            max_dbs=2,
            sync=sync,
            metasync=fsync_commits and sync,
            # Dirty pages go straight into the shared map. Without it LMDB holds every page a
            # transaction dirties in malloc'd memory until commit, and restoring a snapshot is
            # one transaction: a follower catching up peaked at 92 MB of anonymous memory for
            # a 45 MB snapshot, 55 MB with it. Commits are cheaper too (no pwrite per page).
            writemap=True,
        )
        self._data = self._env.open_db(b"data")
        self._meta = self._env.open_db(b"meta")
        self._max_key_bytes = self._env.max_key_size() - len(_KEY_PREFIX)
        if self._max_key_bytes < MAX_KEY_BYTES:
            raise RuntimeError(
                f"this LMDB build takes keys of at most {self._env.max_key_size()} bytes; "
                f"kvorum needs {MAX_KEY_BYTES + len(_KEY_PREFIX)}"
            )
        self._readers = 0
        self._readers_changed = threading.Condition()
        self._closed = False
        # Only this object writes the environment, so the applied index is read once and
        # then tracked here: the apply path asks for it per entry.
        with self._env.begin(db=self._meta) as txn:
            self._applied = self._read_applied(txn)

    def flush(self) -> None:
        """Force every committed transaction to disk (for ``sync=False`` environments)."""
        self._check_open()
        self._env.sync(True)

    # --- reads ---------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value stored at ``key``, or None."""
        self._check_open()
        with self._env.begin(db=self._data) as txn:
            value: bytes | None = txn.get(_KEY_PREFIX + key)
            return value

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs with ``start <= key < end`` (no upper bound if ``end`` is
        None), in key order."""
        self._check_open()
        if limit < 0:
            raise ValueError(f"scan limit must be >= 0, got {limit}")
        found: list[tuple[bytes, bytes]] = []
        if limit == 0:
            return found
        stop = None if end is None else _KEY_PREFIX + end
        with self._env.begin(db=self._data) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(_KEY_PREFIX + start):
                return found
            for key, value in cursor:
                if stop is not None and key >= stop:
                    break
                found.append((key[len(_KEY_PREFIX) :], value))
                if len(found) == limit:
                    break
        return found

    def count(self) -> int:
        """How many keys are stored."""
        self._check_open()
        with self._env.begin() as txn:
            entries: int = txn.stat(self._data)["entries"]
            return entries

    def applied_index(self) -> int:
        """The index of the last log entry whose writes this store holds (0 if none)."""
        self._check_open()
        return self._applied

    def _read_applied(self, txn: Any) -> int:
        raw = txn.get(_APPLIED_KEY, db=self._meta)
        return 0 if raw is None else int(_U64.unpack(raw)[0])

    @property
    def map_bytes(self) -> int:
        """The current size of the memory map (grows on demand)."""
        size: int = self._env.info()["map_size"]
        return size

    # --- writes --------------------------------------------------------------------------

    def apply_batch(self, writes: Sequence[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """Atomically store ``writes`` in order (None deletes) and record ``applied_index``.

        Raises ValueError, changing nothing, if the index goes backwards, a write is not
        ``(bytes, bytes | None)`` or a key is longer than LMDB allows.
        """
        self._check_open()
        if applied_index < self._applied:
            raise ValueError(
                f"applied index must not go backwards: store is at {self._applied}, "
                f"batch says {applied_index}"
            )
        max_key_bytes = self._max_key_bytes
        data = self._data

        def batch(txn: Any) -> None:
            # Checked as they are written: raising aborts the transaction, changing nothing.
            put, delete = txn.put, txn.delete
            for key, value in writes:
                if type(key) is not bytes or (value is not None and type(value) is not bytes):
                    raise ValueError(
                        f"a write must be (bytes, bytes | None), got ({type(key).__name__}, "
                        f"{type(value).__name__})"
                    )
                if len(key) > max_key_bytes:
                    raise ValueError(
                        f"key of {len(key)} bytes is longer than LMDB's limit of {max_key_bytes}"
                    )
                if value is None:
                    delete(_KEY_PREFIX + key, db=data)
                else:
                    put(_KEY_PREFIX + key, value, db=data)
            put(_APPLIED_KEY, _U64.pack(applied_index), db=self._meta)

        self._write(batch)
        self._applied = applied_index

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the whole store with a snapshot made by :meth:`snapshot_chunks` (or by
        the in-memory engine: same chunk format), atomically.

        The stream is read to the end before anything changes, so a stream that raises (e.g.
        a snapshot file failing its checksum) or is malformed leaves the store untouched.
        """
        self._check_open()
        if applied_index < 0:
            raise ValueError(f"applied index must be >= 0, got {applied_index}")
        with tempfile.TemporaryFile(dir=self._path) as spool:
            for chunk in chunks:
                spool.write(_FRAME.pack(len(chunk)))
                spool.write(chunk)
            spool_bytes = spool.tell()
            for _ in self._spooled_pairs(spool, spool_bytes):
                pass  # validate the whole stream before touching the store

            def replace(txn: Any) -> None:
                txn.drop(self._data, delete=False)
                cursor = txn.cursor(db=self._data)
                for key, value in self._spooled_pairs(spool, spool_bytes):
                    cursor.put(_KEY_PREFIX + key, value)
                txn.put(_APPLIED_KEY, _U64.pack(applied_index), db=self._meta)

            self._write(replace)
            self._applied = applied_index

    def _spooled_pairs(self, spool: Any, spool_bytes: int) -> Iterator[tuple[bytes, bytes]]:
        spool.seek(0)
        unpacker = msgpack.Unpacker(use_list=True)
        fed = 0
        consumed = 0  # where the last complete object ended
        while spool.tell() < spool_bytes:
            (length,) = _FRAME.unpack(spool.read(_FRAME.size))
            chunk = spool.read(length)
            unpacker.feed(chunk)
            fed += len(chunk)
            for pairs in unpacker:
                consumed = unpacker.tell()
                if not isinstance(pairs, list):
                    raise ValueError(f"snapshot chunk holds a {type(pairs).__name__}, not pairs")
                for pair in pairs:
                    if (
                        not isinstance(pair, list)
                        or len(pair) != 2
                        or type(pair[0]) is not bytes
                        or type(pair[1]) is not bytes
                    ):
                        raise ValueError(f"snapshot pair is not [bytes, bytes]: {pair!r:.80}")
                    if len(pair[0]) > self._max_key_bytes:
                        raise ValueError(f"snapshot key of {len(pair[0])} bytes is too long")
                    yield pair[0], pair[1]
        if consumed != fed:
            raise ValueError(f"snapshot stream ends mid-object ({fed - consumed} bytes left)")

    def _write(self, body: Callable[[Any], None]) -> None:
        """Run ``body`` in one write transaction, growing the map and retrying when full."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    body(txn)
                break
            except lmdb.MapFullError:
                self._grow(wait_for_readers=True)
        self._grow_early()

    def _grow(self, *, wait_for_readers: bool) -> bool:
        with self._readers_changed:
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

    # --- snapshots -----------------------------------------------------------------------

    def snapshot_chunks(self) -> tuple[int, Iterator[bytes]]:
        """A consistent snapshot: the applied index and the pairs as msgpack chunks, read from
        a read transaction opened now, so writes may continue while it is consumed (on any
        one thread). Exhaust or ``close()`` the iterator promptly: while it is open the map
        cannot be resized and LMDB cannot reuse the pages it still sees."""
        self._check_open()
        with self._readers_changed:
            self._readers += 1
        try:
            txn = self._env.begin()
            applied = self._read_applied(txn)
        except BaseException:
            self._reader_done()
            raise
        return applied, _SnapshotReader(self, txn)

    def _reader_done(self) -> None:
        with self._readers_changed:
            self._readers -= 1
            self._readers_changed.notify_all()

    def close(self) -> None:
        """Close the environment; further use raises :class:`EngineClosedError`."""
        if not self._closed:
            self._closed = True
            self._env.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError(f"LMDB engine at {self._path} used after close()")


class _SnapshotReader(Iterator[bytes]):
    """Chunks from one read transaction; aborts it when exhausted, closed or collected."""

    def __init__(self, engine: LmdbEngine, txn: Any) -> None:
        self._engine = engine
        self._txn: Any = txn
        self._pairs = txn.cursor(db=engine._data).iternext(keys=True, values=True)

    def __next__(self) -> bytes:
        if self._txn is None:
            raise StopIteration
        batch: list[tuple[bytes, bytes]] = []
        batch_bytes = 0
        for key, value in self._pairs:
            batch.append((key[len(_KEY_PREFIX) :], value))
            batch_bytes += len(key) + len(value)
            if batch_bytes >= SNAPSHOT_CHUNK_BYTES:
                break
        if not batch:
            self.close()
            raise StopIteration
        chunk: bytes = msgpack.packb(batch, use_bin_type=True)
        return chunk

    def close(self) -> None:
        """Release the read transaction (idempotent)."""
        if self._txn is not None:
            txn, self._txn = self._txn, None
            # If the environment was closed first, that already ended the transaction.
            with contextlib.suppress(lmdb.Error):
                txn.abort()
            self._engine._reader_done()

    def __del__(self) -> None:
        self.close()
