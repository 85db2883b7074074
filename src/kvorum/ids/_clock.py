"""The clock and the sleep that the ID generators are handed, and waiting on them.

Theory of operation: ID generators never read the time themselves. A generator is given a
*clock* — a callable returning integer milliseconds since the Unix epoch — and, optionally, a
*sleep* — a callable that blocks for a number of milliseconds. The runtime passes callables
built on ``time.time_ns`` and ``time.sleep``; tests and the simulator pass a fake clock whose
sleep simply moves the fake time forward, so a "wait" costs nothing and is fully replayable.
When no sleep is given, waiting spins on the clock: the waits a generator needs are short (the
rest of the current millisecond, or a few milliseconds of clock skew) and a spin ends exactly
when the clock ticks over, where a real ``time.sleep(0.001)`` tends to oversleep.
"""

from __future__ import annotations

from collections.abc import Callable

ClockMs = Callable[[], int]
"""Returns wall-clock time as integer milliseconds since the Unix epoch."""

SleepMs = Callable[[int], None]
"""Blocks the caller for (at least) the given number of milliseconds."""

SPIN_READS_LIMIT = 20_000_000
"""How many clock reads a spinning wait makes before declaring the clock stuck. A real clock
ticks over a millisecond within ~10^4 reads; this bound only exists so that a fake clock that
never moves (a test forgot to pass a sleep) fails loudly instead of hanging."""


class ClockStalled(RuntimeError):
    """A spinning wait read the clock :data:`SPIN_READS_LIMIT` times and it never advanced."""


def wait_until(clock_ms: ClockMs, sleep_ms: SleepMs | None, until_ms: int) -> int:
    """Block until ``clock_ms() >= until_ms`` and return that clock reading.

    With ``sleep_ms`` the remaining gap is slept (and re-checked, since sleeps may return
    early); without it the clock is polled. Raises :class:`ClockStalled` if polling never sees
    the clock reach ``until_ms``.
    """
    now_ms = clock_ms()
    if sleep_ms is not None:
        while now_ms < until_ms:
            sleep_ms(until_ms - now_ms)
            now_ms = clock_ms()
        return now_ms
    reads = 0
    while now_ms < until_ms:
        reads += 1
        if reads > SPIN_READS_LIMIT:
            raise ClockStalled(
                f"clock stayed at {now_ms} ms for {SPIN_READS_LIMIT} reads while waiting for "
                f"{until_ms} ms; pass a sleep callable that advances a fake clock"
            )
        now_ms = clock_ms()
    return now_ms
