"""Rendezvous hashing (highest random weight), with weights.

Theory of operation: every (key, node) pair gets a pseudo-random score and the key goes to the
node with the highest score. Adding a node moves only the keys for which the newcomer scores
highest (``1/(N+1)`` of them); removing one moves only its own keys, each to its runner-up.
No table or ring is kept, but a lookup scores every node: O(N).

Scores: the key is hashed once (BLAKE2b-64) and mixed with each node's hash by SplitMix64,
giving ``u`` uniform in (0, 1). With weights the score is ``-weight / ln(u)`` (the
"logarithmic method" of weighted rendezvous): the chance that a node wins is exactly its
weight over the total weight, and changing one node's weight only moves keys to or from it.
Equal scores (practically impossible) go to the smaller name, so placement depends only on
the node set and weights.
"""

from __future__ import annotations

import math

from kvorum.sharding._hash import Key, hash64, mix64
from kvorum.sharding._placement import Nodes, check_can_add, check_can_remove, weighted_nodes

_UNIT = 1.0 / (1 << 53)


class Rendezvous:
    """Weighted highest-random-weight placement."""

    def __init__(self, nodes: Nodes) -> None:
        self._weights = weighted_nodes(nodes)
        self._node_hashes = {node: hash64(node) for node in self._weights}

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    def score(self, key: Key, node: str) -> float:
        """The score of ``node`` for ``key`` (the owner has the highest)."""
        return self._score(hash64(key), node)

    def _score(self, key_hash: int, node: str) -> float:
        mixed = mix64(key_hash ^ self._node_hashes[node])
        # The top 53 bits, centred in their cell, give u strictly inside (0, 1).
        unit = ((mixed >> 11) + 0.5) * _UNIT
        return -self._weights[node] / math.log(unit)

    def ranked(self, key: Key) -> list[str]:
        """All nodes, best score first: the owner, then where the key goes if it leaves."""
        key_hash = hash64(key)
        return sorted(self._weights, key=lambda n: (-self._score(key_hash, n), n))

    def lookup(self, key: Key) -> str:
        key_hash = hash64(key)
        best_node = ""
        best_score = -1.0
        for node in self._weights:
            score = self._score(key_hash, node)
            if score > best_score or (score == best_score and node < best_node):
                best_node, best_score = node, score
        return best_node

    def add_node(self, node: str, weight: float = 1.0) -> None:
        self._weights[node] = check_can_add(self._weights, node, weight)
        self._node_hashes[node] = hash64(node)

    def remove_node(self, node: str) -> None:
        check_can_remove(self._weights, node)
        del self._weights[node]
        del self._node_hashes[node]
