"""The real world, as a host sees it: the event loop's clock and timers, and worker threads.

Theory of operation: :class:`AsyncioWorld` implements :class:`kvorum.host.world.HostWorld`
over one running asyncio loop. Monotonic time is the loop's own clock (what its timers use),
wall time is ``time.time_ns``, a timer is ``loop.call_later``, and background work runs on a
small thread pool whose completions are handed back to the loop thread with
``call_soon_threadsafe``, so the host only ever runs on the loop's thread. The randomness a
node uses is not here: it is a seeded :class:`random.Random` made once at start-up
(:func:`node_rng`), whose seed is logged so a run can be replayed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kvorum.host.world import TimerHandle

log = logging.getLogger(__name__)


class AsyncioWorld:
    """A :class:`~kvorum.host.world.HostWorld` on a running asyncio loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        workers: int = 2,
        wall_clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._loop = loop
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="kvorum-background")
        self._wall_clock_ms = wall_clock_ms

    def monotonic_ms(self) -> float:
        return self._loop.time() * 1000.0

    def wall_ms(self) -> int:
        if self._wall_clock_ms is not None:
            return self._wall_clock_ms()
        return time.time_ns() // 1_000_000

    def call_later(self, delay_ms: float, action: Callable[[], None]) -> TimerHandle:
        return self._loop.call_later(delay_ms / 1000.0, action)

    def run_in_background(
        self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        future = self._pool.submit(work)

        def finished(f: Future[Any]) -> None:
            error = f.exception()
            self._loop.call_soon_threadsafe(done, None if error else f.result(), error)

        future.add_done_callback(finished)

    def shutdown(self) -> None:
        """Wait for background work to finish (a snapshot half-written is not left behind)."""
        self._pool.shutdown(wait=True)


def node_rng(seed: int | None = None) -> tuple[random.Random, int]:
    """The node's random generator and its seed: ``seed`` if given (to replay a run), else
    one drawn from the operating system. Log the seed; it is all a replay needs."""
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "big")
    return random.Random(seed), seed
