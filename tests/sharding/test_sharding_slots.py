"""Redis Cluster hash slots: CRC16/XMODEM mod 16384 with hash tags, exactly as Redis computes
them (documented examples, values a Redis server reports, and redis-py's own implementation)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot as redis_py_key_slot

from kvorum.sharding import SLOT_COUNT, hash_tag, key_slot


def xmodem_bitwise(data: bytes) -> int:
    """CRC16/XMODEM one bit at a time, straight from its definition (the reference)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_the_crc_is_xmodem() -> None:
    # The check value of CRC-16/XMODEM, and the one Redis's crc16.c documents.
    assert xmodem_bitwise(b"123456789") == 0x31C3
    assert key_slot(b"123456789") == 0x31C3 % SLOT_COUNT


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"somekey", 11058),  # CLUSTER KEYSLOT's documented example
        (b"foo{hash_tag}", 2515),  # ... and its hash-tag examples
        (b"bar{hash_tag}", 2515),
        (b"foo", 12182),  # what redis-cli -c reports when redirected
        (b"bar", 5061),
        (b"hello", 866),
        (b"", 0),
    ],
)
def test_known_slots(key: bytes, slot: int) -> None:
    assert key_slot(key) == slot


def test_hash_tags_follow_the_cluster_specification() -> None:
    # The examples of the Redis Cluster specification, "Hash tags".
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")
    assert hash_tag(b"foo{}{bar}") == b"foo{}{bar}"  # empty first tag: the whole key
    assert hash_tag(b"foo{{bar}}zap") == b"{bar"  # from the first { to the first } after it
    assert hash_tag(b"foo{bar}{zap}") == b"bar"  # only the first tag counts
    assert hash_tag(b"{a}") == b"a"
    assert hash_tag(b"no}tag{here") == b"no}tag{here"  # a } before the { is no tag
    assert hash_tag(b"open{only") == b"open{only"
    assert key_slot(b"foo{}{bar}") == xmodem_bitwise(b"foo{}{bar}") % SLOT_COUNT


@given(st.binary(max_size=40) | st.from_regex(rb"[a-c{}]{0,12}", fullmatch=True))
def test_agrees_with_the_reference_and_with_redis_py(key: bytes) -> None:
    slot = key_slot(key)
    assert 0 <= slot < SLOT_COUNT
    assert slot == xmodem_bitwise(hash_tag(key)) % SLOT_COUNT
    assert slot == redis_py_key_slot(key)
