"""Raft messages on the wire: compact msgpack arrays carried in length-prefixed frames.

Theory of operation. A message is one msgpack array ``[tag, field, field, ...]``: the tag is
the class's position in :data:`~kvorum.core.raft.messages.MESSAGE_TYPES` and the fields follow
the dataclass's own field order. Nested records (:class:`Entry`, :class:`SnapshotMeta`,
:class:`ConfState`, and on their own :class:`HardState`) are arrays of
their fields without a tag, a tuple of entries is an array of such arrays, a frozenset of node
ids is a sorted array, an enum is its integer and ``None`` is nil. No field names travel, so a
heartbeat is about ten bytes.

A stream carries frames: a 4-byte big-endian payload length, then the payload.
:class:`FrameDecoder` is sans-I/O — ``feed(bytes)`` returns every payload completed so far,
whether a read brought half a frame or a hundred — and refuses any frame announced as larger
than its limit *before* buffering it, so one bad peer cannot make a node allocate gigabytes.

Speed, because every Raft message passes through here twice: the encoder and decoder of each
class are generated once, at import, from its dataclass fields (the way :mod:`dataclasses`
generates ``__init__``), so a message costs one Python call and no per-field dispatch.
Decoding writes the frozen object's slots directly — what its generated ``__init__`` does
through ``object.__setattr__``, minus most of the overhead — after checking every field's
type with ``__class__`` identity tests, so a malformed payload raises :class:`DecodeError`
and never yields a half-typed message (a class that gains a ``__post_init__`` is built
through its constructor instead, so its checks still run).

Compatibility: the wire layout *is* the field order, so :data:`SCHEMA_FINGERPRINT` (a CRC of
every carried class's name, field names and field types) travels in the connection's
:class:`Hello` with :data:`WIRE_VERSION`; nodes built from different message definitions
refuse each other at connect time instead of misreading each other's fields.
"""

from __future__ import annotations

import struct
import types
import typing
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum
from operator import attrgetter
from typing import Any, TypeVar, cast

import msgpack

from kvorum.core.raft import messages
from kvorum.core.raft.messages import (
    MESSAGE_TYPES,
    ConfState,
    Entry,
    HardState,
    Message,
    NodeId,
    SnapshotMeta,
)

WIRE_VERSION = 1
"""Bumped whenever the framing or the hello changes shape."""

FRAME_HEADER_BYTES = 4
MAX_FRAME_LIMIT_BYTES = 2**32 - 1
"""The largest length the 4-byte header can announce."""
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Large enough for a snapshot chunk of several megabytes, small enough to refuse garbage."""

HELLO_MAGIC = "kvorum-raft"
"""First field of every hello, so a stray client (an HTTP probe, a Redis client) is refused."""

_HEADER = struct.Struct(">I")
_packb = msgpack.packb
_unpackb = msgpack.unpackb


class CodecError(ValueError):
    """Anything the codec refuses to encode or decode."""


class EncodeError(CodecError):
    """The object is not something the codec carries, or a value does not fit msgpack."""


class DecodeError(CodecError):
    """The bytes are not a well-formed payload of the expected kind."""


class IncompatiblePeerError(DecodeError):
    """The peer's hello names another wire version or message schema."""


class FrameTooLargeError(CodecError):
    """A frame's announced or actual length exceeds the configured maximum."""


# --- generated encoders and decoders -------------------------------------------------------

RECORD_TYPES: tuple[type, ...] = (Entry, ConfState, SnapshotMeta, HardState)
"""Records the codec carries inside messages, or on their own via :func:`encode_record`."""

_Plan = tuple[str, Any]
"""How one field travels: a kind name and its argument (an enum or a record class)."""


