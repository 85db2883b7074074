"""The contract between kvorum's KV state machine and the ordered store underneath it.

Theory of operation: the state machine (``kvorum.kv``) turns committed log entries into
batches of key writes; an :class:`Engine` stores them. Every batch is applied atomically
*together with* the log index it came from, so after a crash the engine says exactly how far
it got (:meth:`Engine.applied_index`) and the node replays the log from the next entry — an
entry is never applied twice nor skipped. Keys are kept in byte order so prefix and range
scans (needed for range sharding) are cheap. A snapshot is a consistent copy taken while
writes go on; restoring one replaces the whole store.

Two implementations: an in-memory one for tests and the simulator, and LMDB for nodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol


class Engine(Protocol):
    """An ordered byte-key store that records the log index its contents reflect."""

    def get(self, key: bytes) -> bytes | None:
        """The value stored at ``key``, or None."""

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs with ``start <= key < end`` (no upper bound if ``end`` is
        None), in key order."""

    def count(self) -> int:
        """How many keys are stored."""

    def applied_index(self) -> int:
        """The index of the last log entry whose writes this store holds (0 if none)."""

    def apply_batch(self, writes: Sequence[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """Atomically store ``writes`` in order (None deletes) and record ``applied_index``."""

    def snapshot_chunks(self) -> tuple[int, Iterator[bytes]]:
        """A consistent snapshot: the applied index it reflects and its serialised bytes, in
        chunks, read from a point-in-time view so writes may continue meanwhile."""

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the whole store with a snapshot made by :meth:`snapshot_chunks`."""

    def close(self) -> None:
        """Release resources; the store must not be used afterwards."""
