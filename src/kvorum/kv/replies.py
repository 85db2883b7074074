"""The reply values commands produce, independent of how they go on the wire.

Theory of operation: a command's result is plain Python data so the state machine stays pure
and replies can be compared in tests and carried between nodes. The RESP encoder
(:mod:`kvorum.server.resp`) maps each type to one RESP2 and one RESP3 shape:

================  ===========================  ===========================
Python value      RESP2                        RESP3
================  ===========================  ===========================
``bytes``         bulk string ``$``            bulk string ``$``
``str``           simple string ``+``          simple string ``+``
``int``           integer ``:``                integer ``:``
``None``          null bulk ``$-1``            null ``_``
:class:`NullArray`  null array ``*-1``          null ``_``
``list``          array ``*``                  array ``*``
``dict``          flat array of pairs ``*``    map ``%``
``bool``          integer 1/0                  boolean ``#``
``float``         bulk string                  double ``,``
:class:`ErrorReply`  error ``-``               error ``-``
:class:`Verbatim`    bulk string               verbatim string ``=``
================  ===========================  ===========================

Error texts are kept here as constants because Redis clients and users match them literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from kvorum.kv.key_order import MAX_KEY_BYTES


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A RESP error; ``message`` starts with its code (``ERR``, ``WRONGTYPE``, ``CLUSTERDOWN``)."""

    message: str

    def __post_init__(self) -> None:
        if "\r" in self.message or "\n" in self.message:
            raise ValueError(f"an error reply must be one line, got {self.message!r}")


@dataclass(frozen=True, slots=True)
class Verbatim:
    """Human-readable text (INFO's output); RESP3 sends it as a verbatim ``txt`` string."""

    text: str


@dataclass(frozen=True, slots=True)
class NullArray:
    """The null *array* (RESP2 ``*-1``, RESP3 ``_``): an EXEC aborted by WATCH. Only the
    server makes it; nothing stores or forwards one."""


NULL_ARRAY = NullArray()

Reply: TypeAlias = (
    "bytes | str | int | float | bool | ErrorReply | Verbatim | NullArray | list[Reply] "
    "| dict[Reply, Reply] | None"
)
"""Anything a command can answer; see the module table for its wire shapes."""

OK = "OK"
QUEUED = "QUEUED"
PONG = "PONG"

ERR_SYNTAX = ErrorReply("ERR syntax error")
ERR_NOT_INTEGER = ErrorReply("ERR value is not an integer or out of range")
ERR_OVERFLOW = ErrorReply("ERR increment or decrement would overflow")
ERR_DECR_OVERFLOW = ErrorReply("ERR decrement would overflow")
ERR_INVALID_CURSOR = ErrorReply("ERR invalid cursor")
ERR_DB_INDEX = ErrorReply("ERR DB index is out of range")
ERR_STRING_TOO_LONG = ErrorReply("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
ERR_KEY_TOO_LONG = ErrorReply(
    f"ERR key is too long (kvorum keys are at most {MAX_KEY_BYTES} bytes)"
)


def err_arity(command_name: str) -> ErrorReply:
    """Redis 7's wrong-arity error; ``command_name`` is the lower-case full name
    (``get``, ``command|info``)."""
    return ErrorReply(f"ERR wrong number of arguments for '{command_name}' command")


def err_expire_time(command_name: str) -> ErrorReply:
    """Redis 7's error for an expire time that is non-positive or overflows."""
    return ErrorReply(f"ERR invalid expire time in '{command_name}' command")


def _printable(raw: bytes, limit: int) -> str:
    # Redis copies client bytes into the error but turns line breaks into spaces so the
    # reply stays one RESP line.
    text = raw[:limit].decode("utf-8", "replace")
    return text.replace("\r", " ").replace("\n", " ")


def err_unknown_command(args: list[bytes]) -> ErrorReply:
    """Redis 7's unknown-command error, quoting the name (as typed) and the first arguments
    up to 128 characters, exactly like ``processCommand`` does."""
    shown = ""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += "'" + _printable(arg, 128 - len(shown)) + "' "
    name = _printable(args[0], 128) if args else ""
    return ErrorReply(f"ERR unknown command '{name}', with args beginning with: {shown}")


def err_unknown_subcommand(subcommand: bytes, command_name: str) -> ErrorReply:
    """Redis 7's unknown-subcommand error (``COMMAND FOO`` and the like)."""
    return ErrorReply(
        f"ERR unknown subcommand '{_printable(subcommand, 128)}'. "
        f"Try {command_name.upper()} HELP."
    )
