"""The asyncio RESP server: sockets in, requests to an :class:`Executor`, replies out.

Theory of operation: each connection is an :class:`asyncio.Protocol` (no task, no streams)
that parses what arrives and runs it as a batch, one batch at a time, replies in request
order. The common batch — only writes, or only reads, with no error found before execution
— goes straight to the executor's ``submit_writes``/``submit_reads``, and the reply is
written from the future's callback: a SET costs one parse, one future and one send, with no
coroutine switched in or out. Any other batch (connection commands such as PING or HELLO,
``KVORUM`` administration, requests that fail their checks, a mix of kinds) runs
:meth:`Session.execute` in a task, which groups consecutive writes and consecutive reads.
While a batch runs, the connection stops reading (``pause_reading``), so a client that
pipelines without end is held back by TCP, and a client that stops reading its replies
stops being served (``pause_writing``): that bounds what one connection can pin.

Faults stay local: a protocol error gets Redis's error line, after the replies to the
requests before it, and closes only that connection; an exception from the executor becomes
an error reply for the requests it affected; over ``max_clients`` a new connection is told
so and closed; idle connections are closed by a sweeper when ``idle_timeout_ms`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from kvorum.corebuild import raft_core_build
from kvorum.kv.commands import (
    COMMANDS,
    CommandSpec,
    Kind,
    check_command,
    encode_write,
    lookup,
    parse_int,
)
from kvorum.kv.glob_match import compile_glob
from kvorum.kv.replies import (
    ERR_DB_INDEX,
    ERR_NOT_INTEGER,
    ERR_SYNTAX,
    OK,
    PONG,
    ErrorReply,
    Reply,
    Verbatim,
    err_arity,
)
from kvorum.kv.transactions import Watch
from kvorum.observe.recorders import OTHER_COMMAND, RequestCounts
from kvorum.server.auth import (
    DEFAULT_USER,
    ERR_HELLO_NOAUTH,
    ERR_NO_PASSWORD_SET,
    ERR_NOAUTH,
    ERR_WRONGPASS,
    Passwords,
)
from kvorum.server.executor import Consistency, Executor, error_reply_for
from kvorum.server.resp import (
    DEFAULT_MAX_BULK_BYTES,
    DEFAULT_MAX_INLINE_BYTES,
    DEFAULT_MAX_MULTIBULK_COUNT,
    DEFAULT_MAX_REQUEST_BYTES,
    ProtocolError,
    RequestParser,
    encode_replies,
)
from kvorum.server.transaction import Transaction

log = logging.getLogger(__name__)

REDIS_VERSION = "7.0.0"
"""The Redis version kvorum answers like (clients gate features on it)."""

MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Listening address and per-connection limits."""

    host: str = "127.0.0.1"
    port: int = 6379
    """0 picks a free port (see :attr:`RespServer.port`)."""
    max_clients: int = 10_000
    max_bulk_bytes: int = DEFAULT_MAX_BULK_BYTES
    """Largest single argument (value) accepted; larger is a protocol error."""
    max_multibulk_count: int = DEFAULT_MAX_MULTIBULK_COUNT
    max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    idle_timeout_ms: int = 0
    """Close connections silent for this long; 0 never does (Redis's ``timeout 0``)."""
    read_chunk_bytes: int = 256 * 1024
    consistency: Consistency = Consistency.LINEARIZABLE
    requirepass: str | None = field(default=None, repr=False)
    """The default user's password (Redis's ``requirepass``); None: none needed."""

    def __post_init__(self) -> None:
        for name in ("max_clients", "max_bulk_bytes", "max_multibulk_count",
                     "max_inline_bytes", "max_request_bytes", "read_chunk_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be positive, got {getattr(self, name)}")
        if self.idle_timeout_ms < 0:
            raise ValueError(f"idle_timeout_ms must be >= 0, got {self.idle_timeout_ms}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")


@dataclass(slots=True)
class ServerStats:
    """Counters INFO reports."""

    total_connections_received: int = 0
    total_commands_processed: int = 0
    rejected_connections: int = 0
    protocol_errors: int = 0


