"""Segment allocation (Meituan Leaf style): many IDs per round trip to a shared counter.

Theory of operation: asking a central counter (:class:`~kvorum.ids.AtomicCounter`) for every
ID costs one round trip per ID. Instead the allocator takes a whole *segment*: one
``incr_by(step)`` that returns ``v`` makes ``v - step + 1 .. v`` this allocator's to hand out
locally, with no further coordination. Segments from one counter never overlap, so IDs stay
unique across all allocators sharing it; within one allocator they increase. IDs left unused
when a process stops are simply skipped (gaps, never repeats).

*Double buffering.* Waiting for a segment when the current one runs out would stall callers
for a round trip, so once 10% (``prefetch_fraction``) of the current segment is used the
allocator asks for the next one while it keeps serving from the current. When the current
runs out the next one is swapped in. The fetch itself goes through the interface: in
*synchronous* mode (a counter is given to the constructor) the allocator calls it inline,
which suits the in-memory counter; in *driven* mode (no counter) the driver polls
:meth:`SegmentAllocator.take_fetch_request`, runs ``incr_by`` however it likes (an asyncio
task calling the Raft-backed INCR) and hands the answer back with
:meth:`SegmentAllocator.add_segment`. If both buffers are empty then, :meth:`next_id` raises
:class:`NoSegmentReady` and the caller waits for the fetch.

*Adaptive step.* A fixed step is either too small under load (a fetch every few
milliseconds) or wastes IDs when idle. When a segment is used up the allocator looks at how
long it lasted: shorter than ``target_segment_ms`` doubles the step; longer than twice the
target halves it; always within ``[min_step, max_step]``. The new step applies from the next
fetch on (the segment already prefetched keeps its size).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.ids._clock import ClockMs
from kvorum.ids._counters import AtomicCounter


class NoSegmentReady(RuntimeError):
    """Both buffers are empty: the next segment has been requested but has not arrived."""


@dataclass(frozen=True, slots=True)
class SegmentPolicy:
    """How big segments are and when the next one is fetched.

    Defaults follow Leaf: segments meant to last about 15 minutes, steps between 1,000 and
    1,000,000, prefetch at 10% use.
    """

    initial_step: int = 1_000
    min_step: int = 1_000
    max_step: int = 1_000_000
    target_segment_ms: int = 15 * 60 * 1000
    prefetch_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.min_step < 1:
            raise ValueError(f"min_step must be >= 1, got {self.min_step}")
        if self.max_step < self.min_step:
            raise ValueError(f"max_step {self.max_step} is below min_step {self.min_step}")
        if not self.min_step <= self.initial_step <= self.max_step:
            raise ValueError(
                f"initial_step {self.initial_step} is outside "
                f"[min_step={self.min_step}, max_step={self.max_step}]"
            )
        if self.target_segment_ms < 1:
            raise ValueError(f"target_segment_ms must be >= 1, got {self.target_segment_ms}")
        if not 0.0 < self.prefetch_fraction <= 1.0:
            raise ValueError(f"prefetch_fraction must be in (0, 1], got {self.prefetch_fraction}")

    def next_step(self, step: int, lasted_ms: int) -> int:
        """The step to fetch next, given that a segment of ``step`` IDs lasted ``lasted_ms``."""
        if lasted_ms < self.target_segment_ms:
            return min(step * 2, self.max_step)
        if lasted_ms > 2 * self.target_segment_ms:
            return max(step // 2, self.min_step)
        return step


@dataclass(frozen=True, slots=True)
class Segment:
    """IDs ``first .. last`` (inclusive) owned by one allocator."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


_NEVER = 1 << 127
"""A cursor position no segment reaches: disables the prefetch trigger once it has fired."""


