"""Cluster-wide unique ID generators: the seed's four ways (ID-1..4) and two modern ones.

Theory of operation: every generator here is pure — it reads time only through an injected
``clock_ms`` callable (or a ``now_ms`` argument), waits only through an injected ``sleep_ms``
(or by raising so the caller waits), and draws randomness from a passed-in ``random.Random``.
The runtime passes ``time.time_ns``-based callables; tests and the simulator pass fake ones.

* :class:`StepSequence` / :func:`multi_master` — database auto-increment with start and step,
  N masters handing out disjoint progressions (ID-1).
* :class:`AtomicCounter` — the Redis ``INCR`` contract (ID-2) that the cluster's Raft-backed
  INCR implements; :class:`InMemoryCounter` for tests.
* :class:`SegmentAllocator` — Leaf-style double-buffered segments over any counter: one round
  trip per ``step`` IDs, with the step adapted to the consumption rate.
* :class:`UuidV7Generator`, :func:`uuid4_from` — RFC 9562 UUIDs, time-ordered v7 versus
  random v4 (ID-3); :class:`UlidGenerator` and the ULID codec.
* :class:`Snowflake` / :class:`SnowflakeLayout` — 64-bit time | worker | sequence IDs (ID-4).

Which to pick: Snowflake when a 64-bit, roughly time-ordered ID and a unique worker id per
process are acceptable; UUIDv7/ULID when no worker id can be assigned; segments when IDs must
be dense integers from one shared sequence.
"""

from kvorum.ids._clock import ClockMs, ClockStalled, SleepMs, wait_until
from kvorum.ids._counters import AtomicCounter, InMemoryCounter, StepSequence, multi_master
from kvorum.ids._segment import NoSegmentReady, Segment, SegmentAllocator, SegmentPolicy
from kvorum.ids._snowflake import (
    KVORUM_EPOCH_MS,
    ClockError,
    ClockMovedBackwards,
    ClockOutOfRange,
    LayoutError,
    MustWait,
    Snowflake,
    SnowflakeLayout,
    SnowflakeParts,
)
from kvorum.ids._ulid import (
    UlidError,
    UlidGenerator,
    UlidOverflow,
    UlidParts,
    compose_ulid,
    decode_ulid,
    decode_ulid_parts,
    encode_ulid,
)
from kvorum.ids._uuid7 import (
    UuidError,
    UuidV7Generator,
    UuidV7Parts,
    compose_uuid7,
    decode_uuid7,
    uuid4_from,
)

__all__ = [
    "KVORUM_EPOCH_MS",
    "AtomicCounter",
    "ClockError",
    "ClockMovedBackwards",
    "ClockMs",
    "ClockOutOfRange",
    "ClockStalled",
    "InMemoryCounter",
    "LayoutError",
    "MustWait",
    "NoSegmentReady",
    "Segment",
    "SegmentAllocator",
    "SegmentPolicy",
    "SleepMs",
    "Snowflake",
    "SnowflakeLayout",
    "SnowflakeParts",
    "StepSequence",
    "UlidError",
    "UlidGenerator",
    "UlidOverflow",
    "UlidParts",
    "UuidError",
    "UuidV7Generator",
    "UuidV7Parts",
    "compose_ulid",
    "compose_uuid7",
    "decode_ulid",
    "decode_ulid_parts",
    "decode_uuid7",
    "encode_ulid",
    "multi_master",
    "uuid4_from",
    "wait_until",
]
