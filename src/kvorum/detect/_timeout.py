"""Fixed-timeout heartbeat detector: silent for ``timeout_ms`` means down.

Theory of operation: the oldest and simplest detector. It remembers only when the last
heartbeat arrived; its suspicion is the silence so far in milliseconds, and the threshold is the
timeout itself. It cannot tell a network that is always slow from one that just got slow, so
the timeout must be chosen above the longest pause that should be tolerated — and every
millisecond added to it is a millisecond added to the time to notice a real crash. The accrual
detectors (:mod:`kvorum.detect._accrual`) learn that trade-off from the arrival history instead.
"""

from __future__ import annotations

from kvorum.detect._interface import require_positive, require_time


class FixedTimeoutDetector:
    """Suspicion is milliseconds since the last heartbeat; unavailable at ``timeout_ms``."""

    __slots__ = ("_last_heartbeat_ms", "_timeout_ms")

    def __init__(self, timeout_ms: float) -> None:
        """``timeout_ms`` (> 0) is the silence after which the node counts as down."""
        self._timeout_ms = require_positive("timeout_ms", timeout_ms)
        self._last_heartbeat_ms: float | None = None

    @property
    def threshold(self) -> float:
        """The timeout in milliseconds: suspicion is measured in the same unit."""
        return self._timeout_ms

    @property
    def last_heartbeat_ms(self) -> float | None:
        """When the last heartbeat arrived, or None before the first one."""
        return self._last_heartbeat_ms

    def heartbeat(self, now_ms: float) -> None:
        """Record a heartbeat at ``now_ms``; raises ClockWentBackwards if time went back."""
        self._last_heartbeat_ms = require_time(now_ms, self._last_heartbeat_ms, "heartbeat")

    def suspicion(self, now_ms: float) -> float:
        """Milliseconds of silence at ``now_ms`` (0.0 before the first heartbeat)."""
        now = require_time(now_ms, self._last_heartbeat_ms, "suspicion")
        if self._last_heartbeat_ms is None:
            return 0.0
        return now - self._last_heartbeat_ms

    def is_available(self, now_ms: float) -> bool:
        """True while the silence at ``now_ms`` is shorter than the timeout."""
        return self.suspicion(now_ms) < self._timeout_ms

    def __repr__(self) -> str:
        return f"FixedTimeoutDetector(timeout_ms={self._timeout_ms:g})"
