"""The key-value state machine that Raft replicates, and the ordered engines it stores into.

Theory of operation: the server checks a Redis request against the command table
(:mod:`kvorum.kv.commands`); a write becomes a msgpack payload stamped with the leader's
clock, goes through the Raft log, and every replica's :class:`KVStateMachine` applies it to
its :class:`Engine` deterministically. Reads are evaluated against the engine at a
caller-given ``now_ms``. A node's groups share one ordered keyspace
(:mod:`~kvorum.kv.key_order`), each group's engine a view of its span, and
:class:`KVGroupMachine` is what a host drives per group. Nothing in this package touches a
clock, a socket or a file.
"""

from kvorum.kv.commands import COMMANDS, CommandSpec, Kind, check_command, encode_write
from kvorum.kv.engine import Engine, EngineClosedError, KeyOutsideSpanError, Keyspace
from kvorum.kv.group_machine import KVGroupMachine
from kvorum.kv.key_order import (
    FULL_SPAN,
    HASH_ORDER,
    MAX_KEY_BYTES,
    RANGE_ORDER,
    HashOrder,
    KeyOrder,
    KeySpan,
    RangeOrder,
)
from kvorum.kv.memory_engine import MemoryEngine
from kvorum.kv.memory_keyspace import MemoryGroupView, MemoryKeyspace
from kvorum.kv.replies import ErrorReply, Reply, Verbatim
from kvorum.kv.state_machine import KVStateMachine, encode_expire_sweep

__all__ = [
    "COMMANDS",
    "FULL_SPAN",
    "HASH_ORDER",
    "MAX_KEY_BYTES",
    "RANGE_ORDER",
    "CommandSpec",
    "Engine",
    "EngineClosedError",
    "ErrorReply",
    "HashOrder",
    "KVGroupMachine",
    "KVStateMachine",
    "KeyOrder",
    "KeyOutsideSpanError",
    "KeySpan",
    "Keyspace",
    "Kind",
    "MemoryEngine",
    "MemoryGroupView",
    "MemoryKeyspace",
    "RangeOrder",
    "Reply",
    "Verbatim",
    "check_command",
    "encode_expire_sweep",
    "encode_write",
]
