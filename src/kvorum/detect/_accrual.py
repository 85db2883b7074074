"""Accrual failure detectors: suspicion as the improbability of the silence so far.

Theory of operation: instead of a yes/no timeout, an accrual detector (Hayashibara et al., "The
φ accrual failure detector", 2004) keeps a sliding window of recent heartbeat inter-arrival
times, fits a distribution to it, and reports φ = −log10 P(a heartbeat arrives even later than
now). φ = 1 means "a gap this long happens 1 time in 10", φ = 8 "1 time in 100 million". The
threshold is therefore a false-suspicion budget, and the timeout it implies adapts by itself to
how regular the network actually is. Two distributions are offered:

* :class:`PhiAccrualDetector` — a normal model, as in Akka. The fitted mean is shifted by an
  *acceptable heartbeat pause* (a gap the operator declares normal, such as a GC pause the
  window may not have seen yet), the standard deviation is floored by a minimum (a perfectly
  regular window would otherwise make the first late millisecond look impossible), and the
  window starts from a *first heartbeat estimate* so φ means something from the second
  heartbeat on. The normal tail is approximated with a logistic curve (Bowling et al. 2009, the
  one Akka uses) evaluated in a form that cannot overflow however long the silence.
* :class:`ExponentialAccrualDetector` — the exponential model, as in Cassandra: arrivals are
  treated as a Poisson process, so P(later than t) = exp(−t/mean) and φ = t/mean · log10(e).
  It only needs the mean. Intervals longer than ``max_interval_ms`` are not recorded (Cassandra
  drops them), so one long outage does not inflate the mean and slow the next detection.

Both detectors are pure; times are passed in. Heartbeats must come in time order.
"""

from __future__ import annotations

import math
from collections import deque

from kvorum.detect._interface import (
    DetectorError,
    require_non_negative,
    require_positive,
    require_time,
)

LOG10_E = 1.0 / math.log(10.0)
"""log10(e): turns a natural-log probability into φ's base-10 scale."""


def phi_normal(elapsed_ms: float, mean_ms: float, std_deviation_ms: float) -> float:
    """φ = −log10(1 − CDF(elapsed)) for a normal(mean, std) arrival model, approximated.

    Uses the logistic approximation CDF(y) ≈ 1 / (1 + exp(−z)), z = y·(1.5976 + 0.070566·y²),
    y = (elapsed − mean)/std. Then 1 − CDF = 1 / (1 + exp(z)) and φ = softplus(z)/ln 10, which
    is evaluated as max(z, 0) + log1p(exp(−|z|)): no exponential of a large positive number is
    ever taken, so the result is finite and monotone for any silence (a naive form overflows
    after a few minutes of silence with a small deviation). The approximation matches the exact
    normal tail within about 1% for |y| ≤ 2 and grows faster than it beyond (cubic in y), which
    only makes a long silence look more suspicious. Always ≥ 0.
    """
    std = require_positive("std_deviation_ms", std_deviation_ms)
    y = (elapsed_ms - mean_ms) / std
    z = y * (1.5976 + 0.070566 * y * y)
    return (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) * LOG10_E


def _require_window(max_sample_size: int) -> int:
    if isinstance(max_sample_size, bool) or not isinstance(max_sample_size, int):
        raise DetectorError(f"max_sample_size must be an int, got {max_sample_size!r}")
    if max_sample_size < 1:
        raise DetectorError(f"max_sample_size must be >= 1, got {max_sample_size}")
    return max_sample_size