def _plan_field(owner: type, name: str, hint: object) -> _Plan:
    """Classify one field's type; anything unforeseen fails at import, not on the wire."""
    if hint is bool:
        return ("bool", None)
    if hint is int:
        return ("int", None)
    if hint is bytes:
        return ("bytes", None)
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return ("enum", hint)
    if hint in RECORD_TYPES:
        return ("record", hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and set(args) == {int, type(None)}:
        return ("optional_int", None)
    if origin is frozenset and args == (int,):
        return ("int_set", None)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in RECORD_TYPES:
        return ("records", args[0])
    raise TypeError(f"the wire codec cannot carry {owner.__name__}.{name}: {hint!r}")


def _plans(cls: type) -> list[tuple[str, _Plan]]:
    hints = typing.get_type_hints(cls, vars(messages))
    return [(f.name, _plan_field(cls, f.name, hints[f.name])) for f in fields(cls)]


def _int_set(raw: object) -> frozenset[int]:
    if raw.__class__ is not tuple or any(x.__class__ is not int for x in cast(tuple[Any], raw)):
        raise DecodeError(f"expected an array of node ids, got {raw!r}")
    return frozenset(cast(tuple[int, ...], raw))


def _bad_fields(cls: type, raw: tuple[Any, ...]) -> DecodeError:
    got = ", ".join(type(v).__name__ for v in raw)
    return DecodeError(f"{cls.__name__}: wrong field types on the wire ({got})")


def _generate(
    cls: type, tag: int | None, namespace: dict[str, Any]
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Write, compile and return ``(encode, decode)`` for ``cls``; see the module docstring.

    ``encode(obj)`` returns a tuple ready for msgpack; ``decode(array)`` takes the unpacked
    array (tuples, since the codec unpacks with ``use_list=False``) and returns a ``cls``.
    """
    name = cls.__name__
    plans = _plans(cls)
    direct = "__post_init__" not in vars(cls) and "__slots__" in vars(cls)
    namespace[f"_cls_{name}"] = cls

    enc_items = [str(tag)] if tag is not None else []
    variables = [f"v{i}" for i in range(len(plans))]
    checks: list[str] = []
    values: list[str] = []
    for i, (field_name, (kind, arg)) in enumerate(plans):
        v = variables[i]
        attribute = f"m.{field_name}"
        if kind in ("int", "bool", "bytes"):
            enc_items.append(attribute)
            checks.append(f"{v}.__class__ is not {kind}")
            values.append(v)
        elif kind == "optional_int":
            enc_items.append(attribute)
            checks.append(f"({v} is not None and {v}.__class__ is not int)")
            values.append(v)
        elif kind == "enum":
            namespace[f"_members_{name}_{i}"] = {int(member): member for member in arg}
            enc_items.append(attribute)
            checks.append(f"{v}.__class__ is not int")
            values.append(f"_members_{name}_{i}[{v}]")  # KeyError on an unknown value
        elif kind == "int_set":
            enc_items.append(f"sorted({attribute})")
            values.append(f"_int_set({v})")
        elif kind == "record":
            enc_items.append(f"_enc_{arg.__name__}({attribute})")
            checks.append(f"{v}.__class__ is not tuple")
            values.append(f"_dec_{arg.__name__}({v})")
        else:  # "records"
            enc_items.append(f"list(map(_enc_{arg.__name__}, {attribute}))")
            checks.append(f"{v}.__class__ is not tuple")
            values.append(f"_dec_many_{arg.__name__}({v})")

    # One body builds one object from its unpacked fields ``v0, v1, ...``; it is emitted
    # twice: as ``_dec_X(t)`` for one array, and inside the loop of ``_dec_many_X(raw)`` for
    # an array of them (the entries of an AppendEntries), saving a call per entry.
    body: list[str] = []
    if checks:
        body.append(f"if {' or '.join(checks)}:")
        body.append(f"    raise _bad_fields(_cls_{name}, ({', '.join(variables)},))")
    if direct:
        body.append(f"o = _new(_cls_{name})")
        for (field_name, _), value in zip(plans, values, strict=True):
            setter = f"_set_{name}_{field_name}"
            namespace[setter] = getattr(cls, field_name).__set__
            body.append(f"{setter}(o, {value})")
    else:
        body.append(f"o = _cls_{name}({', '.join(values)})")

    targets = (["_tag"] if tag is not None else []) + variables
    lines = [f"def _enc_{name}(m):", f"    return ({', '.join(enc_items)},)", ""]
    lines.append(f"def _dec_{name}(t):")
    lines.append(f"    {', '.join(targets)}, = t")
    lines += [f"    {line}" for line in body]
    lines += ["    return o", ""]
    if tag is None:
        lines.append(f"def _dec_many_{name}(raw):")
        lines.append("    out = []")
        lines.append("    append = out.append")
        lines.append(f"    for {', '.join(variables)}, in raw:")
        lines += [f"        {line}" for line in body]
        lines += ["        append(o)", "    return tuple(out)"]
    exec("\n".join(lines), namespace)  # source built above from dataclass fields
    return namespace[f"_enc_{name}"], namespace[f"_dec_{name}"]


def _build() -> tuple[
    dict[type, Callable[[Any], Any]],
    dict[int, Callable[[Any], Any]],
    dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]],
]:
    namespace: dict[str, Any] = {
        "_new": object.__new__,
        "_int_set": _int_set,
        "_bad_fields": _bad_fields,
    }
    records: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}
    # Generated functions find each other by name in ``namespace`` when they run, so the
    # order of generation does not matter, and a faster replacement (below) is seen by all.
    for record_cls in RECORD_TYPES:
        records[record_cls] = _generate(record_cls, None, namespace)
    # A record made only of scalars is encoded faster by attrgetter, which builds the tuple
    # in C; messages holding a tuple of entries pick this up through the namespace.
    for record_cls, (_, dec) in list(records.items()):
        if (
            all(
                kind in ("int", "bool", "bytes", "optional_int", "enum")
                for _, (kind, _) in _plans(record_cls)
            )
            and len(fields(record_cls)) > 1
        ):
            getter = attrgetter(*(f.name for f in fields(record_cls)))
            namespace[f"_enc_{record_cls.__name__}"] = getter
            records[record_cls] = (getter, dec)
    encoders: dict[type, Callable[[Any], Any]] = {}
    decoders: dict[int, Callable[[Any], Any]] = {}
    for tag, message_cls in enumerate(MESSAGE_TYPES):
        encoders[message_cls], decoders[tag] = _generate(message_cls, tag, namespace)
    return encoders, decoders, records


def _schema_fingerprint() -> int:
    parts = []
    for cls in (*MESSAGE_TYPES, *RECORD_TYPES):
        hints = typing.get_type_hints(cls, vars(messages))
        parts.append(
            cls.__name__ + "(" + ",".join(f"{f.name}:{hints[f.name]!r}" for f in fields(cls)) + ")"
        )
    return zlib.crc32(";".join(parts).encode())


_ENCODERS, _DECODERS, _RECORDS = _build()

SCHEMA_FINGERPRINT: int = _schema_fingerprint()
"""CRC-32 of every carried class's name and typed fields, in wire order."""


# --- messages and records -------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """The msgpack payload for one Raft message (no frame header).

    Raises :class:`EncodeError` for anything that is not one of ``MESSAGE_TYPES`` or holds a
    value msgpack cannot carry (an integer outside 64 bits). Field types are trusted here —
    they come from this node's own core — and checked on the receiving side.
    """
    encoder = _ENCODERS.get(msg.__class__)
    if encoder is None:
        raise EncodeError(f"cannot encode {type(msg).__name__}: not a Raft message type")
    try:
        return _packb(encoder(msg))
    except (OverflowError, TypeError, ValueError) as exc:
        raise EncodeError(f"cannot encode {msg!r}: {exc}") from exc


def decode(payload: bytes | bytearray | memoryview) -> Message:
    """The message in ``payload``; :class:`DecodeError` if it is not exactly one valid one.

    Checks the tag, the number of fields and every field's type (nested ones included), and
    rejects trailing bytes; it does not check protocol meaning (a negative term decodes).
    """
    try:
        array = _unpackb(payload, use_list=False)
        if array.__class__ is not tuple or not array:
            raise DecodeError(f"expected a message array, got {type(array).__name__}")
        decoder = _DECODERS.get(array[0])
        if decoder is None or array[0].__class__ is not int:
            raise DecodeError(f"unknown message tag {array[0]!r}")
        return cast(Message, decoder(array))
    except DecodeError:
        raise
    except Exception as exc:  # msgpack's errors, wrong arity, unknown enum values...
        raise DecodeError(f"malformed message payload ({len(payload)} bytes): {exc!r}") from exc


Record = TypeVar("Record", Entry, ConfState, SnapshotMeta, HardState)


def encode_record(record: Entry | ConfState | SnapshotMeta | HardState) -> bytes:
    """The msgpack payload for one record on its own (the same array as when nested)."""
    pair = _RECORDS.get(record.__class__)
    if pair is None:
        raise EncodeError(f"cannot encode {type(record).__name__}: not a Raft record type")
    try:
        return _packb(pair[0](record))
    except (OverflowError, TypeError, ValueError) as exc:
        raise EncodeError(f"cannot encode {record!r}: {exc}") from exc


def decode_record(kind: type[Record], payload: bytes | bytearray | memoryview) -> Record:
    """The ``kind`` record in ``payload``; :class:`DecodeError` if it is not a valid one."""
    pair = _RECORDS.get(kind)
    if pair is None:
        raise ValueError(f"{kind!r} is not one of the record types {RECORD_TYPES}")
    try:
        array = _unpackb(payload, use_list=False)
        if array.__class__ is not tuple:
            raise DecodeError(f"expected a {kind.__name__} array, got {type(array).__name__}")
        return cast(Record, pair[1](array))
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"malformed {kind.__name__} payload: {exc!r}") from exc


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


def encode_hello(hello: Hello) -> bytes:
    """The payload of a hello frame, stamped with this build's wire version and schema."""
    return _packb(
        (
            HELLO_MAGIC,
            WIRE_VERSION,
            SCHEMA_FINGERPRINT,
            hello.cluster_id,
            hello.sender,
            hello.receiver,
        )
    )


def decode_hello(payload: bytes | bytearray | memoryview) -> Hello:
    """The hello in ``payload``.

    Raises :class:`IncompatiblePeerError` when the peer speaks another wire version or was
    built from other message definitions, and :class:`DecodeError` for anything that is not
    a hello at all.
    """
    try:
        array = _unpackb(payload, use_list=False)
    except Exception as exc:
        raise DecodeError(f"malformed hello ({len(payload)} bytes): {exc!r}") from exc
    if array.__class__ is not tuple or len(array) != 6 or array[0] != HELLO_MAGIC:
        raise DecodeError(f"not a kvorum hello: {array!r:.80}")
    _, version, fingerprint, cluster_id, sender, receiver = array
    if version != WIRE_VERSION or fingerprint != SCHEMA_FINGERPRINT:
        raise IncompatiblePeerError(
            f"peer speaks wire version {version!r} with schema {fingerprint!r}; this node "
            f"speaks version {WIRE_VERSION} with schema {SCHEMA_FINGERPRINT}"
        )
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


def encode_frame(msg: Message, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """One message as a complete frame: ``frame(encode(msg))``."""
    return frame(encode(msg), max_frame_bytes)


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
