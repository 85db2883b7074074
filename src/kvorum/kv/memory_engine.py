"""An in-memory :class:`~kvorum.kv.engine.Engine` for tests, the simulator and single nodes.

Theory of operation: a ``SortedDict`` keeps keys in byte order, so ``scan`` is a bisect plus
a walk. A batch is applied by first checking every write, then mutating, so a bad write
(wrong types) leaves the store untouched and the batch stays atomic. Snapshots serialise the
pairs with msgpack in fixed-size chunks; because Python objects are not shared with a live
writer, the "point-in-time view" is a shallow copy of the item list taken when the snapshot
starts (the values are immutable ``bytes``, so copying references is enough).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice

import msgpack
from sortedcontainers import SortedDict

SNAPSHOT_PAIRS_PER_CHUNK = 4096
"""How many key/value pairs go into one snapshot chunk (bounds a chunk's memory)."""


class MemoryEngine:
    """An ordered byte-key store held in memory; see :class:`kvorum.kv.engine.Engine`."""

    def __init__(self) -> None:
        self._data: SortedDict = SortedDict()
        self._applied_index = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryEngine used after close()")

    def get(self, key: bytes) -> bytes | None:
        """The value stored at ``key``, or None."""
        self._check_open()
        value: bytes | None = self._data.get(key)
        return value

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs with ``start <= key < end`` (unbounded above if ``end`` is
        None), in key order."""
        self._check_open()
        if limit < 0:
            raise ValueError(f"scan limit must be >= 0, got {limit}")
        keys = self._data.irange(start, end, inclusive=(True, False))
        data = self._data
        return [(key, data[key]) for key in islice(keys, limit)]

    def count(self) -> int:
        """How many keys are stored."""
        self._check_open()
        return len(self._data)

    def applied_index(self) -> int:
        """The index of the last log entry whose writes this store holds (0 if none)."""
        return self._applied_index

    def apply_batch(self, writes: Sequence[tuple[bytes, bytes | None]], applied_index: int) -> None:
        """Atomically store ``writes`` in order (None deletes) and record ``applied_index``.

        Raises ValueError (and changes nothing) if the index goes backwards or a write is not
        ``(bytes, bytes | None)``.
        """
        self._check_open()
        if applied_index < self._applied_index:
            raise ValueError(
                f"applied index must not go backwards: store is at {self._applied_index}, "
                f"batch says {applied_index}"
            )
        for key, value in writes:
            if type(key) is not bytes or (value is not None and type(value) is not bytes):
                raise ValueError(
                    f"a write must be (bytes, bytes | None), got ({type(key).__name__}, "
                    f"{type(value).__name__})"
                )
        data = self._data
        for key, value in writes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._applied_index = applied_index

    def snapshot_chunks(self) -> tuple[int, Iterator[bytes]]:
        """The applied index and the store's pairs as msgpack chunks, frozen at call time."""
        self._check_open()
        items: list[tuple[bytes, bytes]] = list(self._data.items())
        return self._applied_index, _chunks(items)

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace everything with the pairs in ``chunks`` (from :meth:`snapshot_chunks`)."""
        self._check_open()
        if applied_index < 0:
            raise ValueError(f"applied index must be >= 0, got {applied_index}")
        fresh: SortedDict = SortedDict()
        # A stream of msgpack arrays of pairs; where the chunks were cut does not matter (a
        # snapshot that travelled to a follower arrives cut into transfer-sized pieces).
        unpacker = msgpack.Unpacker(use_list=True, raw=False)
        for chunk in chunks:
            unpacker.feed(chunk)
            for pairs in unpacker:
                for key, value in pairs:
                    fresh[key] = value
        if unpacker.read_bytes(1):
            raise ValueError("snapshot data ends inside a record")
        self._data = fresh
        self._applied_index = applied_index

    def close(self) -> None:
        """Drop the data; further use raises RuntimeError."""
        self._data = SortedDict()
        self._closed = True


def _chunks(items: list[tuple[bytes, bytes]]) -> Iterator[bytes]:
    for start in range(0, len(items), SNAPSHOT_PAIRS_PER_CHUNK):
        yield msgpack.packb(items[start : start + SNAPSHOT_PAIRS_PER_CHUNK], use_bin_type=True)
