"""How KV writes travel through a host: entries of payloads, and replies between nodes.

Theory of operation: the host (:mod:`kvorum.host`) knows nothing of Redis. It asks the
application, through :class:`KVResultCodec`, to pack a round's write payloads into one log
entry (:func:`kvorum.kv.commands.encode_entry`), and, when a follower forwarded the writes, to
pack the leader's replies so they can be sent back. Replies keep their types on the way: bytes
stay bytes, text stays text, and errors and verbatim strings travel as msgpack extension
types, so a client behind a follower sees exactly what it would see at the leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from kvorum.kv.commands import encode_entry
from kvorum.kv.replies import ErrorReply, Reply, Verbatim

_EXT_ERROR = 1
_EXT_VERBATIM = 2


def _default(obj: object) -> msgpack.ExtType:
    if isinstance(obj, ErrorReply):
        return msgpack.ExtType(_EXT_ERROR, obj.message.encode())
    if isinstance(obj, Verbatim):
        return msgpack.ExtType(_EXT_VERBATIM, obj.text.encode())
    raise TypeError(f"cannot forward a reply of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_ERROR:
        return ErrorReply(data.decode())
    if code == _EXT_VERBATIM:
        return Verbatim(data.decode())
    return msgpack.ExtType(code, data)


def pack_replies(replies: list[Reply]) -> bytes:
    """Replies as msgpack, keeping bytes and str apart and errors as errors."""
    return msgpack.packb(replies, default=_default, use_bin_type=True)


def unpack_replies(body: bytes) -> list[Reply]:
    replies: list[Reply] = msgpack.unpackb(
        body, ext_hook=_ext_hook, raw=False, strict_map_key=False
    )
    return replies


class KVResultCodec:
    """The KV application's :class:`kvorum.host.group.ResultCodec`."""

    def encode_entry(self, payloads: Sequence[bytes]) -> bytes:
        return encode_entry(payloads)

    def pack_results(self, results: list[Any]) -> bytes:
        return pack_replies(results)

    def unpack_results(self, body: bytes) -> list[Any]:
        return unpack_replies(body)
