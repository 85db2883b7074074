"""How the KV state machine lays out a stored value, and where its expire time sits.

Theory of operation: a key's expire-at time is stored *with its value*, so a write that
changes one changes both in one engine write. Layout: ``b"\\x00" + value`` (no expiry) or
``b"\\x01" + expire_at_ms (8 bytes, big-endian, signed) + value``. Engines read the expire
time with :func:`expire_at_of` to keep an index of the keys that expire (in the spirit of
Redis's ``expires`` dict), which is what lets an idle node know, without walking its keys,
that nothing is due.
"""

from __future__ import annotations

import struct

EXPIRY_FIELD = struct.Struct(">q")
"""The expire time's encoding, at offset 1 of a value that has one."""
PLAIN_PREFIX, _WITH_EXPIRY = b"\x00", b"\x01"
_HEADER_BYTES = 1 + EXPIRY_FIELD.size


def pack_value(value: bytes, expire_at_ms: int) -> bytes:
    """The stored form of ``value`` expiring at ``expire_at_ms`` (0: never)."""
    if expire_at_ms:
        return _WITH_EXPIRY + EXPIRY_FIELD.pack(expire_at_ms) + value
    return PLAIN_PREFIX + value


def unpack_value(stored: bytes) -> tuple[bytes, int]:
    """``(value, expire_at_ms)`` from :func:`pack_value`'s output (0: never expires)."""
    if stored[0] == 0:
        return stored[1:], 0
    return stored[_HEADER_BYTES:], EXPIRY_FIELD.unpack_from(stored, 1)[0]


def expire_at_of(stored: bytes) -> int:
    """The expire time of a stored value (0: none). Bytes that are not in the layout above
    (engines accept any value) count as never expiring."""
    if len(stored) >= _HEADER_BYTES and stored[0] == 1:
        expire_at_ms: int = EXPIRY_FIELD.unpack_from(stored, 1)[0]
        return expire_at_ms
    return 0
