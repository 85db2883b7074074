"""The outside world as a host sees it: clocks, timers and work off the host's thread.

Theory of operation: a host never reads a clock, starts a thread or sleeps. Whoever drives it
passes in a :class:`HostWorld`, exactly as a core is passed its ticks and its seeded
``Random``. The asyncio runtime gives it the event loop's clock, ``call_later`` and a thread
pool (:mod:`kvorum.runtime.world`); the simulator gives it virtual time, where a timer is an
event in the queue and background work completes after a simulated delay. So everything the
host does with time — request deadlines, holding a commit notice back for a moment, writing a
snapshot while appends go on — runs the same way in both, and a simulated run is replayed
exactly from its seed.

Callbacks passed to :meth:`HostWorld.call_later` and :meth:`HostWorld.run_in_background` run
on the host's own thread (the event loop's, or the simulator's), never concurrently with the
host; only the ``work`` function of ``run_in_background`` runs elsewhere, and it must touch
nothing the host's thread uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None:
        """The callback will not run (if it has not yet)."""


class HostWorld(Protocol):
    def monotonic_ms(self) -> float:
        """Milliseconds on a clock that never goes back (deadlines, liveness)."""

    def wall_ms(self) -> int:
        """Unix time in milliseconds (what writes are stamped with for expiry)."""

    def call_later(self, delay_ms: float, action: Callable[[], None]) -> TimerHandle:
        """Run ``action`` on the host's thread after ``delay_ms``."""

    def run_in_background(
        self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Run ``work`` off the host's thread, then ``done(result, error)`` on it."""
