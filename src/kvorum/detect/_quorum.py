"""Quorum aggregation of subjective failure reports, with Redis Sentinel's semantics.

Theory of operation: one observer that cannot reach a target only knows that *it* cannot — the
target is *subjectively down* (SDOWN) for that observer. The target becomes *objectively down*
(ODOWN) only when at least ``quorum`` observers currently agree, and ODOWN is what may start a
failover. Reports go stale: an observer's down-report counts only for ``validity_ms`` after it
was received (Sentinel keeps re-asking its peers and forgets answers older than a few ask
periods), so an observer that crashed or was partitioned away cannot hold a target down forever.
ODOWN clears as soon as fewer than ``quorum`` agree — because some reported the target up again
or their reports expired.

The aggregator is pure and collects nothing: every call returns the transitions it caused, as
frozen event objects, in the order they happened (SDOWN changes first, then the ODOWN change
they led to). A driver acts on :class:`OdownSet` (e.g. starts a failover election). Time is
passed in and must not go backwards across calls. A report is *valid* at ``now_ms`` while
``now_ms - reported_at_ms < validity_ms``; the boundary instant is already expired.

Note that Sentinel lets ``quorum`` be smaller than a majority (to detect faster), but still
requires a majority of observers to *authorise* the failover; :attr:`quorum_is_majority` tells
a driver which case it is in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvorum.detect._interface import (
    DetectorError,
    require_positive,
    require_time,
)


class UnknownObserver(DetectorError):
    """A report came from an observer the aggregator was not configured with."""


@dataclass(frozen=True, slots=True)
class SdownSet:
    """``observer`` now considers ``target`` subjectively down."""

    target: str
    observer: str
    at_ms: float


@dataclass(frozen=True, slots=True)
class SdownCleared:
    """``observer`` no longer counts as thinking ``target`` is down.

    ``expired`` is True when its report simply grew older than the validity period (its view is
    unknown now), False when it reported the target up.
    """

    target: str
    observer: str
    at_ms: float
    expired: bool


@dataclass(frozen=True, slots=True)
class OdownSet:
    """At least ``quorum`` observers agree ``target`` is down: a failover may start."""

    target: str
    at_ms: float
    agreeing: frozenset[str]


@dataclass(frozen=True, slots=True)
class OdownCleared:
    """Fewer than ``quorum`` observers agree any more; ``agreeing`` are those that still do."""

    target: str
    at_ms: float
    agreeing: frozenset[str]


QuorumEvent = SdownSet | SdownCleared | OdownSet | OdownCleared


class QuorumAggregator:
    """Turns observers' SDOWN/up reports into ODOWN set/cleared transitions per target."""

    __slots__ = (
        "_down_since_ms",
        "_last_ms",
        "_objectively_down",
        "_observers",
        "_quorum",
        "_validity_ms",
    )

    def __init__(self, observers: Iterable[str], quorum: int, validity_ms: float) -> None:
        """``observers``: distinct non-empty names; ``1 <= quorum <= len(observers)``.

        ``validity_ms`` (> 0): how long a down-report keeps counting after it was received.
        """
        names = list(observers)
        if not names:
            raise DetectorError("a quorum aggregator needs at least one observer")
        if any(not isinstance(n, str) or not n for n in names):
            raise DetectorError(f"observer names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            raise DetectorError(f"observer names must be distinct, got {names!r}")
        if isinstance(quorum, bool) or not isinstance(quorum, int):
            raise DetectorError(f"quorum must be an int, got {quorum!r}")
        if not 1 <= quorum <= len(names):
            raise DetectorError(
                f"quorum must be between 1 and the {len(names)} observers, got {quorum}"
            )
        self._observers = frozenset(names)
        self._quorum = quorum
        self._validity_ms = require_positive("validity_ms", validity_ms)
        # target -> observer -> when its current down-report was (last) received
        self._down_since_ms: dict[str, dict[str, float]] = {}
        self._objectively_down: set[str] = set()
        self._last_ms: float | None = None

    @property
    def observers(self) -> frozenset[str]:
        """The configured observers."""
        return self._observers

    @property
    def quorum(self) -> int:
        """How many agreeing observers make a target objectively down."""
        return self._quorum

    @property
    def quorum_is_majority(self) -> bool:
        """Whether ``quorum`` is a strict majority of the observers."""
        return 2 * self._quorum > len(self._observers)

    def is_objectively_down(self, target: str) -> bool:
        """Whether ``target`` is ODOWN as of the last call that advanced time."""
        return target in self._objectively_down

    def agreeing(self, target: str) -> frozenset[str]:
        """Observers whose down-report on ``target`` is valid as of the last call."""
        return frozenset(self._down_since_ms.get(target, {}))

    def report(self, observer: str, target: str, down: bool, now_ms: float) -> list[QuorumEvent]:
        """``observer`` says ``target`` is down (``down=True``) or up, received at ``now_ms``.

        A repeated down-report refreshes its validity without an event. Returns the transitions
        this caused, after first expiring reports that went stale by ``now_ms``.
        """
        if observer not in self._observers:
            raise UnknownObserver(
                f"unknown observer {observer!r}; configured: {sorted(self._observers)}"
            )
        if not isinstance(target, str) or not target:
            raise DetectorError(f"target must be a non-empty string, got {target!r}")
        events = self.expire(now_ms)
        now = float(now_ms)
        views = self._down_since_ms.setdefault(target, {})
        if down:
            if observer not in views:
                events.append(SdownSet(target, observer, now))
            views[observer] = now
        elif observer in views:
            del views[observer]
            events.append(SdownCleared(target, observer, now, expired=False))
        events.extend(self._reconsider(target, now))
        return events

    def expire(self, now_ms: float) -> list[QuorumEvent]:
        """Let time pass to ``now_ms``: drop stale down-reports, clear ODOWN where it lapsed."""
        now = require_time(now_ms, self._last_ms, "quorum aggregator")
        self._last_ms = now
        events: list[QuorumEvent] = []
        for target in sorted(self._down_since_ms):
            views = self._down_since_ms[target]
            stale = sorted(o for o, t in views.items() if now - t >= self._validity_ms)
            for observer in stale:
                del views[observer]
                events.append(SdownCleared(target, observer, now, expired=True))
            if stale:
                events.extend(self._reconsider(target, now))
        return events

    def _reconsider(self, target: str, now: float) -> list[QuorumEvent]:
        agreeing = frozenset(self._down_since_ms.get(target, {}))
        was_down = target in self._objectively_down
        if len(agreeing) >= self._quorum and not was_down:
            self._objectively_down.add(target)
            return [OdownSet(target, now, agreeing)]
        if len(agreeing) < self._quorum and was_down:
            self._objectively_down.discard(target)
            return [OdownCleared(target, now, agreeing)]
        return []