class IntervalWindow:
    """The last ``capacity`` inter-arrival intervals with O(1) mean and standard deviation.

    Keeps the mean and the sum of squared deviations (Welford's update, extended to replace the
    evicted sample), not raw sums of squares: E[x²] − mean² cancels catastrophically when the
    spread is small next to the values. Rounding still accumulates over millions of updates, so
    both are recomputed exactly once per ``capacity`` evictions (amortised O(1)).
    """

    __slots__ = ("_capacity", "_evictions", "_intervals", "_mean", "_squared_deviations")

    def __init__(self, capacity: int) -> None:
        """A window holding at most ``capacity`` (>= 1) intervals."""
        self._capacity = _require_window(capacity)
        self._intervals: deque[float] = deque()
        self._mean = 0.0
        self._squared_deviations = 0.0
        self._evictions = 0

    def add(self, interval_ms: float) -> None:
        """Append one interval, evicting the oldest when full."""
        if len(self._intervals) < self._capacity:
            self._intervals.append(interval_ms)
            delta = interval_ms - self._mean
            self._mean += delta / len(self._intervals)
            self._squared_deviations += delta * (interval_ms - self._mean)
            return
        old = self._intervals.popleft()
        self._intervals.append(interval_ms)
        old_mean = self._mean
        self._mean += (interval_ms - old) / self._capacity
        self._squared_deviations += (interval_ms - old) * (
            interval_ms - self._mean + old - old_mean
        )
        self._evictions += 1
        if self._evictions >= self._capacity:
            self._evictions = 0
            self._mean = math.fsum(self._intervals) / self._capacity
            self._squared_deviations = math.fsum((x - self._mean) ** 2 for x in self._intervals)

    def __len__(self) -> int:
        return len(self._intervals)

    @property
    def mean_ms(self) -> float:
        """Mean interval; raises DetectorError if the window is empty."""
        if not self._intervals:
            raise DetectorError("the interval window is empty")
        return self._mean

    @property
    def std_deviation_ms(self) -> float:
        """Population standard deviation (0.0 for one sample; never negative)."""
        if not self._intervals:
            raise DetectorError("the interval window is empty")
        # Rounding can push a tiny sum of squared deviations just below zero.
        return math.sqrt(max(self._squared_deviations, 0.0) / len(self._intervals))


class PhiAccrualDetector:
    """Akka-style φ accrual detector over a normal model of inter-arrival times."""

    __slots__ = (
        "_acceptable_pause_ms",
        "_first_estimate_ms",
        "_last_heartbeat_ms",
        "_min_std_deviation_ms",
        "_threshold",
        "_window",
    )

    def __init__(
        self,
        threshold: float = 8.0,
        *,
        max_sample_size: int = 1000,
        min_std_deviation_ms: float = 100.0,
        acceptable_heartbeat_pause_ms: float = 0.0,
        first_heartbeat_estimate_ms: float = 1000.0,
    ) -> None:
        """Configure the detector; every argument is validated.

        ``threshold`` (> 0): φ at which the node is declared unavailable. ``max_sample_size``
        (>= 1): intervals kept. ``min_std_deviation_ms`` (> 0): floor under the fitted
        deviation. ``acceptable_heartbeat_pause_ms`` (>= 0): added to the fitted mean, so a
        silence this much longer than usual still scores as an ordinary one.
        ``first_heartbeat_estimate_ms`` (> 0): the interval assumed before any is measured.
        """
        self._threshold = require_positive("threshold", threshold)
        self._window = IntervalWindow(_require_window(max_sample_size))
        self._min_std_deviation_ms = require_positive("min_std_deviation_ms", min_std_deviation_ms)
        self._acceptable_pause_ms = require_non_negative(
            "acceptable_heartbeat_pause_ms", acceptable_heartbeat_pause_ms
        )
        self._first_estimate_ms = require_positive(
            "first_heartbeat_estimate_ms", first_heartbeat_estimate_ms
        )
        self._last_heartbeat_ms: float | None = None

    @property
    def threshold(self) -> float:
        """The φ at which the node is declared unavailable."""
        return self._threshold

    @property
    def last_heartbeat_ms(self) -> float | None:
        """When the last heartbeat arrived, or None before the first one."""
        return self._last_heartbeat_ms

    @property
    def sample_count(self) -> int:
        """How many intervals the window holds (the two seeded estimates included)."""
        return len(self._window)

    def heartbeat(self, now_ms: float) -> None:
        """Record a heartbeat at ``now_ms``.

        The interval since the previous heartbeat is learned only if the node was still
        available when this one arrived (as Akka does): a gap long enough to be declared a
        failure is an outage, not a sample of normal behaviour, and learning it would make the
        next real failure slower to detect.
        """
        now = require_time(now_ms, self._last_heartbeat_ms, "heartbeat")
        if self._last_heartbeat_ms is None:
            # Seed the window with mean ± std (std = mean/4) around the estimate, so that the
            # second heartbeat is judged against a plausible spread rather than none.
            std_estimate_ms = self._first_estimate_ms / 4.0
            self._window.add(self._first_estimate_ms - std_estimate_ms)
            self._window.add(self._first_estimate_ms + std_estimate_ms)
        elif self.is_available(now):
            self._window.add(now - self._last_heartbeat_ms)
        self._last_heartbeat_ms = now

    def suspicion(self, now_ms: float) -> float:
        """φ at ``now_ms``: 0.0 before the first heartbeat, then rising with the silence."""
        now = require_time(now_ms, self._last_heartbeat_ms, "suspicion")
        if self._last_heartbeat_ms is None:
            return 0.0
        mean_ms = self._window.mean_ms + self._acceptable_pause_ms
        std_ms = max(self._window.std_deviation_ms, self._min_std_deviation_ms)
        return phi_normal(now - self._last_heartbeat_ms, mean_ms, std_ms)

    def is_available(self, now_ms: float) -> bool:
        """True while φ at ``now_ms`` is below the threshold."""
        return self.suspicion(now_ms) < self._threshold

    def __repr__(self) -> str:
        return (
            f"PhiAccrualDetector(threshold={self._threshold:g}, "
            f"acceptable_heartbeat_pause_ms={self._acceptable_pause_ms:g})"
        )


