"""Consistent-hash rings: a general one with virtual nodes and weights, and a ketama one.

Theory of operation: node names are hashed to many points ("virtual nodes") on a circle of
hash values; a key belongs to the first point at or after its own hash, wrapping past the top.
Adding a node only claims the arcs just before its new points, so about ``1/(N+1)`` of keys
move, all of them *to* the new node; removing a node hands only its arcs to the next points.
Many points per node smooth out the arc lengths (the spread shrinks roughly as
``1/sqrt(vnodes)``), and a weight scales a node's number of points.

Two flavours share the lookup (a binary search over the sorted points, O(log P)):

* :class:`HashRing` — BLAKE2b-64 points named ``"<node>#<i>"``, ``round(vnodes × weight)``
  points per node (at least one). Placement depends only on the set of nodes and weights,
  never on the order they were added: equal points (a 2⁻⁶⁴ event) go to the smaller name.
* :class:`KetamaRing` — places keys exactly as ``uhashring.HashRing(hash_fn="ketama")`` (and
  so libketama-style clients) do: each node gets ``vnodes × N × weight // Σweight`` names
  ``"<node>-<w>"``, each name's MD5 digest yields ``replicas`` little-endian 32-bit points,
  a key is hashed the same way (first 4 bytes) and goes to the first point *strictly after*
  it. Equal points go to the node added last, as in uhashring. Compatibility holds for ``str``
  keys; ``bytes`` keys are hashed as-is (uhashring would hash their ``repr``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from fractions import Fraction

from kvorum.sharding._errors import ShardingError
from kvorum.sharding._hash import Key, hash64, key_bytes
from kvorum.sharding._placement import Nodes, check_can_add, check_can_remove, weighted_nodes


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ShardingError(f"{name} must be an int >= 1, got {value!r}")


class _SortedPoints:
    """Sorted ring points with their owners, kept as two parallel lists for fast bisection."""

    def __init__(self) -> None:
        self.points: list[int] = []
        self.owners: list[str] = []

    def load(self, owner_by_point: dict[int, str]) -> None:
        self.points = sorted(owner_by_point)
        self.owners = [owner_by_point[p] for p in self.points]

    def share_by_node(self, space: int) -> dict[str, float]:
        """Each node's fraction of the hash circle ``[0, space)``: the arcs ending at its
        points (a point owns the hashes from just after its predecessor up to itself)."""
        shares: dict[str, float] = {}
        previous = self.points[-1] - space  # wraps: the last point precedes the first
        for point, owner in zip(self.points, self.owners, strict=True):
            shares[owner] = shares.get(owner, 0.0) + (point - previous) / space
            previous = point
        return shares


class HashRing:
    """A consistent-hash ring with virtual nodes and per-node weights (BLAKE2b-64 points)."""

    def __init__(self, nodes: Nodes, vnodes: int = 160) -> None:
        """``vnodes`` is the number of points for a node of weight 1."""
        _check_positive("vnodes", vnodes)
        self._vnodes = vnodes
        self._weights = weighted_nodes(nodes)
        self._owner_by_point: dict[int, str] = {}
        for node in self._weights:
            self._place(node)
        self._sorted = _SortedPoints()
        self._sorted.load(self._owner_by_point)

    def _points_of(self, node: str) -> list[int]:
        count = max(1, round(self._vnodes * self._weights[node]))
        return [hash64(f"{node}#{i}") for i in range(count)]

    def _place(self, node: str) -> None:
        for point in self._points_of(node):
            holder = self._owner_by_point.get(point)
            if holder is None or node < holder:
                self._owner_by_point[point] = node

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    @property
    def point_count(self) -> int:
        """How many points are on the ring."""
        return len(self._sorted.points)

    def lookup(self, key: Key) -> str:
        index = bisect_left(self._sorted.points, hash64(key))
        return self._sorted.owners[index % len(self._sorted.owners)]

    def clockwise(self, key: Key) -> Iterator[str]:
        """Every node once, in the order met walking clockwise from ``key`` (owner first)."""
        start = bisect_left(self._sorted.points, hash64(key))
        seen: set[str] = set()
        total = len(self._sorted.owners)
        for step in range(total):
            owner = self._sorted.owners[(start + step) % total]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == len(self._weights):
                    return

    def preference_list(self, key: Key, count: int) -> list[str]:
        """Up to ``count`` distinct nodes met walking clockwise from ``key`` (its owner first):
        where replicas of ``key`` go."""
        _check_positive("count", count)
        return list(itertools.islice(self.clockwise(key), count))

    def shares(self) -> dict[str, float]:
        """Each node's exact fraction of the hash space (sums to 1)."""
        return self._sorted.share_by_node(1 << 64)

    def add_node(self, node: str, weight: float = 1.0) -> None:
        self._weights[node] = check_can_add(self._weights, node, weight)
        self._place(node)
        self._sorted.load(self._owner_by_point)

    def remove_node(self, node: str) -> None:
        check_can_remove(self._weights, node)
        del self._weights[node]
        # A point the removed node won on a tie may belong to another node too: rebuild
        # rather than delete, so the result equals a ring built without the node.
        self._owner_by_point = {}
        for other in self._weights:
            self._place(other)
        self._sorted.load(self._owner_by_point)


