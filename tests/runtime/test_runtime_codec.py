"""The wire codec: envelopes of every protocol round-trip, tags are pinned, garbage fails.

Round trips are hypothesis properties over every message class of every protocol the node
speaks, inside envelopes, with values spanning msgpack's whole integer range. The tag table
is pinned here number by number, so renumbering a message fails a test. Malformed input —
unknown protocols and tags, wrong field types, random bytes, mutated frames — must raise the
codec's own ``DecodeError`` and nothing else. The frame decoder is fed the same stream cut at
random places and must return the same payloads.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import struct
import typing
from enum import IntEnum
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.core.raft.messages import (
    RAFT_RETIRED_WIRE_TAGS,
    RAFT_WIRE_TAGS,
    AppendEntries,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    InstallSnapshot,
    RequestVote,
    SnapshotMeta,
)
from kvorum.core.shape import Envelope, ProtocolId
from kvorum.host.messages import (
    NODE_WIRE_TAGS,
    ForwardRequest,
    GroupBeat,
    GroupBeatAck,
    NodeHeartbeat,
)
from kvorum.runtime.codec import (
    WIRE_VERSION,
    DecodeError,
    EncodeError,
    FrameDecoder,
    FrameTooLargeError,
    Hello,
    IncompatiblePeerError,
    UnknownProtocolError,
    UnknownTagError,
    WireProtocol,
    WireSchema,
    decode_hello,
    encode_hello,
    frame,
)
from kvorum.runtime.wire_schema import RAFT_WIRE, WIRE_SCHEMA

SCHEMA = WIRE_SCHEMA
FINGERPRINT = SCHEMA.fingerprint
encode, decode = SCHEMA.encode, SCHEMA.decode

WIRE_INTS = st.integers(-(2**63), 2**64 - 1)  # everything msgpack can carry

MESSAGE_CLASSES = [(spec.protocol, cls) for spec in SCHEMA.protocols.values() for cls in spec.tags]
RECORD_CLASSES = [Entry, ConfState, SnapshotMeta, HardState, GroupBeat, GroupBeatAck]

# --- the pinned table -------------------------------------------------------------------------

PINNED_TAGS = {
    (ProtocolId.NODE, "ForwardRequest"): 0,
    (ProtocolId.NODE, "ForwardReply"): 1,
    (ProtocolId.NODE, "NodeHeartbeat"): 2,
    (ProtocolId.NODE, "NodeHeartbeatResponse"): 3,
    (ProtocolId.RAFT, "RequestVote"): 0,
    (ProtocolId.RAFT, "RequestVoteResponse"): 1,
    (ProtocolId.RAFT, "AppendEntries"): 2,
    (ProtocolId.RAFT, "AppendEntriesResponse"): 3,
    (ProtocolId.RAFT, "Heartbeat"): 4,
    (ProtocolId.RAFT, "HeartbeatResponse"): 5,
    (ProtocolId.RAFT, "InstallSnapshot"): 6,
    (ProtocolId.RAFT, "InstallSnapshotResponse"): 7,
    (ProtocolId.RAFT, "TimeoutNow"): 8,
    (ProtocolId.RAFT, "ReadIndexRequest"): 9,
    (ProtocolId.RAFT, "ReadIndexResponse"): 10,
}
"""Every message's wire number. These never change: a failure here means a message was
renumbered, which old and new nodes would read as each other's other messages. Add a new
message with a new number; retire a removed one's number in its protocol's retired set."""

PINNED_PROTOCOLS = {"NODE": 0, "RAFT": 1, "PAXOS": 2, "GOSSIP": 3}


def test_every_message_has_its_pinned_wire_number() -> None:
    actual = {
        (spec.protocol, cls.__name__): tag
        for spec in SCHEMA.protocols.values()
        for cls, tag in spec.tags.items()
    }
    assert actual == PINNED_TAGS
    assert {p.name: int(p) for p in ProtocolId} == PINNED_PROTOCOLS
    assert frozenset({11, 12}) == RAFT_RETIRED_WIRE_TAGS  # ClientForward(Reply) in version 1
    assert SCHEMA.protocols[ProtocolId.RAFT].tags is RAFT_WIRE_TAGS
    assert SCHEMA.protocols[ProtocolId.NODE].tags is NODE_WIRE_TAGS
    # ...and the numbers are what actually travels: [protocol, group, tag, fields...]
    for protocol, cls in MESSAGE_CLASSES:
        assert SCHEMA.tag_of(cls) == (protocol, PINNED_TAGS[protocol, cls.__name__])
    head = msgpack.unpackb(encode(Envelope(ProtocolId.RAFT, 7, 1, 2, Heartbeat(1, 2, 3, 4, 5))))
    assert head == [1, 7, 4, 1, 2, 3, 4, 5]


# --- strategies -------------------------------------------------------------------------------


def strategy_for(hint: object) -> st.SearchStrategy[Any]:
    """Values of a message field type, drawn independently of the codec's own plan."""
    if hint is bool:
        return st.booleans()
    if hint is int:
        return WIRE_INTS
    if hint is bytes:
        return st.binary(max_size=64)
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return st.sampled_from(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return instance_strategy(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is frozenset:
        return st.frozensets(WIRE_INTS, max_size=6)
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=5).map(tuple)
    if set(args) == {int, type(None)}:
        return st.none() | WIRE_INTS
    raise AssertionError(f"no strategy for {hint!r}")


def instance_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)})


