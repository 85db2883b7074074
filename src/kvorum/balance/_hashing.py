"""Key-affine strategies: plain key hash (IP hash) and consistent hashing with bounded loads.

Theory of operation: both send the same key (a client IP, a cache key) to the same backend
while the set of backends stays the same, which keeps sessions and caches warm. *Key hash*
takes ``hash(key) mod n`` over the eligible backends: perfectly simple, but when ``n``
changes almost every key moves (going from n to n+1 keeps only about ``1/(n+1)`` of them).
*Consistent hashing* puts each backend at many pseudo-random points ("virtual nodes", in
proportion to its weight) on a ring of 64-bit hashes and sends a key to the first backend
clockwise from the key's own hash; adding a backend only takes over the arcs in front of its
new points, about ``1/(n+1)`` of the keys, and removing one only moves its own keys.

*Bounded loads* (Mirrokni, Thorup and Zadimoghaddam, 2017) fixes consistent hashing's weak
spot, a hot key or an unlucky arc overloading one backend: no backend may have more than
``ceil(load_factor × average load)`` requests in flight (weighted), and a key whose home is
full walks on clockwise to the next backend with room. With ``load_factor`` = 1.25 no backend
carries more than 25% above average, and most keys still land on their home backend.
Ejected backends are skipped the same way. Because each backend owns many small arcs rather
than one big one, the keys of a skipped backend spread over many neighbours instead of all
landing on the next one.

Hashes are BLAKE2b, not Python's ``hash()``, which is salted per process: two clients (or
two runs) must agree on where a key lives.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from kvorum.balance._backend import Backend, BalancerError
from kvorum.balance._base import Balancer
from kvorum.balance._health import PassiveHealth
from kvorum.sharding import HashRing, hash64


def stable_hash64(data: bytes) -> int:
    """A 64-bit hash of ``data`` that is the same in every process and on every machine."""
    return hash64(data)


class KeyHash(Balancer):
    """``hash(key) mod n`` over the eligible backends (IP hash); ignores weights and load."""

    needs_key = True

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        assert key is not None  # pick() enforces needs_key
        return eligible[stable_hash64(key) % len(eligible)]


class ConsistentHashBoundedLoad(Balancer):
    """A hash ring with ``vnodes_per_weight × weight`` points per backend, and a cap of
    ``ceil(load_factor × average)`` requests in flight per backend (``load_factor=None``:
    no cap, plain consistent hashing)."""

    needs_key = True

    def __init__(
        self,
        backends: Iterable[Backend],
        *,
        vnodes_per_weight: int = 100,
        load_factor: float | None = 1.25,
        health: PassiveHealth | None = None,
    ) -> None:
        if vnodes_per_weight < 1:
            raise BalancerError(f"vnodes_per_weight must be >= 1, got {vnodes_per_weight}")
        if load_factor is not None and not (math.isfinite(load_factor) and load_factor >= 1.0):
            raise BalancerError(
                f"load_factor must be >= 1 (1 = perfectly even) or None, got {load_factor}"
            )
        self._vnodes_per_weight = vnodes_per_weight
        self._load_factor = load_factor
        # The same ring kvorum.sharding places shards with (BLAKE2b points, ties broken by
        # name, so every process builds the same ring from the same backends).
        self._ring: HashRing | None = None
        super().__init__(backends, health=health)

    def home(self, key: bytes) -> Backend:
        """The backend that owns ``key`` on the ring, ignoring health and load."""
        assert self._ring is not None  # a balancer always has a backend
        return self._backends[self._ring.lookup(key)]

    def capacity(self, backend: Backend, eligible: Sequence[Backend]) -> float:
        """How many requests ``backend`` may have in flight before the next one walks on.

        Counts the request being placed, so an idle fleet always has room.
        """
        if self._load_factor is None:
            return math.inf
        total_active = sum(self._active[b.name] for b in eligible) + 1
        total_weight = sum(b.weight for b in eligible)
        return math.ceil(self._load_factor * total_active * backend.weight / total_weight)

    def _added(self, backend: Backend) -> None:
        if self._ring is None:
            self._ring = HashRing({backend.name: backend.weight}, vnodes=self._vnodes_per_weight)
        else:
            self._ring.add_node(backend.name, backend.weight)

    def _removed(self, backend: Backend) -> None:
        assert self._ring is not None
        if len(self._ring.nodes) == 1:
            self._ring = None  # the ring cannot be empty; the next add builds a new one
        else:
            self._ring.remove_node(backend.name)

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        assert key is not None  # pick() enforces needs_key
        by_name = {b.name: b for b in eligible}
        full: set[str] = set()
        if self._load_factor is not None:
            full = {b.name for b in eligible if self._active[b.name] >= self.capacity(b, eligible)}
        assert self._ring is not None
        for name in self._ring.clockwise(key):
            if name in by_name and name not in full:
                return by_name[name]
        # Unreachable: the caps add up to more than the load, so someone has room, and every
        # backend has at least one point. Kept as a safe answer rather than an exception.
        return eligible[0]
