"""Passive health checking: eject backends whose real requests fail, re-admit them on probation.

Theory of operation: there are no health-check pings. The balancer reports the outcome of
every real request (:meth:`PassiveHealth.record`), and each backend moves through three
states::

    HEALTHY --(N failures in a row, or error rate over a window)--> EJECTED
    EJECTED --(ejection time elapsed)--> PROBING   (half-open: one request at a time)
    PROBING --(that request succeeds)--> HEALTHY
    PROBING --(that request fails)-----> EJECTED   (for twice as long as last time)

Ejection time doubles with each ejection in a row, up to ``max_ejection_ms``, so a backend
that keeps failing costs less and less traffic; the streak is forgotten once the backend has
stayed healthy for ``max_ejection_ms``. Two guards keep health checking from causing an
outage itself: at most ``max_ejected_fraction`` of the backends (but always at least one, and
never the last one) may be out at once — when a whole fleet fails together the fault is more
likely the client's or the network's than every server's — and a balancer whose every
backend is out falls back to using all of them (see :class:`~kvorum.balance.Balancer`).

This module is pure: time arrives as ``now_ms`` arguments and state changes only when called.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

from kvorum.balance._backend import BalancerError
from kvorum.balance._clock import InjectedClock


class HealthState(enum.Enum):
    """Where a backend stands with the passive health checker."""

    HEALTHY = "healthy"
    EJECTED = "ejected"
    PROBING = "probing"


@dataclass(frozen=True, slots=True)
class EjectionPolicy:
    """When to eject a backend and for how long.

    ``consecutive_failures``: eject after this many failed requests in a row (``None``: never
    on this rule). ``error_rate``: eject when at least this fraction of the last
    ``window_requests`` outcomes were failures (``None``: never on this rule; only judged once
    the window is full, so one early failure is not a 100% error rate).
    ``base_ejection_ms``: the first ejection's length; each ejection in a row doubles it, up to
    ``max_ejection_ms``. ``max_ejected_fraction``: at most this fraction of backends may be
    ejected or probing at once (always at least one, never all).
    """

    consecutive_failures: int | None = 5
    error_rate: float | None = None
    window_requests: int = 20
    base_ejection_ms: float = 30_000.0
    max_ejection_ms: float = 300_000.0
    max_ejected_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.consecutive_failures is not None and self.consecutive_failures < 1:
            raise BalancerError(
                f"consecutive_failures must be >= 1 or None, got {self.consecutive_failures}"
            )
        if self.error_rate is not None and not 0.0 < self.error_rate <= 1.0:
            raise BalancerError(f"error_rate must be in (0, 1] or None, got {self.error_rate}")
        if self.window_requests < 1:
            raise BalancerError(f"window_requests must be >= 1, got {self.window_requests}")
        if not (math.isfinite(self.base_ejection_ms) and self.base_ejection_ms > 0):
            raise BalancerError(f"base_ejection_ms must be > 0, got {self.base_ejection_ms}")
        if not (math.isfinite(self.max_ejection_ms)
                and self.max_ejection_ms >= self.base_ejection_ms):
            raise BalancerError(
                f"max_ejection_ms ({self.max_ejection_ms}) must be finite and >= "
                f"base_ejection_ms ({self.base_ejection_ms})"
            )
        if not 0.0 < self.max_ejected_fraction <= 1.0:
            raise BalancerError(
                f"max_ejected_fraction must be in (0, 1], got {self.max_ejected_fraction}"
            )

    def ejection_ms(self, ejections_in_a_row: int) -> float:
        """How long the ``ejections_in_a_row``-th ejection in a row lasts (1 = the first)."""
        # Cap the exponent: past 2**60 the result is max_ejection_ms anyway.
        doublings = min(max(ejections_in_a_row - 1, 0), 60)
        return min(self.base_ejection_ms * 2.0**doublings, self.max_ejection_ms)


@dataclass(slots=True)
class _Record:
    """What the checker knows about one backend."""

    window_requests: int
    state: HealthState = HealthState.HEALTHY
    consecutive_failures: int = 0
    # Last outcomes, True = failed; kept with a running count so the rate is O(1).
    window: deque[bool] = field(default_factory=deque)
    window_failures: int = 0
    ejections_in_a_row: int = 0
    ejected_until_ms: float = 0.0
    readmitted_at_ms: float | None = None
    probe_in_flight: bool = False

    def forget_outcomes(self) -> None:
        self.consecutive_failures = 0
        self.window.clear()
        self.window_failures = 0

    def note(self, failed: bool) -> None:
        self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
        self.window.append(failed)
        self.window_failures += failed
        if len(self.window) > self.window_requests:
            self.window_failures -= self.window.popleft()


class PassiveHealth:
    """Outlier detection over a set of backend names, driven by request outcomes.

    Usable on its own, but normally owned by a :class:`~kvorum.balance.Balancer`, which keeps
    its membership in step and feeds it every pick and outcome.
    """

    def __init__(self, policy: EjectionPolicy | None = None) -> None:
        self.policy = policy if policy is not None else EjectionPolicy()
        self._records: dict[str, _Record] = {}
        self._clock = InjectedClock()

    # -- membership ---------------------------------------------------------------------

    def add(self, name: str) -> None:
        """Start tracking ``name`` as a healthy backend."""
        if name in self._records:
            raise BalancerError(f"health checker already tracks backend {name!r}")
        self._records[name] = _Record(window_requests=self.policy.window_requests)

    def remove(self, name: str) -> None:
        """Stop tracking ``name``."""
        self._get(name)
        del self._records[name]

    # -- queries ------------------------------------------------------------------------

    def state(self, name: str, now_ms: float | None = None) -> HealthState:
        """The backend's state at ``now_ms`` (default: the latest time seen)."""
        return self._refreshed(name, now_ms).state

    def is_eligible(self, name: str, now_ms: float | None = None) -> bool:
        """Whether a balancer may send ``name`` a request now.

        Healthy backends are; ejected ones are not; a probing backend is while its single
        probe request is not yet in flight.
        """
        record = self._refreshed(name, now_ms)
        if record.state is HealthState.PROBING:
            return not record.probe_in_flight
        return record.state is HealthState.HEALTHY

    def ejected_until_ms(self, name: str) -> float | None:
        """When the current ejection of ``name`` ends, or ``None`` if it is not ejected."""
        record = self._refreshed(name, None)
        return record.ejected_until_ms if record.state is HealthState.EJECTED else None

    def out_count(self) -> int:
        """How many backends are ejected or probing (not known to be healthy)."""
        now_ms = self._clock.now_ms
        return sum(
            self._refreshed(name, now_ms).state is not HealthState.HEALTHY
            for name in self._records
        )

    # -- events -------------------------------------------------------------------------

    def on_start(self, name: str, now_ms: float | None = None) -> None:
        """A request to ``name`` was sent; if it is probing, this request is the probe."""
        record = self._refreshed(name, now_ms)
        if record.state is HealthState.PROBING:
            record.probe_in_flight = True

    def record(self, name: str, ok: bool, now_ms: float | None = None) -> HealthState:
        """Feed one request outcome; returns the backend's state afterwards.

        Outcomes that arrive while a backend is ejected are ignored: they belong to requests
        sent before the ejection and say nothing new.
        """
        record = self._refreshed(name, now_ms)
        now_ms = self._clock.now_ms
        if record.state is HealthState.EJECTED:
            return record.state
        if record.state is HealthState.PROBING:
            record.probe_in_flight = False
            if ok:
                record.state = HealthState.HEALTHY
                record.readmitted_at_ms = now_ms
                record.forget_outcomes()
            else:
                # A failed probe always re-ejects: the backend is already counted as out,
                # so the max-ejected cap cannot be exceeded by it.
                self._eject(record, now_ms)
            return record.state
        record.note(failed=not ok)
        if self._should_eject(record) and self._room_to_eject():
            self._eject(record, now_ms)
        return record.state

    # -- internals ----------------------------------------------------------------------

    def _get(self, name: str) -> _Record:
        try:
            return self._records[name]
        except KeyError:
            raise BalancerError(f"health checker does not track backend {name!r}") from None

    def _refreshed(self, name: str, now_ms: float | None) -> _Record:
        now_ms = self._clock.advance(now_ms)
        record = self._get(name)
        if record.state is HealthState.EJECTED and now_ms >= record.ejected_until_ms:
            record.state = HealthState.PROBING
            record.probe_in_flight = False
        return record

    def _should_eject(self, record: _Record) -> bool:
        policy = self.policy
        if (policy.consecutive_failures is not None
                and record.consecutive_failures >= policy.consecutive_failures):
            return True
        return (
            policy.error_rate is not None
            and len(record.window) >= policy.window_requests
            and record.window_failures >= policy.error_rate * len(record.window)
        )

    def _room_to_eject(self) -> bool:
        total = len(self._records)
        allowed = min(max(1, math.floor(self.policy.max_ejected_fraction * total)), total - 1)
        return self.out_count() < allowed

    def _eject(self, record: _Record, now_ms: float) -> None:
        # A backend that stayed healthy for a full max ejection period starts a fresh streak.
        if (record.readmitted_at_ms is not None
                and now_ms - record.readmitted_at_ms >= self.policy.max_ejection_ms):
            record.ejections_in_a_row = 0
        record.ejections_in_a_row += 1
        record.state = HealthState.EJECTED
        record.ejected_until_ms = now_ms + self.policy.ejection_ms(record.ejections_in_a_row)
        record.probe_in_flight = False
        record.forget_outcomes()
