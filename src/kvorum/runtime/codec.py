"""Node-to-node messages on the wire: envelopes as msgpack arrays in length-prefixed frames.

Theory of operation. Every message between two nodes travels in an
:class:`~kvorum.core.shape.Envelope` that names its protocol and its group, so one
connection carries every group's and every protocol's traffic. On the wire an envelope is
one msgpack array ``[protocol, group_id, tag, field, field, ...]``: ``protocol`` is the
:class:`~kvorum.core.shape.ProtocolId`, ``tag`` the body's number in its protocol's table
(``RAFT_WIRE_TAGS`` beside the Raft messages, ``NODE_WIRE_TAGS`` beside the host's) and the
fields follow the body's dataclass field order; the envelope's sender and receiver are the
body's own ``src`` and ``dst``. No field names travel, so a heartbeat is about a dozen bytes.
Tags are numbers declared once, never positions in a list, and never renumbered or reused
(a retired number is declared as such and refused): a frame means the same thing to every
build that knows its tag, and a build that does not know it refuses it by name.

A :class:`WireSchema` is the registry of what one build speaks: one :class:`WireProtocol`
per protocol (its tag table, its retired tags, records it carries on their own). It
generates each class's encoder and decoder once (:mod:`kvorum.runtime.codegen`), checks
every tag table, and computes :attr:`WireSchema.fingerprint`, a CRC of every protocol's
number, tags and field layouts. A new protocol (Paxos, gossip) declares its table beside its
messages and is added to the schema (:mod:`kvorum.runtime.wire_schema`); nothing here
changes. Decoding checks the protocol, the tag, the number of fields and every field's type,
nested ones included, and refuses trailing bytes: a malformed payload raises
:class:`DecodeError` (:class:`UnknownProtocolError` and :class:`UnknownTagError` name what
was unknown) and never yields a half-typed message. It does not check protocol meaning (a
negative term decodes) nor whether this node holds the group (the host's job).

A stream carries frames: a 4-byte big-endian payload length, then the payload.
:class:`FrameDecoder` is sans-I/O — ``feed(bytes)`` returns every payload completed so far,
whether a read brought half a frame or a hundred — and refuses any frame announced as larger
than its limit *before* buffering it, so one bad peer cannot make a node allocate gigabytes.

Compatibility: the first frame of a connection is a :class:`Hello` carrying
:data:`WIRE_VERSION` and the schema fingerprint; a node refuses a peer of another version or
another schema at connect time (:class:`IncompatiblePeerError`) instead of misreading its
frames. The hello's first five fields (magic, version, fingerprint, cluster id, sender) keep
their places in every version, so that any two versions can tell each other who they are
and which version each speaks.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import msgpack

from kvorum.core.shape import Envelope, NodeId, ProtocolId
from kvorum.runtime.codegen import (
    CodeWriter,
    DecodeEnvelope,
    DecodeRecord,
    EncodeEnvelope,
    EncodeRecord,
    describe,
    nested_records,
)

WIRE_VERSION = 2
"""Bumped whenever the framing, the hello or the envelope changes shape. Version 1 carried
bare Raft messages tagged by their position in a list; version 2 carries envelopes."""

FRAME_HEADER_BYTES = 4
MAX_FRAME_LIMIT_BYTES = 2**32 - 1
"""The largest length the 4-byte header can announce."""
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Large enough for a snapshot chunk of several megabytes, small enough to refuse garbage."""

HELLO_MAGIC = "kvorum-raft"
"""First field of every hello, so a stray client (an HTTP probe, a Redis client) is refused.
It names Raft for history's sake and must not change: it is how nodes of every wire
version recognise each other's hello (and then refuse a different version clearly)."""

_HEADER = struct.Struct(">I")
_packb = msgpack.packb
_unpackb = msgpack.unpackb


class CodecError(ValueError):
    """Anything the codec refuses to encode or decode."""


class EncodeError(CodecError):
    """The object is not something the codec carries, or a value does not fit msgpack."""


class DecodeError(CodecError):
    """The bytes are not a well-formed payload of the expected kind."""


class UnknownProtocolError(DecodeError):
    """A frame names a protocol this node's schema does not carry."""


class UnknownTagError(DecodeError):
    """A frame names a message number its protocol's table does not hold."""