class SegmentAllocator:
    """Hands out IDs from double-buffered segments of a shared :class:`AtomicCounter`.

    ``clock_ms`` is read only when a segment is swapped in (to time how long it lasted).
    With ``counter`` the allocator fetches synchronously; without it, a driver fetches (see
    the module docs). Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        clock_ms: ClockMs,
        *,
        counter: AtomicCounter | None = None,
        policy: SegmentPolicy | None = None,
    ) -> None:
        self.policy = policy if policy is not None else SegmentPolicy()
        self._clock_ms = clock_ms
        self._counter = counter
        self._step = self.policy.initial_step
        # The current segment is [_cursor, _end); _prefetch_at is the cursor value whose
        # issue completes `prefetch_fraction` of it.
        self._cursor = 0
        self._end = 0
        self._prefetch_at = _NEVER
        self._current_since_ms = 0
        self._has_current = False
        self._next: Segment | None = None
        self._fetch_wanted = True  # nothing is buffered yet
        self._fetch_in_flight = False
        self.fetches = 0
        """How many segments were added (each is one counter round trip)."""

    @property
    def step(self) -> int:
        """The size the next fetch will ask for."""
        return self._step

    @property
    def left_in_segment(self) -> int:
        """IDs left in the current segment."""
        return self._end - self._cursor

    @property
    def buffered_ids(self) -> int:
        """IDs available without another fetch (rest of current plus the next segment)."""
        spare = self._next.size if self._next is not None else 0
        return self._end - self._cursor + spare

    def take_fetch_request(self) -> int | None:
        """Driven mode: the step to ``incr_by`` if a fetch is wanted and none is in flight.

        Each request is handed out once; answer it with :meth:`add_segment` or, if the
        counter call failed, :meth:`fetch_failed` so it is asked for again.
        """
        if not self._fetch_wanted or self._fetch_in_flight:
            return None
        self._fetch_in_flight = True
        return self._step

    def fetch_failed(self) -> None:
        """The requested fetch did not complete; request it again."""
        self._fetch_in_flight = False

    def add_segment(self, counter_value: int, step: int) -> None:
        """Take ownership of ``counter_value - step + 1 .. counter_value``, the answer of
        ``incr_by(step)``. It becomes current if nothing is being served, else the next."""
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        if counter_value < step:
            raise ValueError(
                f"counter value {counter_value} after incr_by({step}) would make IDs below 1"
            )
        self._fetch_in_flight = False
        self._fetch_wanted = False
        self.fetches += 1
        segment = Segment(first=counter_value - step + 1, last=counter_value)
        if self._cursor >= self._end and self._next is None:
            self._install(segment)
        elif self._next is None:
            self._next = segment
        else:
            raise RuntimeError("a segment arrived while both buffers are full; fetch was not asked")

    def next_id(self) -> int:
        """A new ID, larger than every ID this allocator issued before.

        Raises :class:`NoSegmentReady` (driven mode only) when both buffers are empty.
        """
        cursor = self._cursor
        if cursor < self._end:
            self._cursor = cursor + 1
            if cursor >= self._prefetch_at:
                self._prefetch()
            return cursor
        self._refill()
        return self.next_id()

    def next_ids(self, count: int) -> list[int]:
        """``count`` new IDs in increasing order, taken a run at a time from the segments.

        In driven mode raises :class:`NoSegmentReady` when the buffers run dry; IDs taken
        before that are dropped, never reissued.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        ids: list[int] = []
        remaining = count
        while remaining:
            cursor = self._cursor
            if cursor >= self._end:
                self._refill()
                continue
            stop = min(self._end, cursor + remaining)
            ids.extend(range(cursor, stop))
            self._cursor = stop
            remaining -= stop - cursor
            if stop > self._prefetch_at:
                self._prefetch()
        return ids

    def _install(self, segment: Segment) -> None:
        now_ms = self._clock_ms()
        if self._has_current:
            # The segment being replaced is used up: adapt the step to how long it lasted.
            self._step = self.policy.next_step(self._step, now_ms - self._current_since_ms)
        self._has_current = True
        self._current_since_ms = now_ms
        self._cursor = segment.first
        self._end = segment.last + 1
        used_before_prefetch = max(1, round(segment.size * self.policy.prefetch_fraction))
        self._prefetch_at = segment.first + used_before_prefetch - 1

    def _prefetch(self) -> None:
        self._prefetch_at = _NEVER
        if self._next is None:
            self._fetch_wanted = True
            if self._counter is not None:
                self._fetch_now(self._counter)

    def _refill(self) -> None:
        """The current segment is used up: swap in the next one, fetching it if needed."""
        if self._next is not None:
            segment, self._next = self._next, None
            self._install(segment)
            return
        self._fetch_wanted = True
        if self._counter is None:
            raise NoSegmentReady(
                "segment exhausted and the next one has not arrived; the driver must complete "
                "the fetch from take_fetch_request()"
            )
        self._fetch_now(self._counter)

    def _fetch_now(self, counter: AtomicCounter) -> None:
        step = self._step
        self._fetch_in_flight = True
        try:
            value = counter.incr_by(step)
        except BaseException:
            self._fetch_in_flight = False
            raise
        self.add_segment(value, step)
