"""The wire codec: every message and record round-trips, frames split and join, garbage fails.

Round trips are hypothesis properties over every class in ``MESSAGE_TYPES`` with values
spanning msgpack's whole integer range; the frame decoder is fed the same stream cut at
random places and must return the same payloads; malformed input must raise the codec's own
errors and nothing else.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.core.raft import messages
from kvorum.core.raft.messages import (
    MESSAGE_TYPES,
    AppendEntries,
    ConfState,
    Entry,
    EntryKind,
    Heartbeat,
    InstallSnapshot,
    RequestVote,
    SnapshotMeta,
)
from kvorum.runtime.codec import (
    RECORD_TYPES,
    SCHEMA_FINGERPRINT,
    WIRE_VERSION,
    DecodeError,
    EncodeError,
    FrameDecoder,
    FrameTooLargeError,
    Hello,
    IncompatiblePeerError,
    decode,
    decode_hello,
    decode_record,
    encode,
    encode_frame,
    encode_hello,
    encode_record,
    frame,
)

WIRE_INTS = st.integers(-(2**63), 2**64 - 1)  # everything msgpack can carry


def strategy_for(hint: object) -> st.SearchStrategy[Any]:
    """Values of a messages-module field type, drawn independently of the codec's own plan."""
    if hint is bool:
        return st.booleans()
    if hint is int:
        return WIRE_INTS
    if hint is bytes:
        return st.binary(max_size=64)
    if hint is EntryKind:
        return st.sampled_from(EntryKind)
    if hint in RECORD_TYPES:
        return record_strategy(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is frozenset:
        return st.frozensets(WIRE_INTS, max_size=6)
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=5).map(tuple)
    if set(args) == {int, type(None)}:
        return st.none() | WIRE_INTS
    raise AssertionError(f"no strategy for {hint!r}")


def record_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls, vars(messages))
    return st.builds(cls, **{f.name: strategy_for(hints[f.name])
                             for f in dataclasses.fields(cls)})


ANY_MESSAGE = st.one_of([record_strategy(cls) for cls in MESSAGE_TYPES])


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_message_type_round_trips(cls: type, data: st.DataObject) -> None:
    msg = data.draw(record_strategy(cls))
    back = decode(encode(msg))
    assert type(back) is cls
    assert back == msg
    assert encode(back) == encode(msg)  # deterministic: frozensets travel sorted


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_record_type_round_trips(cls: type, data: st.DataObject) -> None:
    record = data.draw(record_strategy(cls))
    back = decode_record(cls, encode_record(record))
    assert type(back) is cls
    assert back == record


def test_decoded_entries_carry_real_enum_members_and_frozensets() -> None:
    entries = (Entry(3, 7, b"a"), Entry(3, 8, b"b", EntryKind.CONF_CHANGE))
    back = decode(encode(AppendEntries(1, 2, 3, 6, 3, entries, 5)))
    assert isinstance(back, AppendEntries)
    assert back.entries[0].kind is EntryKind.NORMAL
    assert back.entries[1].kind is EntryKind.CONF_CHANGE  # the core tests kinds with `is`
    meta = SnapshotMeta(9, 2, ConfState(frozenset({3, 1, 2}), frozenset({4})))
    snap = decode(encode(InstallSnapshot(1, 2, 3, meta, 0, b"state", True)))
    assert isinstance(snap, InstallSnapshot)
    assert type(snap.meta.conf.voters) is frozenset
    assert snap.meta.conf.voters == {1, 2, 3}


def test_payloads_are_compact() -> None:
    assert len(encode(Heartbeat(1, 2, 3, 4, 5))) <= 8
    entries = tuple(Entry(5, i, b"x" * 100) for i in range(101, 117))
    payload = encode(AppendEntries(1, 2, 5, 100, 5, entries, 99))
    assert len(payload) < 16 * 100 + 16 * 12  # ~ the data plus a few bytes per entry


