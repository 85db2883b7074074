"""ULID: 128-bit IDs written as 26 Crockford base32 characters that sort by creation time.

Theory of operation: a ULID is a 48-bit Unix timestamp in milliseconds followed by 80 bits of
randomness. Written in Crockford's base32 (``0-9A-Z`` without ``I L O U``, 5 bits a character,
most significant first) it is 26 characters whose string order equals numeric order equals
time order; 26 characters hold 130 bits, so the first character is at most ``7``.

Monotonic generation follows the ULID spec: in a new millisecond the 80 random bits are drawn
fresh; in the same millisecond the previous random part is incremented by one, so IDs from one
generator strictly increase. A clock that steps back reuses the last timestamp (as our UUIDv7
generator does) to keep that promise. If the increment overflows 80 bits — 2**80 IDs in a
millisecond, or a random start very near the top — the spec says generation fails, so
:class:`UlidOverflow` is raised.

Decoding is lenient where Crockford says to be: case-insensitive, ``I``/``L`` read as ``1`` and
``O`` as ``0``. Randomness comes from a passed-in ``random.Random``.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from kvorum.ids._clock import ClockMs

ULID_LENGTH = 26
TIME_BITS = 48
RANDOM_BITS = 80
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MAX_RANDOM = (1 << RANDOM_BITS) - 1
_MAX_ULID = (1 << 128) - 1
# Encoding 10 bits (two characters) per table lookup halves the Python-level loop; 13 pairs
# cover 130 bits, exactly the 26 characters.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_PAIR_SHIFTS = tuple(range(120, -1, -10))
_DECODE = {ch: i for i, ch in enumerate(_ALPHABET)}
_DECODE.update({ch.lower(): i for ch, i in list(_DECODE.items())})
_DECODE.update({"I": 1, "i": 1, "L": 1, "l": 1, "O": 0, "o": 0})


class UlidError(ValueError):
    """Text is not a valid ULID, or a value does not fit in one."""


class UlidOverflow(RuntimeError):
    """The random part cannot be incremented within this millisecond (ULID spec: fail)."""


@dataclass(frozen=True, slots=True)
class UlidParts:
    """A decoded ULID."""

    unix_ms: int
    randomness: int


def encode_ulid(value: int) -> str:
    """The 26-character Crockford base32 form of a 128-bit integer."""
    if not 0 <= value <= _MAX_ULID:
        raise UlidError(f"{value} does not fit in 128 bits")
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


def decode_ulid(text: str) -> int:
    """The 128-bit integer a ULID string stands for.

    Raises :class:`UlidError` for a wrong length, a character outside Crockford's alphabet,
    or a first character above ``7`` (the value would exceed 128 bits).
    """
    if len(text) != ULID_LENGTH:
        raise UlidError(f"a ULID has {ULID_LENGTH} characters, got {len(text)}: {text!r}")
    value = 0
    for position, ch in enumerate(text):
        digit = _DECODE.get(ch)
        if digit is None:
            raise UlidError(f"{ch!r} at position {position} of {text!r} is not Crockford base32")
        value = (value << 5) | digit
    if value > _MAX_ULID:
        raise UlidError(f"{text!r} exceeds 128 bits: its first character must be 0-7")
    return value


def decode_ulid_parts(text: str) -> UlidParts:
    """Split a ULID string into its timestamp and random part."""
    value = decode_ulid(text)
    return UlidParts(unix_ms=value >> RANDOM_BITS, randomness=value & _MAX_RANDOM)


def compose_ulid(unix_ms: int, randomness: int) -> int:
    """The 128-bit integer of the ULID with these parts."""
    if not 0 <= unix_ms < (1 << TIME_BITS):
        raise UlidError(f"unix_ms {unix_ms} does not fit in 48 bits")
    if not 0 <= randomness <= _MAX_RANDOM:
        raise UlidError(f"randomness {randomness} does not fit in 80 bits")
    return (unix_ms << RANDOM_BITS) | randomness


class UlidGenerator:
    """Issues strictly increasing ULIDs (monotonic per the ULID spec, see the module docs).

    ``clock_ms`` returns Unix milliseconds; ``rng`` supplies the random parts. Not
    thread-safe.
    """

    def __init__(self, clock_ms: ClockMs, rng: Random) -> None:
        self._clock_ms = clock_ms
        self._rng = rng
        self._last_ms = -1
        self._randomness = 0

    def next_int_at(self, now_ms: int) -> int:
        """The next ULID as a 128-bit integer, for the clock reading ``now_ms``."""
        if now_ms > self._last_ms:
            if now_ms >> TIME_BITS:
                raise UlidError(f"clock {now_ms} ms does not fit the 48-bit timestamp")
            self._last_ms = now_ms
            self._randomness = self._rng.getrandbits(RANDOM_BITS)
        else:
            if self._randomness == _MAX_RANDOM:
                raise UlidOverflow(
                    f"random part exhausted within millisecond {self._last_ms}; retry once the "
                    f"clock is past it"
                )
            self._randomness += 1
        return (self._last_ms << RANDOM_BITS) | self._randomness

    def next_ulid(self) -> str:
        """A new ULID string, greater than every ULID this generator issued before."""
        return encode_ulid(self.next_int_at(self._clock_ms()))
