"""One connection's MULTI: the commands it queues, and how EXEC runs them.

Theory of operation: between MULTI and EXEC a connection's commands are only checked (known
command, right number of arguments, as Redis checks at queue time) and queued; one that
fails the check is answered with its error and dooms the transaction (EXEC then answers
EXECABORT). At EXEC the data commands — reads and writes alike — go to the executor as one
write (:func:`kvorum.kv.transactions.encode_transaction`), so they are applied together as
one log entry, after the WATCH checks; connection commands queued among them (PING, ECHO,
...) are answered by the server and put back in their places. A WATCH that no longer holds
makes EXEC answer a null array, as Redis does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvorum.kv.commands import Kind, lookup
from kvorum.kv.replies import NULL_ARRAY, QUEUED, ErrorReply, Reply, err_arity
from kvorum.kv.transactions import Watch, encode_transaction
from kvorum.server.executor import error_reply_for

if TYPE_CHECKING:
    from kvorum.server.server import Session

EXECABORT = ErrorReply("EXECABORT Transaction discarded because of previous errors.")


class Transaction:
    """The commands queued since MULTI (see the module docstring)."""

    def __init__(self) -> None:
        self.commands: list[list[bytes]] = []
        self.failed = False

    def queue(self, args: list[bytes]) -> Reply:
        spec = lookup(args)
        if isinstance(spec, ErrorReply):
            self.failed = True
            return spec
        if not spec.arity_ok(len(args)):
            self.failed = True
            return err_arity(spec.name)
        if args[0].upper() in (b"KVORUM", b"CLUSTER", b"SCAN"):
            # Not in a transaction: administration, and a SCAN whose cursor handle the
            # state machine cannot see.
            self.failed = True
            return ErrorReply(f"ERR {spec.name.split('|')[0].upper()} is not allowed in MULTI")
        self.commands.append(args)
        return QUEUED

    async def execute(self, session: Session, watches: list[Watch], now_ms: int) -> Reply:
        if self.failed:
            return EXECABORT
        replies: list[Reply] = [None] * len(self.commands)
        data: list[tuple[int, list[bytes]]] = []
        for i, args in enumerate(self.commands):
            spec = lookup(args)
            assert not isinstance(spec, ErrorReply)  # checked when queued
            if spec.kind is Kind.CONNECTION:
                replies[i] = session._connection_command(spec, args)
            else:
                data.append((i, args))
        if data or watches:
            payload = encode_transaction(now_ms, watches, [args for _, args in data])
            try:
                (result,) = await session.server.executor.write_batch([payload])
            except Exception as exc:  # the transaction failed as a whole, nothing applied
                return error_reply_for(exc)
            if result is None:
                return NULL_ARRAY  # a watched key changed
            if not isinstance(result, list):
                return result  # refused as a whole (CROSSSLOT, disk full, ...)
            for (i, _), reply in zip(data, result, strict=True):
                replies[i] = reply
        return replies