def envelope_strategy(protocol: ProtocolId, cls: type) -> st.SearchStrategy[Envelope]:
    return st.builds(
        lambda body, group: Envelope(protocol, group, body.src, body.dst, body),
        instance_strategy(cls),
        WIRE_INTS,
    )


ANY_ENVELOPE = st.one_of([envelope_strategy(p, cls) for p, cls in MESSAGE_CLASSES])


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "cls"), MESSAGE_CLASSES, ids=lambda v: getattr(v, "__name__", str(v))
)
@given(data=st.data())
def test_every_message_type_round_trips_in_an_envelope(
    protocol: ProtocolId, cls: type, data: st.DataObject
) -> None:
    env = data.draw(envelope_strategy(protocol, cls))
    back = decode(encode(env))
    assert type(back) is Envelope and type(back.body) is cls
    assert back.protocol is protocol  # the enum member, not a bare int
    assert back == env
    assert encode(back) == encode(env)  # deterministic: frozensets travel sorted


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_record_type_round_trips_on_its_own(cls: type, data: st.DataObject) -> None:
    record = data.draw(instance_strategy(cls))
    back: object = SCHEMA.decode_record(cls, SCHEMA.encode_record(record))
    assert type(back) is cls
    assert back == record


def test_decoded_records_carry_real_enum_members_tuples_and_frozensets() -> None:
    entries = (Entry(3, 7, b"a"), Entry(3, 8, b"b", EntryKind.CONF_CHANGE))
    back = decode(
        encode(Envelope(ProtocolId.RAFT, 0, 1, 2, AppendEntries(1, 2, 3, 6, 3, entries, 5)))
    )
    assert isinstance(back.body, AppendEntries)
    assert back.body.entries[0].kind is EntryKind.NORMAL
    assert back.body.entries[1].kind is EntryKind.CONF_CHANGE  # the core tests kinds with `is`
    meta = SnapshotMeta(9, 2, ConfState(frozenset({3, 1, 2}), frozenset({4})))
    snap = decode(
        encode(Envelope(ProtocolId.RAFT, 0, 1, 2, InstallSnapshot(1, 2, 3, meta, 0, b"s", True)))
    ).body
    assert isinstance(snap, InstallSnapshot)
    assert type(snap.meta.conf.voters) is frozenset and snap.meta.conf.voters == {1, 2, 3}
    beats = (GroupBeat(5, 2, 10, 3, quiesce=True), GroupBeat(6, 2, 11, 3))
    node = decode(encode(Envelope(ProtocolId.NODE, 0, 1, 2, NodeHeartbeat(1, 2, 77, beats)))).body
    assert isinstance(node, NodeHeartbeat)
    assert type(node.beats) is tuple and node.beats == beats and node.beats[0].quiesce is True
    fwd = decode(
        encode(Envelope(ProtocolId.NODE, 4, 1, 2, ForwardRequest(1, 2, 9, (b"a", b""))))
    ).body
    assert isinstance(fwd, ForwardRequest) and fwd.payloads == (b"a", b"")


