"""The deterministic KV state machine every replica runs over its :class:`Engine`.

Theory of operation: a committed log entry carries one or more write payloads (see
:func:`kvorum.kv.commands.encode_write`), each stamped with the leader's clock in ms.
:meth:`KVStateMachine.apply_many` applies them in order through an overlay (so later commands
in the entry see earlier ones) and hands the engine all their key writes as one atomic batch
tagged with the entry's index. Nothing here reads a clock: a key's expire-at time is stored
*with its value*; a write treats a key whose expire-at is at or before the payload's
``now_ms`` as absent and deletes it physically (like Redis's ``lookupKeyWrite``), and reads
(:meth:`KVStateMachine.read`) take ``now_ms`` from the caller and merely hide such keys. So
replicas never disagree because their clocks differ: the same log gives the same engine.
Keys that expire and are never touched again are removed by the leader proposing
:func:`encode_expire_sweep` entries, which delete the keys the engine's expiry index says are
due at the entry's time — the same keys on every replica, since the index is part of the
replicated state (see :meth:`kvorum.kv.engine.Engine.expired_keys`).

Stored value layout: see :mod:`kvorum.kv.values`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import msgpack

from kvorum.kv.commands import (
    COMMANDS,
    INT64_MAX,
    INT64_MIN,
    SCAN_CURSOR_KEY_MAX_BYTES,
    ExpireFlag,
    Kind,
    ScanOptions,
    SetOptions,
    decode_entry,
    decode_write,
    encode_scan_cursor,
    keys_too_long,
    parse_expire,
    parse_increment,
    parse_int,
    parse_scan,
    parse_set,
)
from kvorum.kv.engine import Engine
from kvorum.kv.glob_match import compile_glob
from kvorum.kv.key_order import MAX_KEY_BYTES
from kvorum.kv.replies import (
    ERR_KEY_TOO_LONG,
    ERR_NOT_INTEGER,
    ERR_OVERFLOW,
    ERR_STRING_TOO_LONG,
    OK,
    ErrorReply,
    Reply,
    err_arity,
    err_unknown_command,
)
from kvorum.kv.transactions import EXEC_NAME, PendingView, decode_transaction
from kvorum.kv.values import EXPIRY_FIELD, PLAIN_PREFIX, pack_value, unpack_value

_SWEEP_NAME = b"\x00expire-sweep"
"""Internal write: cannot collide with a client command because the server only encodes
names from its command table."""

DEFAULT_MAX_VALUE_BYTES = 512 * 1024 * 1024
"""Redis's ``proto-max-bulk-len``: APPEND may not grow a value past it."""


def encode_expire_sweep(now_ms: int, max_keys: int) -> bytes:
    """A write payload that deletes up to ``max_keys`` keys expired at ``now_ms``, in the
    engine's expiry-index order; its reply is how many it deleted."""
    if max_keys < 1:
        raise ValueError(f"a sweep must examine at least one key, got max_keys={max_keys}")
    return msgpack.packb([now_ms, [_SWEEP_NAME, str(max_keys).encode()]], use_bin_type=True)


class _Overlay:
    """Pending writes of one log entry over the engine; reads see them first."""

    __slots__ = ("engine", "writes")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writes: dict[bytes, bytes | None] = {}

    def stored(self, key: bytes) -> bytes | None:
        writes = self.writes
        if key in writes:
            return writes[key]
        return self.engine.get(key)

    def lookup(self, key: bytes, now_ms: int) -> tuple[bytes, int] | None:
        """The live ``(value, expire_at_ms)``; an expired key is deleted and reads as None."""
        stored = self.stored(key)
        if stored is None:
            return None
        value, expire_at_ms = unpack_value(stored)
        if expire_at_ms and expire_at_ms <= now_ms:
            self.writes[key] = None
            return None
        return value, expire_at_ms

    def put(self, key: bytes, value: bytes, expire_at_ms: int) -> None:
        self.writes[key] = pack_value(value, expire_at_ms)

    def delete(self, key: bytes) -> None:
        self.writes[key] = None


_WriteHandler = Callable[["KVStateMachine", _Overlay, list[bytes], int], Reply]
_ReadHandler = Callable[["KVStateMachine", list[bytes], int], Reply]


