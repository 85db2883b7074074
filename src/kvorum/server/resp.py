"""RESP: an incremental request parser and a reply encoder (RESP2 and RESP3).

Theory of operation. :class:`RequestParser` is sans-I/O: ``feed(bytes)`` returns every
request completed so far, each a ``list[bytes]``, and keeps the unfinished tail for the next
call, so pipelined and partially-received requests both work. It follows Redis's
``processMultibulkBuffer`` / ``processInlineBuffer`` rules byte for byte where a client can
observe them: a request starting with ``*`` is a multibulk, anything else an inline command
split like ``sdssplitargs``; ``*0``/``*-1`` are empty requests; bulk lengths must be
non-negative decimal; the two bytes after a bulk are skipped unchecked; and every malformed
input raises :class:`ProtocolError` carrying Redis's exact text (``Protocol error: invalid
bulk length``) plus the requests parsed before it, which the server runs before replying
with the error and closing. Limits (bulk length, element count, inline length, request size)
bound the memory one connection can pin.

Speed: parsing is ``bytes.find`` plus slicing over one buffer; a large bulk that arrives in
many reads is collected in a list and joined once when enough bytes are known to be there,
so a 100 MB value costs O(size), not O(size * reads).

:func:`encode_reply` maps :mod:`kvorum.kv.replies` values to RESP2 or RESP3 bytes (see that
module's table); frequent replies (``+OK``, small integers, nulls) are pre-encoded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kvorum.kv.commands import parse_int
from kvorum.kv.replies import ErrorReply, NullArray, Reply, Verbatim

DEFAULT_MAX_BULK_BYTES = 512 * 1024 * 1024
"""Redis's ``proto-max-bulk-len`` default."""
DEFAULT_MAX_MULTIBULK_COUNT = 1024 * 1024
DEFAULT_MAX_INLINE_BYTES = 64 * 1024
"""Redis's ``PROTO_INLINE_MAX_SIZE``: also bounds a ``*``/``$`` header line."""
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024 * 1024
"""Redis's ``client-query-buffer-limit`` default."""

_BIG_PENDING_BYTES = 64 * 1024
"""Above this many missing bytes, incoming reads are collected instead of re-concatenated."""


_SMALL_LENGTHS = {str(n).encode(): n for n in range(4096)}
"""Bulk lengths clients send most, parsed by one dict lookup instead of validate-and-int."""


class ProtocolError(Exception):
    """Malformed input; ``message`` is Redis's text, ``commands`` were complete before it."""

    def __init__(self, message: str, commands: list[list[bytes]]) -> None:
        super().__init__(message)
        self.message = message
        self.commands = commands

    def reply(self) -> bytes:
        """The error line to send before closing the connection."""
        return b"-ERR " + self.message.encode() + b"\r\n"


