"""What the LMDB keyspace stores where: database names, metadata keys, and a group's record.

Theory of operation: the on-disk layout of :mod:`kvorum.storage.lmdb_keyspace` in one place,
shared by the keyspace (which opens, checks and writes it) and its group views (which read and
write their part). Three named databases: ``data`` (positions to values), ``expires`` (the
expiry index, sorted duplicates) and ``meta``. In ``meta``: ``format`` (a u32 version),
``order`` (the key order's name), and per group, keyed by its id as 8 big-endian bytes,
``span/<id>`` (msgpack ``[start, end]``) and ``group/<id>`` (applied index, key count and
expiring-key count as three u64), the last rewritten with every batch the group applies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kvorum.core.shape import GroupId
from kvorum.kv.key_order import KeySpan

FORMAT_VERSION = 2
"""This layout. 1 was the single-group layout (one ``data`` database, no version recorded)."""
DATABASES = (b"data", b"expires", b"meta")
FORMAT_KEY = b"format"
ORDER_KEY = b"order"
SPAN_PREFIX = b"span/"
VERSION = struct.Struct(">I")
COUNTS = struct.Struct(">QQQ")
"""A group's applied index, key count and expiring-key count."""
_GROUP_ID = struct.Struct(">Q")
_COUNTS_PREFIX = b"group/"


def span_key(group_id: GroupId) -> bytes:
    return SPAN_PREFIX + _GROUP_ID.pack(group_id)


def group_of_span_key(key: bytes) -> GroupId:
    group_id: int = _GROUP_ID.unpack(key[len(SPAN_PREFIX) :])[0]
    return group_id


def counts_key(group_id: GroupId) -> bytes:
    return _COUNTS_PREFIX + _GROUP_ID.pack(group_id)


@dataclass(slots=True)
class GroupRecord:
    """A group's span and its counts as of the open transaction (``applied``, ``keys``,
    ``expiring``) and as last committed; ``floor_ms`` bounds its next expiry from below while
    ``floor_known``."""

    span: KeySpan
    counts_key: bytes
    applied: int = 0
    keys: int = 0
    expiring: int = 0
    committed: tuple[int, int, int] = (0, 0, 0)
    floor_ms: int | None = None
    floor_known: bool = False

    def commit(self) -> None:
        self.committed = (self.applied, self.keys, self.expiring)

    def roll_back(self) -> None:
        """Back to the last commit (the floor is recomputed when next asked for)."""
        self.applied, self.keys, self.expiring = self.committed
        self.floor_known = False