class KVStateMachine:
    """Applies write payloads to an :class:`Engine` and answers reads at a given time.

    Deterministic: the engine contents after applying a sequence of payloads depend only on
    the payloads (and ``max_value_bytes``, which must be the same on every replica).
    """

    def __init__(self, engine: Engine, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
        if max_value_bytes < 1:
            raise ValueError(f"max_value_bytes must be positive, got {max_value_bytes}")
        self.engine = engine
        self.max_value_bytes = max_value_bytes

    # -- writes ----------------------------------------------------------------------------

    def apply(self, payload: bytes, index: int) -> Reply:
        """Apply one write payload as log entry ``index``; return the command's reply."""
        return self.apply_many([payload], index)[0]

    def apply_many(self, payloads: Sequence[bytes], index: int) -> list[Reply]:
        """Apply the payloads of log entry ``index`` in order, atomically, and record the
        index in the engine. Raises ValueError if ``index`` is not past the engine's applied
        index (an entry must never be applied twice) or a payload is not a kvorum write."""
        return self.apply_writes([decode_write(payload) for payload in payloads], index)

    def apply_entry(self, data: bytes, index: int) -> list[Reply]:
        """Apply a log entry made by :func:`kvorum.kv.commands.encode_entry` as entry
        ``index``; the same as :meth:`apply_many` on its payloads, with one decode."""
        return self.apply_writes(decode_entry(data), index)

    def apply_writes(self, writes: Sequence[tuple[int, list[bytes]]], index: int) -> list[Reply]:
        """Apply decoded ``(now_ms, args)`` writes as entry ``index`` (see apply_many)."""
        applied = self.engine.applied_index()
        if index <= applied:
            raise ValueError(f"entry {index} is already applied (engine is at {applied})")
        overlay = _Overlay(self.engine)
        pending = overlay.writes
        replies: list[Reply] = []
        for now_ms, args in writes:
            name = args[0]
            if name == b"set" and len(args) == 3 and len(args[1]) <= MAX_KEY_BYTES:
                # Plain SET, nearly every write: no options to parse, no old value to read.
                pending[args[1]] = PLAIN_PREFIX + args[2]
                replies.append(OK)
                continue
            handler = _WRITES.get(name)
            if handler is None:
                replies.append(err_unknown_command(args))
                continue
            spec = _WRITE_SPECS.get(name)
            if spec is not None and spec.first_key and keys_too_long(spec, args):
                # Refused at admission too; a log entry must never make the engine raise.
                replies.append(ERR_KEY_TOO_LONG)
                continue
            replies.append(handler(self, overlay, args, now_ms))
        self.engine.apply_batch(list(pending.items()), index)
        return replies

    def _set(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        options = parse_set(args, now_ms)
        if isinstance(options, ErrorReply):
            return options
        return self._set_with(tx, args[1], args[2], options, now_ms)

    def _set_with(
        self, tx: _Overlay, key: bytes, value: bytes, options: SetOptions, now_ms: int
    ) -> Reply:
        if not (options.nx or options.xx or options.get or options.keep_ttl):
            # A plain SET never needs the old value: skip reading it (the hot path).
            expire_at_ms = options.expire_at_ms or 0
            if expire_at_ms and expire_at_ms <= now_ms:
                tx.delete(key)
            else:
                tx.put(key, value, expire_at_ms)
            return OK
        current = tx.lookup(key, now_ms)
        old: Reply = current[0] if current is not None else None
        if (options.nx and current is not None) or (options.xx and current is None):
            return old if options.get else None
        expire_at_ms = 0
        if options.expire_at_ms is not None:
            expire_at_ms = options.expire_at_ms
        elif options.keep_ttl and current is not None:
            expire_at_ms = current[1]
        if expire_at_ms and expire_at_ms <= now_ms:
            # An absolute expiry already in the past (EXAT/PXAT): the key is gone at once.
            tx.delete(key)
        else:
            tx.put(key, value, expire_at_ms)
        return old if options.get else OK

    def _setnx(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        if tx.lookup(args[1], now_ms) is not None:
            return 0
        tx.put(args[1], args[2], 0)
        return 1

    def _getset(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        return self._set_with(tx, args[1], args[2], SetOptions(get=True), now_ms)

    def _getdel(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        current = tx.lookup(args[1], now_ms)
        if current is None:
            return None
        tx.delete(args[1])
        return current[0]

    def _mset(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        if len(args) % 2 == 0:
            return err_arity("mset")
        for i in range(1, len(args), 2):
            tx.put(args[i], args[i + 1], 0)
        return OK

    def _del(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        deleted = 0
        for key in args[1:]:
            if tx.lookup(key, now_ms) is not None:
                tx.delete(key)
                deleted += 1
        return deleted

    def _incr(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        delta = parse_increment(args)
        if isinstance(delta, ErrorReply):
            return delta
        key = args[1]
        current = tx.lookup(key, now_ms)
        old, expire_at_ms = 0, 0
        if current is not None:
            parsed = parse_int(current[0])
            if parsed is None:
                return ERR_NOT_INTEGER
            old, expire_at_ms = parsed, current[1]
        new = old + delta
        if new > INT64_MAX or new < INT64_MIN:
            return ERR_OVERFLOW
        tx.put(key, str(new).encode(), expire_at_ms)  # INCR keeps the key's TTL, as in Redis
        return new

    def _append(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        key = args[1]
        current = tx.lookup(key, now_ms)
        old, expire_at_ms = (b"", 0) if current is None else current
        if len(old) + len(args[2]) > self.max_value_bytes:
            return ERR_STRING_TOO_LONG
        new = old + args[2]
        tx.put(key, new, expire_at_ms)
        return len(new)

    def _expire(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        parsed = parse_expire(args, now_ms)
        if isinstance(parsed, ErrorReply):
            return parsed
        when_ms, flags = parsed
        key = args[1]
        current = tx.lookup(key, now_ms)
        if current is None:
            return 0
        value, current_ms = current
        has_ttl = current_ms != 0
        if ExpireFlag.NX in flags and has_ttl:
            return 0
        if ExpireFlag.XX in flags and not has_ttl:
            return 0
        # GT treats "no TTL" as infinite, so it never succeeds on a persistent key.
        if ExpireFlag.GT in flags and (not has_ttl or when_ms <= current_ms):
            return 0
        if ExpireFlag.LT in flags and has_ttl and when_ms >= current_ms:
            return 0
        if when_ms <= now_ms:
            tx.delete(key)
        else:
            tx.put(key, value, when_ms)
        return 1

    def _persist(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        current = tx.lookup(args[1], now_ms)
        if current is None or current[1] == 0:
            return 0
        tx.put(args[1], current[0], 0)
        return 1

    def _flushdb(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        start = b""
        while True:
            # One key more than a page: the next page starts at a key the engine returned
            # (in hash order the key after k is not k + b"\0").
            page = self.engine.scan(start, None, 1025)
            for key, _ in page[:1024]:
                tx.delete(key)
            if len(page) <= 1024:
                break
            start = page[1024][0]
        for key in list(tx.writes):
            tx.delete(key)
        return OK

    def _cas(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        # CAS key expected new: a missing key never equals `expected`; the TTL is kept
        # because CAS replaces a value in place (a lease keeps its deadline when handed on).
        current = tx.lookup(args[1], now_ms)
        if current is None or current[0] != args[2]:
            return 0
        tx.put(args[1], args[3], current[1])
        return 1

    def _exec(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        """A MULTI/EXEC transaction (:mod:`kvorum.kv.transactions`): the watch checks, then
        every command in order through this entry's overlay; a null reply if a watched key
        changed. Commands the table does not know were refused when queued, so meeting one
        here means a malformed entry: it gets an error reply, like any unknown write."""
        try:
            watches, commands = decode_transaction(args)
        except ValueError:
            return ErrorReply("ERR malformed transaction")  # never raise on a log entry
        for watch in watches:
            current = tx.lookup(watch.key, now_ms)
            seen = (None, 0) if current is None else current
            if seen != (watch.value, watch.expire_at_ms):
                return None
        # Reads see the transaction's own writes so far (the overlay), not just the engine.
        reader = KVStateMachine(cast(Engine, PendingView(self.engine, tx.writes)),
                                self.max_value_bytes)  # fmt: skip
        replies: list[Reply] = []
        for command in commands:
            name = command[0]
            write = _WRITES.get(name)
            if write is not None and name not in (EXEC_NAME, _SWEEP_NAME):
                spec = _WRITE_SPECS.get(name)
                if spec is not None and spec.first_key and keys_too_long(spec, command):
                    replies.append(ERR_KEY_TOO_LONG)
                elif spec is not None and not spec.arity_ok(len(command)):
                    replies.append(err_arity(spec.name))
                else:
                    replies.append(write(self, tx, command, now_ms))
            elif name in _READS:
                replies.append(reader.read(command, now_ms))
            else:
                replies.append(err_unknown_command(command))
        return replies

    def _sweep(self, tx: _Overlay, args: list[bytes], now_ms: int) -> Reply:
        max_raw = parse_int(args[-1])
        if len(args) not in (2, 3) or max_raw is None or max_raw < 1:
            return ErrorReply("ERR bad expire sweep")
        if len(args) == 3:
            return self._sweep_page(tx, args[1], max_raw, now_ms)
        deleted = 0
        for key in self.engine.expired_keys(now_ms, max_raw):
            # Through the overlay: an earlier write of this entry may have deleted the key
            # or given it a new life, and then the sweep leaves it alone.
            if tx.stored(key) is not None and tx.lookup(key, now_ms) is None:
                deleted += 1
        return deleted

    def _sweep_page(self, tx: _Overlay, start_key: bytes, max_keys: int, now_ms: int) -> Reply:
        """The sweep of older logs: examine ``max_keys`` keys from ``start_key`` on, reply the
        key to start the next at (None: wrapped). Kept so such logs still replay."""
        page = self.engine.scan(start_key, None, max_keys + 1)
        for key, _ in page[:max_keys]:
            tx.lookup(key, now_ms)  # deletes the key if it has expired
        return page[max_keys][0] if len(page) > max_keys else None

    # -- reads -------------------------------------------------------------------------------

    def read(self, args: Sequence[bytes], now_ms: int) -> Reply:
        """Evaluate a read command (already checked by
        :func:`kvorum.kv.commands.check_command`) against the engine as of ``now_ms``."""
        arg_list = list(args)
        name = arg_list[0].lower()
        handler = _READS.get(name)
        if handler is None:
            return err_unknown_command(arg_list)
        return handler(self, arg_list, now_ms)

    def _live(self, key: bytes, now_ms: int) -> tuple[bytes, int] | None:
        stored = self.engine.get(key)
        if stored is None:
            return None
        value, expire_at_ms = unpack_value(stored)
        if expire_at_ms and expire_at_ms <= now_ms:
            return None
        return value, expire_at_ms

    def get_value(self, key: bytes, now_ms: int) -> bytes | None:
        """The live value of ``key`` at ``now_ms`` (the GET fast path)."""
        stored = self.engine.get(key)
        if stored is None:
            return None
        if stored[0] == 0:
            return stored[1:]
        if EXPIRY_FIELD.unpack_from(stored, 1)[0] <= now_ms:
            return None
        return stored[9:]

    def _get(self, args: list[bytes], now_ms: int) -> Reply:
        return self.get_value(args[1], now_ms)

    def _mget(self, args: list[bytes], now_ms: int) -> Reply:
        return [self.get_value(key, now_ms) for key in args[1:]]

    def _exists(self, args: list[bytes], now_ms: int) -> Reply:
        return sum(1 for key in args[1:] if self._live(key, now_ms) is not None)

    def _strlen(self, args: list[bytes], now_ms: int) -> Reply:
        value = self.get_value(args[1], now_ms)
        return 0 if value is None else len(value)

    def _pttl_ms(self, key: bytes, now_ms: int) -> int:
        current = self._live(key, now_ms)
        if current is None:
            return -2
        if current[1] == 0:
            return -1
        return max(current[1] - now_ms, 0)

    def _ttl(self, args: list[bytes], now_ms: int) -> Reply:
        ttl_ms = self._pttl_ms(args[1], now_ms)
        return ttl_ms if ttl_ms < 0 else (ttl_ms + 500) // 1000  # Redis rounds to nearest

    def _pexpiretime(self, args: list[bytes], now_ms: int) -> Reply:
        current = self._live(args[1], now_ms)
        if current is None:
            return -2
        if current[1] == 0:
            return -1
        return current[1] if args[0].lower() == b"pexpiretime" else current[1] // 1000

    def _pttl(self, args: list[bytes], now_ms: int) -> Reply:
        return self._pttl_ms(args[1], now_ms)

    def _dbsize(self, args: list[bytes], now_ms: int) -> Reply:
        return self.engine.count()

    def _scan(self, args: list[bytes], now_ms: int) -> Reply:
        options = parse_scan(args)
        if isinstance(options, ErrorReply):
            return options
        return self.scan_page(options, now_ms)

    def scan_page(self, options: ScanOptions, now_ms: int) -> Reply:
        """One SCAN page: ``[cursor, [keys]]``. The cursor names the next key to examine, so
        every key present for the whole iteration is returned exactly once. A cursor never
        names a key longer than ``SCAN_CURSOR_KEY_MAX_BYTES`` (clients parse cursors as
        integers, and huge ones are refused), so a page runs past COUNT until it does."""
        page = self.engine.scan(options.start_key, None, options.count + 1)
        cut = options.count  # page[cut], if any, is where the next page starts
        while len(page) > cut and len(page[cut][0]) > SCAN_CURSOR_KEY_MAX_BYTES:
            cut += 1
            if cut == len(page):
                page += self.engine.scan(page[-1][0], None, 65)[1:]  # resume at a real key
        next_cursor = b"0"
        if len(page) > cut:
            next_cursor = encode_scan_cursor(page[cut][0])
            page = page[:cut]
        wanted_type = options.type_name
        if wanted_type is not None and wanted_type != b"string":
            return [next_cursor, []]
        matches = compile_glob(options.pattern) if options.pattern is not None else None
        keys: list[Reply] = []
        for key, stored in page:
            if stored[0] != 0 and EXPIRY_FIELD.unpack_from(stored, 1)[0] <= now_ms:
                continue
            if matches is None or matches(key):
                keys.append(key)
        return [next_cursor, keys]

    def keyspace_info(self, now_ms: int) -> dict[str, str]:
        """INFO's ``# Keyspace`` section (empty when there are no keys, like Redis)."""
        total = self.engine.count()
        if total == 0:
            return {}
        return {"db0": f"keys={total},expires={self.engine.expiring_count()},avg_ttl=0"}


_WRITE_SPECS = {name.encode(): spec for name, spec in COMMANDS.items() if spec.kind is Kind.WRITE}

_WRITES: dict[bytes, _WriteHandler] = {
    b"set": KVStateMachine._set,
    b"setnx": KVStateMachine._setnx,
    b"getset": KVStateMachine._getset,
    b"getdel": KVStateMachine._getdel,
    b"mset": KVStateMachine._mset,
    b"del": KVStateMachine._del,
    b"incr": KVStateMachine._incr,
    b"decr": KVStateMachine._incr,
    b"incrby": KVStateMachine._incr,
    b"decrby": KVStateMachine._incr,
    b"append": KVStateMachine._append,
    b"expire": KVStateMachine._expire,
    b"pexpire": KVStateMachine._expire,
    b"expireat": KVStateMachine._expire,
    b"pexpireat": KVStateMachine._expire,
    b"persist": KVStateMachine._persist,
    b"flushdb": KVStateMachine._flushdb,
    b"cas": KVStateMachine._cas,
    _SWEEP_NAME: KVStateMachine._sweep,
    EXEC_NAME: KVStateMachine._exec,
}

_READS: dict[bytes, _ReadHandler] = {
    b"get": KVStateMachine._get,
    b"mget": KVStateMachine._mget,
    b"exists": KVStateMachine._exists,
    b"strlen": KVStateMachine._strlen,
    b"ttl": KVStateMachine._ttl,
    b"pttl": KVStateMachine._pttl,
    b"expiretime": KVStateMachine._pexpiretime,
    b"pexpiretime": KVStateMachine._pexpiretime,
    b"dbsize": KVStateMachine._dbsize,
    b"scan": KVStateMachine._scan,
}
