"""A standalone in-memory :class:`~kvorum.kv.engine.Engine`: one group, every key, raw order.

Theory of operation: a node's engines are views of a shared keyspace
(:mod:`kvorum.kv.memory_keyspace`); many tests, the single-node executor and benchmarks want
just one store. :class:`MemoryEngine` is the view of the only group of a private keyspace in
raw key order (:data:`~kvorum.kv.key_order.RANGE_ORDER`), so ``scan`` walks keys in byte
order as a plain sorted map would.
"""

from __future__ import annotations

from kvorum.kv.key_order import FULL_SPAN, RANGE_ORDER
from kvorum.kv.memory_keyspace import SNAPSHOT_PAIRS_PER_CHUNK, MemoryGroupView, MemoryKeyspace

__all__ = ["SNAPSHOT_PAIRS_PER_CHUNK", "MemoryEngine"]


class MemoryEngine(MemoryGroupView):
    """An ordered byte-key store held in memory; see :class:`kvorum.kv.engine.Engine`."""

    def __init__(self) -> None:
        keyspace = MemoryKeyspace(RANGE_ORDER)
        keyspace.create_group(0, FULL_SPAN)
        super().__init__(keyspace, 0, keyspace._groups[0])
        keyspace._views[0] = self

    def close(self) -> None:
        """Drop the data; further use raises :class:`~kvorum.kv.engine.EngineClosedError`."""
        super().close()
        self._keyspace.close()
