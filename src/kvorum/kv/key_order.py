"""Where a key sits in a node's one ordered keyspace, and the spans that groups own.

Theory of operation: every Raft group on a node owns a contiguous *span* of one ordered
keyspace, as a TiKV region owns a key range, so that a range later splits or merges by
changing metadata only — no key is copied. A user key is stored under its *position*: a short
prefix that fixes the order, then the key itself. Two orders exist, chosen per cluster and
recorded in the store's metadata:

* :data:`HASH_ORDER` — the prefix is the key's Redis Cluster slot as 2 big-endian bytes
  (:func:`kvorum.sharding.key_slot`), so a span is a run of slots, keys of one hash tag sit
  together, and a Redis Cluster client's view of the world (16,384 slots) maps onto spans.
* :data:`RANGE_ORDER` — the prefix is one constant byte, so keys keep their raw byte order and
  a span is a raw key range (a prefix SCAN stays on few spans). The byte is there because
  LMDB cannot store an empty key, which Redis allows.

A span is half-open over positions, ``start <= position < end`` (``end`` None: to the end);
:data:`FULL_SPAN` covers every position of either order. Positions compare as bytes, so
span arithmetic knows nothing about orders.

The prefix costs key bytes: LMDB's keys are at most 511 bytes and the longest prefix is 2,
so kvorum keys are at most :data:`MAX_KEY_BYTES` = 509 bytes, in every order (the limit is
checked before a request reaches the log, where the order is not known).

The expiry index (:mod:`kvorum.kv.expiry_index`) partitions itself by :meth:`KeyOrder.bucket`,
the first bytes of a position: one bucket per slot in hash order, so the index splits with the
slots; a single bucket in range order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from binascii import crc_hqx
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from kvorum.sharding import SLOT_COUNT, key_slot

STORE_MAX_KEY_BYTES: Final = 511
"""LMDB's longest key (its compile-time ``MDB_MAXKEYSIZE``; checked when a store opens)."""
MAX_PREFIX_BYTES: Final = 2
"""The longest position prefix of any order."""
MAX_KEY_BYTES: Final = STORE_MAX_KEY_BYTES - MAX_PREFIX_BYTES
"""The longest user key kvorum stores (509 bytes), whatever the order."""


@dataclass(frozen=True, slots=True)
class KeySpan:
    """Positions ``start <= position < end`` (no upper bound when ``end`` is None)."""

    start: bytes = b""
    end: bytes | None = None

    def __post_init__(self) -> None:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"an empty or inverted span: [{self.start!r}, {self.end!r})")

    def contains(self, position: bytes) -> bool:
        return self.start <= position and (self.end is None or position < self.end)

    def overlaps(self, other: KeySpan) -> bool:
        return (other.end is None or self.start < other.end) and (
            self.end is None or other.start < self.end
        )

    def clamp(self, start: bytes, end: bytes | None) -> tuple[bytes, bytes | None]:
        """``[start, end)`` cut down to this span (the result may be empty)."""
        lo = max(start, self.start)
        if end is None:
            return lo, self.end
        return lo, end if self.end is None else min(end, self.end)

    def __str__(self) -> str:
        return f"[{self.start.hex() or '-'}, {'-' if self.end is None else self.end.hex()})"


FULL_SPAN: Final = KeySpan()
"""Every position: the span of a node's only group while a node has one."""


class KeyOrder(ABC):
    """How user keys map to positions; see the module docstring. Stateless."""

    name: str
    """Recorded in the store's metadata: a store opened with another order is refused."""
    prefix_bytes: int
    bucket_bytes: int
    """How many leading bytes of a position name its expiry-index bucket."""

    @abstractmethod
    def encode(self, key: bytes) -> bytes:
        """The position of ``key``."""

    def decode(self, position: bytes) -> bytes:
        """The user key at ``position``."""
        return position[self.prefix_bytes :]

    def bucket(self, position: bytes) -> bytes:
        return position[: self.bucket_bytes]

    def __repr__(self) -> str:
        return f"<{self.name} order>"


class HashOrder(KeyOrder):
    """Positions ordered by Redis Cluster slot, then by key."""

    name = "hash"
    prefix_bytes = 2
    bucket_bytes = 2

    def encode(self, key: bytes) -> bytes:
        # key_slot inlined for the common key without a "{": this runs for every key read or
        # written. The slot's two bytes come from a table (cheaper than int.to_bytes).
        if b"{" in key:
            return _SLOT_PREFIXES[key_slot(key)] + key
        return _SLOT_PREFIXES[crc_hqx(key, 0) & _SLOT_MASK] + key

    @staticmethod
    def slot_of(position: bytes) -> int:
        return int.from_bytes(position[:2], "big")

    @staticmethod
    def slot_span(first_slot: int, end_slot: int) -> KeySpan:
        """The span of slots ``first_slot <= slot < end_slot``."""
        if not 0 <= first_slot < end_slot <= SLOT_COUNT:
            raise ValueError(f"not a slot range: [{first_slot}, {end_slot})")
        start = b"" if first_slot == 0 else _SLOT_PREFIXES[first_slot]
        return KeySpan(start, None if end_slot == SLOT_COUNT else _SLOT_PREFIXES[end_slot])

    @classmethod
    def even_spans(cls, count: int) -> list[KeySpan]:
        """``count`` spans of (nearly) equal numbers of slots that together cover everything,
        in order: how a node bootstraps a fixed set of groups."""
        if not 1 <= count <= SLOT_COUNT:
            raise ValueError(f"between 1 and {SLOT_COUNT} spans, got {count}")
        cuts = [i * SLOT_COUNT // count for i in range(count + 1)]
        return [cls.slot_span(lo, hi) for lo, hi in pairwise(cuts)]


class RangeOrder(KeyOrder):
    """Positions in raw key order (one constant prefix byte, so the empty key is storable)."""

    name = "range"
    prefix_bytes = 1
    bucket_bytes = 1
    _PREFIX = b"r"

    def encode(self, key: bytes) -> bytes:
        return self._PREFIX + key

    @classmethod
    def key_span(cls, start: bytes, end: bytes | None) -> KeySpan:
        """The span of user keys ``start <= key < end`` (``end`` None: no upper bound)."""
        return KeySpan(
            b"" if not start else cls._PREFIX + start, None if end is None else cls._PREFIX + end
        )


_SLOT_MASK: Final = SLOT_COUNT - 1
_SLOT_PREFIXES: Final = tuple(slot.to_bytes(2, "big") for slot in range(SLOT_COUNT))

HASH_ORDER: Final = HashOrder()
RANGE_ORDER: Final = RangeOrder()
ORDERS: Final[dict[str, KeyOrder]] = {HASH_ORDER.name: HASH_ORDER, RANGE_ORDER.name: RANGE_ORDER}
"""Every order by the name a store records."""
