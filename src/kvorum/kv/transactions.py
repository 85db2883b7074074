"""MULTI/EXEC as one log entry: what a transaction carries, and the state it reads.

Theory of operation: a client's MULTI ... EXEC becomes one write payload, ``[now_ms,
[b"exec", watches, command, command, ...]]`` (every part msgpack bytes, so it travels and is
decoded like any write). Every replica applies it in one step of the state machine: first
the WATCH checks — each watched key must still hold what the client saw when it watched it,
else the reply is a null array and nothing is written — then each command in order, reads
included, through one overlay, so a command sees the writes of the commands before it, and
the engine receives all of the transaction's writes as one atomic batch. So a transaction is
atomic and isolated by construction: no other entry is applied in the middle of one.

A watch is the key's value and absolute expiry as a linearizable read saw them. Redis aborts
on *any* write to a watched key since WATCH, even one that writes the same value back;
kvorum compares what the key holds, so a write that leaves value and expiry as they were is
not seen (the README lists this). Expiring in between counts as a change, as in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from kvorum.kv.engine import Engine

EXEC_NAME = b"exec"
_pack = msgpack.Packer(use_bin_type=True).pack


@dataclass(frozen=True, slots=True)
class Watch:
    """What a watched key held when watched: ``value`` None if absent; ``expire_at_ms`` 0
    for no expiry."""

    key: bytes
    value: bytes | None
    expire_at_ms: int


def encode_transaction(
    now_ms: int, watches: Sequence[Watch], commands: Sequence[Sequence[bytes]]
) -> bytes:
    """The write payload of one EXEC (see the module docstring); command names lower-case."""
    watch_blob = _pack([[w.key, w.value, w.expire_at_ms] for w in watches])
    blobs = [_pack([args[0].lower(), *args[1:]]) for args in commands]
    return _pack([now_ms, [EXEC_NAME, watch_blob, *blobs]])


def decode_transaction(args: Sequence[bytes]) -> tuple[list[Watch], list[list[bytes]]]:
    """The watches and commands of a decoded ``exec`` write; ValueError if malformed."""
    try:
        watches = [Watch(bytes(k), v, int(t)) for k, v, t in msgpack.unpackb(args[1])]
        commands = [msgpack.unpackb(blob) for blob in args[2:]]
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise ValueError(f"not a kvorum transaction: {exc}") from exc
    if not all(isinstance(c, list) and c and all(type(a) is bytes for a in c) for c in commands):
        raise ValueError("not a kvorum transaction: commands must be lists of bytes")
    return watches, commands


class PendingView:
    """An engine as a transaction in progress sees it: ``pending`` writes (stored values,
    None for deleted) over the engine. Reads of single keys see the pending writes; DBSIZE
    counts them; a SCAN sees the engine as it was before the transaction (the README says
    so)."""

    def __init__(self, engine: Engine, pending: dict[bytes, bytes | None]) -> None:
        self._engine = engine
        self._pending = pending

    def get(self, key: bytes) -> bytes | None:
        if key in self._pending:
            return self._pending[key]
        return self._engine.get(key)

    def count(self) -> int:
        engine, total = self._engine, self._engine.count()
        for key, stored in self._pending.items():
            before = engine.get(key) is not None
            total += (stored is not None) - before
        return total

    def scan(self, start: bytes, end: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        return self._engine.scan(start, end, limit)
