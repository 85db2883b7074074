"""Strategies that ignore load: round robin, smooth weighted round robin, weighted random.

Theory of operation: these decide from configuration alone (order and weights), so they are
cheap and predictable, and they spread requests *evenly* — which is only what you want when
every backend is equally fast. Round robin keeps a counter and takes ``counter mod n`` of
the eligible backends. Smooth weighted round robin is nginx's algorithm: every backend has a
running score; on each pick every eligible backend's score grows by its weight, the highest
score wins, and the winner's score drops by the total weight. Over any ``sum(weights)``
consecutive picks each backend is chosen exactly ``weight`` times, and the heavy backend's
picks are interleaved with the others' instead of coming in a burst ({a:5, b:1, c:1} gives
``a a b a c a a``, not ``a a a a a b c``). Weighted random draws a backend with probability
``weight / total``: no shared state between clients, so many independent clients do not
synchronise, at the cost of short-term unevenness.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from random import Random

from kvorum.balance._backend import Backend
from kvorum.balance._base import Balancer
from kvorum.balance._health import PassiveHealth


class RoundRobin(Balancer):
    """Each eligible backend in turn, ignoring weights and load."""

    def __init__(self, backends: Iterable[Backend], *, health: PassiveHealth | None = None) -> None:
        self._picks = 0
        super().__init__(backends, health=health)

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        chosen = eligible[self._picks % len(eligible)]
        self._picks += 1
        return chosen


class SmoothWeightedRoundRobin(Balancer):
    """nginx's smooth weighted round robin: exact weight shares, interleaved."""

    def __init__(self, backends: Iterable[Backend], *, health: PassiveHealth | None = None) -> None:
        self._score: dict[str, int] = {}
        super().__init__(backends, health=health)

    def _added(self, backend: Backend) -> None:
        self._score[backend.name] = 0

    def _removed(self, backend: Backend) -> None:
        del self._score[backend.name]

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        total = 0
        chosen = eligible[0]
        best = None
        for backend in eligible:
            score = self._score[backend.name] + backend.weight
            self._score[backend.name] = score
            total += backend.weight
            # Strictly greater: ties go to the earlier backend, which makes sequences exact.
            if best is None or score > best:
                best, chosen = score, backend
        self._score[chosen.name] -= total
        return chosen


class WeightedRandom(Balancer):
    """A backend drawn at random with probability proportional to its weight."""

    def __init__(
        self, backends: Iterable[Backend], rng: Random, *, health: PassiveHealth | None = None
    ) -> None:
        self._rng = rng
        super().__init__(backends, health=health)

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        cumulative = list(itertools.accumulate(b.weight for b in eligible))
        # randrange over integers keeps the draw exact (no float rounding at the edges).
        ticket = self._rng.randrange(cumulative[-1])
        return eligible[bisect.bisect_right(cumulative, ticket)]
