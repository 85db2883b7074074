"""Limited retries before declaring failure: a suspicion is confirmed by unanswered probes.

Theory of operation: a detector crossing its threshold only means "unusually quiet". Before
declaring the node failed (and starting something expensive, like a failover), this wrapper asks
it directly a bounded number of times. It is a small state machine driven by ``poll(now_ms)``:

* HEALTHY — the inner detector trusts the node. When it stops trusting it, emit probe 1 and go
  SUSPECT.
* SUSPECT(attempt k) — probe k is out; wait ``retry_timeout_ms`` for any heartbeat (a probe
  reply is a heartbeat). Timed out and k < ``max_retries``: emit probe k+1. Timed out on the last
  probe: emit :class:`DeclaredFailed` and go FAILED.
* FAILED — the declaration has been made; stay here until a heartbeat arrives.

Any heartbeat returns the machine to HEALTHY — including from FAILED: a declaration is an event
for whoever acts on it, not a tombstone, and what a rejoin means is their decision. The wrapper
sends nothing itself: it returns :class:`SendProbe` actions for the driver to carry out, so it
stays pure. At most one action per poll, because each probe needs its own full timeout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvorum.detect._interface import (
    DetectorError,
    FailureDetector,
    require_positive,
    require_time,
)


class RetryState(enum.Enum):
    """Where the confirmation state machine is."""

    HEALTHY = "healthy"
    SUSPECT = "suspect"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendProbe:
    """Ask the driver to probe the node now; ``attempt`` counts from 1 to ``max_retries``."""

    attempt: int
    at_ms: float


@dataclass(frozen=True, slots=True)
class DeclaredFailed:
    """The node stayed silent through every probe; ``probes_unanswered`` were sent."""

    probes_unanswered: int
    at_ms: float


RetryAction = SendProbe | DeclaredFailed


class RetryingDetector:
    """Wraps a detector; declares failure only after ``max_retries`` unanswered probes.

    Satisfies :class:`FailureDetector` itself: ``suspicion`` is the inner detector's, and
    ``is_available`` is False only once failure has been declared (by :meth:`poll`).
    """

    __slots__ = (
        "_attempt",
        "_deadline_ms",
        "_inner",
        "_last_ms",
        "_max_retries",
        "_retry_timeout_ms",
        "_state",
    )

    def __init__(self, inner: FailureDetector, max_retries: int, retry_timeout_ms: float) -> None:
        """``max_retries`` (>= 0; 0 declares at once) probes, each given ``retry_timeout_ms``."""
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise DetectorError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self._inner = inner
        self._max_retries = max_retries
        self._retry_timeout_ms = require_positive("retry_timeout_ms", retry_timeout_ms)
        self._state = RetryState.HEALTHY
        self._attempt = 0
        self._deadline_ms = 0.0
        self._last_ms: float | None = None

    @property
    def inner(self) -> FailureDetector:
        """The wrapped detector."""
        return self._inner

    @property
    def state(self) -> RetryState:
        """HEALTHY, SUSPECT (probing) or FAILED (declared)."""
        return self._state

    @property
    def probes_sent(self) -> int:
        """Probes sent in the current suspicion (0 when HEALTHY)."""
        return self._attempt

    @property
    def threshold(self) -> float:
        """The inner detector's threshold."""
        return self._inner.threshold

    def _advance_clock(self, now_ms: float, what: str) -> float:
        self._last_ms = require_time(now_ms, self._last_ms, what)
        return self._last_ms

    def heartbeat(self, now_ms: float) -> None:
        """A heartbeat or probe reply arrived: feed the inner detector and trust the node again."""
        now = self._advance_clock(now_ms, "heartbeat")
        self._inner.heartbeat(now)
        self._state = RetryState.HEALTHY
        self._attempt = 0

    def suspicion(self, now_ms: float) -> float:
        """The inner detector's suspicion at ``now_ms``."""
        return self._inner.suspicion(now_ms)

    def is_available(self, now_ms: float) -> bool:
        """False only after :meth:`poll` has declared the node failed."""
        require_time(now_ms, self._last_ms, "is_available")
        return self._state is not RetryState.FAILED

    def poll(self, now_ms: float) -> list[RetryAction]:
        """Advance the state machine to ``now_ms``; returns the action to carry out, if any."""
        now = self._advance_clock(now_ms, "poll")
        if self._state is RetryState.HEALTHY:
            if self._inner.is_available(now):
                return []
            self._state = RetryState.SUSPECT
            self._attempt = 0
            return [self._next_probe_or_verdict(now)]
        if self._state is RetryState.SUSPECT and now >= self._deadline_ms:
            return [self._next_probe_or_verdict(now)]
        return []

    def _next_probe_or_verdict(self, now: float) -> RetryAction:
        if self._attempt < self._max_retries:
            self._attempt += 1
            self._deadline_ms = now + self._retry_timeout_ms
            return SendProbe(attempt=self._attempt, at_ms=now)
        self._state = RetryState.FAILED
        return DeclaredFailed(probes_unanswered=self._attempt, at_ms=now)

    def __repr__(self) -> str:
        return (
            f"RetryingDetector({self._inner!r}, max_retries={self._max_retries}, "
            f"retry_timeout_ms={self._retry_timeout_ms:g}, state={self._state.value})"
        )
