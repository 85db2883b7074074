"""Whoever waits on a request, and the deadlines after which they stop waiting.

Theory of operation: the host settles requests through the smallest interface that both of
its drivers already have. An :class:`asyncio.Future` *is* a :class:`Waiter` (``done``,
``set_result``, ``set_exception``), so the runtime hands the host the very future its RESP
connection waits on and no adapter runs per request; the simulator and the host's own
internal requests (a forwarded write waiting to send its reply) use small classes with the
same three methods. Settling twice is harmless: the first outcome wins, which is what a
request that times out and then completes needs.

Deadlines are one queue for the whole node, checked on every tick, instead of a timer per
request: with thousands of requests in flight a timer each costs more than the requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from kvorum.host.errors import CommitTimeoutError


class Waiter(Protocol):
    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


def settle(waiter: Waiter, result: Any) -> None:
    """Give ``waiter`` its result, unless it already has an outcome (e.g. timed out)."""
    if not waiter.done():
        waiter.set_result(result)


def fail(waiter: Waiter, error: BaseException) -> None:
    """Give ``waiter`` an error, unless it already has an outcome."""
    if not waiter.done():
        waiter.set_exception(error)


class CallbackWaiter:
    """A :class:`Waiter` that calls ``on_result(result, error)`` once, when settled."""

    __slots__ = ("_done", "_on_result")

    def __init__(self, on_result: Callable[[Any, BaseException | None], None]) -> None:
        self._on_result = on_result
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any, /) -> None:
        if not self._done:
            self._done = True
            self._on_result(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        if not self._done:
            self._done = True
            self._on_result(None, exception)


class Deadlines:
    """Requests in arrival order with the time each must be answered by.

    Every request gets the same timeout, so arrival order is deadline order and a deque is
    enough: :meth:`expire` pops from the front until it meets one not yet due.

    Answered requests leave the queue early: those at the front as new ones arrive, and all
    of them whenever the queue has doubled since it was last swept. Keeping each one for the
    whole timeout held every request of the last five seconds (tens of thousands of futures
    with their replies at a few thousand requests a second), which Python's full garbage
    collections then walked again and again: pauses of 100-400 ms on a busy leader, longer
    than the election timeout, so its followers elected another (CLUSTERDOWN errors)."""

    __slots__ = ("_queue", "_sweep_at", "timeout_ms")

    _MIN_SWEEP = 1024

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._queue: deque[tuple[float, Waiter]] = deque()
        self._sweep_at = self._MIN_SWEEP

    def track(self, waiter: Waiter, now_ms: float) -> None:
        queue = self._queue
        while queue and queue[0][1].done():
            queue.popleft()
        queue.append((now_ms + self.timeout_ms, waiter))
        if len(queue) >= self._sweep_at:
            # A request that waits long at the front keeps those behind it: sweep them all
            # (amortised: the queue must double before the next sweep).
            self._queue = queue = deque(item for item in queue if not item[1].done())
            self._sweep_at = max(self._MIN_SWEEP, 2 * len(queue))

    def expire(self, now_ms: float) -> int:
        """Fail every waiter whose deadline has passed with a timeout; how many were due."""
        queue = self._queue
        due = 0
        while queue and queue[0][0] <= now_ms:
            _, waiter = queue.popleft()
            if not waiter.done():
                waiter.set_exception(CommitTimeoutError(self.timeout_ms))
                due += 1
        return due

    def __len__(self) -> int:
        return len(self._queue)
