"""What every group view of a shared keyspace does the same way, whatever stores the keys.

Theory of operation: a keyspace (in memory or in LMDB) holds many groups' keys in one ordered
space, and each group sees its span of it through a view that is that group's
:class:`~kvorum.kv.engine.Engine`. How a view reads and writes depends on the store; what it
does around that does not, and lives here once: turning a key into its position and refusing
one outside the span, refusing use after close, the group's counts, and the expiry floor — a
lower bound of the group's next expiry, kept in the group's record so that an idle group can
answer "nothing expires before T" without walking its index. A walk that returns due keys
makes the floor unknown (they are about to be deleted); a complete walk that returns none
sets it. A subclass supplies :meth:`SpanView._walk`, the store's walk of its expiry index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from kvorum.core.shape import GroupId
from kvorum.kv.engine import EngineClosedError, KeyOutsideSpanError
from kvorum.kv.expiry_index import DueKeys
from kvorum.kv.key_order import FULL_SPAN, KeyOrder, KeySpan

NEVER_MS = -(1 << 63) - 1
"""Earlier than any expire time: a walk at this time finds nothing due."""


class SharedKeyspace(Protocol):
    """What a view needs of the keyspace it looks into."""

    @property
    def order(self) -> KeyOrder: ...

    def _check_open(self) -> None: ...


class GroupRecord(Protocol):
    """What a view needs of its group's record: the span, counts and the expiry floor."""

    span: KeySpan
    applied: int
    keys: int
    expiring: int
    floor_ms: int | None
    floor_known: bool


class SpanView(ABC):
    """One group's span of a shared keyspace; see the module docstring."""

    def __init__(self, keyspace: SharedKeyspace, group_id: GroupId, group: GroupRecord) -> None:
        self.group_id = group_id
        self._group = group
        self._encode = keyspace.order.encode
        self._decode = keyspace.order.decode
        self._whole = group.span == FULL_SPAN
        """Every position is in the span: no need to check keys (the one-group node)."""
        self._closed = False
        self._check_keyspace_open = keyspace._check_open

    @property
    def span(self) -> KeySpan:
        return self._group.span

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError(f"view of group {self.group_id} used after close()")
        self._check_keyspace_open()

    def _position(self, key: bytes) -> bytes:
        position = self._encode(key)
        if not self._whole and not self._group.span.contains(position):
            raise KeyOutsideSpanError(
                f"key {key[:40]!r} is outside group {self.group_id}'s span {self._group.span}"
            )
        return position

    def count(self) -> int:
        self._check_open()
        return self._group.keys

    def expiring_count(self) -> int:
        self._check_open()
        return self._group.expiring

    def applied_index(self) -> int:
        self._check_open()
        return self._group.applied

    def next_expiry_ms(self) -> int | None:
        self._check_open()
        group = self._group
        if group.expiring == 0:
            return None
        if not group.floor_known:
            group.floor_ms = self._walk(NEVER_MS, 0).later_ms
            group.floor_known = True
        return group.floor_ms

    def expired_keys(self, now_ms: int, limit: int) -> list[bytes]:
        self._check_open()
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        walk = self._walk(now_ms, limit)
        group = self._group
        if walk.positions:
            group.floor_known = False  # about to be deleted: find the new floor when asked
        elif walk.complete:
            group.floor_ms, group.floor_known = walk.later_ms, True
        decode = self._decode
        return [decode(p) for p in walk.positions]

    @abstractmethod
    def _walk(self, now_ms: int, limit: int) -> DueKeys:
        """The store's walk of this span's expiry index
        (:func:`kvorum.kv.expiry_index.walk_due`)."""
