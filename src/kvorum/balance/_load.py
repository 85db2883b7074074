"""Load-aware strategies: least connections, least response time, P2C, peak-EWMA P2C.

Theory of operation: these send each request where it is expected to finish soonest, judged
from the feedback hooks. The *load* of a backend is what it is already doing — requests in
flight (``active``), which the client counts itself and so knows without delay — optionally
multiplied by how long a request there tends to take (a latency average), and divided by the
backend's weight (its capacity). Full scans (least connections, least response time) look at
every eligible backend; ties rotate so idle backends share traffic evenly instead of the first
one taking it all. *Power of two choices* samples two eligible backends at random and takes
the less loaded: almost as good as a full scan (the maximum load drops from
``O(log n / log log n)`` to ``O(log log n)`` over random placement), O(1) per pick, and —
what matters most with many clients — clients with slightly stale views do not all pile
onto the same "least loaded" backend at once.

Latency averages: least response time keeps a per-sample EWMA. Peak-EWMA (Finagle,
Linkerd) is more suspicious: a sample above the average replaces it at once (a slowdown is
believed immediately), lower samples pull it down gradually, and with time passing and no
samples it decays towards zero, so a backend that was slow once is retried eventually
rather than starved forever. Both count a failed request as at least ``failure_penalty_ms``:
a backend that fails fast would otherwise look like the fastest one and attract everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from random import Random

from kvorum.balance._backend import Backend, BalancerError
from kvorum.balance._base import Balancer
from kvorum.balance._health import PassiveHealth

DEFAULT_FAILURE_PENALTY_MS = 1_000.0
"""What a failed request counts as at least, for latency-based strategies."""


def _check_penalty(failure_penalty_ms: float) -> float:
    if not (math.isfinite(failure_penalty_ms) and failure_penalty_ms >= 0):
        raise BalancerError(f"failure_penalty_ms must be >= 0, got {failure_penalty_ms}")
    return float(failure_penalty_ms)


class _RotatingMin:
    """Argmin over a sequence whose ties go to a rotating position, for even sharing."""

    __slots__ = ("_offset",)

    def __init__(self) -> None:
        self._offset = 0

    def __call__(self, eligible: Sequence[Backend], cost: Callable[[Backend], float]) -> Backend:
        n = len(eligible)
        start = self._offset % n
        self._offset += 1
        best = eligible[start]
        best_cost = cost(best)
        for step in range(1, n):
            candidate = eligible[(start + step) % n]
            candidate_cost = cost(candidate)
            if candidate_cost < best_cost:
                best, best_cost = candidate, candidate_cost
        return best


class LeastConnections(Balancer):
    """The eligible backend with the fewest requests in flight per unit of weight."""

    def __init__(self, backends: Iterable[Backend], *, health: PassiveHealth | None = None) -> None:
        self._argmin = _RotatingMin()
        super().__init__(backends, health=health)

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        return self._argmin(eligible, lambda b: self._active[b.name] / b.weight)


class PowerOfTwoChoices(Balancer):
    """Of two eligible backends drawn at random, the one with fewer requests in flight
    per unit of weight."""

    def __init__(
        self, backends: Iterable[Backend], rng: Random, *, health: PassiveHealth | None = None
    ) -> None:
        self._rng = rng
        super().__init__(backends, health=health)

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        if len(eligible) == 1:
            return eligible[0]
        i, j = self._rng.sample(range(len(eligible)), 2)
        first, second = eligible[i], eligible[j]
        # Ties keep the first draw, which is itself random, so ties stay unbiased.
        if self._active[second.name] * first.weight < self._active[first.name] * second.weight:
            return second
        return first


class LeastResponseTime(Balancer):
    """The eligible backend with the least ``EWMA latency × (active + 1) / weight``.

    ``alpha`` is the weight of each new latency sample in the average (0 < alpha <= 1). A
    backend with no samples yet is assumed to be as fast as the average of those with
    samples, so a newcomer gets tried without being flooded.
    """

    def __init__(
        self,
        backends: Iterable[Backend],
        *,
        alpha: float = 0.3,
        failure_penalty_ms: float = DEFAULT_FAILURE_PENALTY_MS,
        health: PassiveHealth | None = None,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise BalancerError(f"alpha must be in (0, 1], got {alpha}")
        self._alpha = alpha
        self._failure_penalty_ms = _check_penalty(failure_penalty_ms)
        self._ewma_ms: dict[str, float | None] = {}
        self._argmin = _RotatingMin()
        super().__init__(backends, health=health)

    def latency_ms(self, backend: Backend | str) -> float | None:
        """The latency average of ``backend``, or ``None`` before its first sample."""
        return self._ewma_ms[self._name_of_known(backend)]

    def _added(self, backend: Backend) -> None:
        self._ewma_ms[backend.name] = None

    def _removed(self, backend: Backend) -> None:
        del self._ewma_ms[backend.name]

    def _finished(self, backend: Backend, latency_ms: float, ok: bool, now_ms: float) -> None:
        sample_ms = latency_ms if ok else max(latency_ms, self._failure_penalty_ms)
        old_ms = self._ewma_ms[backend.name]
        self._ewma_ms[backend.name] = (
            sample_ms if old_ms is None else old_ms + self._alpha * (sample_ms - old_ms)
        )

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        known = [ms for b in eligible if (ms := self._ewma_ms[b.name]) is not None]
        # With no samples at all the ranking degenerates to least connections.
        unknown_ms = sum(known) / len(known) if known else 1.0

        def cost(backend: Backend) -> float:
            ewma_ms = self._ewma_ms[backend.name]
            latency_ms = unknown_ms if ewma_ms is None else ewma_ms
            return latency_ms * (self._active[backend.name] + 1) / backend.weight

        return self._argmin(eligible, cost)


class PeakEwmaP2C(Balancer):
    """Power of two choices by ``peak-EWMA latency × (active + 1) / weight``.

    ``decay_ms`` is the time constant of the average: a sample ``decay_ms`` old weighs
    ``1/e`` of a fresh one, and an idle backend's estimate falls by a factor ``e`` every
    ``decay_ms``. ``default_latency_ms`` stands in for a backend with no samples yet.
    """

    def __init__(
        self,
        backends: Iterable[Backend],
        rng: Random,
        *,
        decay_ms: float = 10_000.0,
        default_latency_ms: float = 1.0,
        failure_penalty_ms: float = DEFAULT_FAILURE_PENALTY_MS,
        health: PassiveHealth | None = None,
    ) -> None:
        if not (math.isfinite(decay_ms) and decay_ms > 0):
            raise BalancerError(f"decay_ms must be > 0, got {decay_ms}")
        if not (math.isfinite(default_latency_ms) and default_latency_ms > 0):
            raise BalancerError(f"default_latency_ms must be > 0, got {default_latency_ms}")
        self._rng = rng
        self._decay_ms = float(decay_ms)
        self._default_latency_ms = float(default_latency_ms)
        self._failure_penalty_ms = _check_penalty(failure_penalty_ms)
        # name -> (estimate, when it was last updated); None before the first sample.
        self._estimate: dict[str, tuple[float, float] | None] = {}
        super().__init__(backends, health=health)

    def latency_ms(self, backend: Backend | str, now_ms: float | None = None) -> float:
        """The latency estimate of ``backend`` at ``now_ms``, decayed for the time since
        its last sample (``default_latency_ms`` before its first sample)."""
        now_ms = self._clock.advance(now_ms)
        estimate = self._estimate[self._name_of_known(backend)]
        if estimate is None:
            return self._default_latency_ms
        ewma_ms, stamp_ms = estimate
        return ewma_ms * math.exp(-(now_ms - stamp_ms) / self._decay_ms)

    def cost(self, backend: Backend, now_ms: float | None = None) -> float:
        """What the strategy minimises: latency estimate × (active + 1) / weight."""
        active = self._active[self._name_of_known(backend)]
        return self.latency_ms(backend, now_ms) * (active + 1) / backend.weight

    def _added(self, backend: Backend) -> None:
        self._estimate[backend.name] = None

    def _removed(self, backend: Backend) -> None:
        del self._estimate[backend.name]

    def _finished(self, backend: Backend, latency_ms: float, ok: bool, now_ms: float) -> None:
        sample_ms = latency_ms if ok else max(latency_ms, self._failure_penalty_ms)
        estimate = self._estimate[backend.name]
        current_ms = self.latency_ms(backend, now_ms)
        if estimate is None or sample_ms >= current_ms:
            # The peak: a slowdown is believed at once.
            self._estimate[backend.name] = (sample_ms, now_ms)
            return
        # A faster sample pulls the estimate down by how long ago the last sample was: the
        # average is over time, not over samples, so a burst of fast answers cannot erase a
        # slow one from a moment ago.
        pull = -math.expm1(-(now_ms - estimate[1]) / self._decay_ms)
        self._estimate[backend.name] = (current_ms + (sample_ms - current_ms) * pull, now_ms)

    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        if len(eligible) == 1:
            return eligible[0]
        i, j = self._rng.sample(range(len(eligible)), 2)
        first, second = eligible[i], eligible[j]
        return second if self.cost(second, now_ms) < self.cost(first, now_ms) else first
