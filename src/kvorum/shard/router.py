"""Which group holds a key: Redis Cluster hash slots, cut into one contiguous run per group.

Theory of operation: a key's position in the keyspace is its Redis Cluster hash slot
(:func:`kvorum.sharding.key_slot`: CRC16 mod 16384, honouring ``{hash tags}``), so keys that
share a tag share a group, and multi-key commands on them stay in one group. The groups made
when a cluster is created split the 16,384 slots into equal contiguous runs, in group-id
order; every node computes the same table from the same list of groups, so any node can
route any key. (Splitting, merging and moving ranges at run time, with epochs that tell a
client its routing is stale, is the sharded-keyspace issue's work; the table here is fixed.)
"""

from __future__ import annotations

from collections.abc import Sequence

from kvorum.core.shape import GroupId
from kvorum.sharding import SLOT_COUNT, key_slot


class SlotRouter:
    """A fixed map from hash slots to groups."""

    __slots__ = ("_by_slot", "_spans", "group_ids")

    def __init__(self, group_ids: Sequence[GroupId]) -> None:
        if not group_ids:
            raise ValueError("a keyspace needs at least one group")
        if len(group_ids) > SLOT_COUNT:
            raise ValueError(f"at most {SLOT_COUNT} groups (one slot each)")
        self.group_ids = sorted(group_ids)
        count = len(self.group_ids)
        self._spans: dict[GroupId, tuple[int, int]] = {}
        by_slot: list[GroupId] = []
        for i, gid in enumerate(self.group_ids):
            lo, hi = i * SLOT_COUNT // count, (i + 1) * SLOT_COUNT // count
            self._spans[gid] = (lo, hi)
            by_slot.extend([gid] * (hi - lo))
        self._by_slot = by_slot

    def group_of(self, key: bytes) -> GroupId:
        return self._by_slot[key_slot(key)]

    def slot_span(self, group_id: GroupId) -> tuple[int, int]:
        """The slots ``[lo, hi)`` that ``group_id`` holds."""
        return self._spans[group_id]

    def __len__(self) -> int:
        return len(self.group_ids)