@dataclass(slots=True)
class Session:
    """One client connection's state and its command execution."""

    server: RespServer
    client_id: int
    peer: str
    resp3: bool = False
    name: bytes = b""
    lib_name: bytes = b""
    lib_version: bytes = b""
    last_active_s: float = 0.0
    transport: asyncio.Transport | None = field(default=None, repr=False)
    authenticated: bool = True
    """False until AUTH succeeds, on a server with a password (:mod:`kvorum.server.auth`)."""
    transaction: Transaction | None = field(default=None, repr=False)
    """The MULTI in progress, if any (:mod:`kvorum.server.transaction`)."""
    watches: dict[bytes, Watch] = field(default_factory=dict, repr=False)
    """Keys WATCHed for the next EXEC, with what they held when watched."""
    last_replies: list[Reply] = field(default_factory=list, repr=False)
    """Every reply of the last batch :meth:`execute` ran, one per request it got to."""

    def start_fast(self, requests: Sequence[list[bytes]]) -> asyncio.Future[list[Reply]] | None:
        """Hand a batch of only writes or only reads that all pass their checks straight
        to the executor; None if the batch needs :meth:`execute` (or the executor has no
        ``submit_*`` methods)."""
        server = self.server
        first = requests[0]
        if (
            not first
            or not self.authenticated
            or self.transaction is not None
            or first[0].upper() == b"KVORUM"
        ):
            return None
        executor = server.executor
        now_ms = executor.now_ms()
        spec = check_command(first, now_ms)
        if isinstance(spec, ErrorReply):
            return None
        kind = spec.kind
        if kind is Kind.WRITE:
            submit_writes = server.submit_writes
            if submit_writes is None:
                return None
            payloads = [encode_write(spec, first, now_ms)]
            for args in requests[1:]:
                spec = check_command(args, now_ms) if args else _EMPTY
                if isinstance(spec, ErrorReply) or spec.kind is not Kind.WRITE:
                    return None
                payloads.append(encode_write(spec, args, now_ms))
            server.stats.total_commands_processed += len(requests)
            return submit_writes(payloads)
        if kind is Kind.READ:
            submit_reads = server.submit_reads
            if submit_reads is None:
                return None
            for args in requests[1:]:
                spec = check_command(args, now_ms) if args else _EMPTY
                if isinstance(spec, ErrorReply) or spec.kind is not Kind.READ:
                    return None
            server.stats.total_commands_processed += len(requests)
            return submit_reads(requests, server.config.consistency)
        return None

    async def execute(self, requests: Sequence[list[bytes]]) -> tuple[bytes, bool]:
        """Run a pipelined batch; return its encoded replies (in order) and whether the
        client asked to QUIT (later requests in the batch are then ignored, as in Redis)."""
        server = self.server
        executor = server.executor
        now_ms = executor.now_ms()
        out: list[bytes] = []
        replies: list[Reply] = []
        # Indexes into `replies` and the requests of the group being collected.
        group_kind: Kind | None = None
        group_slots: list[int] = []
        group_items: list[bytes] | list[list[bytes]] = []
        quit_requested = False
        done: list[Reply] = []
        server.stats.total_commands_processed += len(requests)

        async def flush() -> None:
            nonlocal group_kind, group_items, group_slots
            if group_kind is None:
                return
            try:
                if group_kind is Kind.WRITE:
                    results = await executor.write_batch(group_items)  # type: ignore[arg-type]
                else:
                    results = await executor.read_batch(
                        group_items, server.config.consistency  # type: ignore[arg-type]
                    )
                if len(results) != len(group_slots):
                    raise RuntimeError("executor returned the wrong number of replies")
            except Exception as exc:  # one failing group must not end the connection
                if not isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                    log.debug("executor failed a %s batch", group_kind, exc_info=True)
                error = error_reply_for(exc)
                results = [error] * len(group_slots)
            for slot, result in zip(group_slots, results, strict=True):
                replies[slot] = result
            group_kind, group_slots, group_items = None, [], []

        for args in requests:
            if not self.authenticated and not _allowed_before_auth(args):
                await flush()
                replies.append(_before_auth_error(args))
                continue
            word = args[0].upper() if args else b""
            if word in _TRANSACTION_WORDS or (self.transaction is not None and word != b"QUIT"):
                await flush()
                replies.append(await self._transactional(args, now_ms))
                continue
            if args and args[0].upper() == b"KVORUM":
                # kvorum's own administration (status, membership, transfer), when the
                # executor is a cluster node that offers it.
                await flush()
                admin = getattr(executor, "admin", None)
                if admin is None:
                    replies.append(ErrorReply("ERR this node has no KVORUM administration"))
                else:
                    replies.append(await admin(args[1:]))
                continue
            spec = check_command(args, now_ms)
            if isinstance(spec, ErrorReply):
                replies.append(spec)
                continue
            kind = spec.kind
            if kind is Kind.CONNECTION:
                await flush()
                out.append(encode_replies(replies, self.resp3))
                done += replies
                replies = []
                reply = self._connection_command(spec, args)
                out.append(encode_replies([reply], self.resp3))
                done.append(reply)
                if spec.name == "quit":
                    quit_requested = True
                    break
                continue
            if kind is not group_kind:
                await flush()
                group_kind = kind
            group_slots.append(len(replies))
            replies.append(None)
            if kind is Kind.WRITE:
                group_items.append(encode_write(spec, args, now_ms))  # type: ignore[arg-type]
            else:
                group_items.append(args)  # type: ignore[arg-type]
        await flush()
        out.append(encode_replies(replies, self.resp3))
        done += replies
        self.last_replies = done
        return b"".join(out), quit_requested

    # -- transactions ------------------------------------------------------------------------

    async def _transactional(self, args: list[bytes], now_ms: int) -> Reply:
        """A command while a MULTI is open, or MULTI/EXEC/DISCARD/WATCH/UNWATCH themselves:
        queue it, or carry it out, with Redis's replies and errors."""
        word = args[0].upper() if args else b""
        tx = self.transaction
        if word == b"EXEC":
            error = self._checked(args)
            if error is not None:
                # Redis answers a malformed EXEC as an aborted transaction, in or out of one.
                self.transaction = None
                self.watches.clear()
                reason = error.message.removeprefix("ERR ")
                return ErrorReply(f"EXECABORT Transaction discarded because of: {reason}")
        if tx is None:
            if word == b"MULTI":
                return self._checked(args) or self._begin()
            if word in (b"EXEC", b"DISCARD"):  # (a malformed EXEC is answered above)
                return self._checked(args) or ErrorReply(
                    f"ERR {word.decode()} without MULTI"
                )
            if word == b"WATCH":
                return self._checked(args) or await self._watch(args[1:])
            if word == b"UNWATCH":
                error = self._checked(args)
                if error is None:
                    self.watches.clear()
                return error or OK
            raise AssertionError(f"{word!r} is not a transaction command")
        if word == b"EXEC":
            self.transaction = None
            watches, self.watches = list(self.watches.values()), {}
            return await tx.execute(self, watches, now_ms)
        if word == b"DISCARD":
            error = self._checked(args)
            if error is None:
                self.transaction = None
                self.watches.clear()
            return error or OK
        if word == b"MULTI":
            return self._checked(args) or ErrorReply("ERR MULTI calls can not be nested")
        if word == b"WATCH":
            return self._checked(args) or ErrorReply("ERR WATCH inside MULTI is not allowed")
        return tx.queue(args)

    def _checked(self, args: list[bytes]) -> ErrorReply | None:
        spec = lookup(args)
        if isinstance(spec, ErrorReply):
            return spec
        return None if spec.arity_ok(len(args)) else err_arity(spec.name)

    def _begin(self) -> Reply:
        self.transaction = Transaction()
        return OK

    async def _watch(self, keys: list[bytes]) -> Reply:
        reads: list[list[bytes]] = []
        for key in keys:
            reads += [[b"GET", key], [b"PEXPIRETIME", key]]
        try:
            seen = await self.server.executor.read_batch(reads, Consistency.LINEARIZABLE)
        except Exception as exc:  # a failed read fails the WATCH, not the connection
            return error_reply_for(exc)
        for i, key in enumerate(keys):
            value, expire = seen[2 * i], seen[2 * i + 1]
            if isinstance(value, ErrorReply):
                return value
            expire_at_ms = expire if isinstance(expire, int) and expire > 0 else 0
            self.watches[key] = Watch(key, value if isinstance(value, bytes) else None,
                                      expire_at_ms)  # fmt: skip
        return OK

    # -- connection-level commands ---------------------------------------------------------

    def _connection_command(self, spec: CommandSpec, args: list[bytes]) -> Reply:
        name = spec.name
        if name == "ping":
            if len(args) > 2:
                return err_arity("ping")
            return PONG if len(args) == 1 else args[1]
        if name == "echo":
            return args[1]
        if name == "quit":
            return OK
        if name == "select":
            index = parse_int(args[1])
            if index is None or not -(2**31) <= index < 2**31:
                return ERR_NOT_INTEGER
            return OK if index == 0 else ERR_DB_INDEX
        if name == "hello":
            return self._hello(args)
        if name == "auth":
            return self._auth(args)
        if name == "info":
            return Verbatim(self.server.info_text([a.decode("utf-8", "replace") for a in args[1:]]))
        if name == "role":
            return self.server.executor.role()
        if name.startswith("client|"):
            return self._client(name, args)
        if name in ("readonly", "readwrite") or (
            name.startswith("cluster|") and name != "cluster|help"
        ):
            cluster = getattr(self.server.executor, "cluster", None)
            if cluster is None:
                return ErrorReply("ERR This instance has cluster support disabled")
            if name in ("readonly", "readwrite"):
                return OK  # every kvorum node serves linearizable reads anyway
            reply: Reply = cluster(name.split("|", 1)[1], args[2:])
            return reply
        if name == "command|getkeys":
            return _command_getkeys(args[2:])
        if name == "command" or name.startswith("command|"):
            return _command_reply(name, args)
        if name == "config|get":
            return self.server.config_get(args[2:])
        if name.endswith("|help"):
            return [f"{name.split('|')[0].upper()} <subcommand> [<arg> ...]".encode()]
        raise AssertionError(f"connection command {name!r} has no handler")

    def _hello(self, args: list[bytes]) -> Reply:
        resp3 = self.resp3
        i = 1
        if len(args) >= 2:
            version = parse_int(args[1])
            if version is None:
                return ErrorReply("ERR Protocol version is not an integer or out of range")
            if version not in (2, 3):
                return ErrorReply("NOPROTO unsupported protocol version")
            resp3 = version == 3
            i = 2
        new_name: bytes | None = None
        login: tuple[bytes, bytes] | None = None
        while i < len(args):
            more = len(args) - 1 - i
            option = args[i].upper()
            if option == b"AUTH" and more >= 2:
                login = (args[i + 1], args[i + 2])
                i += 3
            elif option == b"SETNAME" and more >= 1:
                new_name = args[i + 1]
                if not _valid_client_name(new_name):
                    return _ERR_CLIENT_NAME
                i += 2
            else:
                return ErrorReply(
                    f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'"
                )
        if login is not None:
            if not self.server.passwords.check(*login):
                return ErrorReply(ERR_WRONGPASS)
            self.authenticated = True
        elif not self.authenticated:
            return ErrorReply(ERR_HELLO_NOAUTH)
        self.resp3 = resp3
        if new_name is not None:
            self.name = new_name
        role = self.server.executor.role()
        role_name = role[0] if isinstance(role, list) and role else b"master"
        return {
            b"server": b"redis",
            b"version": REDIS_VERSION.encode(),
            b"proto": 3 if resp3 else 2,
            b"id": self.client_id,
            b"mode": b"standalone",
            b"role": role_name,
            b"modules": [],
        }

    def _auth(self, args: list[bytes]) -> Reply:
        if len(args) > 3:
            return ERR_SYNTAX
        passwords = self.server.passwords
        if len(args) == 2 and not passwords.required:
            return ErrorReply(ERR_NO_PASSWORD_SET)
        username, password = (DEFAULT_USER, args[1]) if len(args) == 2 else (args[1], args[2])
        if not passwords.check(username, password):
            return ErrorReply(ERR_WRONGPASS)
        self.authenticated = True
        return OK

    def _client(self, name: str, args: list[bytes]) -> Reply:
        if name == "client|id":
            return self.client_id
        if name == "client|getname":
            return self.name or None
        if name == "client|setname":
            if not _valid_client_name(args[2]):
                return _ERR_CLIENT_NAME
            self.name = args[2]
            return OK
        if name == "client|setinfo":
            attribute = args[2].lower()
            if not _valid_client_name(args[3]):
                return ErrorReply(
                    f"ERR {attribute.decode('utf-8', 'replace')} cannot contain spaces, "
                    "newlines or special characters."
                )
            if attribute == b"lib-name":
                self.lib_name = args[3]
            elif attribute == b"lib-ver":
                self.lib_version = args[3]
            else:
                return ErrorReply(
                    f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'"
                )
            return OK
        return [b"CLIENT <subcommand> [<arg> ...]. Subcommands: ID GETNAME SETNAME SETINFO HELP"]


