"""One group's view of the LMDB keyspace: its :class:`~kvorum.kv.engine.Engine`.

Theory of operation: a view translates user keys to positions (refusing keys outside its span)
and reads and writes through its keyspace's transactions (:mod:`kvorum.storage.lmdb_keyspace`,
whose docstring describes the layout, atomicity and durability). A batch writes the keys,
their expiry-index entries and the group's counts in one transaction, reading each key's old
value as it replaces it (``replace``/``pop``) to keep the key count and the index exact.
A snapshot streams the span from one read transaction; a restore spools the incoming stream to
a temporary file, checks it whole, then replaces the span in one write transaction.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import lmdb
import msgpack

from kvorum.core.shape import GroupId
from kvorum.kv.engine import KeyOutsideSpanError
from kvorum.kv.expiry_index import DueKeys, index_key, walk_due
from kvorum.kv.key_order import FULL_SPAN, MAX_KEY_BYTES, KeySpan
from kvorum.kv.span_view import SpanView
from kvorum.kv.values import expire_at_of
from kvorum.kv.view_checks import check_snapshot_pairs, typed_writes
from kvorum.storage._lmdb_layout import COUNTS, GroupRecord

if TYPE_CHECKING:
    from kvorum.storage.lmdb_keyspace import LmdbKeyspace

SNAPSHOT_CHUNK_BYTES = 1024 * 1024
"""A snapshot chunk is cut once its pairs add up to about this many bytes."""
_FRAME = struct.Struct("<I")


class LmdbGroupView(SpanView):
    """One group's span of an :class:`LmdbKeyspace`; see :class:`kvorum.kv.engine.Engine`."""

    _group: GroupRecord

    def __init__(self, keyspace: LmdbKeyspace, group_id: GroupId, group: GroupRecord) -> None:
        super().__init__(keyspace, group_id, group)
        self._keyspace = keyspace

    # --- reads -----------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        if len(key) > MAX_KEY_BYTES:
            return None  # too long to be stored (and to be looked up: LMDB would refuse it)
        keyspace = self._keyspace
        position = self._position(key)
        round_ = keyspace._round
        if round_ is not None and round_.thread == threading.get_ident():
            value: bytes | None = round_.txn.get(position, db=keyspace._data)
            return value
        with keyspace._short_reads, keyspace._env.begin(db=keyspace._data) as txn:
            value = txn.get(position)
            return value

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        self._check_open()
        if limit < 0:
            raise ValueError(f"scan limit must be >= 0, got {limit}")
        encode, decode = self._encode, self._decode
        lo, hi = self._group.span.clamp(encode(start), None if end is None else encode(end))
        if limit == 0 or (hi is not None and lo >= hi):
            return []
        data = self._keyspace._data

        def read(txn: Any) -> list[tuple[bytes, bytes]]:
            found: list[tuple[bytes, bytes]] = []
            cursor = txn.cursor(db=data)
            if not cursor.set_range(lo):
                return found
            for position, value in cursor:
                if hi is not None and position >= hi:
                    break
                found.append((decode(position), value))
                if len(found) == limit:
                    break
            return found

        pairs: list[tuple[bytes, bytes]] = self._keyspace._read(read)
        return pairs

    def _walk(self, now_ms: int, limit: int) -> DueKeys:
        keyspace = self._keyspace
        span = self._group.span

        def read(txn: Any) -> DueKeys:
            cursor = txn.cursor(db=keyspace._expires)

            def entries_from(seek: bytes) -> Iterator[tuple[bytes, bytes]]:
                if not cursor.set_range(seek):
                    return iter(())
                pairs: Iterator[tuple[bytes, bytes]] = cursor.iternext(keys=True, values=True)
                return pairs

            return walk_due(entries_from, keyspace.order, span, now_ms, limit)

        walk: DueKeys = keyspace._read(read)
        return walk

    # --- writes ----------------------------------------------------------------------------

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._keyspace.transaction()

    def apply_batch(self, writes: Sequence[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """See :meth:`kvorum.kv.engine.Engine.apply_batch`. Raises ValueError, changing
        nothing, if the index goes backwards, a write is not ``(bytes, bytes | None)``, a key
        is longer than LMDB allows or a key is outside the span."""
        self._check_open()
        group = self._group
        if applied_index < group.applied:
            raise ValueError(
                f"applied index must not go backwards: store is at {group.applied}, "
                f"batch says {applied_index}"
            )
        # Every write is checked before any is made: within a transaction shared with other
        # batches, a refused batch must leave nothing behind.
        checked: list[tuple[bytes, bytes | None]] = []
        append, position_of = checked.append, self._position
        for key, value in typed_writes(writes):
            if len(key) > MAX_KEY_BYTES:
                raise ValueError(
                    f"key of {len(key)} bytes is longer than LMDB's limit of {MAX_KEY_BYTES}"
                )
            append((position_of(key), value))
        self._keyspace._apply(
            self.group_id, group, partial(self._write_batch, checked, applied_index)
        )

    def _write_batch(
        self, checked: list[tuple[bytes, bytes | None]], applied_index: int, txn: Any
    ) -> None:
        keyspace = self._keyspace
        data, expires, order = keyspace._data, keyspace._expires, keyspace.order
        group = self._group
        keys, expiring = group.keys, group.expiring
        # One cursor for the batch: Transaction.replace/pop make a cursor per call. Reading
        # the old value is what keeps the key count and the expiry index exact.
        cursor = txn.cursor(db=data)
        replace, pop = cursor.replace, cursor.pop
        for position, value in checked:
            if value is None:
                old = pop(position)
                if old is None:
                    continue
                keys -= 1
                new_ms = 0
            else:
                old = replace(position, value)
                if old is None:
                    keys += 1
                # The first byte says whether a value carries an expire time (kv.values).
                new_ms = expire_at_of(value) if value[:1] == b"\x01" else 0
            old_ms = expire_at_of(old) if old is not None and old[:1] == b"\x01" else 0
            if old_ms == new_ms:
                continue
            if old_ms:
                txn.delete(index_key(order, position, old_ms), position, db=expires)
                expiring -= 1
            if new_ms:
                txn.put(index_key(order, position, new_ms), position, db=expires)
                expiring += 1
                if group.floor_known:
                    floor = group.floor_ms
                    group.floor_ms = new_ms if floor is None else min(floor, new_ms)
        txn.put(group.counts_key, COUNTS.pack(applied_index, keys, expiring), db=keyspace._meta)
        group.applied, group.keys, group.expiring = applied_index, keys, expiring

    # --- snapshots -------------------------------------------------------------------------

    def snapshot_chunks(self) -> tuple[int, Iterator[bytes]]:
        """A consistent snapshot of the group: its applied index and its pairs as msgpack
        chunks, read from a read transaction opened now, so writes may continue while it is
        consumed (on any one thread). Exhaust or ``close()`` the iterator promptly: while it
        is open the map cannot be resized and LMDB cannot reuse the pages it still sees."""
        self._check_open()
        keyspace = self._keyspace
        with keyspace._readers_changed:
            keyspace._readers += 1
        try:
            txn = keyspace._env.begin()
            raw_counts = txn.get(self._group.counts_key, db=keyspace._meta)
            applied = COUNTS.unpack(raw_counts)[0] if raw_counts is not None else 0
        except BaseException:
            keyspace._reader_done()
            raise
        return applied, _SnapshotReader(keyspace, txn, self._group.span)

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the group's keys with a snapshot made by :meth:`snapshot_chunks` (or by an
        in-memory view: same chunk format), atomically; other groups are untouched.

        The stream is read to the end before anything changes, so a stream that raises (e.g.
        a snapshot file failing its checksum) or is malformed leaves the store untouched.
        """
        self._check_open()
        if applied_index < 0:
            raise ValueError(f"applied index must be >= 0, got {applied_index}")
        keyspace = self._keyspace
        with tempfile.TemporaryFile(dir=keyspace.path) as spool:
            for chunk in chunks:
                spool.write(_FRAME.pack(len(chunk)))
                spool.write(chunk)
            spool_bytes = spool.tell()
            for _ in self._spooled_pairs(spool, spool_bytes):
                pass  # check the whole stream before touching the store
            counts: list[int] = []

            def replace(txn: Any) -> None:
                counts[:] = self._replace_span(txn, self._spooled_pairs(spool, spool_bytes))
                txn.put(self._group.counts_key, COUNTS.pack(applied_index, *counts),
                        db=keyspace._meta)

            keyspace._write_alone(replace, "restore a snapshot")
        group = self._group
        group.applied, (group.keys, group.expiring) = applied_index, counts
        group.commit()
        group.floor_known = False

    def _replace_span(self, txn: Any, pairs: Iterator[tuple[bytes, bytes]]) -> tuple[int, int]:
        """Delete the span's keys and index entries, then store ``pairs``; the new key and
        expiring-key counts."""
        keyspace = self._keyspace
        data, expires, order = keyspace._data, keyspace._expires, keyspace.order
        span = self._group.span
        if span == FULL_SPAN:
            txn.drop(data, delete=False)  # no other group can exist: empty it wholesale
            txn.drop(expires, delete=False)
        else:
            cursor = txn.cursor(db=data)
            if cursor.set_range(span.start):
                position = cursor.key()
                while position and (span.end is None or position < span.end):
                    old_ms = expire_at_of(cursor.value())
                    if old_ms:
                        txn.delete(index_key(order, position, old_ms), position, db=expires)
                    cursor.delete()
                    position = cursor.key()  # b"" once past the last key
        keys = expiring = 0
        for key, value in pairs:
            position = self._position(key)
            old = txn.replace(position, value, db=data)
            if old is None:
                keys += 1
            else:  # a repeated key: the last one wins
                old_ms = expire_at_of(old)
                if old_ms:
                    txn.delete(index_key(order, position, old_ms), position, db=expires)
                    expiring -= 1
            new_ms = expire_at_of(value)
            if new_ms:
                txn.put(index_key(order, position, new_ms), position, db=expires)
                expiring += 1
        return keys, expiring

    def _spooled_pairs(self, spool: Any, spool_bytes: int) -> Iterator[tuple[bytes, bytes]]:
        spool.seek(0)
        unpacker = msgpack.Unpacker(use_list=True)
        fed = 0
        consumed = 0  # where the last complete object ended
        span, encode = self._group.span, self._encode
        while spool.tell() < spool_bytes:
            (length,) = _FRAME.unpack(spool.read(_FRAME.size))
            chunk = spool.read(length)
            unpacker.feed(chunk)
            fed += len(chunk)
            for pairs in unpacker:
                consumed = unpacker.tell()
                for key, value in check_snapshot_pairs(pairs):
                    if len(key) > MAX_KEY_BYTES:
                        raise ValueError(f"snapshot key of {len(key)} bytes is too long")
                    if not span.contains(encode(key)):
                        raise KeyOutsideSpanError(
                            f"snapshot key {key[:40]!r} is outside group {self.group_id}'s "
                            f"span {span}"
                        )
                    yield key, value
        if consumed != fed:
            raise ValueError(f"snapshot stream ends mid-object ({fed - consumed} bytes left)")

    def close(self) -> None:
        """This view is unusable afterwards; the keyspace and other views are not affected."""
        self._closed = True


class _SnapshotReader(Iterator[bytes]):
    """A span's chunks from one read transaction; aborts it when exhausted, closed or
    collected."""

    def __init__(self, keyspace: LmdbKeyspace, txn: Any, span: KeySpan) -> None:
        self._keyspace = keyspace
        self._txn: Any = txn
        self._end = span.end
        self._decode = keyspace.order.decode
        cursor = txn.cursor(db=keyspace._data)
        found = cursor.set_range(span.start)
        self._pairs: Iterator[tuple[bytes, bytes]] = (
            cursor.iternext(keys=True, values=True) if found else iter(())
        )

    def __next__(self) -> bytes:
        if self._txn is None:
            raise StopIteration
        batch: list[tuple[bytes, bytes]] = []
        batch_bytes = 0
        end, decode = self._end, self._decode
        for position, value in self._pairs:
            if end is not None and position >= end:
                self._pairs = iter(())
                break
            batch.append((decode(position), value))
            batch_bytes += len(position) + len(value)
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
            self._keyspace._reader_done()

    def __del__(self) -> None:
        self.close()