class RequestParser:
    """Turns a byte stream from one client into requests; see the module docstring."""

    def __init__(
        self,
        max_bulk_bytes: int = DEFAULT_MAX_BULK_BYTES,
        max_multibulk_count: int = DEFAULT_MAX_MULTIBULK_COUNT,
        max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        for name, value in (
            ("max_bulk_bytes", max_bulk_bytes),
            ("max_multibulk_count", max_multibulk_count),
            ("max_inline_bytes", max_inline_bytes),
            ("max_request_bytes", max_request_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        self.max_bulk_bytes = max_bulk_bytes
        self.max_multibulk_count = max_multibulk_count
        self.max_inline_bytes = max_inline_bytes
        self.max_request_bytes = max_request_bytes
        self._tail = b""
        self._chunks: list[bytes] = []
        self._chunked_bytes = 0
        self._need_bytes = 0

    def pending_bytes(self) -> int:
        """Bytes received that do not yet form a complete request."""
        return len(self._tail) + self._chunked_bytes

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add ``data``; return the requests it completes, in order (possibly none).

        Raises :class:`ProtocolError` on malformed input or a request over the limits; the
        parser must not be fed again afterwards.
        """
        if self._chunks:
            self._chunks.append(data)
            self._chunked_bytes += len(data)
            if self._chunked_bytes < self._need_bytes:
                return []
            buf = b"".join(self._chunks)
            self._chunks = []
            self._chunked_bytes = 0
        elif self._tail:
            buf = self._tail + data
        else:
            buf = data
        commands, pos, need = self._parse(buf)
        rest_bytes = len(buf) - pos
        if rest_bytes > self.max_request_bytes or need > self.max_request_bytes:
            raise ProtocolError("Protocol error: request exceeds max request size", commands)
        if need - rest_bytes > _BIG_PENDING_BYTES:
            self._tail = b""
            self._chunks = [buf[pos:]]
            self._chunked_bytes = rest_bytes
            self._need_bytes = need
        else:
            self._tail = buf[pos:] if pos < len(buf) else b""
        return commands

    def _parse(self, buf: bytes) -> tuple[list[list[bytes]], int, int]:
        """Parse complete requests from ``buf``: ``(requests, end of the last one, bytes
        the next one needs from there if known, else 0)``."""
        commands: list[list[bytes]] = []
        pos = 0
        n = len(buf)
        find = buf.find
        max_bulk = self.max_bulk_bytes
        max_inline = self.max_inline_bytes
        while pos < n:
            if buf[pos] != 42:  # not '*': an inline command
                newline = find(b"\n", pos)
                if newline < 0:
                    if n - pos > max_inline:
                        raise ProtocolError("Protocol error: too big inline request", commands)
                    return commands, pos, 0
                line_end = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
                args = split_inline(buf[pos:line_end])
                if args is None:
                    raise ProtocolError("Protocol error: unbalanced quotes in request", commands)
                if args:
                    commands.append(args)
                pos = newline + 1
                continue
            cr = find(b"\r", pos)
            if cr < 0 or cr + 2 > n:
                if cr < 0 and n - pos > max_inline:
                    raise ProtocolError("Protocol error: too big mbulk count string", commands)
                return commands, pos, 0
            count_text = buf[pos + 1 : cr]
            count = _SMALL_LENGTHS.get(count_text)
            if count is None:
                count = parse_int(count_text)
            if count is None or count > self.max_multibulk_count:
                raise ProtocolError("Protocol error: invalid multibulk length", commands)
            p = cr + 2
            if count <= 0:
                pos = p
                continue
            args = []
            for _ in range(count):
                cr = find(b"\r", p)
                if cr < 0 or cr + 2 > n:
                    if cr < 0 and n - p > max_inline:
                        raise ProtocolError("Protocol error: too big bulk count string", commands)
                    return commands, pos, 0
                if buf[p] != 36:  # '$'
                    shown = chr(buf[p]) if buf[p] not in (10, 13) else " "
                    raise ProtocolError(f"Protocol error: expected '$', got '{shown}'", commands)
                digits = buf[p + 1 : cr]
                length = _SMALL_LENGTHS.get(digits, -1)
                if length < 0:
                    if not digits.isdigit() or (digits[0] == 48 and len(digits) > 1):
                        raise ProtocolError("Protocol error: invalid bulk length", commands)
                    length = int(digits)
                if length > max_bulk:
                    raise ProtocolError("Protocol error: invalid bulk length", commands)
                start = cr + 2
                end = start + length
                if end + 2 > n:
                    return commands, pos, end + 2 - pos
                args.append(buf[start:end])
                p = end + 2
            commands.append(args)
            pos = p
        return commands, pos, 0


_QUOTE_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SPACE = frozenset(b" \t\n\r\x0b\x0c")
_SPLIT_UNSAFE = (b'"', b"'", b"\x0b", b"\x0c", b"\x00")


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline request like Redis's ``sdssplitargs``: whitespace-separated words,
    ``"..."`` with ``\\n \\r \\t \\b \\a \\xHH`` escapes and ``'...'`` with ``\\'``; None if
    quotes are unbalanced or a closing quote is not followed by a space."""
    if not any(ch in line for ch in _SPLIT_UNSAFE):
        return line.split()
    out: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n or line[i] == 0:
            return out
        word = bytearray()
        in_double = in_single = False
        while True:
            ch = line[i] if i < n else 0
            if in_double:
                if (
                    ch == 92
                    and i + 3 < n
                    and line[i + 1] == ord("x")
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    word.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif ch == 92 and i + 1 < n and line[i + 1] != 0:
                    i += 1
                    word.append(_QUOTE_ESCAPES.get(line[i], line[i]))
                elif ch == 34:  # closing '"'
                    if i + 1 < n and line[i + 1] != 0 and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif ch == 0:
                    return None
                else:
                    word.append(ch)
            elif in_single:
                if ch == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    word.append(39)
                elif ch == 39:  # closing "'"
                    if i + 1 < n and line[i + 1] != 0 and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif ch == 0:
                    return None
                else:
                    word.append(ch)
            elif ch in (32, 10, 13, 9, 0):
                break
            elif ch == 34:
                in_double = True
            elif ch == 39:
                in_single = True
            else:
                word.append(ch)
            i += 1
        out.append(bytes(word))


# -- encoding ----------------------------------------------------------------------------------

_CRLF = b"\r\n"
_OK = b"+OK\r\n"
_NULL2 = b"$-1\r\n"
_NULL3 = b"_\r\n"
_SMALL_INT_MIN, _SMALL_INT_MAX = -2, 1023
_SMALL_INTS = [b":%d\r\n" % i for i in range(_SMALL_INT_MIN, _SMALL_INT_MAX + 1)]
_SMALL_BULK_BYTES = 4096
"""Below this a bulk is formatted in one piece; above, header and body are kept apart so the
body is copied only once (by the final join)."""


def _format_double(value: float) -> bytes:
    if math.isnan(value):
        return b"nan"
    if value in (float("inf"), float("-inf")):
        return b"inf" if value > 0 else b"-inf"
    return repr(value).encode()


def _encode_into(out: list[bytes], reply: Reply, resp3: bool) -> None:
    kind = type(reply)
    if kind is bytes:
        assert isinstance(reply, bytes)
        if len(reply) < _SMALL_BULK_BYTES:
            out.append(b"$%d\r\n%b\r\n" % (len(reply), reply))
        else:
            out.append(b"$%d\r\n" % len(reply))
            out.append(reply)
            out.append(_CRLF)
    elif kind is str:
        assert isinstance(reply, str)
        out.append(_OK if reply == "OK" else b"+" + reply.encode() + _CRLF)
    elif kind is int:
        assert isinstance(reply, int)
        if _SMALL_INT_MIN <= reply <= _SMALL_INT_MAX:
            out.append(_SMALL_INTS[reply - _SMALL_INT_MIN])
        else:
            out.append(b":%d\r\n" % reply)
    elif reply is None:
        out.append(_NULL3 if resp3 else _NULL2)
    elif kind is list:
        assert isinstance(reply, list)
        out.append(b"*%d\r\n" % len(reply))
        for item in reply:
            _encode_into(out, item, resp3)
    elif kind is ErrorReply:
        assert isinstance(reply, ErrorReply)
        out.append(b"-" + reply.message.encode() + _CRLF)
    elif kind is dict:
        assert isinstance(reply, dict)
        out.append((b"%%%d\r\n" if resp3 else b"*%d\r\n") % (len(reply) * (1 if resp3 else 2)))
        for key, value in reply.items():
            _encode_into(out, key, resp3)
            _encode_into(out, value, resp3)
    elif kind is bool:
        if resp3:
            out.append(b"#t\r\n" if reply else b"#f\r\n")
        else:
            out.append(_SMALL_INTS[(1 if reply else 0) - _SMALL_INT_MIN])
    elif kind is float:
        assert isinstance(reply, float)
        text = _format_double(reply)
        out.append(b",%b\r\n" % text if resp3 else b"$%d\r\n%b\r\n" % (len(text), text))
    elif kind is NullArray:
        out.append(_NULL3 if resp3 else b"*-1\r\n")
    elif kind is Verbatim:
        assert isinstance(reply, Verbatim)
        body = reply.text.encode()
        if resp3:
            out.append(b"=%d\r\ntxt:%b\r\n" % (len(body) + 4, body))
        else:
            out.append(b"$%d\r\n%b\r\n" % (len(body), body))
    else:
        raise TypeError(f"cannot encode {kind.__name__} as a RESP reply: {reply!r}")


def encode_reply(reply: Reply, resp3: bool = False) -> bytes:
    """One reply in RESP3 if ``resp3``, else RESP2."""
    if type(reply) is str and reply == "OK":
        return _OK
    out: list[bytes] = []
    _encode_into(out, reply, resp3)
    return out[0] if len(out) == 1 else b"".join(out)


def encode_replies(replies: Sequence[Reply], resp3: bool = False) -> bytes:
    """Several replies back to back (a pipelined batch's answer), in one buffer."""
    out: list[bytes] = []
    for reply in replies:
        _encode_into(out, reply, resp3)
    return b"".join(out)


def encode_command(args: Sequence[bytes]) -> bytes:
    """A request as a RESP multibulk (what clients send; used by tests and benchmarks)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(out)
