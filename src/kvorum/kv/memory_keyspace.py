"""One ordered keyspace in memory, shared by many groups' views: for tests and the simulator.

Theory of operation: the same layout as the LMDB keyspace, in Python containers. A
``SortedDict`` maps positions (:mod:`kvorum.kv.key_order`) to values; a ``SortedList`` holds
the expiry index's ``(index key, position)`` entries (:mod:`kvorum.kv.expiry_index`); a dict
holds each group's span, applied index and key counts. A :class:`MemoryGroupView` is one
group's :class:`~kvorum.kv.engine.Engine`: it translates user keys to positions, refuses keys
outside its span, and keeps its group's counts and expiry index as it writes.

Atomicity: a batch is checked whole before anything changes, so a refused batch changes
nothing. Inside :meth:`MemoryKeyspace.transaction` every change is also logged for undo, so
an exception leaving the block puts back every group's keys, index and counts as they were.

Snapshots copy the span's pairs when they are taken (values are immutable ``bytes``, so
copying references is enough) and serialise them with msgpack in fixed-size chunks, the same
chunks LMDB's views read and write.

Crashes: LMDB's keyspace survives a *process* crash (committed transactions are in the page
cache) and, in a node that skips LMDB's fsync, is rebuilt from the Raft snapshot and log after
an operating-system crash. Both are worth simulating, so the choice is the constructor's:
:meth:`MemoryKeyspace.crash` returns what the restarted node finds — every committed batch
with ``survives_crash=True``, nothing at all (no groups either) with False. A transaction open
at the crash never committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any

import msgpack
from sortedcontainers import SortedDict, SortedList

from kvorum.core.shape import GroupId
from kvorum.kv.engine import EngineClosedError
from kvorum.kv.expiry_index import DueKeys, index_key, walk_due
from kvorum.kv.key_order import HASH_ORDER, KeyOrder, KeySpan
from kvorum.kv.span_view import SpanView
from kvorum.kv.values import expire_at_of
from kvorum.kv.view_checks import check_new_group, check_snapshot_pairs, typed_writes

SNAPSHOT_PAIRS_PER_CHUNK = 4096
"""How many key/value pairs go into one snapshot chunk (bounds a chunk's memory)."""

BREAK_INDEX_ON_DELETE = False
"""Test-only: deleting a key leaves its expiry-index entry behind, to prove that
:func:`kvorum.kv.keyspace_audit.audit_engine` notices (tests/kv). Never set otherwise."""


@dataclass(slots=True)
class _Group:
    """A group's span and metadata; ``floor_ms`` is a lower bound of its next expiry, valid
    while ``floor_known``."""

    span: KeySpan
    applied: int = 0
    keys: int = 0
    expiring: int = 0
    floor_ms: int | None = None
    floor_known: bool = False

    def counts(self) -> tuple[int, int, int]:
        return self.applied, self.keys, self.expiring


_DATA, _INDEX_ADDED, _INDEX_REMOVED = 0, 1, 2
"""Undo record kinds: a position's old value; an index entry added; one removed."""


@dataclass(slots=True)
class _Round:
    """An open transaction: what to undo, and the touched groups' counts before it."""

    undo: list[tuple[int, Any, Any]]
    counts: dict[GroupId, tuple[int, int, int]]


class MemoryKeyspace:
    """An ordered keyspace held in memory; see :class:`kvorum.kv.engine.Keyspace`."""

    def __init__(self, order: KeyOrder = HASH_ORDER, *, survives_crash: bool = True) -> None:
        self._order = order
        self.survives_crash = survives_crash
        """Whether :meth:`crash` keeps the committed contents (as LMDB survives a process
        crash) or loses everything (as a node that rebuilds its engine after a power cut)."""
        self._data: SortedDict = SortedDict()
        self._index: SortedList = SortedList()
        self._groups: dict[GroupId, _Group] = {}
        self._views: dict[GroupId, MemoryGroupView] = {}
        self._round: _Round | None = None
        self._closed = False

    @property
    def order(self) -> KeyOrder:
        return self._order

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("memory keyspace used after close() or crash()")

    # --- groups --------------------------------------------------------------------------

    def group_ids(self) -> list[GroupId]:
        return sorted(self._groups)

    def span_of(self, group_id: GroupId) -> KeySpan:
        return self._groups[group_id].span

    def create_group(self, group_id: GroupId, span: KeySpan) -> MemoryGroupView:
        self._check_open()
        if self._round is not None:
            raise RuntimeError("groups cannot be created inside a transaction")
        check_new_group(group_id, span, {g: s.span for g, s in self._groups.items()})
        self._groups[group_id] = _Group(span, floor_known=True)
        return self.group(group_id)

    def open_group(self, group_id: GroupId, span: KeySpan) -> MemoryGroupView:
        """The group's view, creating the group with ``span`` if it is new; ValueError if it
        exists with another span."""
        if group_id not in self._groups:
            return self.create_group(group_id, span)
        if self._groups[group_id].span != span:
            raise ValueError(f"group {group_id} owns {self._groups[group_id].span}, not {span}")
        return self.group(group_id)

    def group(self, group_id: GroupId) -> MemoryGroupView:
        self._check_open()
        view = self._views.get(group_id)
        if view is None or view._closed:  # one view per group, a fresh one after close()
            view = MemoryGroupView(self, group_id, self._groups[group_id])
            self._views[group_id] = view
        return view

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._check_open()
        if self._round is not None:
            yield  # nested: part of the outer transaction
            return
        round_ = self._round = _Round([], {})
        try:
            yield
        except BaseException:
            if self._round is round_:  # else a crash already discarded it
                self._roll_back()
            raise
        finally:
            if self._round is round_:
                self._round = None

    def _touch(self, group_id: GroupId, group: _Group) -> list[tuple[int, Any, Any]] | None:
        """The undo log to record into (None outside a transaction)."""
        round_ = self._round
        if round_ is None:
            return None
        round_.counts.setdefault(group_id, group.counts())
        return round_.undo

    def _roll_back(self) -> None:
        round_ = self._round
        assert round_ is not None
        data, index = self._data, self._index
        for kind, a, b in reversed(round_.undo):
            if kind == _DATA:
                if b is None:
                    data.pop(a, None)
                else:
                    data[a] = b
            elif kind == _INDEX_ADDED:
                index.discard(a)
            else:
                index.add(a)
        for group_id, (applied, keys, expiring) in round_.counts.items():
            group = self._groups[group_id]
            group.applied, group.keys, group.expiring = applied, keys, expiring
            group.floor_known = False

    # --- crashes and closing ---------------------------------------------------------------

    def crash(self) -> MemoryKeyspace:
        """What the node finds after restarting from a crash (see the module docstring).
        This keyspace and its views are unusable afterwards."""
        self._check_open()
        if self._round is not None:
            self._roll_back()  # it never committed
            self._round = None
        after = MemoryKeyspace(self._order, survives_crash=self.survives_crash)
        if self.survives_crash:
            after._data, after._index = self._data, self._index
            after._groups = {
                g: _Group(s.span, s.applied, s.keys, s.expiring) for g, s in self._groups.items()
            }
        self._close()
        return after

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        self._closed = True
        self._data, self._index, self._views = SortedDict(), SortedList(), {}


class MemoryGroupView(SpanView):
    """One group's span of a :class:`MemoryKeyspace`; see :class:`kvorum.kv.engine.Engine`."""

    _group: _Group

    def __init__(self, keyspace: MemoryKeyspace, group_id: GroupId, group: _Group) -> None:
        super().__init__(keyspace, group_id, group)
        self._keyspace = keyspace

    # --- reads -----------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        value: bytes | None = self._keyspace._data.get(self._position(key))
        return value

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        self._check_open()
        if limit < 0:
            raise ValueError(f"scan limit must be >= 0, got {limit}")
        encode = self._encode
        lo, hi = self._group.span.clamp(encode(start), None if end is None else encode(end))
        if hi is not None and lo >= hi:
            return []
        data = self._keyspace._data
        decode = self._keyspace.order.decode
        positions = data.irange(lo, hi, inclusive=(True, False))
        return [(decode(p), data[p]) for p in islice(positions, limit)]

    def applied_index(self) -> int:
        return self._group.applied  # read after close too (the simulator's crashed nodes)

    def _walk(self, now_ms: int, limit: int) -> DueKeys:
        index = self._keyspace._index

        def entries_from(seek: bytes) -> Iterator[tuple[bytes, bytes]]:
            return iter(index.irange(minimum=(seek,)))

        return walk_due(entries_from, self._keyspace.order, self._group.span, now_ms, limit)

    # --- writes ----------------------------------------------------------------------------

    def transaction(self) -> Any:
        return self._keyspace.transaction()

    def apply_batch(self, writes: Sequence[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """See :meth:`kvorum.kv.engine.Engine.apply_batch`. Raises ValueError (changing
        nothing) if the index goes backwards, a write is not ``(bytes, bytes | None)`` or a
        key is outside the span."""
        self._check_open()
        group = self._group
        if applied_index < group.applied:
            raise ValueError(
                f"applied index must not go backwards: store is at {group.applied}, "
                f"batch says {applied_index}"
            )
        checked = [(self._position(key), value) for key, value in typed_writes(writes)]
        keyspace = self._keyspace
        undo = keyspace._touch(self.group_id, group)
        data, index, order = keyspace._data, keyspace._index, keyspace.order
        for position, value in checked:
            old = data.pop(position, None) if value is None else data.get(position)
            if value is not None:
                data[position] = value
            if undo is not None:
                undo.append((_DATA, position, old))
            if old is None:
                if value is None:
                    continue
                group.keys += 1
            elif value is None:
                group.keys -= 1
            old_ms = 0 if old is None else expire_at_of(old)
            new_ms = 0 if value is None else expire_at_of(value)
            if old_ms == new_ms:
                continue
            if old_ms:
                group.expiring -= 1
                if not (BREAK_INDEX_ON_DELETE and value is None):
                    entry = (index_key(order, position, old_ms), position)
                    index.remove(entry)
                    if undo is not None:
                        undo.append((_INDEX_REMOVED, entry, None))
            if new_ms:
                entry = (index_key(order, position, new_ms), position)
                index.add(entry)
                group.expiring += 1
                if undo is not None:
                    undo.append((_INDEX_ADDED, entry, None))
                if group.floor_known:
                    floor = group.floor_ms
                    group.floor_ms = new_ms if floor is None else min(floor, new_ms)
        group.applied = applied_index

    # --- snapshots -------------------------------------------------------------------------

    def snapshot_chunks(self) -> tuple[int, Iterator[bytes]]:
        """The applied index and the span's pairs as msgpack chunks, frozen at call time."""
        self._check_open()
        data = self._keyspace._data
        decode = self._keyspace.order.decode
        span = self._group.span
        items = [
            (decode(p), data[p]) for p in data.irange(span.start, span.end, inclusive=(True, False))
        ]
        return self._group.applied, _chunks(items)

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the span's keys with the pairs in ``chunks`` and record ``applied_index``.
        The stream is read and checked whole first, so a bad one changes nothing."""
        self._check_open()
        keyspace = self._keyspace
        if keyspace._round is not None:
            raise RuntimeError("a restore cannot run inside a transaction")
        if applied_index < 0:
            raise ValueError(f"applied index must be >= 0, got {applied_index}")
        fresh: list[tuple[bytes, bytes]] = []
        # A stream of msgpack arrays of pairs; where the chunks were cut does not matter (a
        # snapshot that travelled to a follower arrives cut into transfer-sized pieces).
        unpacker = msgpack.Unpacker(use_list=True)
        fed = consumed = 0  # bytes given to the unpacker; where its last object ended
        for chunk in chunks:
            unpacker.feed(chunk)
            fed += len(chunk)
            for pairs in unpacker:
                consumed = unpacker.tell()
                for key, value in check_snapshot_pairs(pairs):
                    fresh.append((self._position(key), value))
        if consumed != fed:
            raise ValueError(f"snapshot stream ends mid-object ({fed - consumed} bytes left)")
        data, index, order = keyspace._data, keyspace._index, keyspace.order
        span = self._group.span
        for position in list(data.irange(span.start, span.end, inclusive=(True, False))):
            old_ms = expire_at_of(data.pop(position))
            if old_ms:
                index.remove((index_key(order, position, old_ms), position))
        group = self._group
        group.keys = group.expiring = 0
        for position, value in fresh:
            old = data.get(position)
            data[position] = value
            if old is not None:  # a repeated key: the last one wins
                old_ms = expire_at_of(old)
                if old_ms:
                    index.remove((index_key(order, position, old_ms), position))
                    group.expiring -= 1
            else:
                group.keys += 1
            new_ms = expire_at_of(value)
            if new_ms:
                index.add((index_key(order, position, new_ms), position))
                group.expiring += 1
        group.applied = applied_index
        group.floor_known = False

    def close(self) -> None:
        """This view is unusable afterwards; the keyspace and other views are not affected."""
        self._closed = True


def _chunks(items: list[tuple[bytes, bytes]]) -> Iterator[bytes]:
    for start in range(0, len(items), SNAPSHOT_PAIRS_PER_CHUNK):
        yield msgpack.packb(items[start : start + SNAPSHOT_PAIRS_PER_CHUNK], use_bin_type=True)