_ERR_CLIENT_NAME = ErrorReply(
    "ERR Client names cannot contain spaces, newlines or special characters."
)


_NO_AUTH_NEEDED = frozenset({b"auth", b"hello", b"quit"})
_TRANSACTION_WORDS = frozenset({b"MULTI", b"EXEC", b"DISCARD", b"WATCH", b"UNWATCH"})


def _allowed_before_auth(args: list[bytes]) -> bool:
    """The commands a connection may send before it has authenticated (Redis's no_auth)."""
    return bool(args) and args[0].lower() in _NO_AUTH_NEEDED


def _before_auth_error(args: list[bytes]) -> ErrorReply:
    """What a command gets before AUTH: as in Redis, an unknown command or a wrong argument
    count is said first (kvorum's own KVORUM commands are known here), then NOAUTH."""
    if args and args[0].upper() != b"KVORUM":
        spec = lookup(args)
        if isinstance(spec, ErrorReply):
            return spec
        if not spec.arity_ok(len(args)):
            return err_arity(spec.name)
    return ErrorReply(ERR_NOAUTH)


def _valid_client_name(name: bytes) -> bool:
    return all(33 <= byte <= 126 for byte in name)


def _command_info(spec: CommandSpec) -> Reply:
    """One entry of COMMAND / COMMAND INFO in Redis 7's 10-field shape."""
    categories = ["@" + spec.group, "@" + ("write" if spec.kind is Kind.WRITE else "read")]
    if "fast" in spec.flags:
        categories.append("@fast")
    return [
        spec.name.encode(),
        spec.arity,
        list(spec.flags),
        spec.first_key,
        spec.last_key,
        spec.key_step,
        list(categories),
        [],
        [],
        [_command_info(sub) for sub in spec.subcommands.values()],
    ]


