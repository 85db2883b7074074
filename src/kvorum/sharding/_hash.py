"""Stable 64-bit hashing of keys and node names.

Theory of operation: placement must agree across processes, restarts and machines, so it can
never use Python's ``hash()`` (salted per process for ``str``/``bytes``). Every method here
hashes with :func:`hash64`: the first 8 bytes of BLAKE2b, read little-endian — a documented,
well-mixed 64-bit hash available in :mod:`hashlib` everywhere. Keys may be ``str`` (hashed as
UTF-8) or ``bytes``; the two spellings of the same text place identically.

Where one key must be scored against many nodes (rendezvous) the key is hashed once and
combined with each node's precomputed hash by :func:`mix64`, the SplitMix64 finaliser, which
turns any 64-bit input into a uniformly scrambled 64-bit output cheaply.
"""

from __future__ import annotations

import hashlib

Key = str | bytes
"""A key to place: text (hashed as its UTF-8 bytes) or raw bytes."""

MASK64 = (1 << 64) - 1


def key_bytes(key: Key) -> bytes:
    """``key`` as bytes: UTF-8 for text, unchanged for bytes."""
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"keys must be str or bytes, got {type(key).__name__}")


def hash64(key: Key, salt: bytes = b"") -> int:
    """A stable unsigned 64-bit hash of ``key`` (BLAKE2b-64, little-endian).

    ``salt`` (at most 16 bytes) gives independent hash functions over the same keys, e.g.
    Maglev's two per-node hashes. Same input, same output, on every machine and run.
    """
    digest = hashlib.blake2b(key_bytes(key), digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "little")


def mix64(value: int) -> int:
    """SplitMix64's finaliser: a bijective scramble of a 64-bit integer."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)
