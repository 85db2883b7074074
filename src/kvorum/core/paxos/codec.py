"""Bytes for what a CASPaxos acceptor persists: one key's state, and the proposer's rounds.

Theory of operation: a host stores each ``acceptor_writes`` entry of a
:class:`~.cas.CasReady` as one record — the key and its :data:`~.cas.SlotState` (``min_n``,
``accept_n``, the accepted :class:`~.changes.Register`) — and the newest record of a key is its
state. The encoding is plain ``struct`` packing, little-endian, with a type tag before each
change result; checksums and framing are the store's job, not this module's. Decoding
raises :class:`ValueError` on anything malformed.
"""

from __future__ import annotations

import struct

from kvorum.core.paxos.acceptor import AcceptorState
from kvorum.core.paxos.ballot import Ballot
from kvorum.core.paxos.changes import AppliedChange, Register, Result

_BALLOT = struct.Struct("<qi")
_LEN = struct.Struct("<I")
_APPLIED = struct.Struct("<iq")
_INT = struct.Struct("<q")
_NONE, _BYTES, _TRUE, _FALSE, _INTEGER = range(5)


def _bytes_or_none(value: bytes | None) -> bytes:
    if value is None:
        return b"\x00"
    return b"\x01" + _LEN.pack(len(value)) + value


def _result(result: Result) -> bytes:
    if result is None:
        return bytes([_NONE])
    if result is True:
        return bytes([_TRUE])
    if result is False:
        return bytes([_FALSE])
    if isinstance(result, int):
        return bytes([_INTEGER]) + _INT.pack(result)
    return bytes([_BYTES]) + _LEN.pack(len(result)) + result


def encode_slot(key: str, slot: AcceptorState[Register]) -> bytes:
    """One key's acceptor state as bytes."""
    key_bytes = key.encode()
    parts = [_LEN.pack(len(key_bytes)), key_bytes, _BALLOT.pack(*slot.min_n),
             _BALLOT.pack(*slot.accept_n)]
    register = slot.accept_value
    if register is None:
        parts.append(b"\x00")
    else:
        parts.append(b"\x01")
        parts.append(_bytes_or_none(register.value))
        parts.append(_LEN.pack(len(register.applied)))
        for entry in register.applied:
            parts.append(_APPLIED.pack(entry.node_id, entry.change_id))
            parts.append(_result(entry.result))
    return b"".join(parts)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise ValueError("acceptor record truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> tuple[int, ...]:
        return fmt.unpack(self.take(fmt.size))

    def blob(self) -> bytes:
        (size,) = self.unpack(_LEN)
        return self.take(size)

    def flag(self) -> int:
        return self.take(1)[0]


def _read_result(r: _Reader) -> Result:
    tag = r.flag()
    if tag == _NONE:
        return None
    if tag == _TRUE:
        return True
    if tag == _FALSE:
        return False
    if tag == _INTEGER:
        return r.unpack(_INT)[0]
    if tag == _BYTES:
        return r.blob()
    raise ValueError(f"unknown result tag {tag}")


def decode_slot(data: bytes) -> tuple[str, AcceptorState[Register]]:
    """The inverse of :func:`encode_slot`."""
    r = _Reader(data)
    key = r.blob().decode()
    min_n = Ballot(*r.unpack(_BALLOT))
    accept_n = Ballot(*r.unpack(_BALLOT))
    register: Register | None = None
    if r.flag():
        value = r.blob() if r.flag() else None
        (count,) = r.unpack(_LEN)
        applied = []
        for _ in range(count):
            node_id, change_id = r.unpack(_APPLIED)
            applied.append(AppliedChange(node_id, change_id, _read_result(r)))
        register = Register(value, tuple(applied))
    if r.pos != len(data):
        raise ValueError("trailing bytes after an acceptor record")
    return key, AcceptorState(min_n, accept_n, register)
