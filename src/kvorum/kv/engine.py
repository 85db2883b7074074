"""The contract between kvorum's KV state machine and the ordered store underneath it.

Theory of operation: the state machine (``kvorum.kv``) turns committed log entries into
batches of key writes; an :class:`Engine` stores them. Every batch is applied atomically
*together with* the log index it came from, so after a crash the engine says exactly how far
it got (:meth:`Engine.applied_index`) and the node replays the log from the next entry — an
entry is never applied twice nor skipped. Keys are kept in the store's order (see
:mod:`kvorum.kv.key_order`: by hash slot then key, or raw byte order) so scans and the spans
of sharding are cheap. A snapshot is a consistent copy taken while writes go on; restoring one
replaces the whole store.

A node holds one :class:`Keyspace` — one ordered store — and each Raft group's state machine
runs on an :class:`Engine` that is that keyspace's *view* of the group's span: it sees and
changes only the keys in its span, and keeps its own applied index. Several views' batches can
be applied in one atomic write (:meth:`Keyspace.transaction`), so a host applies a whole
round of many groups with one commit.

An engine also indexes the keys that have an expire time (the KV value layout,
:mod:`kvorum.kv.values`), so the state machine can sweep exactly the keys due and a leader can
tell cheaply that nothing is (:meth:`Engine.next_expiry_ms`).

Implementations: in memory (:mod:`kvorum.kv.memory_keyspace`, for tests and the simulator) and
LMDB (:mod:`kvorum.storage.lmdb_keyspace`, for nodes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from kvorum.core.shape import GroupId
from kvorum.kv.key_order import KeyOrder, KeySpan


class EngineClosedError(RuntimeError):
    """An engine or keyspace was used after ``close()`` (or, in memory, after a crash)."""


class KeyOutsideSpanError(ValueError):
    """A key was given to a view whose span does not hold it (a routing bug of the caller)."""


class Engine(Protocol):
    """An ordered byte-key store that records the log index its contents reflect."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored at ``key``, or None."""

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs from ``start``'s position up to (not including) ``end``'s
        (no upper bound if ``end`` is None), in the store's order. In raw key order that is
        ``start <= key < end``; in hash order keys come by slot, so resume a scan at a key it
        returned, never at a key computed from one (``key + b"\\0"`` sits in another slot)."""

    def count(self) -> int:
        """How many keys are stored (cheap: kept with the applied index)."""

    def expiring_count(self) -> int:
        """How many stored keys have an expire time (cheap)."""

    def next_expiry_ms(self) -> int | None:
        """No stored key expires before this time; None when no key has an expire time.
        A lower bound (after deletes it may be early), so "nothing is due before T" is
        exact and "something may be due" is cheap to answer."""

    def expired_keys(self, now_ms: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys whose expire time is at or before ``now_ms``, in a fixed order
        that depends only on the stored state (every replica finds the same keys)."""

    def applied_index(self) -> int:
        """The index of the last log entry whose writes this store holds (0 if none)."""

    def apply_batch(self, writes: Sequence[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """Atomically store ``writes`` in order (None deletes) and record ``applied_index``."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group every batch applied inside the ``with`` block — by this engine and by other
        views of the same keyspace — into one atomic write (see :meth:`Keyspace.transaction`)."""

    def snapshot_chunks(self) -> tuple[int, Iterator[bytes]]:
        """A consistent snapshot: the applied index it reflects and its serialised bytes, in
        chunks, read from a point-in-time view so writes may continue meanwhile."""

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the whole store with a snapshot made by :meth:`snapshot_chunks`."""

    def close(self) -> None:
        """Release resources; the store must not be used afterwards."""


class Keyspace(Protocol):
    """One node's ordered store, shared by the views of its groups' spans."""

    @property
    def order(self) -> KeyOrder:
        """How keys are ordered (recorded in the store; fixed for its life)."""

    def group_ids(self) -> list[GroupId]:
        """The groups this keyspace holds, ascending."""

    def create_group(self, group_id: GroupId, span: KeySpan) -> Engine:
        """A new, empty group owning ``span`` (durable before this returns). ValueError if the
        group exists or ``span`` overlaps another group's."""

    def open_group(self, group_id: GroupId, span: KeySpan) -> Engine:
        """The group's view, creating the group with ``span`` if it is new (how a node
        bootstraps its fixed set of groups, again at every start); ValueError if it exists
        with another span."""

    def group(self, group_id: GroupId) -> Engine:
        """The view of an existing group; KeyError if there is none."""

    def span_of(self, group_id: GroupId) -> KeySpan:
        """The span ``group_id`` owns; KeyError if there is no such group."""

    def transaction(self) -> AbstractContextManager[None]:
        """Apply every batch of the ``with`` block, of any groups, in one atomic write: after
        a crash all of them or none are there, each with its applied index. An exception
        leaving the block undoes them all. Nested blocks join the outer one. Reads by views
        inside the block see its writes."""

    def close(self) -> None:
        """Release the store; views must not be used afterwards."""