def _command_docs(spec: CommandSpec) -> Reply:
    docs: dict[Reply, Reply] = {
        b"summary": spec.summary.encode(),
        b"since": spec.since.encode(),
        b"group": spec.group.encode(),
    }
    if spec.subcommands:
        docs[b"subcommands"] = {
            sub.name.encode(): _command_docs(sub) for sub in spec.subcommands.values()
        }
    return docs


def _command_getkeys(command: list[bytes]) -> Reply:
    """``COMMAND GETKEYS cmd args...``: the keys of that request, from the command table."""
    spec = lookup(command)
    if isinstance(spec, ErrorReply):
        return ErrorReply("ERR Invalid command specified")
    if not spec.arity_ok(len(command)):
        return ErrorReply("ERR Invalid number of arguments specified for command")
    positions = spec.key_positions(len(command))
    if not positions:
        return ErrorReply("ERR The command has no key arguments")
    return [command[i] for i in positions]


def _command_reply(name: str, args: list[bytes]) -> Reply:
    if name == "command":
        return [_command_info(spec) for spec in COMMANDS.values()]
    if name == "command|count":
        return len(COMMANDS)
    if name == "command|list":
        return [spec_name.encode() for spec_name in COMMANDS]
    wanted = [arg.decode("utf-8", "replace").lower() for arg in args[2:]]
    if name == "command|info":
        return [
            _command_info(COMMANDS[w]) if w in COMMANDS else None
            for w in (wanted or list(COMMANDS))
        ]
    # command|docs
    return {
        w.encode(): _command_docs(COMMANDS[w]) for w in (wanted or list(COMMANDS)) if w in COMMANDS
    }


