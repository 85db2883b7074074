"""kvorum's Redis-protocol front end: RESP parsing/encoding and an asyncio server.

Theory of operation: :class:`RespServer` accepts Redis clients, parses their requests with
:mod:`kvorum.server.resp`, checks them against kvorum's command table, and hands them in
batches to an :class:`Executor` — the Raft node in a cluster, or :class:`LocalExecutor` for a
single node and for tests. The server never touches storage itself.
"""

from kvorum.host.errors import CommitTimeoutError, NoLeaderError
from kvorum.server.executor import Consistency, Executor, ExecutorError, LocalExecutor
from kvorum.server.resp import ProtocolError, RequestParser, encode_replies, encode_reply
from kvorum.server.server import RespServer, ServerConfig

__all__ = [
    "CommitTimeoutError",
    "Consistency",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "NoLeaderError",
    "ProtocolError",
    "RequestParser",
    "RespServer",
    "ServerConfig",
    "encode_replies",
    "encode_reply",
]