class ExponentialAccrualDetector:
    """Cassandra-style accrual detector: φ = elapsed / mean interval · log10(e)."""

    __slots__ = (
        "_ignored_intervals",
        "_initial_interval_ms",
        "_last_heartbeat_ms",
        "_max_interval_ms",
        "_threshold",
        "_window",
    )

    def __init__(
        self,
        threshold: float = 8.0,
        *,
        max_sample_size: int = 1000,
        max_interval_ms: float = 2000.0,
        initial_interval_ms: float = 2000.0,
    ) -> None:
        """Configure the detector; every argument is validated.

        ``threshold`` (> 0): φ at which the node is declared unavailable (Cassandra's
        ``phi_convict_threshold``). ``max_sample_size`` (>= 1): intervals kept.
        ``max_interval_ms`` (> 0): longer intervals are not recorded. ``initial_interval_ms``
        (> 0): the interval recorded at the first heartbeat, so the mean is defined at once.
        """
        self._threshold = require_positive("threshold", threshold)
        self._window = IntervalWindow(_require_window(max_sample_size))
        self._max_interval_ms = require_positive("max_interval_ms", max_interval_ms)
        self._initial_interval_ms = require_positive("initial_interval_ms", initial_interval_ms)
        self._last_heartbeat_ms: float | None = None
        self._ignored_intervals = 0

    @property
    def threshold(self) -> float:
        """The φ at which the node is declared unavailable."""
        return self._threshold

    @property
    def last_heartbeat_ms(self) -> float | None:
        """When the last heartbeat arrived, or None before the first one."""
        return self._last_heartbeat_ms

    @property
    def ignored_intervals(self) -> int:
        """How many intervals were longer than ``max_interval_ms`` and so not recorded."""
        return self._ignored_intervals

    @property
    def mean_interval_ms(self) -> float | None:
        """The current mean inter-arrival time, or None before the first heartbeat."""
        return self._window.mean_ms if len(self._window) else None

    def heartbeat(self, now_ms: float) -> None:
        """Record a heartbeat at ``now_ms``; intervals above ``max_interval_ms`` are dropped."""
        now = require_time(now_ms, self._last_heartbeat_ms, "heartbeat")
        if self._last_heartbeat_ms is None:
            self._window.add(self._initial_interval_ms)
        else:
            interval_ms = now - self._last_heartbeat_ms
            if interval_ms <= self._max_interval_ms:
                self._window.add(interval_ms)
            else:
                self._ignored_intervals += 1
        self._last_heartbeat_ms = now

    def suspicion(self, now_ms: float) -> float:
        """φ at ``now_ms``: 0.0 before the first heartbeat, then linear in the silence."""
        now = require_time(now_ms, self._last_heartbeat_ms, "suspicion")
        if self._last_heartbeat_ms is None:
            return 0.0
        # Zero-length intervals (two heartbeats in one millisecond) could make the mean 0.
        mean_ms = max(self._window.mean_ms, 1e-9)
        return (now - self._last_heartbeat_ms) / mean_ms * LOG10_E

    def is_available(self, now_ms: float) -> bool:
        """True while φ at ``now_ms`` is below the threshold."""
        return self.suspicion(now_ms) < self._threshold

    def __repr__(self) -> str:
        return (
            f"ExponentialAccrualDetector(threshold={self._threshold:g}, "
            f"max_interval_ms={self._max_interval_ms:g})"
        )
