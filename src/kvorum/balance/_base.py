"""The balancer interface and the bookkeeping every strategy shares.

Theory of operation: a client asks ``pick(key, now_ms=...)`` for a backend, calls
``on_start(backend)`` when it sends the request and ``on_finish(backend, latency_ms, ok,
now_ms)`` when the answer (or error, or timeout) comes back. The base class owns what every
strategy needs from that feedback — the set of backends, requests in flight per backend,
the injected clock and the optional :class:`~kvorum.balance.PassiveHealth` checker — and
narrows the backends down to the *eligible* ones (not ejected) before handing them to the
strategy's ``_choose``. Strategies only decide among eligible backends and keep whatever
extra state they need (cursors, latency averages, a hash ring) through small hooks.

If every backend is ejected the balancer "panics" and chooses among all of them: a request
to a backend that may have recovered beats failing the request for sure.

Invariants: a balancer always has at least one backend (building one with none, or removing
the last, raises), names are unique, and time never goes backwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from kvorum.balance._backend import Backend, BalancerError
from kvorum.balance._clock import InjectedClock
from kvorum.balance._health import HealthState, PassiveHealth


class Balancer(ABC):
    """Chooses a backend for each request; learns from each request's outcome.

    Subclasses implement :meth:`_choose` and may override the ``_added`` / ``_removed`` /
    ``_finished`` hooks. They must not assume the eligible list passed to
    ``_choose`` is the same from one call to the next.
    """

    #: Whether :meth:`pick` needs a key (hash-based strategies do).
    needs_key: bool = False

    def __init__(self, backends: Iterable[Backend], *, health: PassiveHealth | None = None) -> None:
        self._backends: dict[str, Backend] = {}
        self._active: dict[str, int] = {}
        self._clock = InjectedClock()
        self.health = health
        for backend in backends:
            self._admit(backend)
        if not self._backends:
            raise BalancerError(f"{type(self).__name__} needs at least one backend")

    # -- public interface ---------------------------------------------------------------

    @property
    def backends(self) -> tuple[Backend, ...]:
        """All backends, eligible or not, in the order they were added."""
        return tuple(self._backends.values())

    @property
    def now_ms(self) -> float:
        """The latest time this balancer was told."""
        return self._clock.now_ms

    def active(self, backend: Backend | str) -> int:
        """Requests to ``backend`` started with :meth:`on_start` and not yet finished."""
        return self._active[self._name_of_known(backend)]

    def eligible(self, now_ms: float | None = None) -> list[Backend]:
        """The backends :meth:`pick` would choose among at ``now_ms``.

        That is the backends the health checker lets through, or all backends if it lets none
        through (panic mode), in the order they were added.
        """
        now_ms = self._clock.advance(now_ms)
        if self.health is None:
            return list(self._backends.values())
        health = self.health
        allowed = [b for b in self._backends.values() if health.is_eligible(b.name, now_ms)]
        return allowed or list(self._backends.values())

    def pick(self, key: bytes | None = None, *, now_ms: float | None = None) -> Backend:
        """Choose a backend for one request.

        ``key`` identifies the request for hash-based strategies (client IP, cache key) and is
        ignored by the others. ``now_ms`` defaults to the latest time seen; strategies that
        use time (peak-EWMA decay, health re-admission) want it passed. Picking does not count
        the request as in flight: call :meth:`on_start` when it is really sent.
        """
        if self.needs_key and key is None:
            raise BalancerError(f"{type(self).__name__}.pick needs a key (e.g. the client IP)")
        now_ms = self._clock.advance(now_ms)
        return self._choose(self.eligible(now_ms), key, now_ms)

    def on_start(self, backend: Backend, now_ms: float | None = None) -> None:
        """A request to ``backend`` was sent: it now counts towards its load."""
        now_ms = self._clock.advance(now_ms)
        name = self._name_of_known(backend)
        self._active[name] += 1
        if self.health is not None:
            self.health.on_start(name, now_ms)

    def on_finish(
        self, backend: Backend, latency_ms: float, ok: bool, now_ms: float | None = None
    ) -> None:
        """A request to ``backend`` ended after ``latency_ms``; ``ok`` is False on error.

        A request whose backend was removed meanwhile is ignored (its backend is gone, there
        is nothing to learn). Raises if no request to ``backend`` is in flight, or if
        ``latency_ms`` is negative.
        """
        now_ms = self._clock.advance(now_ms)
        if not latency_ms >= 0.0:  # also catches NaN
            raise BalancerError(f"latency_ms must be >= 0, got {latency_ms}")
        name = backend.name
        if name not in self._backends:
            return
        if self._active[name] == 0:
            raise BalancerError(
                f"on_finish({name!r}) without a matching on_start: no request is in flight"
            )
        self._active[name] -= 1
        if self.health is not None:
            self.health.record(name, ok, now_ms)
        self._finished(self._backends[name], latency_ms, ok, now_ms)

    def add(self, backend: Backend) -> None:
        """Add a backend; it starts healthy with no load history."""
        self._admit(backend)

    def remove(self, backend: Backend | str) -> Backend:
        """Remove a backend (e.g. a dead node taken out of the list); returns it.

        Requests still in flight to it are forgotten. Removing the last backend raises.
        """
        name = self._name_of_known(backend)
        if len(self._backends) == 1:
            raise BalancerError(f"cannot remove {name!r}: it is the last backend")
        removed = self._backends.pop(name)
        del self._active[name]
        if self.health is not None:
            self.health.remove(name)
        self._removed(removed)
        return removed

    def health_state(self, backend: Backend | str) -> HealthState:
        """The health checker's view of ``backend`` (always HEALTHY without a checker)."""
        name = self._name_of_known(backend)
        if self.health is None:
            return HealthState.HEALTHY
        return self.health.state(name, self._clock.now_ms)

    # -- strategy hooks -----------------------------------------------------------------
    # The non-abstract hooks are optional, hence empty by default (ruff's B027 would have
    # them abstract). Subclasses set up their own state *before* calling
    # ``Balancer.__init__``, because it calls ``_added`` for the initial backends.

    @abstractmethod
    def _choose(self, eligible: Sequence[Backend], key: bytes | None, now_ms: float) -> Backend:
        """Choose one of ``eligible`` (non-empty, in insertion order)."""

    def _added(self, backend: Backend) -> None:  # noqa: B027
        """``backend`` joined."""

    def _removed(self, backend: Backend) -> None:  # noqa: B027
        """``backend`` left."""

    def _finished(  # noqa: B027
        self, backend: Backend, latency_ms: float, ok: bool, now_ms: float
    ) -> None:
        """A request to ``backend`` ended (``active`` no longer counts it)."""

    # -- internals ----------------------------------------------------------------------

    def _admit(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise BalancerError(f"expected a Backend, got {backend!r}")
        if backend.name in self._backends:
            raise BalancerError(f"duplicate backend name {backend.name!r}")
        self._backends[backend.name] = backend
        self._active[backend.name] = 0
        if self.health is not None:
            self.health.add(backend.name)
        self._added(backend)

    def _name_of_known(self, backend: Backend | str) -> str:
        name = backend if isinstance(backend, str) else backend.name
        if name not in self._backends:
            raise BalancerError(f"unknown backend {name!r}")
        return name
