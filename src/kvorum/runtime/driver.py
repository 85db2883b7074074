"""The drive loop: a :class:`~kvorum.host.node.NodeHost` run by asyncio, with a ticker.

Theory of operation: one task owns the host. Inputs (peer messages, client requests, ticks)
only queue work in the host and call :meth:`HostDriver.wake`; the task then runs rounds until
the host has nothing left to do. A round's ``persist`` — snapshot files and the one
``fdatasync`` for every group — runs on a dedicated disk thread while the loop keeps
accepting connections, parsing requests and queueing them for the next round (etcd's
"persist in the background, send after"): that is group commit across clients and across
groups. But the hop to the thread and back costs the loop about 50 us of CPU and the disk
thread's Python work contends for the GIL, while an fdatasync that overwrites the WAL's
preallocated file takes about 0.2 ms: on such a disk the hop costs more than the overlap gains
(one group's SET used 30-40% more server CPU per write, `bench groups`' regression part). So
the driver times every sync and runs a round's persist on the loop while the recent syncs
(a moving average) took less than ``inline_sync_below_ms``, and on the disk thread once they
take longer — a slow or busy disk, where keeping the loop serving matters — and always for
rounds that store a snapshot. With ``persist_in_thread=False`` it always runs on the loop,
with ``inline_sync_below_ms=0`` always on the thread (``bench groups`` measures both).
A tick only wakes the drive task when it left the host something to do; while the host is
idle (every group quiesced, nothing waiting) the ticker runs at half the node-heartbeat
interval instead of every ``tick_ms``, which is most of what an idle node costs.

A full disk is survivable. Once a tick the driver asks the log whether space is low
(:meth:`~kvorum.storage.contracts.NodeLog.space_low`); while it is, the host refuses new
client writes with a clear error, while Raft's own small writes still fit and reads go on.
Should a sync still meet a full disk, ``persist`` raises
:class:`~kvorum.storage.contracts.DiskFullError`: the same round is retried every
``disk_retry_ms`` until the log takes it — nothing staged is dropped, so nothing
acknowledged is lost — and the node recovers by itself once space is freed. Any other error
in a round is fatal: the node can no longer promise anything, so it stops (a supervisor
restarts it from disk).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kvorum.host.node import NodeHost, Round
from kvorum.observe.recorders import LatencyHistogram
from kvorum.storage.contracts import DiskFullError

log = logging.getLogger(__name__)


class HostDriver:
    """Runs ``host`` on the running loop: :meth:`start`, then :meth:`wake` on every input."""

    def __init__(
        self,
        host: NodeHost,
        *,
        tick_ms: int,
        persist_in_thread: bool = True,
        inline_sync_below_ms: float = 1.0,
        disk_retry_ms: int = 200,
        on_fatal: Callable[[BaseException], None] | None = None,
        batch_sends: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ) -> None:
        self.host = host
        self.tick_ms = tick_ms
        self.persist_in_thread = persist_in_thread
        self.inline_sync_below_ms = inline_sync_below_ms
        self._sync_ms = inline_sync_below_ms
        """Moving average of recent persist times (starts at the threshold: on the thread)."""
        self.disk_retry_ms = disk_retry_ms
        self.on_fatal = on_fatal
        self._cork, self._uncork = batch_sends or (_nothing, _nothing)
        """Around each step of a round: hold the messages it sends, then write each peer's
        together (the transport's cork and uncork)."""
        self.fatal_error: BaseException | None = None
        self._wake = _Wake()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="kvorum-disk")
        self._persist_stuck = False
        self.on_tick: list[Callable[[], None]] = []
        """Called on the loop after every tick (the node's own periodic chores)."""
        self.persist_seconds = LatencyHistogram()
        """How long each round's write and fsync took (on the disk thread if there is one)."""

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._drive(), name="kvorum-drive"),
            loop.create_task(self._ticker(), name="kvorum-ticker"),
        ]

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Stop after the round in progress (a snapshot being installed must complete before
        files are closed)."""
        self._closing = True
        self._wake.set()
        for task in self._tasks[1:]:
            task.cancel()
        if self._tasks:
            drive = self._tasks[0]
            try:
                await asyncio.wait_for(asyncio.shield(drive), 10)
            except (TimeoutError, asyncio.CancelledError, Exception):
                drive.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._disk.shutdown(wait=True)

    async def _ticker(self) -> None:
        host = self.host
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            # An idle node (every group quiesced, no request waiting) ticks only to keep its
            # liveness with its peers: half a heartbeat interval is often enough for that.
            idle_ms = max(self.tick_ms, host.config.heartbeat_interval_ms / 2)
            next_at += (idle_ms if host.is_idle() else self.tick_ms) / 1000
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            host.tick()
            self._check_space()
            for chore in self.on_tick:
                chore()
            if host.has_work():
                self._wake.set()

    def _check_space(self) -> None:
        """Once a tick: refuse client writes while the disk is low (Raft's own writes still
        fit), and take them again once space is back. A persist stuck on a full disk keeps
        ``disk_full`` set until it gets through."""
        host = self.host
        if self._persist_stuck:
            return
        low = host.node_log.space_low()
        if low != host.disk_full:
            host.disk_full = low
            if low:
                log.error("node %d: disk space low: refusing writes", host.node_id)
            else:
                log.warning("node %d: disk space is back; writes resume", host.node_id)

    async def _drive(self) -> None:
        host = self.host
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                while host.has_work() and not self._closing:
                    self._cork()
                    try:
                        rnd = host.start_round()
                    finally:
                        self._uncork()
                    await self._persist(rnd)
                    self._cork()
                    try:
                        host.finish_round(rnd)
                    finally:
                        self._uncork()
            except Exception as exc:
                host.abandon_round()
                # A failed fsync or apply leaves the node unable to promise anything: stop
                # rather than serve on half-broken.
                log.exception("node %d: fatal error in the drive loop", host.node_id)
                self.fatal_error = exc
                if self.on_fatal is not None:
                    self.on_fatal(exc)
                return

    async def _persist(self, rnd: Round) -> None:
        host = self.host
        if not rnd.must_sync:
            return  # nothing to make durable (rounds with a snapshot always must sync)
        while True:
            try:
                in_thread = self.persist_in_thread and (
                    self._sync_ms >= self.inline_sync_below_ms or rnd.has_snapshot
                )
                if in_thread:
                    loop = asyncio.get_running_loop()
                    took_ms = await loop.run_in_executor(self._disk, _timed, host.persist, rnd)
                else:
                    took_ms = _timed(host.persist, rnd)
                self.persist_seconds.observe(took_ms / 1000)
                # Weighted to follow a disk that turns slow within a few rounds.
                self._sync_ms += (took_ms - self._sync_ms) / 4
            except DiskFullError as exc:
                if not self._persist_stuck:
                    log.error(
                        "node %d: disk full (%s): refusing writes until space is freed",
                        host.node_id,
                        exc,
                    )
                self._persist_stuck = host.disk_full = True
                await asyncio.sleep(self.disk_retry_ms / 1000)
                if self._closing:
                    raise
                continue
            if self._persist_stuck:
                log.warning("node %d: the log has room again", host.node_id)
                self._persist_stuck = False
                host.disk_full = host.node_log.space_low()
            return


class _Wake:
    """What :class:`asyncio.Event` does for the drive task, for one waiter and cheaper: the
    drive task wakes several times per client request, and Event's waiter list, loop lookup
    and try/finally cost more than the rest of waking."""

    __slots__ = ("_pending", "_waiter")

    def __init__(self) -> None:
        self._pending = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)
        else:
            self._pending = True

    def clear(self) -> None:
        """Forget :meth:`set` calls made before now (the round about to run covers them)."""
        self._pending = False

    async def wait(self) -> None:
        """Return once :meth:`set` was called since the last return (at once if it was)."""
        if self._pending:
            self._pending = False
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        await waiter


def _timed(persist: Callable[[Round], None], rnd: Round) -> float:
    """Run ``persist(rnd)``; how long it took, in milliseconds."""
    started = time.perf_counter()
    persist(rnd)
    return (time.perf_counter() - started) * 1000


def _nothing() -> None:
    """No message batching (a driver without a transport)."""
