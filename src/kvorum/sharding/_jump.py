"""Jump consistent hash (Lamping & Veach, 2014).

Theory of operation: jump hash maps a 64-bit key hash to a bucket in ``[0, N)`` with no table
at all. Think of the key growing the number of buckets from 1 to ``N`` one at a time: at each
step it jumps to the new bucket with probability ``1/(b+1)``, which keeps buckets even and
means that going from ``N`` to ``N+1`` buckets moves exactly the keys that jump to the new
bucket, ``1/(N+1)`` of them — the ideal. A seeded linear congruential generator (driven by the
key) picks the jumps, and only the steps where a jump happens are visited, so a lookup costs
O(log N).

The price: buckets are *numbers*, so only the last bucket can leave without extra movement,
and there are no weights. :class:`JumpHash` names buckets by keeping the nodes in a list;
removing a node other than the last moves the last node into the freed bucket (its keys move
too, about ``2/N`` in all instead of ``1/N``).
"""

from __future__ import annotations

from kvorum.sharding._errors import BadWeightError
from kvorum.sharding._hash import MASK64, Key, hash64
from kvorum.sharding._placement import Nodes, check_can_add, check_can_remove, weighted_nodes

_LCG_MULTIPLIER = 2862933555777941757  # the 64-bit LCG constant the paper uses


def jump_bucket(key_hash: int, num_buckets: int) -> int:
    """The bucket in ``[0, num_buckets)`` for a 64-bit ``key_hash`` (Lamping & Veach)."""
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    state = key_hash & MASK64
    bucket, candidate = -1, 0
    while candidate < num_buckets:
        bucket = candidate
        state = (state * _LCG_MULTIPLIER + 1) & MASK64
        # The next bucket this key jumps to: (b+1) / r for r uniform in (0, 1].
        candidate = int((bucket + 1) * (float(1 << 31) / float((state >> 33) + 1)))
    return bucket


def _check_unweighted(node: str, weight: float) -> None:
    if weight != 1.0:
        raise BadWeightError(f"jump hash has no weights; node {node!r} was given {weight}")


class JumpHash:
    """Jump consistent hash over a list of nodes (bucket ``i`` is ``nodes[i]``)."""

    def __init__(self, nodes: Nodes) -> None:
        weights = weighted_nodes(nodes)
        for node, weight in weights.items():
            _check_unweighted(node, weight)
        self._buckets = list(weights)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._buckets)

    def lookup(self, key: Key) -> str:
        return self._buckets[jump_bucket(hash64(key), len(self._buckets))]

    def add_node(self, node: str, weight: float = 1.0) -> None:
        weight = check_can_add(self._buckets, node, weight)
        _check_unweighted(node, weight)
        self._buckets.append(node)

    def remove_node(self, node: str) -> None:
        """Remove ``node``. Removing the last-added node is minimal; any other node's bucket is
        taken over by the last node, so the last node's keys move as well."""
        check_can_remove(self._buckets, node)
        index = self._buckets.index(node)
        last = self._buckets.pop()
        if index < len(self._buckets):
            self._buckets[index] = last
