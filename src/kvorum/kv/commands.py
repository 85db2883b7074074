"""The command table: what each Redis command is, and the argument parsing shared by the
server (which rejects bad requests before they reach the log) and the state machine (which
parses the same bytes again when it applies them).

Theory of operation: every command has a :class:`CommandSpec` — Redis's arity convention
(``n`` exactly, ``-n`` at least), its kind (handled by the connection, a read evaluated
locally, or a write that must go through the Raft log), and the positions of its keys
(``first_key``, ``last_key``, ``key_step`` as in ``COMMAND INFO``, so a router can shard by
key later). Validation is pure: :func:`check_command` gives the error Redis 7 would give for
the shape of a request (unknown command, arity, syntax, non-integer, bad expire time)
without looking at any data. A write that passes is encoded by :func:`encode_write` into a
msgpack log payload ``[now_ms, [name, arg, ...]]``; the leader's clock reading travels inside
the payload so every replica computes the same expiry times from the same entry.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgpack

from kvorum.kv.key_order import MAX_KEY_BYTES
from kvorum.kv.replies import (
    ERR_DECR_OVERFLOW,
    ERR_INVALID_CURSOR,
    ERR_KEY_TOO_LONG,
    ERR_NOT_INTEGER,
    ERR_SYNTAX,
    ErrorReply,
    err_arity,
    err_expire_time,
    err_unknown_command,
    err_unknown_subcommand,
)

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)

SCAN_CURSOR_MAX_DIGITS = 2500
"""Longest SCAN cursor accepted; cursors encode a key, and keys longer than
:data:`SCAN_CURSOR_KEY_MAX_BYTES` are never put in one (see the state machine's SCAN)."""
SCAN_CURSOR_KEY_MAX_BYTES = 1024


class Kind(enum.Enum):
    """Where a command is carried out."""

    CONNECTION = "connection"
    """Answered by the server from connection or node state (PING, HELLO, INFO...)."""
    READ = "read"
    """Evaluated against the state machine at a read timestamp, without the log."""
    WRITE = "write"
    """Encoded into a log entry, replicated, then applied by every replica."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command's static description (what ``COMMAND INFO`` reports, plus its kind)."""

    name: str
    """Lower-case name, as Redis's ``fullname`` (``command|info`` for a subcommand)."""
    arity: int
    """Argument count including the name: ``n`` exactly, or ``-n`` meaning at least ``n``."""
    kind: Kind
    flags: tuple[str, ...]
    first_key: int = 0
    last_key: int = 0
    key_step: int = 0
    group: str = "generic"
    since: str = "1.0.0"
    summary: str = ""
    validate: Callable[[Sequence[bytes], int], ErrorReply | None] | None = None
    """Pure shape check beyond arity (``args``, ``now_ms``); None if arity is enough."""
    subcommands: dict[str, CommandSpec] = field(default_factory=dict)

    def arity_ok(self, argc: int) -> bool:
        """Whether ``argc`` arguments (name included) fit this command's arity."""
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity

    def key_positions(self, argc: int) -> list[int]:
        """Indexes of the key arguments in a request of ``argc`` arguments."""
        if self.first_key == 0:
            return []
        last = self.last_key if self.last_key >= 0 else argc + self.last_key
        return list(range(self.first_key, last + 1, self.key_step))


# -- argument parsing shared by validation and apply -----------------------------------------


def parse_int(raw: bytes) -> int | None:
    """A signed 64-bit integer written the way Redis's ``string2ll`` accepts (no sign ``+``,
    no spaces, no leading zeros), or None."""
    if not raw or len(raw) > 20:
        return None
    digits = raw[1:] if raw[0] == 45 else raw  # 45 is '-'
    if not digits.isdigit() or (digits[0] == 48 and (len(digits) > 1 or raw[0] == 45)):
        return None
    value = int(raw)
    if value < INT64_MIN or value > INT64_MAX:
        return None
    return value


@dataclass(frozen=True, slots=True)
class SetOptions:
    """SET's parsed flags; ``expire_at_ms`` is absolute (None: no new expiry)."""

    nx: bool = False
    xx: bool = False
    get: bool = False
    keep_ttl: bool = False
    expire_at_ms: int | None = None


# option -> (ms per unit, relative to now?)
_SET_EXPIRE_UNITS = {
    b"EX": (1000, True),
    b"PX": (1, True),
    b"EXAT": (1000, False),
    b"PXAT": (1, False),
}


def parse_set(args: Sequence[bytes], now_ms: int) -> SetOptions | ErrorReply:
    """SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL], with Redis 7's rules:
    conflicting options are a syntax error, repeating one is allowed (the last time wins)."""
    nx = xx = get = keep_ttl = False
    expire_kind: bytes | None = None
    expire_raw = b""
    i, argc = 3, len(args)
    while i < argc:
        option = args[i].upper()
        has_next = i + 1 < argc
        if option == b"NX" and not xx:
            nx = True
        elif option == b"XX" and not nx:
            xx = True
        elif option == b"GET":
            get = True
        elif option == b"KEEPTTL" and expire_kind is None:
            keep_ttl = True
        elif (
            option in _SET_EXPIRE_UNITS
            and not keep_ttl
            and expire_kind in (None, option)
            and has_next
        ):
            expire_kind = option
            expire_raw = args[i + 1]
            i += 1
        else:
            return ERR_SYNTAX
        i += 1
    expire_at_ms: int | None = None
    if expire_kind is not None:
        amount = parse_int(expire_raw)
        if amount is None:
            return ERR_NOT_INTEGER
        scale, relative = _SET_EXPIRE_UNITS[expire_kind]
        if amount <= 0 or amount > INT64_MAX // scale:
            return err_expire_time("set")
        expire_at_ms = amount * scale + (now_ms if relative else 0)
        if expire_at_ms > INT64_MAX:
            return err_expire_time("set")
    return SetOptions(nx=nx, xx=xx, get=get, keep_ttl=keep_ttl, expire_at_ms=expire_at_ms)


class ExpireFlag(enum.Flag):
    """EXPIRE's optional condition (Redis 7)."""

    NONE = 0
    NX = enum.auto()
    XX = enum.auto()
    GT = enum.auto()
    LT = enum.auto()


def parse_expire(args: Sequence[bytes], now_ms: int) -> tuple[int, ExpireFlag] | ErrorReply:
    """EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key time [NX|XX|GT|LT]: the absolute expire time in ms
    (may be in the past, which means delete) and the condition flags."""
    name = args[0].decode().lower()
    flags = ExpireFlag.NONE
    for raw in args[3:]:
        option = raw.upper()
        if option in (b"NX", b"XX", b"GT", b"LT"):
            flags |= ExpireFlag[option.decode()]
        else:
            return ErrorReply(f"ERR Unsupported option {raw.decode('utf-8', 'replace')}")
    if ExpireFlag.NX in flags and flags & (ExpireFlag.XX | ExpireFlag.GT | ExpireFlag.LT):
        return ErrorReply("ERR NX and XX, GT or LT options at the same time are not compatible")
    if ExpireFlag.GT in flags and ExpireFlag.LT in flags:
        return ErrorReply("ERR GT and LT options at the same time are not compatible")
    amount = parse_int(args[2])
    if amount is None:
        return ERR_NOT_INTEGER
    if name in ("expire", "expireat"):
        # C's division truncates toward zero (Redis: LLONG_MIN / 1000); Python's // floors,
        # which let -9223372036854776 through, overflow, and delete the key.
        if amount > INT64_MAX // 1000 or amount < -(-INT64_MIN // 1000):
            return err_expire_time(name)
        amount *= 1000
    base_ms = now_ms if name in ("expire", "pexpire") else 0
    if amount > INT64_MAX - base_ms:
        return err_expire_time(name)
    return amount + base_ms, flags


def parse_increment(args: Sequence[bytes]) -> int | ErrorReply:
    """The delta INCR/DECR/INCRBY/DECRBY apply (``args[0]`` names which, in any case)."""
    name = args[0].lower()
    if name == b"incr":
        return 1
    if name == b"decr":
        return -1
    amount = parse_int(args[2])
    if amount is None:
        return ERR_NOT_INTEGER
    if name == b"decrby":
        if amount == INT64_MIN:
            return ERR_DECR_OVERFLOW
        return -amount
    return amount


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """SCAN's parsed arguments; ``start_key`` is where the page begins (inclusive)."""

    start_key: bytes
    pattern: bytes | None
    count: int
    type_name: bytes | None


def encode_scan_cursor(next_key: bytes) -> bytes:
    """The decimal cursor naming ``next_key`` (a leading 0x01 byte keeps leading zero bytes;
    cursor ``0`` is reserved for "start" and "done")."""
    return str(int.from_bytes(b"\x01" + next_key, "big")).encode()


def parse_scan(args: Sequence[bytes]) -> ScanOptions | ErrorReply:
    """SCAN cursor [MATCH pattern] [COUNT n] [TYPE t], with Redis's errors."""
    raw_cursor = args[1]
    if not raw_cursor.isdigit() or len(raw_cursor) > SCAN_CURSOR_MAX_DIGITS:
        return ERR_INVALID_CURSOR
    cursor = int(raw_cursor)
    if cursor == 0:
        start_key = b""
    else:
        encoded = cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")
        if encoded[0] != 1:
            return ERR_INVALID_CURSOR
        start_key = encoded[1:]
    pattern: bytes | None = None
    count = 10
    type_name: bytes | None = None
    i, argc = 2, len(args)
    while i < argc:
        option = args[i].lower()
        if i + 1 >= argc:
            return ERR_SYNTAX
        if option == b"count":
            parsed = parse_int(args[i + 1])
            if parsed is None:
                return ERR_NOT_INTEGER
            if parsed < 1:
                return ERR_SYNTAX
            count = parsed
        elif option == b"match":
            pattern = None if args[i + 1] == b"*" else args[i + 1]
        elif option == b"type":
            type_name = args[i + 1].lower()
        else:
            return ERR_SYNTAX
        i += 2
    return ScanOptions(start_key=start_key, pattern=pattern, count=count, type_name=type_name)


# -- validators (pure shape checks run by the server before a request reaches the log) -------


def _check_set(args: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    if len(args) == 3:
        return None  # no options: nothing to get wrong (and nearly every SET looks so)
    parsed = parse_set(args, now_ms)
    return parsed if isinstance(parsed, ErrorReply) else None


def _check_expire(args: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    parsed = parse_expire(args, now_ms)
    return parsed if isinstance(parsed, ErrorReply) else None


def _check_increment(args: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    parsed = parse_increment(args)
    return parsed if isinstance(parsed, ErrorReply) else None


def _check_mset(args: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    return err_arity("mset") if len(args) % 2 == 0 else None


def _check_scan(args: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    # A client's cursor is a handle below 2**64 (kvorum.kv.scan_cursors), as in Redis; the
    # state machines' own cursors, which name a key, never come from a client.
    raw_cursor = args[1]
    if not raw_cursor.isdigit() or len(raw_cursor) > 20 or int(raw_cursor) >= 1 << 64:
        return ERR_INVALID_CURSOR
    parsed = parse_scan([args[0], b"0", *args[2:]])
    return parsed if isinstance(parsed, ErrorReply) else None


def _check_flushdb(args: Sequence[bytes], now_ms: int) -> ErrorReply | None:
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC")):
        return ERR_SYNTAX
    return None


# -- the table -------------------------------------------------------------------------------

_C, _R, _W = Kind.CONNECTION, Kind.READ, Kind.WRITE


def _spec(
    name: str,
    arity: int,
    kind: Kind,
    flags: str,
    *,
    keys: tuple[int, int, int] = (0, 0, 0),
    group: str = "string",
    since: str = "1.0.0",
    summary: str = "",
    validate: Callable[[Sequence[bytes], int], ErrorReply | None] | None = None,
    subcommands: Sequence[CommandSpec] = (),
) -> CommandSpec:
    return CommandSpec(
        name=name,
        arity=arity,
        kind=kind,
        flags=tuple(flags.split()),
        first_key=keys[0],
        last_key=keys[1],
        key_step=keys[2],
        group=group,
        since=since,
        summary=summary,
        validate=validate,
        subcommands={sub.name.split("|", 1)[1]: sub for sub in subcommands},
    )


def _sub(parent: str, name: str, arity: int, summary: str, group: str) -> CommandSpec:
    return _spec(f"{parent}|{name}", arity, _C, "loading stale", group=group, summary=summary)


_K1 = (1, 1, 1)
_KALL = (1, -1, 1)

COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        _spec("ping", -1, _C, "fast sentinel", group="connection", summary="Ping the server"),
        _spec("echo", 2, _C, "fast", group="connection", summary="Echo the given string"),
        _spec("hello", -1, _C, "noscript loading stale fast no_auth", group="connection",
              since="6.0.0", summary="Handshake with the server, choosing RESP2 or RESP3"),
        _spec("select", 2, _C, "loading stale fast", group="connection",
              summary="Change the selected database (kvorum has only 0)"),
        _spec("auth", -2, _C, "noscript loading stale fast no_auth allow_busy",
              group="connection", since="1.0.0", summary="Authenticate the connection"),
        _spec("multi", 1, _C, "noscript loading stale fast allow_busy", group="transactions",
              since="1.2.0", summary="Start a transaction"),
        _spec("exec", 1, _C, "noscript loading stale skip_slowlog", group="transactions",
              since="1.2.0", summary="Run the queued commands as one atomic log entry"),
        _spec("discard", 1, _C, "noscript loading stale fast allow_busy",
              group="transactions", since="2.0.0", summary="Drop the queued commands"),
        _spec("watch", -2, _C, "noscript loading stale fast allow_busy", keys=_KALL,
              group="transactions", since="2.2.0",
              summary="Abort the next EXEC if these keys change"),
        _spec("unwatch", 1, _C, "noscript loading stale fast allow_busy",
              group="transactions", since="2.2.0", summary="Forget the watched keys"),
        _spec("quit", -1, _C, "noscript loading stale fast no_auth allow_busy",
              group="connection", summary="Close the connection"),
        _spec("client", -2, _C, "", group="connection", since="2.4.0",
              summary="Connection introspection",
              subcommands=[
                  _sub("client", "id", 2, "This connection's id", "connection"),
                  _sub("client", "getname", 2, "This connection's name", "connection"),
                  _sub("client", "setname", 3, "Name this connection", "connection"),
                  _sub("client", "setinfo", 4, "Record client library info", "connection"),
                  _sub("client", "help", 2, "Show help", "connection"),
              ]),
        _spec("command", -1, _C, "loading stale", group="server", since="2.8.13",
              summary="Details about commands",
              subcommands=[
                  _sub("command", "count", 2, "Number of commands", "server"),
                  _sub("command", "docs", -2, "Documentation of commands", "server"),
                  _sub("command", "info", -2, "Details of commands", "server"),
                  _sub("command", "list", -2, "Names of all commands", "server"),
                  _sub("command", "getkeys", -4, "The keys of a command", "server"),
                  _sub("command", "help", 2, "Show help", "server"),
              ]),
        _spec("cluster", -2, _C, "", group="cluster", since="3.0.0",
              summary="Redis Cluster's view of the cluster (slots per Raft group)",
              subcommands=[
                  _sub("cluster", "slots", 2, "Slot runs and the nodes serving them", "cluster"),
                  _sub("cluster", "shards", 2, "Slot runs as shards", "cluster"),
                  _sub("cluster", "nodes", 2, "The nodes, as Redis prints them", "cluster"),
                  _sub("cluster", "myid", 2, "This node's cluster id", "cluster"),
                  _sub("cluster", "info", 2, "The cluster's state", "cluster"),
                  _sub("cluster", "keyslot", 3, "The hash slot of a key", "cluster"),
                  _sub("cluster", "help", 2, "Show help", "cluster"),
              ]),
        _spec("readonly", 1, _C, "loading stale fast", group="cluster", since="3.0.0",
              summary="Allow reads from replicas (every kvorum node serves reads)"),
        _spec("readwrite", 1, _C, "loading stale fast", group="cluster", since="3.0.0",
              summary="Undo READONLY"),
        _spec("config", -2, _C, "", group="server", since="2.0.0",
              summary="Read server configuration (read-only here)",
              subcommands=[
                  _sub("config", "get", -3, "Get configuration parameters", "server"),
                  _sub("config", "help", 2, "Show help", "server"),
              ]),
        _spec("info", -1, _C, "loading stale", group="server",
              summary="Information and statistics about the node"),
        _spec("role", 1, _C, "noscript loading stale fast", group="server", since="2.8.12",
              summary="The node's role in replication"),
        _spec("get", 2, _R, "readonly fast", keys=_K1, summary="Get the value of a key"),
        _spec("mget", -2, _R, "readonly fast", keys=_KALL, summary="Get the values of keys"),
        _spec("exists", -2, _R, "readonly fast", keys=_KALL, group="generic",
              summary="Count how many of the keys exist"),
        _spec("strlen", 2, _R, "readonly fast", keys=_K1, since="2.2.0",
              summary="Length of a key's value"),
        _spec("ttl", 2, _R, "readonly fast", keys=_K1, group="generic",
              summary="Time to live of a key, in seconds"),
        _spec("pttl", 2, _R, "readonly fast", keys=_K1, group="generic", since="2.6.0",
              summary="Time to live of a key, in milliseconds"),
        _spec("expiretime", 2, _R, "readonly fast", keys=_K1, group="generic", since="7.0.0",
              summary="A key's expiry as a Unix time in seconds"),
        _spec("pexpiretime", 2, _R, "readonly fast", keys=_K1, group="generic", since="7.0.0",
              summary="A key's expiry as a Unix time in milliseconds"),
        _spec("scan", -2, _R, "readonly", group="generic", since="2.8.0",
              summary="Iterate over the keys", validate=_check_scan),
        _spec("dbsize", 1, _R, "readonly fast", group="server",
              summary="Number of keys (including expired ones not yet removed)"),
        _spec("set", -3, _W, "write denyoom", keys=_K1, summary="Set a key's value",
              validate=_check_set),
        _spec("setnx", 3, _W, "write denyoom fast", keys=_K1,
              summary="Set a key's value only if it does not exist"),
        _spec("getset", 3, _W, "write denyoom fast", keys=_K1,
              summary="Set a key's value, returning the old one"),
        _spec("getdel", 2, _W, "write fast", keys=_K1, since="6.2.0",
              summary="Get a key's value and delete the key"),
        _spec("mset", -3, _W, "write denyoom", keys=(1, -1, 2), since="1.0.1",
              summary="Set several keys", validate=_check_mset),
        _spec("del", -2, _W, "write", keys=_KALL, group="generic", summary="Delete keys"),
        _spec("incr", 2, _W, "write denyoom fast", keys=_K1, summary="Add 1 to a key's integer",
              validate=_check_increment),
        _spec("decr", 2, _W, "write denyoom fast", keys=_K1,
              summary="Subtract 1 from a key's integer", validate=_check_increment),
        _spec("incrby", 3, _W, "write denyoom fast", keys=_K1,
              summary="Add to a key's integer", validate=_check_increment),
        _spec("decrby", 3, _W, "write denyoom fast", keys=_K1,
              summary="Subtract from a key's integer", validate=_check_increment),
        _spec("append", 3, _W, "write denyoom fast", keys=_K1, since="2.0.0",
              summary="Append to a key's value"),
        _spec("expire", -3, _W, "write fast", keys=_K1, group="generic",
              summary="Set a key's time to live in seconds", validate=_check_expire),
        _spec("pexpire", -3, _W, "write fast", keys=_K1, group="generic", since="2.6.0",
              summary="Set a key's time to live in milliseconds", validate=_check_expire),
        _spec("expireat", -3, _W, "write fast", keys=_K1, group="generic", since="1.2.0",
              summary="Set a key's expiry as a Unix time in seconds", validate=_check_expire),
        _spec("pexpireat", -3, _W, "write fast", keys=_K1, group="generic", since="2.6.0",
              summary="Set a key's expiry as a Unix time in milliseconds",
              validate=_check_expire),
        _spec("persist", 2, _W, "write fast", keys=_K1, group="generic", since="2.2.0",
              summary="Remove a key's expiry"),
        _spec("flushdb", -1, _W, "write", group="server", summary="Delete every key",
              validate=_check_flushdb),
        _spec("cas", 4, _W, "write denyoom fast", keys=_K1, since="kvorum",
              summary="Set key to new if its value equals expected; reply 1 or 0"),
    )
}
"""Every command kvorum answers, by lower-case name."""

_BY_RAW_NAME: dict[bytes, CommandSpec] = {}


def lookup(args: Sequence[bytes]) -> CommandSpec | ErrorReply:
    """The spec for a request (the subcommand's for container commands), or Redis's error
    for an unknown command or subcommand. Arity is not checked here."""
    raw_name = args[0]
    spec = _BY_RAW_NAME.get(raw_name)
    if spec is None:
        spec = COMMANDS.get(raw_name.decode("utf-8", "replace").lower())
        if spec is None:
            return err_unknown_command(list(args))
        if len(_BY_RAW_NAME) < 1024:  # remember the spellings clients actually use
            _BY_RAW_NAME[raw_name] = spec
    if spec.subcommands and len(args) >= 2:
        sub = spec.subcommands.get(args[1].decode("utf-8", "replace").lower())
        if sub is None:
            return err_unknown_subcommand(args[1], spec.name)
        return sub
    return spec


def check_command(args: Sequence[bytes], now_ms: int) -> CommandSpec | ErrorReply:
    """Look up a request and check its shape exactly as Redis 7 would before executing it:
    unknown command or subcommand, wrong arity, then the command's own syntax checks."""
    if not args:
        raise ValueError("a request has at least a command name")
    spec = lookup(args)
    if isinstance(spec, ErrorReply):
        return spec
    if not spec.arity_ok(len(args)):
        return err_arity(spec.name)
    if spec.validate is not None:
        error = spec.validate(args, now_ms)
        if error is not None:
            return error
    if spec.first_key and keys_too_long(spec, args):
        return ERR_KEY_TOO_LONG
    return spec


# MAX_KEY_BYTES (509) is LMDB's 511-byte key limit less the 2-byte slot prefix a key is stored
# under (kvorum.kv.key_order). Every replica applies the same limit, so a too-long key is
# refused the same way everywhere (at admission, and again when applying, in case one reached
# the log).


def keys_too_long(spec: CommandSpec, args: Sequence[bytes]) -> bool:
    """Whether any key argument of this request is over :data:`MAX_KEY_BYTES`."""
    first = spec.first_key
    if spec.last_key == first:  # one key, the common case
        return len(args) > first and len(args[first]) > MAX_KEY_BYTES
    return any(len(args[i]) > MAX_KEY_BYTES for i in spec.key_positions(len(args)))


def encode_write(spec: CommandSpec, args: Sequence[bytes], now_ms: int) -> bytes:
    """The log payload for a checked write: ``[now_ms, [name, *args[1:]]]`` in msgpack, with
    the name normalised to lower case so replicas need not look it up case-insensitively."""
    if spec.kind is not Kind.WRITE:
        raise ValueError(f"{spec.name!r} is not a write command")
    return _pack_write([now_ms, [_NAME_BYTES[spec.name], *args[1:]]])


_pack_write = msgpack.Packer(use_bin_type=True).pack
"""One reusable packer: ``msgpack.packb`` builds a new Packer per call."""
_NAME_BYTES: dict[str, bytes] = {name: name.encode() for name in COMMANDS}


def decode_write(payload: bytes) -> tuple[int, list[bytes]]:
    """``(now_ms, args)`` from a payload made by :func:`encode_write`; ValueError if it is not
    one."""
    try:
        now_ms, args = msgpack.unpackb(payload, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise ValueError(f"not a kvorum write payload: {exc}") from exc
    if type(now_ms) is not int or type(args) is not list or not args:
        raise ValueError("not a kvorum write payload: expected [now_ms, [name, ...]]")
    if not all(type(arg) is bytes for arg in args):
        raise ValueError("not a kvorum write payload: arguments must be bytes")
    return now_ms, args


def encode_entry(payloads: Sequence[bytes]) -> bytes:
    """A log entry's data for a batch of write payloads.

    Each payload is already one msgpack value, so a msgpack array header followed by the
    payloads themselves *is* the msgpack array of them: building an entry is a join, not a
    re-encoding, and :func:`decode_entry` unpacks all of an entry's writes in one call.
    """
    n = len(payloads)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 1 << 16:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(payloads)


_ONLY_BYTES = {bytes}


def decode_entry(data: bytes) -> list[tuple[int, list[bytes]]]:
    """The ``(now_ms, args)`` writes of an entry made by :func:`encode_entry`; ValueError if
    it is not one."""
    try:
        writes = msgpack.unpackb(data, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise ValueError(f"not a kvorum log entry: {exc}") from exc
    if type(writes) is not list:
        raise ValueError("not a kvorum log entry: expected an array of writes")
    for write in writes:
        if (
            type(write) is not list
            or len(write) != 2
            or type(write[0]) is not int
            or type(write[1]) is not list
            or not write[1]
            or {*map(type, write[1])} != _ONLY_BYTES
        ):
            raise ValueError("not a kvorum log entry: a write is not [now_ms, [name, ...]]")
    return writes


def restamp_write(payload: bytes, now_ms: int) -> bytes:
    """The same write carrying ``now_ms`` instead (a leader re-stamps writes forwarded by a
    follower, so expiry is computed from the leader's clock)."""
    _, args = decode_write(payload)
    return msgpack.packb([now_ms, args], use_bin_type=True)
