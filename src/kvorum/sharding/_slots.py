"""Redis Cluster's hash slots: which of 16,384 slots a key belongs to.

Theory of operation: Redis Cluster places a key by ``CRC16(key) mod 16384``, where CRC16 is
the XMODEM variant (polynomial 0x1021, initial value 0, no reflection, no final XOR). A key
may carry a *hash tag*: if it contains a ``{`` and, after it, a ``}`` with at least one byte
in between, only the bytes between the first ``{`` and the first ``}`` after it are hashed,
so ``{user1000}.following`` and ``{user1000}.followers`` share a slot and multi-key commands
on them can run on one shard. An empty tag (``foo{}{bar}``) means the whole key is hashed.
Redis's ``keyHashSlot`` is followed to the letter, because Redis Cluster clients compute slots
themselves and must agree with the server.

The CRC is the standard library's ``binascii.crc_hqx`` (CRC-CCITT with a caller-given initial
value, which with 0 is exactly XMODEM), so a slot costs a C call rather than a Python loop.
"""

from __future__ import annotations

from binascii import crc_hqx

SLOT_COUNT = 16384
"""How many hash slots Redis Cluster has."""
_SLOT_MASK = SLOT_COUNT - 1


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that decides its slot: the hash tag if it has one, else the key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key`` (0 to 16383), honouring hash tags."""
    return crc_hqx(hash_tag(key), 0) & _SLOT_MASK