class IncompatiblePeerError(DecodeError):
    """The peer's hello names another wire version or message schema."""

    def __init__(
        self,
        sender: NodeId | None,
        peer_version: object,
        peer_fingerprint: object,
        version: int,
        fingerprint: int,
    ) -> None:
        who = f"node {sender}" if sender is not None else "the peer"
        if peer_version != version:
            what = f"speaks wire version {peer_version!r}, this node wire version {version}"
        else:
            what = (
                f"was built from other message definitions (schema {_hex(peer_fingerprint)}, "
                f"this node's {_hex(fingerprint)})"
            )
        super().__init__(f"{who} {what}")
        self.sender = sender
        self.peer_version = peer_version
        self.peer_fingerprint = peer_fingerprint


def _hex(fingerprint: object) -> str:
    return f"{fingerprint:#010x}" if isinstance(fingerprint, int) else repr(fingerprint)


class FrameTooLargeError(CodecError):
    """A frame's announced or actual length exceeds the configured maximum."""


# --- the schema: which protocols this build speaks, and how -----------------------------------


@dataclass(frozen=True)
class WireProtocol:
    """One protocol's part of the wire format: which number each of its messages travels as.

    ``tags`` maps each message class to its number: declared once beside the classes, never
    renumbered; a number a removed message used goes to ``retired_tags`` and may never be
    given again. Records nested in the messages' fields are found by themselves;
    ``standalone_records`` adds records encoded on their own (:meth:`WireSchema.encode_record`).
    """

    protocol: ProtocolId
    tags: Mapping[type, int]
    retired_tags: frozenset[int] = frozenset()
    standalone_records: tuple[type, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, ProtocolId):
            raise ValueError(f"protocol must be a ProtocolId, got {self.protocol!r}")
        name = self.protocol.name
        if not self.tags:
            raise ValueError(f"protocol {name} has no messages")
        seen: dict[int, type] = {}
        for cls, tag in self.tags.items():
            if type(tag) is not int or tag < 0:
                raise ValueError(f"{name} tag of {cls.__name__} must be an int >= 0, got {tag!r}")
            if tag in seen:
                raise ValueError(
                    f"{name} tag {tag} is given to both {seen[tag].__name__} and {cls.__name__}"
                )
            if tag in self.retired_tags:
                raise ValueError(f"{name} tag {tag} ({cls.__name__}) is retired: take a new one")
            seen[tag] = cls


Record = TypeVar("Record")


