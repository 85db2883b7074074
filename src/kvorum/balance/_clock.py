"""The injected clock: the latest ``now_ms`` a component was told, checked to never go back.

Theory of operation: nothing in ``kvorum.balance`` reads a clock. Callers pass ``now_ms``
(milliseconds on any monotonic scale they like, real or simulated) and each component keeps
the largest value it has seen. A smaller value is a bug in the driver (or a wall clock being
used where a monotonic one belongs), and acting on it would silently corrupt decay and
ejection timers, so it raises at once.
"""

from __future__ import annotations

import math

from kvorum.balance._backend import ClockWentBackwardsError


class InjectedClock:
    """Remembers the latest time it was told; refuses to go backwards."""

    __slots__ = ("_now_ms",)

    def __init__(self, start_ms: float = 0.0) -> None:
        self._now_ms = self._checked(start_ms)

    @property
    def now_ms(self) -> float:
        """The latest time seen."""
        return self._now_ms

    def advance(self, now_ms: float | None) -> float:
        """Move to ``now_ms`` (``None`` keeps the current time) and return the current time.

        Raises :class:`ClockWentBackwardsError` if ``now_ms`` is before the latest time seen,
        and :class:`ValueError` for NaN or infinite times.
        """
        if now_ms is None:
            return self._now_ms
        now_ms = self._checked(now_ms)
        if now_ms < self._now_ms:
            raise ClockWentBackwardsError(
                f"now_ms={now_ms} is before the latest time already seen ({self._now_ms})"
            )
        self._now_ms = now_ms
        return now_ms

    @staticmethod
    def _checked(now_ms: float) -> float:
        if not math.isfinite(now_ms):
            raise ValueError(f"now_ms must be a finite number, got {now_ms!r}")
        return float(now_ms)
