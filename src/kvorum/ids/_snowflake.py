"""Snowflake IDs: 64-bit integers made of a millisecond timestamp, a worker id and a sequence.

Theory of operation: an ID is ``time | worker | sequence`` packed high to low into the low 63
bits of a signed 64-bit integer (the sign bit stays unused so the ID is positive in every
language). ``time`` is milliseconds since a custom epoch, so IDs from all workers sort roughly
by creation time ("trending up"); ``worker`` makes IDs from different generators disjoint
without any coordination; ``sequence`` counts IDs issued by one worker within one millisecond.
The default layout is Twitter's: 41 time bits (~69.7 years), 10 worker bits (1024 workers),
12 sequence bits (4096 IDs per millisecond, so at most 4,096,000 IDs/s per worker).

One generator never issues a duplicate and its IDs strictly increase, because it remembers
the last millisecond it used and the next free sequence number in it:

* a later millisecond restarts the sequence at 0;
* the same millisecond takes the next sequence number; when all are used the generator waits
  for the next millisecond;
* an earlier millisecond means the wall clock stepped back (NTP, a VM migration). Issuing IDs
  for it could repeat old ones, so a small step back (at most ``max_backward_ms``) is waited
  out, and a larger one raises :class:`ClockMovedBackwards` naming the amount — waiting for
  minutes would look like a hang, so that is the operator's call.

Because the sequence is the lowest field, the IDs issued in one millisecond are consecutive
integers; the batch API reserves a whole run of sequence numbers at once and returns it as a
``range``, which is what makes batches fast.

The core, :meth:`Snowflake.issue_at`, is sans-I/O: given the time it either returns a run of
IDs or raises :class:`MustWait` saying until when. :meth:`Snowflake.next_id` and
:meth:`Snowflake.next_ids` wrap it with the injected clock and sleep. A generator is not
thread-safe; the runtime owns one per worker and calls it from one thread (or event loop).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.ids._clock import ClockMs, SleepMs, wait_until

KVORUM_EPOCH_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z, the default epoch; a recent epoch leaves the 41-bit time field
(~69.7 years) almost entirely in the future."""

SIGNED_64_PAYLOAD_BITS = 63
"""Bits usable by a layout: a signed 64-bit integer minus its sign bit."""


class LayoutError(ValueError):
    """A Snowflake bit layout (or a value that must fit in it) is invalid."""


class ClockError(RuntimeError):
    """The clock cannot be used to issue IDs."""


class ClockMovedBackwards(ClockError):
    """The clock is further behind the last issued millisecond than the generator will wait."""

    def __init__(self, behind_ms: int, max_backward_ms: int) -> None:
        super().__init__(
            f"clock moved backwards by {behind_ms} ms (more than the {max_backward_ms} ms this "
            f"generator waits out); refusing to issue IDs that could repeat earlier ones"
        )
        self.behind_ms = behind_ms
        self.max_backward_ms = max_backward_ms


class ClockOutOfRange(ClockError):
    """The clock reads before the layout's epoch or past the last millisecond it can encode."""


class MustWait(Exception):
    """No ID can be issued before the clock reads ``until_ms``; wait, then ask again."""

    def __init__(self, until_ms: int, reason: str) -> None:
        super().__init__(f"wait until {until_ms} ms: {reason}")
        self.until_ms = until_ms
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SnowflakeParts:
    """A decoded Snowflake ID."""

    unix_ms: int
    worker_id: int
    sequence: int


