"""Where keys live: hash placement methods, and ranges of keys assigned to shards.

Theory of operation: two families of building blocks, all pure (no clock, randomness or I/O
of their own; time enters as ``now_ms`` arguments) and all using stable hashes, never Python's
per-process ``hash()``.

*Hash placement* maps a key to a node through one small interface, :class:`Placement`
(``lookup``, ``add_node``, ``remove_node``), so callers can swap methods:
:class:`ModuloHash` (the baseline that moves nearly every key when N changes),
:class:`HashRing` (virtual nodes, weights), :class:`KetamaRing` (places keys exactly as
uhashring's ketama ring), :class:`JumpHash`, :class:`Rendezvous` (weighted HRW),
:class:`Maglev` (prime-sized lookup table) and :class:`BoundedLoadRing` (consistent hashing
with bounded loads, which also counts assigned load).

*Range sharding* keeps neighbouring keys together: :class:`RangeMap` holds contiguous
``[start, end)`` ranges on shards with O(log n) lookup, splits and merges, and
:class:`RangePolicy` proposes splits of big or hot ranges, merges of small cold neighbours
(after a cool-down) and moves that even out shard load.

*Hash slots* are Redis Cluster's fixed placement of keys: :func:`key_slot` (CRC16 mod 16384,
with ``{hash tags}``), which orders a hash-sharded keyspace.
"""

from kvorum.sharding._bounded import DEFAULT_BALANCE_FACTOR, BoundedLoadRing
from kvorum.sharding._errors import (
    BadWeightError,
    CapacityExceededError,
    ClockWentBackwardsError,
    DuplicateNodeError,
    NoNodesError,
    RangeMapError,
    ShardingError,
    UnknownNodeError,
)
from kvorum.sharding._hash import Key, hash64, key_bytes, mix64
from kvorum.sharding._jump import JumpHash, jump_bucket
from kvorum.sharding._maglev import DEFAULT_TABLE_SIZE, Maglev, is_prime
from kvorum.sharding._modulo import ModuloHash
from kvorum.sharding._placement import Nodes, Placement
from kvorum.sharding._policy import (
    MergeProposal,
    MoveProposal,
    Proposal,
    RangePolicy,
    RangeStats,
    SplitProposal,
    apply_proposal,
)
from kvorum.sharding._ranges import KeyRange, RangeMap
from kvorum.sharding._rendezvous import Rendezvous
from kvorum.sharding._ring import HashRing, KetamaRing, ketama_points
from kvorum.sharding._slots import SLOT_COUNT, hash_tag, key_slot

__all__ = [
    "DEFAULT_BALANCE_FACTOR",
    "DEFAULT_TABLE_SIZE",
    "SLOT_COUNT",
    "BadWeightError",
    "BoundedLoadRing",
    "CapacityExceededError",
    "ClockWentBackwardsError",
    "DuplicateNodeError",
    "HashRing",
    "JumpHash",
    "KetamaRing",
    "Key",
    "KeyRange",
    "Maglev",
    "MergeProposal",
    "ModuloHash",
    "MoveProposal",
    "NoNodesError",
    "Nodes",
    "Placement",
    "Proposal",
    "RangeMap",
    "RangeMapError",
    "RangePolicy",
    "RangeStats",
    "Rendezvous",
    "ShardingError",
    "SplitProposal",
    "UnknownNodeError",
    "apply_proposal",
    "hash64",
    "hash_tag",
    "is_prime",
    "jump_bucket",
    "ketama_points",
    "key_bytes",
    "key_slot",
    "mix64",
]
