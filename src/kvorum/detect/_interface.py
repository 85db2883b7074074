"""The shape every failure detector shares, and the errors they raise.

Theory of operation: a failure detector never *knows* that a node is dead — a missing heartbeat
may be a slow network, a lost packet or a stop-the-world pause. It only turns the history of
heartbeat arrivals into a *suspicion level* that grows with silence, and a verdict
(``is_available``) that flips once the suspicion reaches a configured threshold. All detectors
here are pure: the caller passes the current time (``now_ms``, milliseconds on any monotonic
clock) into every call, so a simulator can replay a trace exactly and tests can inject time.

Heartbeats must arrive in non-decreasing time order; a heartbeat stamped earlier than the last
one raises :class:`ClockWentBackwards`. Queries (``suspicion``/``is_available``) do not change
a detector's state, so a caller may ask about any time at or after the last heartbeat — in any
order, which lets a benchmark binary-search the moment the verdict flips.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable


class DetectorError(ValueError):
    """A failure detector was configured or driven wrongly."""


class ClockWentBackwards(DetectorError):
    """A time passed in is earlier than one already seen; detectors need a monotonic clock."""


@runtime_checkable
class FailureDetector(Protocol):
    """What every detector promises: heartbeats in, a suspicion level and a verdict out.

    The verdict is always ``suspicion(now_ms) < threshold``: a node is available while the
    detector suspects it less than the threshold. Before the first heartbeat a detector knows
    nothing and reports suspicion ``0.0`` (available) — the caller decides how long to wait for
    a node that never spoke.
    """

    @property
    def threshold(self) -> float:
        """The suspicion level at which the node is declared unavailable."""
        ...

    def heartbeat(self, now_ms: float) -> None:
        """Record that a heartbeat from the monitored node arrived at ``now_ms``."""

    def suspicion(self, now_ms: float) -> float:
        """How strongly the node is suspected at ``now_ms``; never decreases during silence."""
        ...

    def is_available(self, now_ms: float) -> bool:
        """Whether the node is still trusted at ``now_ms`` (suspicion below the threshold)."""
        ...


def require_positive(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number above zero; a DetectorError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DetectorError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise DetectorError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def require_non_negative(name: str, value: float) -> float:
    """``value`` as a float if it is finite and at least zero; a DetectorError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DetectorError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise DetectorError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def require_time(now_ms: float, not_before_ms: float | None, what: str) -> float:
    """``now_ms`` as a float if it is finite and not earlier than ``not_before_ms``."""
    if isinstance(now_ms, bool) or not isinstance(now_ms, int | float) or not math.isfinite(now_ms):
        raise DetectorError(f"{what}: now_ms must be a finite number, got {now_ms!r}")
    if not_before_ms is not None and now_ms < not_before_ms:
        raise ClockWentBackwards(
            f"{what}: now_ms={now_ms} is earlier than {not_before_ms} ms, a time already seen"
        )
    return float(now_ms)
