"""Snapshots of the KV engine: taken without stalling appends, restored when the engine is behind.

Theory of operation: this is the state machine's side of snapshotting, kept out of storage
(which stores snapshot bytes and knows nothing of engines). :meth:`EngineSnapshotter.start`
asks the engine for a point-in-time view *on the node's thread* (for LMDB: a read
transaction, which sees the store as of that instant while later write transactions go on),
then a worker thread streams that view into a snapshot file through
:meth:`~kvorum.storage.raft_log_store.RaftLogStore.write_snapshot`; the node keeps appending
meanwhile and, when the future completes, calls ``compact`` on its own thread.
:func:`restore_engine_if_behind` restores the engine from the latest snapshot when it has
applied less than the snapshot holds (LMDB lost its last commits, or is new); the node then
re-applies entries ``applied_index + 1 .. commit`` from the log, which compaction never
deletes before a durable snapshot holds them.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from kvorum.core.raft.messages import ConfState, SnapshotMeta
from kvorum.kv.engine import Engine
from kvorum.storage.raft_log_store import RaftLogStore


class EngineSnapshotter:
    """Writes engine snapshots on one worker thread, one at a time."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: Future[SnapshotMeta] | None = None

    def start(self, store: RaftLogStore, engine: Engine, conf: ConfState) -> Future[SnapshotMeta]:
        """Snapshot ``engine`` into ``store`` without stalling appends; the future yields
        the durable snapshot's metadata, to pass to ``store.compact``.

        ``conf`` must be the configuration as of the engine's applied index. The
        point-in-time view is taken here, on the caller's thread; only the streaming runs on
        the worker.
        """
        if self._in_flight is not None and not self._in_flight.done():
            raise RuntimeError("a snapshot is already being written")
        applied_index, chunks = engine.snapshot_chunks()
        current = store.snapshot_meta
        if current is not None and applied_index <= current.index:
            # Nothing new since the last snapshot: report it rather than write a stale one.
            done: Future[SnapshotMeta] = Future()
            done.set_result(current)
            return done
        if applied_index == 0:
            raise ValueError("the engine has applied nothing yet; there is nothing to snapshot")
        if applied_index > store.last_index:
            raise ValueError(
                f"engine applied {applied_index}, beyond the log's last index {store.last_index}"
            )
        meta = SnapshotMeta(index=applied_index, term=store.term(applied_index), conf=conf)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="kvorum-snapshot")

        def write() -> SnapshotMeta:
            store.write_snapshot(meta, chunks)
            return meta

        self._in_flight = self._executor.submit(write)
        return self._in_flight

    def close(self) -> None:
        """Wait for a snapshot being written, then stop the worker."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def restore_engine_if_behind(store: RaftLogStore, engine: Engine) -> bool:
    """Restore ``engine`` from the latest snapshot if it has applied less than the snapshot
    holds; returns whether it did. The node then re-applies entries from
    ``engine.applied_index() + 1``."""
    snap = store.snapshot_meta
    if snap is None or engine.applied_index() >= snap.index:
        return False
    engine.restore(store.snapshot_chunks(snap), snap.index)
    return True
