"""The index of keys that expire, and the deterministic walk that finds those due.

Theory of operation: beside its keys, a keyspace keeps one index entry per key that has an
expire time (:func:`kvorum.kv.values.expire_at_of`), written in the same atomic write as the
key. An entry is ``(bucket + expire time, position)``: the *bucket* is the first bytes of the
key's position (its slot in hash order, see :mod:`kvorum.kv.key_order`), then the expire time
as 8 big-endian bytes offset by 2**63 so that byte order is time order, and the key's position
as the entry's second half (in LMDB, a sorted duplicate). Partitioning by bucket rather than by
group keeps the index aligned with the data: when a span splits, its keys and their index
entries already sit in the two halves' buckets, and nothing is rewritten.

:func:`walk_due` finds a span's keys whose expire time is at or before ``now_ms``: in each
bucket of the span it reads entries in time order until the first that is not due, then jumps
to the next bucket. It costs one seek per bucket holding expiring keys plus one step per due
key, and its answer depends only on the stored state and its arguments, so every replica
running the same sweep entry deletes the same keys in the same order. The first entry that is
not due in each bucket also bounds the span's next expiry from below, which is how a keyspace
knows it may stay idle.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kvorum.kv.key_order import KeyOrder, KeySpan

_TIME = struct.Struct(">Q")
_TIME_BIAS = 1 << 63
TIME_BYTES = _TIME.size

IndexEntries = Callable[[bytes], Iterator[tuple[bytes, bytes]]]
"""``entries_from(seek)``: the index's ``(index key, position)`` entries from the first one
whose index key is at or after ``seek``, in index order."""


def index_key(order: KeyOrder, position: bytes, expire_at_ms: int) -> bytes:
    """The index key of a key at ``position`` expiring at ``expire_at_ms``."""
    return order.bucket(position) + _TIME.pack(expire_at_ms + _TIME_BIAS)


def _time_of(key: bytes, bucket_bytes: int) -> int:
    biased: int = _TIME.unpack_from(key, bucket_bytes)[0]
    return biased - _TIME_BIAS


def _next_bucket(bucket: bytes) -> bytes | None:
    """The bucket after ``bucket`` (same length), or None after the last one."""
    if not bucket:
        return None
    value = int.from_bytes(bucket, "big") + 1
    if value >> (8 * len(bucket)):
        return None
    return value.to_bytes(len(bucket), "big")


@dataclass(frozen=True, slots=True)
class DueKeys:
    """What :func:`walk_due` found."""

    positions: list[bytes]
    """Due keys of the span, in index order (bucket, expire time, position)."""
    complete: bool
    """Whether these are all the span's due keys (False: the limit cut the walk short)."""
    later_ms: int | None
    """When ``complete``: no key of the span that was not returned expires before this time
    (None: no such key has an expire time). A lower bound, not always the exact minimum."""


def walk_due(
    entries_from: IndexEntries, order: KeyOrder, span: KeySpan, now_ms: int, limit: int
) -> DueKeys:
    """Up to ``limit`` keys of ``span`` expiring at or before ``now_ms``; see the module
    docstring for the order and the cost."""
    width = order.bucket_bytes
    end = span.end
    contains = span.contains
    found: list[bytes] = []
    later_ms: int | None = None
    seek = span.start[:width]
    while True:
        jumped = False
        for key, position in entries_from(seek):
            bucket = key[:width]
            if end is not None and bucket >= end:
                return DueKeys(found, True, later_ms)  # every key of this bucket is >= end
            expire_at_ms = _time_of(key, width)
            if expire_at_ms > now_ms:
                # The bucket's first entry that is not due: the rest of it are later still,
                # whichever span they belong to.
                later_ms = expire_at_ms if later_ms is None else min(later_ms, expire_at_ms)
                following = _next_bucket(bucket)
                if following is None:
                    return DueKeys(found, True, later_ms)
                seek, jumped = following, True
                break
            if not contains(position):
                continue  # another span's key sharing this bucket (range order)
            if len(found) == limit:
                return DueKeys(found, False, later_ms)
            found.append(position)
        if not jumped:
            return DueKeys(found, True, later_ms)