class WireSchema:
    """Encodes and decodes envelopes of the protocols it is built from; see the module
    docstring. Immutable once built; building it generates every class's codec."""

    def __init__(self, protocols: Iterable[WireProtocol]) -> None:
        self._protocols: dict[ProtocolId, WireProtocol] = {}
        self._encoders: dict[type, EncodeEnvelope] = {}
        self._decoders: dict[int, dict[int, DecodeEnvelope]] = {}
        self._records: dict[type, tuple[EncodeRecord, DecodeRecord]] = {}
        owner: dict[type, ProtocolId] = {}
        layout: list[str] = []
        for spec in sorted(protocols, key=lambda s: s.protocol):
            if spec.protocol in self._protocols:
                raise ValueError(f"protocol {spec.protocol.name} is declared twice")
            self._protocols[spec.protocol] = spec
            writer = CodeWriter(_bad_envelope)  # one namespace per protocol: names may repeat
            records = nested_records(spec.tags)
            records += [r for r in nested_records(spec.standalone_records) if r not in records]
            records += [r for r in spec.standalone_records if r not in records]
            for record_cls in records:
                pair = writer.record(record_cls)
                self._records.setdefault(record_cls, pair)
            decoders: dict[int, DecodeEnvelope] = {}
            for cls, tag in sorted(spec.tags.items(), key=lambda item: item[1]):
                if cls in owner:
                    raise ValueError(
                        f"{cls.__name__} is a message of both {owner[cls].name} and "
                        f"{spec.protocol.name}: a class belongs to one protocol"
                    )
                owner[cls] = spec.protocol
                self._encoders[cls], decoders[tag] = writer.message(cls, spec.protocol, tag)
                layout.append(f"{int(spec.protocol)}.{tag}={describe(cls)}")
            self._decoders[int(spec.protocol)] = decoders
            layout += [f"{int(spec.protocol)}.record={describe(r)}" for r in records]
            layout.append(f"{int(spec.protocol)}.retired={sorted(spec.retired_tags)}")
        self._fingerprint = zlib.crc32(";".join(layout).encode())
        # One packer, reused: ``msgpack.packb`` builds a Packer per call, which was 40% of a
        # heartbeat's encoding. Sharing it between threads is safe under the GIL because
        # packing the values this codec produces (ints, bytes, arrays, nil) calls no Python
        # code, so no other thread runs in the middle; a failed pack resets its buffer.
        self._pack = msgpack.Packer().pack

    @property
    def fingerprint(self) -> int:
        """CRC-32 of every protocol's number, tags, retired tags and field layouts."""
        return self._fingerprint

    @property
    def protocols(self) -> Mapping[ProtocolId, WireProtocol]:
        return dict(self._protocols)

    def tag_of(self, cls: type) -> tuple[ProtocolId, int]:
        """The protocol and wire number of message class ``cls`` (KeyError if not carried)."""
        for spec in self._protocols.values():
            if cls in spec.tags:
                return spec.protocol, spec.tags[cls]
        raise KeyError(f"{cls.__name__} is not a message of this schema")

    # --- envelopes ---------------------------------------------------------------------------

    def encode(self, env: Envelope) -> bytes:
        """The msgpack payload for one envelope (no frame header).

        Raises :class:`EncodeError` for a body that is not a message of this schema, an
        envelope whose protocol, sender or receiver contradicts its body or whose group id is
        not an int, or a value msgpack cannot carry (an integer outside 64 bits). The body's
        field types are trusted here — they come from this node's own cores — and checked by
        the receiver.
        """
        body = env.body
        encoder = self._encoders.get(body.__class__)
        if encoder is None:
            raise EncodeError(
                f"cannot encode {type(body).__name__}: not a message of any protocol spoken here"
            )
        try:
            return self._pack(encoder(env, body))
        except EncodeError:
            raise
        except (OverflowError, TypeError, ValueError) as exc:
            raise EncodeError(f"cannot encode {env!r:.200}: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview) -> Envelope:
        """The envelope in ``payload``; :class:`DecodeError` if it is not exactly one valid one."""
        try:
            array = _unpackb(payload, use_list=False)
            if array.__class__ is not tuple or len(array) < 3:
                raise DecodeError(f"expected an envelope array, got {array!r:.80}")
            protocol = array[0]
            tags = self._decoders.get(protocol)
            if tags is None or protocol.__class__ is not int:
                raise UnknownProtocolError(f"unknown protocol {_protocol_name(protocol)}")
            tag = array[2]
            decoder = tags.get(tag)
            if decoder is None or tag.__class__ is not int:
                raise UnknownTagError(self._unknown_tag(protocol, tag))
            return decoder(array)
        except DecodeError:
            raise
        except Exception as exc:  # msgpack's errors, wrong arity, unknown enum values...
            raise DecodeError(f"malformed payload ({len(payload)} bytes): {exc}") from exc

    def _unknown_tag(self, protocol: int, tag: object) -> str:
        spec = self._protocols[ProtocolId(protocol)]
        retired = " (a retired number)" if tag in spec.retired_tags else ""
        return f"unknown tag {tag!r:.40} in protocol {spec.protocol.name}{retired}"

    # --- records on their own ------------------------------------------------------------------

    def encode_record(self, record: object) -> bytes:
        """The msgpack payload for one record on its own (the same array as when nested)."""
        pair = self._records.get(record.__class__)
        if pair is None:
            raise EncodeError(f"cannot encode {type(record).__name__}: not a record type here")
        try:
            return _packb(pair[0](record))
        except (OverflowError, TypeError, ValueError) as exc:
            raise EncodeError(f"cannot encode {record!r:.200}: {exc}") from exc

    def decode_record(self, kind: type[Record], payload: bytes | bytearray | memoryview) -> Record:
        """The ``kind`` record in ``payload``; :class:`DecodeError` if it is not a valid one."""
        pair = self._records.get(kind)
        if pair is None:
            raise ValueError(f"{kind!r} is not a record type of this schema")
        try:
            array = _unpackb(payload, use_list=False)
            if array.__class__ is not tuple:
                raise DecodeError(f"expected a {kind.__name__} array, got {type(array).__name__}")
            return cast(Record, pair[1](array))
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"malformed {kind.__name__} payload: {exc}") from exc


def _protocol_name(protocol: object) -> str:
    if protocol.__class__ is int and protocol in ProtocolId._value2member_map_:
        return f"{protocol} ({ProtocolId(protocol).name}: not spoken by this node)"
    return f"{protocol!r:.40}"


def _bad_envelope(env: Envelope, protocol: int) -> EncodeError:
    body: Any = env.body
    if env.group_id.__class__ is not int:
        return EncodeError(f"envelope group id must be an int, got {env.group_id!r:.40}")
    return EncodeError(
        f"envelope ({env.protocol!r}, from {env.src} to {env.dst}) does not fit its "
        f"{type(body).__name__} (protocol {ProtocolId(protocol).name}, from {body.src} "
        f"to {body.dst})"
    )


