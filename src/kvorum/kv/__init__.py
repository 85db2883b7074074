"""The key-value state machine that Raft replicates, and the ordered engines it stores into.

Theory of operation: the server checks a Redis request against the command table
(:mod:`kvorum.kv.commands`); a write becomes a msgpack payload stamped with the leader's
clock, goes through the Raft log, and every replica's :class:`KVStateMachine` applies it to
its :class:`Engine` deterministically. Reads are evaluated against the engine at a
caller-given ``now_ms``. Nothing in this package touches a clock, a socket or a file.
"""

from kvorum.kv.commands import COMMANDS, CommandSpec, Kind, check_command, encode_write
from kvorum.kv.engine import Engine
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.replies import ErrorReply, Reply, Verbatim
from kvorum.kv.state_machine import KVStateMachine, encode_expire_sweep

__all__ = [
    "COMMANDS",
    "CommandSpec",
    "Engine",
    "ErrorReply",
    "KVStateMachine",
    "Kind",
    "MemoryEngine",
    "Reply",
    "Verbatim",
    "check_command",
    "encode_expire_sweep",
    "encode_write",
]