@dataclass(frozen=True, slots=True)
class SnowflakeLayout:
    """Field widths (high to low: time, worker, sequence) and the epoch the time counts from.

    Construction validates: every width is a whole number, the time and sequence fields have
    at least one bit, and the three together fit in 63 bits. Bits left over above the time
    field stay zero.
    """

    time_bits: int = 41
    worker_bits: int = 10
    sequence_bits: int = 12
    epoch_ms: int = KVORUM_EPOCH_MS

    def __post_init__(self) -> None:
        widths = {
            "time_bits": self.time_bits,
            "worker_bits": self.worker_bits,
            "sequence_bits": self.sequence_bits,
        }
        for name, width in widths.items():
            if isinstance(width, bool) or not isinstance(width, int):
                raise LayoutError(f"{name} must be an int, got {width!r}")
            if width < 0:
                raise LayoutError(f"{name} must not be negative, got {width}")
        if self.time_bits < 1:
            raise LayoutError("time_bits must be at least 1: the timestamp orders the IDs")
        if self.sequence_bits < 1:
            raise LayoutError("sequence_bits must be at least 1 or a worker issues 1 ID per ms")
        total = self.time_bits + self.worker_bits + self.sequence_bits
        if total > SIGNED_64_PAYLOAD_BITS:
            raise LayoutError(
                f"layout needs {total} bits ({self.time_bits} time + {self.worker_bits} worker"
                f" + {self.sequence_bits} sequence) but a signed 64-bit ID has only "
                f"{SIGNED_64_PAYLOAD_BITS}"
            )
        if self.epoch_ms < 0:
            raise LayoutError(f"epoch_ms must be a Unix time in ms (>= 0), got {self.epoch_ms}")

    @property
    def unused_bits(self) -> int:
        """Always-zero bits at the top of the 64, the sign bit included."""
        return 64 - self.time_bits - self.worker_bits - self.sequence_bits

    @property
    def worker_shift(self) -> int:
        return self.sequence_bits

    @property
    def time_shift(self) -> int:
        return self.sequence_bits + self.worker_bits

    @property
    def max_worker_id(self) -> int:
        return (1 << self.worker_bits) - 1

    @property
    def max_sequence(self) -> int:
        return (1 << self.sequence_bits) - 1

    @property
    def ids_per_ms(self) -> int:
        """The most IDs one worker can issue in one millisecond."""
        return 1 << self.sequence_bits

    @property
    def last_unix_ms(self) -> int:
        """The last Unix millisecond the time field can encode."""
        return self.epoch_ms + (1 << self.time_bits) - 1

    def compose(self, unix_ms: int, worker_id: int, sequence: int) -> int:
        """The ID for these fields; :class:`LayoutError` if any does not fit its field."""
        elapsed_ms = unix_ms - self.epoch_ms
        if not 0 <= elapsed_ms < (1 << self.time_bits):
            raise LayoutError(
                f"time {unix_ms} ms is outside this layout's range "
                f"[{self.epoch_ms}, {self.last_unix_ms}]"
            )
        self.check_worker_id(worker_id)
        if not 0 <= sequence <= self.max_sequence:
            raise LayoutError(f"sequence {sequence} is outside [0, {self.max_sequence}]")
        return (elapsed_ms << self.time_shift) | (worker_id << self.worker_shift) | sequence

    def decode(self, snowflake_id: int) -> SnowflakeParts:
        """Split an ID back into (Unix time in ms, worker id, sequence).

        Raises :class:`LayoutError` if the ID is negative or sets bits above the layout.
        """
        if snowflake_id < 0 or snowflake_id >> (64 - self.unused_bits):
            raise LayoutError(
                f"{snowflake_id} is not an ID of this layout: it must be a non-negative "
                f"integer below 2**{64 - self.unused_bits}"
            )
        return SnowflakeParts(
            unix_ms=self.epoch_ms + (snowflake_id >> self.time_shift),
            worker_id=(snowflake_id >> self.worker_shift) & self.max_worker_id,
            sequence=snowflake_id & self.max_sequence,
        )

    def check_worker_id(self, worker_id: int) -> None:
        """Raise :class:`LayoutError` unless ``worker_id`` fits the worker field."""
        if isinstance(worker_id, bool) or not isinstance(worker_id, int):
            raise LayoutError(f"worker_id must be an int, got {worker_id!r}")
        if not 0 <= worker_id <= self.max_worker_id:
            raise LayoutError(
                f"worker_id {worker_id} is outside [0, {self.max_worker_id}] "
                f"({self.worker_bits} worker bits)"
            )

    def describe(self) -> str:
        """One line showing the fields high to low, e.g. ``1 unused | 41 time | ...``."""
        return (
            f"{self.unused_bits} unused | {self.time_bits} time (ms since {self.epoch_ms}) | "
            f"{self.worker_bits} worker | {self.sequence_bits} sequence"
        )