class RespServer:
    """An asyncio server speaking RESP2/RESP3 on top of an :class:`Executor`."""

    def __init__(self, executor: Executor, config: ServerConfig | None = None) -> None:
        self.executor = executor
        self.config = config or ServerConfig()
        self.stats = ServerStats()
        self.sessions: dict[int, Session] = {}
        self._next_client_id = 1
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[tuple[bytes, bool]]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._started_s = 0.0
        # The executor's callback-style entry points, if it has them (a cluster node does).
        self.submit_writes: _SubmitWrites | None = getattr(executor, "submit_writes", None)
        self.submit_reads: _SubmitReads | None = getattr(executor, "submit_reads", None)
        self.passwords = Passwords(self.config.requirepass)
        self.request_counts: RequestCounts | None = None
        """Requests by command and result, and their latency, when metrics are on."""

    @property
    def port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._started_s = loop.time()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.config.host, self.config.port
        )
        if self.config.idle_timeout_ms > 0:
            self._sweeper = asyncio.create_task(self._close_idle())

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, close every connection and wait for their tasks."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            if session.transport is not None:
                session.transport.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _close_idle(self) -> None:
        loop = asyncio.get_running_loop()
        timeout_s = self.config.idle_timeout_ms / 1000
        while True:
            await asyncio.sleep(min(timeout_s / 2, 1.0))
            deadline = loop.time() - timeout_s
            for session in list(self.sessions.values()):
                if session.last_active_s < deadline and session.transport is not None:
                    session.transport.close()

    # -- INFO and CONFIG -------------------------------------------------------------------

    def info_text(self, sections: Sequence[str]) -> str:
        """INFO's text for the requested sections (Redis's ``default`` set if none)."""
        loop = asyncio.get_running_loop()
        uptime_s = int(loop.time() - self._started_s)
        node = self.executor.info()
        local: dict[str, dict[str, str | int]] = {
            "server": {
                "redis_version": REDIS_VERSION,
                "redis_mode": "standalone",
                "kvorum_server": "kvorum",
                "kvorum_raft_core": raft_core_build(),
                "process_id": os.getpid(),
                "tcp_port": self.port,
                "uptime_in_seconds": uptime_s,
                "uptime_in_days": uptime_s // 86400,
            },
            "clients": {
                "connected_clients": len(self.sessions),
                "maxclients": self.config.max_clients,
            },
            "stats": {
                "total_connections_received": self.stats.total_connections_received,
                "total_commands_processed": self.stats.total_commands_processed,
                "rejected_connections": self.stats.rejected_connections,
                "kvorum_protocol_errors": self.stats.protocol_errors,
            },
        }
        everything = {**local, **node}
        default_order = ["server", "clients", "stats", "replication", "keyspace"]
        order = default_order + [name for name in everything if name not in default_order]
        wanted = [s.lower() for s in sections] or ["default"]
        chosen: list[str] = []
        for name in order:
            if name in everything and (
                name in wanted
                or "all" in wanted
                or "everything" in wanted
                or ("default" in wanted and name in default_order)
            ):
                chosen.append(name)
        parts = []
        for name in chosen:
            lines = [f"# {name.capitalize()}"]
            lines += [f"{key}:{value}" for key, value in everything[name].items()]
            parts.append("\r\n".join(lines) + "\r\n")
        return "\r\n".join(parts)

    def config_get(self, patterns: Sequence[bytes]) -> Reply:
        """CONFIG GET: the read-only parameters that match any pattern, as a map."""
        params: dict[bytes, bytes] = {
            b"databases": b"1",
            b"maxclients": str(self.config.max_clients).encode(),
            b"proto-max-bulk-len": str(self.config.max_bulk_bytes).encode(),
            b"timeout": str(self.config.idle_timeout_ms // 1000).encode(),
            b"save": b"",
            b"appendonly": b"no",
            b"port": str(self.port).encode(),
            b"bind": self.config.host.encode(),
        }
        found: dict[Reply, Reply] = {}
        for pattern in patterns:
            matches = compile_glob(pattern.lower())
            for key, value in params.items():
                if matches(key):
                    found[key] = value
        return found


_SubmitWrites = Callable[[Sequence[bytes]], "asyncio.Future[list[Reply]]"]
_SubmitReads = Callable[[Sequence[Sequence[bytes]], Consistency], "asyncio.Future[list[Reply]]"]
_EMPTY = ErrorReply("ERR empty request")
"""Stands for an empty request in the fast path's checks (``*0``): it sends the batch to
:meth:`Session.execute`, which answers such requests as Redis does."""


class _Connection(asyncio.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, server: RespServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        config = server.config
        self._parser = RequestParser(
            max_bulk_bytes=config.max_bulk_bytes,
            max_multibulk_count=config.max_multibulk_count,
            max_inline_bytes=config.max_inline_bytes,
            max_request_bytes=config.max_request_bytes,
        )
        self._queued: list[list[bytes]] = []
        self._protocol_error: ProtocolError | None = None
        self._busy = False
        self._fast_count = 0
        """Requests in the running batch when it went the fast way (0: it runs as a task)."""
        self._reading_paused = False
        self._writing_paused = False
        self._closed = False
        self._batch: list[list[bytes]] = []
        self._batch_began_s = 0.0

    # --- transport events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, transport)
        server = self._server
        server.stats.total_connections_received += 1
        if len(server.sessions) >= server.config.max_clients:
            server.stats.rejected_connections += 1
            self._closed = True
            transport.write(MAX_CLIENTS_REPLY)
            transport.close()
            return
        self._transport = transport
        client_id = server._next_client_id
        server._next_client_id += 1
        peer = transport.get_extra_info("peername")
        self._session = Session(
            server=server,
            client_id=client_id,
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            transport=transport,
            last_active_s=self._loop.time(),
            authenticated=not server.passwords.required,
        )
        server.sessions[client_id] = self._session

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._session is not None:
            self._server.sessions.pop(self._session.client_id, None)
            self._session.transport = None

    def data_received(self, data: bytes) -> None:
        if self._closed or self._protocol_error is not None:
            return
        assert self._session is not None
        self._session.last_active_s = self._loop.time()
        try:
            self._queued += self._parser.feed(data)
        except ProtocolError as exc:
            self._queued += exc.commands
            self._protocol_error = exc
        self._pump()
        if (
            (self._busy or self._writing_paused)
            and not self._reading_paused
            and self._transport is not None
        ):
            # Hold the client back while its batch runs, or while it does not read its
            # replies (TCP does the rest): what it sends meanwhile waits in the kernel.
            self._reading_paused = True
            self._transport.pause_reading()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._pump()

    # --- running batches ---------------------------------------------------------------------

    def _pump(self) -> None:
        """Start the next batch if none is running and the client is reading its replies."""
        if self._busy or self._writing_paused or self._closed:
            return
        transport = self._transport
        assert transport is not None and self._session is not None
        if self._queued:
            batch, self._queued = self._queued, []
            self._busy = True
            if self._server.request_counts is not None:
                self._batch, self._batch_began_s = batch, self._loop.time()
            fut: asyncio.Future[Any] | None = self._session.start_fast(batch)
            if fut is not None:
                self._fast_count = len(batch)
            else:
                self._fast_count = 0
                task = self._loop.create_task(self._session.execute(batch))
                self._server._tasks.add(task)
                task.add_done_callback(self._server._tasks.discard)
                fut = task
            fut.add_done_callback(self._finished)
            return
        if self._protocol_error is not None:
            self._server.stats.protocol_errors += 1
            transport.write(self._protocol_error.reply())
            transport.close()
            self._closed = True
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _finished(self, fut: asyncio.Future[Any]) -> None:
        self._busy = False
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            return
        assert self._session is not None
        quit_requested = False
        if fut.cancelled():
            return
        exc = fut.exception()
        if self._fast_count:
            if exc is None and len(fut.result()) == self._fast_count:
                replies: list[Reply] = fut.result()
            else:
                if exc is not None and not isinstance(exc, TimeoutError):
                    log.debug("executor failed a batch", exc_info=exc)
                error = error_reply_for(exc or RuntimeError("wrong number of replies"))
                replies = [error] * self._fast_count
            transport.write(encode_replies(replies, self._session.resp3))
            if self._server.request_counts is not None:
                self._count(replies)
        elif exc is not None:
            log.error("connection %d failed; closing it", self._session.client_id,
                      exc_info=exc)
            transport.close()
            self._closed = True
            return
        else:
            output, quit_requested = fut.result()
            transport.write(output)
            if self._server.request_counts is not None:
                self._count(self._session.last_replies)
        if quit_requested:
            transport.close()
            self._closed = True
            return
        self._pump()

    def _count(self, replies: Sequence[Reply]) -> None:
        """Record the batch just answered in the server's request metrics."""
        counts = self._server.request_counts
        assert counts is not None
        batch = self._batch
        names = [counts.command_name(args[0]) if args else OTHER_COMMAND for args in batch]
        failed = [isinstance(r, ErrorReply) for r in replies]
        n = min(len(names), len(failed))
        counts.record(names[:n], failed[:n], self._loop.time() - self._batch_began_s)