def test_payloads_are_compact() -> None:
    assert len(encode(Envelope(ProtocolId.RAFT, 0, 1, 2, Heartbeat(1, 2, 3, 4, 5)))) <= 10
    entries = tuple(Entry(5, i, b"x" * 100) for i in range(101, 117))
    payload = encode(
        Envelope(ProtocolId.RAFT, 0, 1, 2, AppendEntries(1, 2, 5, 100, 5, entries, 99))
    )
    assert len(payload) < 16 * 100 + 16 * 12  # ~ the data plus a few bytes per entry


# --- what encode refuses ----------------------------------------------------------------------


def test_encode_refuses_what_it_cannot_carry() -> None:
    hb = Heartbeat(1, 2, 3, 4, 5)
    with pytest.raises(EncodeError, match="not a message"):
        encode(Envelope(ProtocolId.RAFT, 0, 1, 2, Entry(1, 1)))
    with pytest.raises(EncodeError, match="cannot encode"):
        encode(Envelope(ProtocolId.RAFT, 0, 1, 2, Heartbeat(1, 2, 2**64, 0, 0)))
    # The schema reuses one packer: a failed encoding leaves nothing behind in it.
    assert decode(encode(Envelope(ProtocolId.RAFT, 0, 1, 2, hb))).body == hb
    with pytest.raises(EncodeError, match="does not fit its Heartbeat"):
        encode(Envelope(ProtocolId.NODE, 0, 1, 2, hb))  # wrong protocol for the body
    with pytest.raises(EncodeError, match="does not fit"):
        encode(Envelope(ProtocolId.RAFT, 0, 1, 3, hb))  # dst contradicts the body
    with pytest.raises(EncodeError, match="does not fit"):
        encode(Envelope(ProtocolId.RAFT, 0, 9, 2, hb))  # src contradicts the body
    for group in ("0", None, True, 1.0):
        with pytest.raises(EncodeError, match="group id"):
            encode(Envelope(ProtocolId.RAFT, group, 1, 2, hb))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="not a record"):
        SCHEMA.encode_record(hb)
    with pytest.raises(ValueError, match="not a record type"):
        SCHEMA.decode_record(Heartbeat, b"\x90")


# --- what decode refuses ----------------------------------------------------------------------

RAFT, NODE = 1, 0
HB = (RAFT, 0, 4)  # the head of a Raft heartbeat in group 0


