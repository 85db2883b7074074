"""Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, 2018).

Theory of operation: a plain ring can pile many keys (or requests) onto one unlucky node. Here
every node has a capacity, ``ceil(c × average load)`` — with ``m`` the load *including* the
item being placed, ``N`` nodes and balance factor ``c ≥ 1`` (default 1.25), a node of weight
``w`` out of total ``W`` may hold ``ceil(c · m · w / W)`` (for equal weights ``ceil(c·m/N)``).
An item goes to the first node clockwise from its hash on the ring that is still under its
capacity. Because the capacities add up to at least ``m``, some node always has room, and no
node ever goes over its capacity when it receives an item. Items mostly stay on their ring
owner; only overflow walks on, so movement on node changes stays close to a ring's while the
maximum load is at most ``c`` times the average.

Items are counted, not stored: :meth:`BoundedLoadRing.assign` adds one unit of load for a key
(a request in flight, a cached key) and :meth:`BoundedLoadRing.release` takes the most recent
unit for that key away. Releasing lowers ``m`` and so capacities, but nothing already placed is
moved: the bound is kept for every placement, as in a load balancer that never migrates live
requests. Removing a node forgets the units it held; callers re-assign them if they need to.
"""

from __future__ import annotations

import math

from kvorum.sharding._errors import CapacityExceededError, ShardingError
from kvorum.sharding._hash import Key
from kvorum.sharding._placement import Nodes, weighted_nodes
from kvorum.sharding._ring import HashRing

DEFAULT_BALANCE_FACTOR = 1.25


class BoundedLoadRing:
    """A consistent-hash ring whose nodes never receive load beyond ``ceil(c × average)``."""

    def __init__(
        self, nodes: Nodes, balance_factor: float = DEFAULT_BALANCE_FACTOR, vnodes: int = 160
    ) -> None:
        """``balance_factor`` is ``c`` (≥ 1; the paper's ``1 + ε``); ``vnodes`` as in
        :class:`HashRing`."""
        if not isinstance(balance_factor, int | float) or not balance_factor >= 1.0:
            raise ShardingError(f"balance_factor must be >= 1, got {balance_factor!r}")
        if math.isinf(balance_factor):
            raise ShardingError("balance_factor must be finite")
        self._balance_factor = float(balance_factor)
        weights = weighted_nodes(nodes)
        self._ring = HashRing(weights, vnodes=vnodes)
        self._weights = weights
        self._weight_sum = sum(weights.values())
        self._loads = dict.fromkeys(weights, 0)
        self._total_load = 0
        # Each key's units, most recent last, so release() knows which node to unload.
        self._placed: dict[Key, list[str]] = {}

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    @property
    def balance_factor(self) -> float:
        return self._balance_factor

    @property
    def total_load(self) -> int:
        """Units currently assigned across all nodes."""
        return self._total_load

    def loads(self) -> dict[str, int]:
        """Units currently held by each node."""
        return dict(self._loads)

    def capacity(self, node: str, total_load: int | None = None) -> int:
        """``node``'s capacity when the total load (counting the item being placed) is
        ``total_load``; by default, the capacity for the next assignment."""
        if node not in self._weights:
            raise ShardingError(f"node {node!r} is not present")
        load = self._total_load + 1 if total_load is None else total_load
        weight_sum = self._weight_sum
        # The small tolerance keeps float rounding from turning an exact integer into +1.
        return math.ceil(self._balance_factor * load * self._weights[node] / weight_sum - 1e-9)

    def lookup(self, key: Key) -> str:
        """Where :meth:`assign` would place ``key`` now (changes nothing)."""
        total = self._total_load + 1
        for node in self._ring.clockwise(key):
            if self._loads[node] < self.capacity(node, total):
                return node
        raise CapacityExceededError(f"every node is at capacity for total load {total}")

    def assign(self, key: Key) -> str:
        """Place one unit of load for ``key`` and return the node that took it; that node was
        under its capacity before, so it is at most at capacity now."""
        node = self.lookup(key)
        self._loads[node] += 1
        self._total_load += 1
        self._placed.setdefault(key, []).append(node)
        return node

    def release(self, key: Key) -> str:
        """Remove the most recent unit assigned for ``key``; returns the node it was on."""
        units = self._placed.get(key)
        if not units:
            raise ShardingError(f"key {key!r} has no assigned load to release")
        node = units.pop()
        if not units:
            del self._placed[key]
        self._loads[node] -= 1
        self._total_load -= 1
        return node

    def assigned_to(self, node: str) -> list[Key]:
        """The keys with units on ``node`` (one entry per unit)."""
        return [key for key, units in self._placed.items() for n in units if n == node]

    def add_node(self, node: str, weight: float = 1.0) -> None:
        self._ring.add_node(node, weight)
        self._weights[node] = float(weight)
        self._weight_sum = sum(self._weights.values())
        self._loads[node] = 0

    def remove_node(self, node: str) -> None:
        """Remove ``node`` and forget the units it held (see :meth:`assigned_to`)."""
        self._ring.remove_node(node)
        del self._weights[node]
        self._weight_sum = sum(self._weights.values())
        self._total_load -= self._loads.pop(node)
        for key in list(self._placed):
            kept = [n for n in self._placed[key] if n != node]
            if kept:
                self._placed[key] = kept
            else:
                del self._placed[key]