def ketama_points(name: str) -> list[int]:
    """The four little-endian 32-bit points ketama derives from the MD5 of ``name``."""
    digest = hashlib.md5(name.encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


class KetamaRing:
    """A ring that places ``str`` keys exactly as ``uhashring.HashRing(hash_fn="ketama")``.

    Unlike :class:`HashRing`, a node's number of points depends on every node's weight (that is
    ketama's formula), so changing the weights of *unequal* nodes can shift points of others.
    A node whose weight share rounds down to no points owns no keys, as in uhashring.
    """

    def __init__(self, nodes: Nodes, vnodes: int = 40, replicas: int = 4) -> None:
        """``vnodes`` names per node of average weight, each giving ``replicas`` points
        (1..4: an MD5 digest holds four 32-bit points). uhashring's defaults: 40 and 4."""
        _check_positive("vnodes", vnodes)
        _check_positive("replicas", replicas)
        if replicas > 4:
            raise ShardingError(f"replicas must be at most 4 (one MD5 digest), got {replicas}")
        self._vnodes = vnodes
        self._replicas = replicas
        self._weights = weighted_nodes(nodes)
        self._sorted = _SortedPoints()
        self._rebuild()

    def _rebuild(self) -> None:
        # Exact rational arithmetic so float weights round like uhashring's integer `//`.
        weight_sum = sum(Fraction(w) for w in self._weights.values())
        owner_by_point: dict[int, str] = {}
        for node, weight in self._weights.items():  # insertion order: last writer wins
            names = math.floor(self._vnodes * len(self._weights) * Fraction(weight) / weight_sum)
            for w in range(names):
                for point in ketama_points(f"{node}-{w}")[: self._replicas]:
                    owner_by_point[point] = node
        if not owner_by_point:
            raise ShardingError("no node has any ketama point; raise vnodes")
        self._sorted.load(owner_by_point)

    @staticmethod
    def key_hash(key: Key) -> int:
        """The 32-bit ketama hash of ``key`` (MD5, first four bytes, little-endian)."""
        digest = hashlib.md5(key_bytes(key)).digest()
        return int.from_bytes(digest[:4], "little")

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    @property
    def point_count(self) -> int:
        """How many distinct points are on the ring."""
        return len(self._sorted.points)

    def lookup(self, key: Key) -> str:
        index = bisect_right(self._sorted.points, self.key_hash(key))
        return self._sorted.owners[index % len(self._sorted.owners)]

    def shares(self) -> dict[str, float]:
        """Each node's exact fraction of the 32-bit hash space (sums to 1)."""
        # Keys hashing to a point belong to the *next* point; that shifts each arc by one
        # value out of 2³², far below anything a share can show.
        return self._sorted.share_by_node(1 << 32)

    def add_node(self, node: str, weight: float = 1.0) -> None:
        self._weights[node] = check_can_add(self._weights, node, weight)
        self._rebuild()

    def remove_node(self, node: str) -> None:
        check_can_remove(self._weights, node)
        del self._weights[node]
        self._rebuild()