@pytest.mark.parametrize(
    ("wire", "error", "words"),
    [
        ((9, 0, 4, 1, 2, 3, 4, 5), UnknownProtocolError, "unknown protocol 9"),
        ((2, 0, 0, 1, 2, 3), UnknownProtocolError, "PAXOS: not spoken"),
        ((-1, 0, 4, 1, 2, 3, 4, 5), UnknownProtocolError, "unknown protocol -1"),
        (("1", 0, 4, 1, 2, 3, 4, 5), UnknownProtocolError, "unknown protocol '1'"),
        ((True, 0, 4, 1, 2, 3, 4, 5), UnknownProtocolError, "unknown protocol True"),
        ((1.0, 0, 4, 1, 2, 3, 4, 5), UnknownProtocolError, "unknown protocol 1.0"),
        ((RAFT, 0, 99, 1, 2, 3), UnknownTagError, "unknown tag 99 in protocol RAFT"),
        (
            (RAFT, 0, 11, 1, 2, 3, 4, b""),
            UnknownTagError,
            "tag 11 in protocol RAFT (a retired number)",
        ),
        ((NODE, 0, 7, 1, 2), UnknownTagError, "unknown tag 7 in protocol NODE"),
        ((RAFT, 0, -1, 1, 2, 3), UnknownTagError, "unknown tag -1"),
        ((RAFT, 0, True, 1, 2, 3, 4, 5), UnknownTagError, "unknown tag True"),
        ((), DecodeError, "envelope array"),
        ((RAFT, 0), DecodeError, "envelope array"),
        ({"tag": 4}, DecodeError, "envelope array"),
        (4, DecodeError, "envelope array"),
        ((*HB, 1, 2, 3, 4), DecodeError, "malformed"),  # a field missing
        ((*HB, 1, 2, 3, 4, 5, 6), DecodeError, "malformed"),  # an extra field
        ((*HB, 1, 2, "3", 4, 5), DecodeError, "wrong field types"),
        ((*HB, 1, 2, True, 4, 5), DecodeError, "wrong field types"),
        ((*HB, 1, 2, None, 4, 5), DecodeError, "wrong field types"),
        ((RAFT, "0", 4, 1, 2, 3, 4, 5), DecodeError, "wrong field types"),  # text group id
        ((RAFT, None, 4, 1, 2, 3, 4, 5), DecodeError, "wrong field types"),
        ((RAFT, False, 4, 1, 2, 3, 4, 5), DecodeError, "wrong field types"),
        ((RAFT, 0, 0, 1, 2, 3, 4, 5, 1, 0), DecodeError, "wrong field types"),  # int for bool
        ((RAFT, 0, 2, 1, 2, 3, 4, 5, ((3, 5, b"x", 7),), 4), DecodeError, "malformed"),
        ((RAFT, 0, 2, 1, 2, 3, 4, 5, ((3, 5, "x", 0),), 4), DecodeError, "wrong field types"),
        ((RAFT, 0, 2, 1, 2, 3, 4, 5, ((3, 5, b"x"),), 4), DecodeError, "malformed"),
        ((RAFT, 0, 2, 1, 2, 3, 4, 5, 7, 4), DecodeError, "wrong field types"),
        ((NODE, 0, 0, 1, 2, 3, (b"a", "b")), DecodeError, "byte strings"),
        ((NODE, 0, 0, 1, 2, 3, b"ab"), DecodeError, "byte strings"),
        ((NODE, 0, 2, 1, 2, 3, ((1, 2, 3, 4, 1),)), DecodeError, "wrong field types"),
    ],
)
def test_decode_refuses_malformed_envelopes_by_name(
    wire: object, error: type[DecodeError], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        decode(msgpack.packb(wire))


def test_decode_refuses_trailing_bytes_and_truncation() -> None:
    payload = encode(Envelope(ProtocolId.RAFT, 0, 1, 2, RequestVote(1, 2, 3, 4, 5)))
    with pytest.raises(DecodeError):
        decode(payload + b"\x00")
    for cut in range(len(payload)):
        with pytest.raises(DecodeError):
            decode(payload[:cut])


# --- fuzz: nothing but DecodeError, ever ---------------------------------------------------------


def decodes_or_refuses(payload: bytes) -> None:
    try:
        env = decode(payload)
    except DecodeError:
        return
    assert type(env) is Envelope
    assert SCHEMA.tag_of(type(env.body))[0] is env.protocol
    assert decode(encode(env)) == env  # whatever decodes is a well-typed envelope


@given(st.binary(max_size=128))
def test_random_bytes_never_crash_the_decoder(garbage: bytes) -> None:
    decodes_or_refuses(garbage)


@given(env=ANY_ENVELOPE, position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_a_corrupted_byte_never_crashes_the_decoder(
    env: Envelope, position: int, value: int
) -> None:
    payload = bytearray(encode(env))
    payload[position % len(payload)] = value
    decodes_or_refuses(bytes(payload))


MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | WIRE_INTS
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=12,
)


@given(
    protocol=st.sampled_from([0, 1, 2, 3, 9]),
    tag=st.integers(-1, 14),
    fields=st.lists(MSGPACK_VALUES, max_size=9),
    group=st.integers(0, 3) | MSGPACK_VALUES,
)
def test_plausible_arrays_never_crash_the_decoder(
    protocol: int, tag: int, fields: list[Any], group: Any
) -> None:
    decodes_or_refuses(msgpack.packb([protocol, group, tag, *fields]))


# --- schemas: new protocols join without touching the codec -----------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Ballot:
    round: int
    node: int


@dataclasses.dataclass(frozen=True, slots=True)
class Prepare:
    src: int
    dst: int
    ballot: Ballot
    keys: tuple[bytes, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Promise:
    src: int
    dst: int
    ballot: Ballot
    accepted: tuple[Ballot, ...]
    ok: bool


PAXOS_WIRE_TAGS: dict[type, int] = {Prepare: 1, Promise: 2}


def test_a_new_protocol_joins_the_schema_with_its_own_table() -> None:
    extended = WireSchema(
        (*SCHEMA.protocols.values(), WireProtocol(ProtocolId.PAXOS, PAXOS_WIRE_TAGS))
    )
    prepare = Envelope(ProtocolId.PAXOS, 12, 1, 2, Prepare(1, 2, Ballot(3, 1), (b"k",)))
    promise = Envelope(
        ProtocolId.PAXOS, 12, 2, 1, Promise(2, 1, Ballot(3, 1), (Ballot(2, 3),), True)
    )
    for env in (prepare, promise):
        assert extended.decode(extended.encode(env)) == env
    raft = Envelope(ProtocolId.RAFT, 0, 1, 2, Heartbeat(1, 2, 3, 4, 5))
    assert extended.encode(raft) == encode(raft)  # the others' frames do not change
    assert extended.fingerprint != FINGERPRINT  # so nodes without Paxos refuse this one
    with pytest.raises(UnknownProtocolError, match="PAXOS"):
        decode(extended.encode(prepare))
    with pytest.raises(EncodeError, match="not a message"):
        encode(prepare)


def test_schemas_refuse_ambiguous_tables() -> None:
    with pytest.raises(ValueError, match="given to both"):
        WireProtocol(ProtocolId.PAXOS, {Prepare: 1, Promise: 1})
    with pytest.raises(ValueError, match="retired"):
        WireProtocol(ProtocolId.PAXOS, {Prepare: 1, Promise: 2}, retired_tags=frozenset({2}))
    with pytest.raises(ValueError, match="retired"):
        WireProtocol(
            ProtocolId.RAFT, {**RAFT_WIRE_TAGS, Prepare: 11}, retired_tags=RAFT_RETIRED_WIRE_TAGS
        )
    with pytest.raises(ValueError, match="int >= 0"):
        WireProtocol(ProtocolId.PAXOS, {Prepare: -1})
    with pytest.raises(ValueError, match="ProtocolId"):
        WireProtocol(2, {Prepare: 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="declared twice"):
        WireSchema(
            (
                WireProtocol(ProtocolId.PAXOS, {Prepare: 1}),
                WireProtocol(ProtocolId.PAXOS, {Promise: 1}),
            )
        )
    with pytest.raises(ValueError, match="one protocol"):
        WireSchema(
            (
                WireProtocol(ProtocolId.PAXOS, {Prepare: 1}),
                WireProtocol(ProtocolId.GOSSIP, {Prepare: 1}),
            )
        )

    @dataclasses.dataclass(frozen=True)
    class Floaty:
        src: int
        dst: int
        weight: float

    @dataclasses.dataclass(frozen=True)
    class Nameless:
        term: int

    with pytest.raises(TypeError, match=r"Floaty\.weight"):
        WireSchema((WireProtocol(ProtocolId.GOSSIP, {Floaty: 0}),))
    with pytest.raises(TypeError, match="src and dst"):
        WireSchema((WireProtocol(ProtocolId.GOSSIP, {Nameless: 0}),))


def test_the_fingerprint_covers_tags_layouts_and_retirements() -> None:
    assert WireSchema(SCHEMA.protocols.values()).fingerprint == FINGERPRINT  # deterministic
    swapped = {**RAFT_WIRE_TAGS, Heartbeat: RAFT_WIRE_TAGS[RequestVote], RequestVote: 4}
    variants = [
        dataclasses.replace(RAFT_WIRE, tags=swapped),
        dataclasses.replace(RAFT_WIRE, retired_tags=frozenset({11})),
        dataclasses.replace(RAFT_WIRE, tags={**RAFT_WIRE_TAGS, Prepare: 13}),
    ]
    node = SCHEMA.protocols[ProtocolId.NODE]
    fingerprints = {WireSchema((node, variant)).fingerprint for variant in variants}
    assert len(fingerprints) == 3 and FINGERPRINT not in fingerprints


# --- the hello --------------------------------------------------------------------------------


def test_hello_round_trips() -> None:
    hello = Hello("prod-eu", 3, 1)
    assert decode_hello(encode_hello(hello, FINGERPRINT), FINGERPRINT) == hello
    assert WIRE_VERSION == 2
    assert msgpack.unpackb(encode_hello(hello, FINGERPRINT)) == [
        "kvorum-raft",
        2,
        FINGERPRINT,
        "prod-eu",
        3,
        1,
    ]


def test_hello_of_another_version_is_refused_naming_the_peer_and_both_versions() -> None:
    version_1 = msgpack.packb(("kvorum-raft", 1, 0x1234, "prod-eu", 3, 1))
    with pytest.raises(IncompatiblePeerError) as refused:
        decode_hello(version_1, FINGERPRINT)
    assert str(refused.value) == "node 3 speaks wire version 1, this node wire version 2"
    assert refused.value.sender == 3 and refused.value.peer_version == 1
    future = msgpack.packb(("kvorum-raft", 3, 0x77, "c", 5, 1, "something new"))
    with pytest.raises(
        IncompatiblePeerError, match="node 5 speaks wire version 3, this node wire version 2"
    ):
        decode_hello(future, FINGERPRINT)
    terse = msgpack.packb(("kvorum-raft", 9))
    with pytest.raises(IncompatiblePeerError, match="the peer speaks wire version 9"):
        decode_hello(terse, FINGERPRINT)
    other_schema = encode_hello(Hello("c", 4, 1), FINGERPRINT ^ 1)
    with pytest.raises(
        IncompatiblePeerError, match="node 4 was built from other message definitions"
    ):
        decode_hello(other_schema, FINGERPRINT)


def test_hello_refuses_strangers() -> None:
    heartbeat = encode(Envelope(ProtocolId.RAFT, 0, 1, 2, Heartbeat(1, 2, 3, 4, 5)))
    for not_hello in (
        b"GET / HTTP/1.1\r\n",
        heartbeat,
        msgpack.packb(("kvorum-raft", WIRE_VERSION, FINGERPRINT, "", 3, 1)),
        msgpack.packb(("kvorum-raft", WIRE_VERSION, FINGERPRINT, "c", 3)),
        msgpack.packb(("kvorum-raft", WIRE_VERSION, FINGERPRINT, "c", 3, True)),
    ):
        with pytest.raises(DecodeError) as refused:
            decode_hello(not_hello, FINGERPRINT)
        assert not isinstance(refused.value, IncompatiblePeerError)
    with pytest.raises(ValueError, match="cluster_id"):
        Hello("", 1, 2)


# --- frames -----------------------------------------------------------------------------------


@given(
    envelopes=st.lists(ANY_ENVELOPE, max_size=12),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
)
def test_frame_decoder_returns_the_same_payloads_however_the_stream_is_cut(
    envelopes: list[Envelope], cuts: list[int]
) -> None:
    frames = [frame(encode(e)) for e in envelopes]
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    payloads: list[bytes] = []
    for start, end in itertools.pairwise(points):
        payloads += decoder.feed(stream[start:end])
    assert payloads == [f[4:] for f in frames]
    assert [decode(p) for p in payloads] == envelopes
    assert decoder.buffered_bytes == 0


def heartbeat_frame(round_: int) -> bytes:
    return frame(encode(Envelope(ProtocolId.RAFT, 0, 1, 2, Heartbeat(1, 2, 3, 4, round_))))


def test_frame_decoder_many_frames_per_read_and_byte_by_byte() -> None:
    frames = [heartbeat_frame(r) for r in range(50)]
    assert len(FrameDecoder().feed(b"".join(frames))) == 50
    decoder = FrameDecoder()
    stream = b"".join(frames[:3])
    got = [p for i in range(len(stream)) for p in decoder.feed(stream[i : i + 1])]
    assert [decode(p).body for p in got] == [Heartbeat(1, 2, 3, 4, r) for r in range(3)]
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
