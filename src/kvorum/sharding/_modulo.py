"""Modulo hashing: ``slot = hash(key) mod N``.

Theory of operation: the nodes form a list of slots (a node of integer weight ``w`` takes ``w``
consecutive slots) and a key goes to ``slots[hash64(key) % len(slots)]``. It is as even as the
hash and needs no state beyond the list, but the owner of almost every key depends on ``N``:
when a slot is added or removed, a key stays only if ``h mod N == h mod N±1``, about ``1/N`` of
keys — so nearly everything moves. That is the problem consistent hashing (SHARD-1, CH-1)
solves; this class exists as the baseline.
"""

from __future__ import annotations

from kvorum.sharding._errors import BadWeightError
from kvorum.sharding._hash import Key, hash64
from kvorum.sharding._placement import Nodes, check_can_add, check_can_remove, weighted_nodes


def _slots_for(node: str, weight: float) -> int:
    if weight != int(weight):
        raise BadWeightError(f"modulo hashing needs whole-number weights; {node!r} has {weight}")
    return int(weight)


class ModuloHash:
    """``hash64(key) mod N`` over a list of node slots (whole-number weights only)."""

    def __init__(self, nodes: Nodes) -> None:
        self._weights: dict[str, float] = {}
        for node, weight in weighted_nodes(nodes).items():
            _slots_for(node, weight)
            self._weights[node] = weight
        self._rebuild()

    def _rebuild(self) -> None:
        self._slots = [n for n, w in self._weights.items() for _ in range(_slots_for(n, w))]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    def lookup(self, key: Key) -> str:
        return self._slots[hash64(key) % len(self._slots)]

    def add_node(self, node: str, weight: float = 1.0) -> None:
        weight = check_can_add(self._weights, node, weight)
        _slots_for(node, weight)
        self._weights[node] = weight
        self._rebuild()

    def remove_node(self, node: str) -> None:
        check_can_remove(self._weights, node)
        del self._weights[node]
        self._rebuild()
