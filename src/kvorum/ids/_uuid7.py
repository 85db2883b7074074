"""UUIDv7 (RFC 9562): 128-bit IDs that sort by creation time, and random UUIDv4 for contrast.

Theory of operation: a UUIDv7 is, high to low, a 48-bit Unix timestamp in milliseconds, the
4-bit version ``0111``, 12 bits ``rand_a``, the 2-bit variant ``10`` and 62 bits ``rand_b``.
The timestamp at the top makes byte order (and string order) follow creation time, which is
what a B-tree index wants; a v4 UUID is 122 random bits and lands anywhere in the index.

Monotonicity within a millisecond uses RFC 9562 §6.2 **Method 1, "Fixed Bit-Length Dedicated
Counter"**, with ``rand_a`` as a 12-bit counter:

* on a new millisecond the counter is seeded with 11 random bits — the leftmost counter bit
  starts at zero, the RFC's rollover guard, so at least 2,048 IDs fit in every millisecond;
* within the same millisecond the counter is incremented; ``rand_b`` is fresh randomness for
  every ID, so IDs stay hard to guess;
* if the counter overflows, the timestamp is advanced by one millisecond ahead of the clock
  and the counter reseeded (the RFC allows running ahead rather than blocking);
* if the clock steps back, the previous timestamp is reused and the counter incremented (also
  allowed by the RFC), so IDs from one generator strictly increase whatever the clock does.

Randomness comes from a passed-in ``random.Random``: seeded in tests and the simulator; the
runtime passes ``random.SystemRandom()`` when IDs must be unguessable.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from uuid import UUID

from kvorum.ids._clock import ClockMs

UNIX_MS_BITS = 48
COUNTER_BITS = 12
RAND_B_BITS = 62
_VERSION_7 = 0x7 << 76
_VERSION_4 = 0x4 << 76
_VARIANT_RFC = 0b10 << 62
_MAX_COUNTER = (1 << COUNTER_BITS) - 1
_MAX_UNIX_MS = (1 << UNIX_MS_BITS) - 1


class UuidError(ValueError):
    """A value is not a UUID of the expected version, or a time does not fit 48 bits."""


@dataclass(frozen=True, slots=True)
class UuidV7Parts:
    """A decoded UUIDv7: its timestamp, the 12-bit counter in ``rand_a`` and ``rand_b``."""

    unix_ms: int
    counter: int
    rand_b: int


def compose_uuid7(unix_ms: int, counter: int, rand_b: int) -> int:
    """The 128-bit integer of the UUIDv7 with these fields (version and variant set)."""
    if not 0 <= unix_ms <= _MAX_UNIX_MS:
        raise UuidError(f"unix_ms {unix_ms} does not fit in 48 bits")
    if not 0 <= counter <= _MAX_COUNTER:
        raise UuidError(f"counter {counter} does not fit in 12 bits")
    if not 0 <= rand_b < (1 << RAND_B_BITS):
        raise UuidError(f"rand_b {rand_b} does not fit in 62 bits")
    return (unix_ms << 80) | _VERSION_7 | (counter << 64) | _VARIANT_RFC | rand_b


def decode_uuid7(value: UUID | str) -> UuidV7Parts:
    """Split a UUIDv7 (object or canonical string) into its fields.

    Raises :class:`UuidError` if it is not an RFC 9562 version 7 UUID.
    """
    uuid = value if isinstance(value, UUID) else UUID(value)
    as_int = uuid.int
    if (as_int >> 76) & 0xF != 7 or (as_int >> 62) & 0b11 != 0b10:
        raise UuidError(f"{uuid} is not an RFC 9562 version 7 UUID")
    return UuidV7Parts(
        unix_ms=as_int >> 80,
        counter=(as_int >> 64) & _MAX_COUNTER,
        rand_b=as_int & ((1 << RAND_B_BITS) - 1),
    )


def uuid4_from(rng: Random) -> UUID:
    """A version 4 (random) UUID drawn from ``rng``: 122 random bits, no order at all."""
    bits = rng.getrandbits(128)
    bits &= ~((0xF << 76) | (0b11 << 62))
    return UUID(int=bits | _VERSION_4 | _VARIANT_RFC)


class UuidV7Generator:
    """Issues strictly increasing UUIDv7s (RFC 9562 Method 1, see the module docs).

    ``clock_ms`` returns Unix milliseconds; ``rng`` supplies the counter seeds and ``rand_b``.
    Never waits and never raises for clock trouble: a clock behind the last timestamp reuses
    it. Not thread-safe.
    """

    def __init__(self, clock_ms: ClockMs, rng: Random) -> None:
        self._clock_ms = clock_ms
        self._rng = rng
        self._last_ms = -1
        self._counter = 0

    @property
    def last_ms(self) -> int:
        """The timestamp of the last UUID issued (may run ahead of the clock), -1 if none."""
        return self._last_ms

    def next_int_at(self, now_ms: int) -> int:
        """The next UUIDv7 as a 128-bit integer, for the clock reading ``now_ms``."""
        if now_ms > self._last_ms:
            if now_ms > _MAX_UNIX_MS:
                raise UuidError(f"clock {now_ms} ms does not fit the 48-bit timestamp")
            self._last_ms = now_ms
            self._counter = self._rng.getrandbits(COUNTER_BITS - 1)
        else:
            # Same millisecond, or the clock stepped back: keep the last timestamp, count up.
            self._counter += 1
            if self._counter > _MAX_COUNTER:
                self._last_ms += 1  # run ahead of the clock instead of blocking
                self._counter = self._rng.getrandbits(COUNTER_BITS - 1)
        return (
            (self._last_ms << 80)
            | _VERSION_7
            | (self._counter << 64)
            | _VARIANT_RFC
            | self._rng.getrandbits(RAND_B_BITS)
        )

    def next_uuid(self) -> UUID:
        """A new UUIDv7, greater than every UUID this generator issued before."""
        return UUID(int=self.next_int_at(self._clock_ms()))

    def next_uuids(self, count: int) -> list[UUID]:
        """``count`` new UUIDv7s in increasing order, reading the clock once."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        now_ms = self._clock_ms()
        return [UUID(int=self.next_int_at(now_ms)) for _ in range(count)]