# --- the connection hello ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame on every connection: who is calling whom, in which cluster."""

    cluster_id: str
    sender: NodeId
    receiver: NodeId
    """The node the sender believes it dialled; a node reached at a stale address refuses."""

    def __post_init__(self) -> None:
        if not isinstance(self.cluster_id, str) or not self.cluster_id:
            raise ValueError(f"cluster_id must be a non-empty string, got {self.cluster_id!r}")
        for name in ("sender", "receiver"):
            value = getattr(self, name)
            if type(value) is not int:
                raise ValueError(f"Hello.{name} must be an int node id, got {value!r}")


def encode_hello(hello: Hello, schema_fingerprint: int) -> bytes:
    """The payload of a hello frame, stamped with this build's wire version and the
    fingerprint of the schema it speaks (:attr:`WireSchema.fingerprint`)."""
    return _packb(
        (
            HELLO_MAGIC,
            WIRE_VERSION,
            schema_fingerprint,
            hello.cluster_id,
            hello.sender,
            hello.receiver,
        )
    )


def decode_hello(payload: bytes | bytearray | memoryview, schema_fingerprint: int) -> Hello:
    """The hello in ``payload``, from a peer that speaks this node's version and schema.

    Raises :class:`IncompatiblePeerError` (naming the peer when its hello does, and both
    versions or schemas) when the peer speaks another wire version or was built from other
    message definitions, and :class:`DecodeError` for anything that is not a hello at all.
    """
    try:
        array = _unpackb(payload, use_list=False)
    except Exception as exc:
        raise DecodeError(f"malformed hello ({len(payload)} bytes): {exc!r}") from exc
    if array.__class__ is not tuple or len(array) < 2 or array[0] != HELLO_MAGIC:
        raise DecodeError(f"not a kvorum hello: {array!r:.80}")
    version = array[1]
    # Every version keeps magic, version, fingerprint, cluster id and sender in these places.
    fingerprint = array[2] if len(array) > 2 else None
    if version != WIRE_VERSION or fingerprint != schema_fingerprint:
        sender = array[4] if len(array) > 4 and type(array[4]) is int else None
        raise IncompatiblePeerError(sender, version, fingerprint, WIRE_VERSION, schema_fingerprint)
    if len(array) != 6:
        raise DecodeError(f"malformed hello: {array!r:.80}")
    _, _, _, cluster_id, sender, receiver = array
    try:
        return Hello(cluster_id, sender, receiver)
    except ValueError as exc:
        raise DecodeError(f"malformed hello: {exc}") from exc


# --- frames -----------------------------------------------------------------------------------


def _check_max_frame_bytes(max_frame_bytes: int) -> None:
    if not 1 <= max_frame_bytes <= MAX_FRAME_LIMIT_BYTES:
        raise ValueError(
            f"max_frame_bytes must be in 1..{MAX_FRAME_LIMIT_BYTES}, got {max_frame_bytes}"
        )


def frame(payload: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """``payload`` behind its 4-byte big-endian length; :class:`FrameTooLargeError` if over."""
    size = len(payload)
    if size > max_frame_bytes:
        raise FrameTooLargeError(
            f"payload of {size} bytes exceeds the {max_frame_bytes}-byte frame limit"
        )
    return _HEADER.pack(size) + payload


class FrameDecoder:
    """Splits a byte stream into frame payloads; see the module docstring.

    After a :class:`FrameTooLargeError` the stream has lost its framing, so every later
    :meth:`feed` raises the same error: the caller must drop the connection.
    """

    __slots__ = ("_buffer", "_failure", "_max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        _check_max_frame_bytes(max_frame_bytes)
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._failure: FrameTooLargeError | None = None

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned (an unfinished frame)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the next bytes of the stream; return every payload they complete, in order."""
        if self._failure is not None:
            raise self._failure
        buffer = self._buffer
        if buffer:
            buffer += data
            source: bytes | bytearray | memoryview = buffer
        else:
            source = data  # the common case: parse the read in place, copy only payloads
        payloads: list[bytes] = []
        position = 0
        with memoryview(source) as view:
            end = len(view)
            while end - position >= FRAME_HEADER_BYTES:
                (size,) = _HEADER.unpack_from(view, position)
                if size > self._max_frame_bytes:
                    self._failure = FrameTooLargeError(
                        f"peer announced a frame of {size} bytes; the limit is "
                        f"{self._max_frame_bytes} bytes"
                    )
                    buffer.clear()
                    raise self._failure
                start = position + FRAME_HEADER_BYTES
                if end - start < size:
                    break
                payloads.append(view[start : start + size].tobytes())
                position = start + size
            if source is not buffer and position < end:
                buffer += view[position:]
        if source is buffer:
            del buffer[:position]
        return payloads