def test_encode_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(EncodeError, match="not a Raft message"):
        encode(Entry(1, 1))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="cannot encode"):
        encode(Heartbeat(1, 2, 2**64, 0, 0))
    with pytest.raises(EncodeError, match="not a Raft record"):
        encode_record(Heartbeat(1, 2, 3, 4, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one of the record types"):
        decode_record(Heartbeat, b"\x90")  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ((), "empty array"),
        ((99, 1, 2, 3), "unknown tag"),
        ((-1, 1, 2, 3), "negative tag"),
        ((True, 1, 2, 3, True), "bool tag"),
        ((4, 1, 2, 3, 4), "heartbeat missing a field"),
        ((4, 1, 2, 3, 4, 5, 6), "heartbeat with an extra field"),
        ((4, 1, 2, "3", 4, 5), "string term"),
        ((4, 1, 2, True, 4, 5), "bool term"),
        ((4, 1, 2, None, 4, 5), "nil term"),
        ((0, 1, 2, 3, 4, 5, 1, 0), "int where a bool goes"),
        ((2, 1, 2, 3, 4, 5, ((3, 5, b"x", 7),), 4), "unknown entry kind"),
        ((2, 1, 2, 3, 4, 5, ((3, 5, "x", 0),), 4), "entry data as text"),
        ((2, 1, 2, 3, 4, 5, ((3, 5, b"x"),), 4), "entry missing a field"),
        ((2, 1, 2, 3, 4, 5, 7, 4), "entries not an array"),
        ({"tag": 4}, "a map"),
        (4, "a bare integer"),
    ],
)
def test_decode_rejects_malformed_arrays(wire: object, reason: str) -> None:
    with pytest.raises(DecodeError):
        decode(msgpack.packb(wire))


def test_decode_rejects_trailing_bytes_and_truncation() -> None:
    payload = encode(RequestVote(1, 2, 3, 4, 5))
    with pytest.raises(DecodeError):
        decode(payload + b"\x00")
    for cut in range(len(payload)):
        with pytest.raises(DecodeError):
            decode(payload[:cut])


@given(st.binary(max_size=64))
def test_garbage_raises_decode_error_or_is_a_message(garbage: bytes) -> None:
    try:
        msg = decode(garbage)
    except DecodeError:
        return
    assert type(msg) in MESSAGE_TYPES


def test_hello_round_trips_and_refuses_strangers() -> None:
    hello = Hello("prod-eu", 3, 1)
    assert decode_hello(encode_hello(hello)) == hello
    old = msgpack.packb(("kvorum-raft", WIRE_VERSION + 1, SCHEMA_FINGERPRINT, "prod-eu", 3, 1))
    with pytest.raises(IncompatiblePeerError, match="wire version"):
        decode_hello(old)
    other_schema = msgpack.packb(("kvorum-raft", WIRE_VERSION, SCHEMA_FINGERPRINT ^ 1, "c", 3, 1))
    with pytest.raises(IncompatiblePeerError, match="schema"):
        decode_hello(other_schema)
    for not_hello in (b"GET / HTTP/1.1\r\n", encode(Heartbeat(1, 2, 3, 4, 5)),
                      msgpack.packb(("kvorum-raft", WIRE_VERSION, SCHEMA_FINGERPRINT, "", 3, 1))):
        with pytest.raises(DecodeError):
            decode_hello(not_hello)
    with pytest.raises(ValueError, match="cluster_id"):
        Hello("", 1, 2)


@given(
    messages_=st.lists(ANY_MESSAGE, max_size=12),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_frame_decoder_returns_the_same_payloads_however_the_stream_is_cut(
    messages_: list[Any], cuts: list[int]
) -> None:
    frames = [encode_frame(m) for m in messages_]
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    payloads: list[bytes] = []
    for start, end in itertools.pairwise(points):
        payloads += decoder.feed(stream[start:end])
    assert payloads == [f[4:] for f in frames]
    assert [decode(p) for p in payloads] == messages_
    assert decoder.buffered_bytes == 0


def test_frame_decoder_many_frames_per_read_and_byte_by_byte() -> None:
    frames = [encode_frame(Heartbeat(1, 2, 3, 4, r)) for r in range(50)]
    assert len(FrameDecoder().feed(b"".join(frames))) == 50
    decoder = FrameDecoder()
    stream = b"".join(frames[:3])
    got = [p for i in range(len(stream)) for p in decoder.feed(stream[i:i + 1])]
    assert [decode(p) for p in got] == [Heartbeat(1, 2, 3, 4, r) for r in range(3)]
    assert FrameDecoder().feed(memoryview(bytearray(frames[0]))) == [frames[0][4:]]
    assert FrameDecoder().feed(frame(b"")) == [b""]  # empty frames are framing-legal


def test_frame_decoder_refuses_oversize_frames_before_they_arrive() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    ok = frame(b"y" * 100, max_frame_bytes=100)
    header = struct.pack(">I", 101)
    with pytest.raises(FrameTooLargeError, match="101 bytes"):
        decoder.feed(ok + header)  # only the header of the big one has arrived
    assert decoder.buffered_bytes == 0
    with pytest.raises(FrameTooLargeError):  # the stream has lost its framing for good
        decoder.feed(ok)
    with pytest.raises(FrameTooLargeError, match="exceeds the 10-byte"):
        frame(b"z" * 11, max_frame_bytes=10)
    for bad in (0, -1, 2**32):
        with pytest.raises(ValueError, match="max_frame_bytes"):
            FrameDecoder(max_frame_bytes=bad)