class Snowflake:
    """Issues unique, strictly increasing Snowflake IDs for one worker.

    ``clock_ms`` returns Unix milliseconds; ``sleep_ms`` (optional) blocks for milliseconds —
    without it, waits spin on the clock. ``max_backward_ms`` is the largest step back of the
    clock that is waited out rather than raised as :class:`ClockMovedBackwards`.

    Construction raises :class:`LayoutError` for a worker id that does not fit the layout and
    :class:`ClockOutOfRange` if the epoch is in the future (or already too far in the past).
    """

    def __init__(
        self,
        worker_id: int,
        clock_ms: ClockMs,
        *,
        layout: SnowflakeLayout | None = None,
        sleep_ms: SleepMs | None = None,
        max_backward_ms: int = 5,
    ) -> None:
        self.layout = layout if layout is not None else SnowflakeLayout()
        self.layout.check_worker_id(worker_id)
        if max_backward_ms < 0:
            raise ValueError(f"max_backward_ms must be >= 0, got {max_backward_ms}")
        self.worker_id = worker_id
        self.max_backward_ms = max_backward_ms
        self._clock_ms = clock_ms
        self._sleep_ms = sleep_ms
        now_ms = clock_ms()
        if self.layout.epoch_ms > now_ms:
            raise ClockOutOfRange(
                f"epoch {self.layout.epoch_ms} ms is in the future (clock reads {now_ms} ms); "
                f"IDs would need negative timestamps"
            )
        if now_ms > self.layout.last_unix_ms:
            raise ClockOutOfRange(
                f"clock {now_ms} ms is past the layout's last encodable ms "
                f"{self.layout.last_unix_ms}; choose a later epoch or more time bits"
            )
        self._worker_part = worker_id << self.layout.worker_shift
        self._time_shift = self.layout.time_shift
        self._max_sequence = self.layout.max_sequence
        # The millisecond of the last issued ID (-1: none yet), the next free sequence number
        # in it, and the ID bits that millisecond and this worker contribute (cached because
        # they only change when the millisecond does).
        self._last_ms = -1
        self._next_sequence = 0
        self._prefix = 0

    @property
    def last_ms(self) -> int:
        """The Unix millisecond of the last ID issued, or -1 if none was."""
        return self._last_ms

    def issue_at(self, now_ms: int, count: int = 1) -> range:
        """Reserve up to ``count`` consecutive IDs for the clock reading ``now_ms``.

        Returns a non-empty ``range`` of IDs (shorter than ``count`` when the millisecond's
        sequence runs out). Raises :class:`MustWait` when the sequence of the current
        millisecond is used up or the clock is at most ``max_backward_ms`` behind;
        :class:`ClockMovedBackwards` when it is further behind; :class:`ClockOutOfRange` when
        the layout cannot encode ``now_ms``.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        last_ms = self._last_ms
        if now_ms > last_ms:
            elapsed_ms = now_ms - self.layout.epoch_ms
            if elapsed_ms >> self.layout.time_bits or elapsed_ms < 0:
                raise ClockOutOfRange(
                    f"clock {now_ms} ms is outside the layout's range "
                    f"[{self.layout.epoch_ms}, {self.layout.last_unix_ms}]"
                )
            self._last_ms = now_ms
            self._next_sequence = 0
            self._prefix = (elapsed_ms << self._time_shift) | self._worker_part
        elif now_ms < last_ms:
            behind_ms = last_ms - now_ms
            if behind_ms > self.max_backward_ms:
                raise ClockMovedBackwards(behind_ms, self.max_backward_ms)
            raise MustWait(last_ms, f"clock is {behind_ms} ms behind the last issued ms")
        sequence = self._next_sequence
        if sequence > self._max_sequence:
            raise MustWait(last_ms + 1, f"all {self._max_sequence + 1} sequence numbers used")
        taken = min(count, self._max_sequence + 1 - sequence)
        self._next_sequence = sequence + taken
        first_id = self._prefix | sequence
        return range(first_id, first_id + taken)

    def next_id(self) -> int:
        """A new ID, larger than every ID this generator issued before.

        May wait (up to the rest of a millisecond, or up to ``max_backward_ms`` of clock skew);
        raises :class:`ClockMovedBackwards` or :class:`ClockOutOfRange` as :meth:`issue_at`.
        """
        now_ms = self._clock_ms()
        # Fast path: same millisecond, sequence left. Kept inline because it is the common case.
        if now_ms == self._last_ms:
            sequence = self._next_sequence
            if sequence <= self._max_sequence:
                self._next_sequence = sequence + 1
                return self._prefix | sequence
        while True:
            try:
                return self.issue_at(now_ms, 1).start
            except MustWait as wait:
                now_ms = wait_until(self._clock_ms, self._sleep_ms, wait.until_ms)

    def next_ids(self, count: int) -> list[int]:
        """``count`` new IDs in increasing order, reserving whole runs of sequence numbers.

        Waits and raises as :meth:`next_id`; if it raises, IDs reserved so far are dropped
        (never reissued).
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        ids: list[int] = []
        remaining = count
        now_ms = self._clock_ms()
        while remaining:
            try:
                run = self.issue_at(now_ms, remaining)
            except MustWait as wait:
                now_ms = wait_until(self._clock_ms, self._sleep_ms, wait.until_ms)
                continue
            ids.extend(run)
            remaining -= len(run)
            if remaining:
                now_ms = self._clock_ms()
        return ids
