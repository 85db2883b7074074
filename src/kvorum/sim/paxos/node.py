"""One simulated CASPaxos node: the pure core, its acceptor store, on a simulated machine.

Theory of operation: :class:`PaxosSimNode` is the host a real node would be, in miniature.
Messages, client requests and ticks that arrive are queued; a round
(:meth:`PaxosSimNode.start_round`) feeds them to the :class:`~kvorum.core.paxos.CasPaxosCore`
and takes its ready; :meth:`persist` writes the ready's acceptor state and round reservation
to the :class:`~kvorum.sim.paxos.store.AcceptorStore` and fdatasyncs; only then does
:meth:`finish_round` send the messages and answer the clients. The generic
:class:`~kvorum.sim.driver.SimDriver` runs the rounds on virtual time, with the disk's
latency, its power cuts inside a sync, full disks and failing fsyncs — so a crash loses what
was not synced, and nothing that depended on it was ever sent. A crash drops the core and
everything in memory; a restart rebuilds the core from the store alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvorum.core.paxos import CasPaxosCore, CasReady, Change
from kvorum.core.paxos.cas_messages import CasMessage
from kvorum.sim.driver import SimDriver
from kvorum.sim.machine import SimMachine
from kvorum.sim.paxos.store import AcceptorStore

if TYPE_CHECKING:
    from kvorum.sim.paxos.cluster import PaxosCluster


@dataclass(slots=True)
class PaxosRound:
    ready: CasReady

    @property
    def must_sync(self) -> bool:
        rd = self.ready
        return bool(rd.acceptor_writes) or rd.round_reserved is not None


class _NoLog:
    """The driver's space gauge: the acceptor store does not reserve headroom."""

    def space_low(self) -> bool:
        return False


RequestDone = Callable[[int, object, str | None, bool], None]
"""``(request_id, result, error, outcome_known)``."""


class PaxosSimNode:
    """A CASPaxos node on a simulated machine (see the module docstring)."""

    def __init__(self, cluster: PaxosCluster, node_id: int, rng: random.Random) -> None:
        self.cluster = cluster
        self.id = node_id
        self.machine = SimMachine(rng)
        self._rng = random.Random(rng.getrandbits(64))
        self.store = AcceptorStore(self.machine.fs)
        self.up = False
        self.retired = False
        self.disk_full = False
        self.node_log = _NoLog()
        self.core: CasPaxosCore | None = None
        self.driver: SimDriver[PaxosRound] | None = None
        self.incarnation = 0
        self._inbox: list[CasMessage] = []
        self._requests: list[tuple[int, str, Change]] = []
        self._ticks = 0
        self._waiting: dict[int, RequestDone] = {}

    # --- life ----------------------------------------------------------------------------

    def start(self) -> bool:
        """Boot from the disk; False if the disk does not let it yet."""
        c = self.cluster
        try:
            self.store.open()
        except OSError as exc:
            c.trace(f"n{self.id} cannot start yet: {exc}")
            c.world.stats["restarts refused by the disk"] += 1
            return False
        if self.store.cut_bytes:
            c.world.stats["torn tails cut"] += 1
        self.core = CasPaxosCore(
            c.config_for(self.id),
            random.Random(self._rng.getrandbits(64)),
            acceptor_slots=self.store.slots,
            durable_round=self.store.durable_round,
        )
        self.driver = SimDriver(
            c.world,
            self.machine,
            self,
            on_round=self._on_round,
            on_fatal=self._stopped_by_error,
            trace=lambda line: c.trace(f"n{self.id} {line}"),
        )
        self.up = True
        self.incarnation += 1
        c.trace(
            f"n{self.id} START keys={len(self.store.slots)} round={self.store.durable_round}"
            + (f"; cut a torn tail of {self.store.cut_bytes} bytes" if self.store.cut_bytes else "")
        )
        c.schedule_tick(self, self.incarnation)
        return True

    def restart(self) -> bool:
        return self.start()

    def crash(self) -> None:
        if self.up:
            self._go_down("CRASH (unsynced writes lost)")

    def crash_mid_sync(self) -> None:
        if not self.up:
            return
        assert self.driver is not None
        if not self.driver.busy:
            self._go_down("CRASH (a power cut meant for a sync; none was in flight)")
            return
        outcome = self.driver.cut_power_in_sync()
        self._go_down(f"CRASH inside a sync: {outcome}")

    def _stopped_by_error(self, error: OSError) -> None:
        self._go_down(f"STOPPED: a round failed ({error}); restarting from disk")
        for hook in self.cluster.on_node_stopped:
            hook(self.id)

    def _go_down(self, why: str) -> None:
        self.up = False
        if self.driver is not None:
            self.driver.stop()
        self.core = None
        self._inbox.clear()
        self._requests.clear()
        self._ticks = 0
        waiting, self._waiting = self._waiting, {}
        for done in waiting.values():
            done(-1, None, "node crashed", False)
        self.machine.fs.crash()
        self.cluster.trace(f"n{self.id} {why}")

    # --- inputs --------------------------------------------------------------------------

    def receive(self, msg: CasMessage) -> None:
        if self.up:
            self._inbox.append(msg)
            self.pump()

    def tick(self) -> None:
        if self.up:
            self._ticks += 1
            self.pump()

    def request(self, request_id: int, key: str, change: Change, done: RequestDone) -> None:
        """Propose ``change`` on ``key``; ``done`` is called once with its fate."""
        self._waiting[request_id] = done
        self._requests.append((request_id, key, change))
        self.pump()

    def pump(self) -> None:
        if self.up and self.driver is not None:
            self.driver.pump()

    # --- the driver's host interface -----------------------------------------------------

    def has_work(self) -> bool:
        core = self.core
        return core is not None and bool(
            self._inbox or self._requests or self._ticks or core.has_ready()
        )

    def start_round(self) -> PaxosRound:
        core = self.core
        assert core is not None
        inbox, self._inbox = self._inbox, []
        for msg in inbox:
            core.step(msg)
        requests, self._requests = self._requests, []
        for request_id, key, change in requests:
            core.propose(request_id, key, change)
        for _ in range(self._ticks):
            core.tick()
        self._ticks = 0
        return PaxosRound(core.ready())

    def persist(self, rnd: PaxosRound) -> None:
        rd = rnd.ready
        self.store.write(rd.acceptor_writes, rd.round_reserved)

    def finish_round(self, rnd: PaxosRound) -> None:
        core = self.core
        assert core is not None
        rd = rnd.ready
        core.advance(rd)
        self.cluster.on_durable(self, rd)
        send = self.cluster.network.send
        for msg in rd.messages:
            send(msg)
        for result in rd.results:
            done = self._waiting.pop(result.request_id, None)
            if done is not None:
                done(result.request_id, result.result, result.error, result.outcome_known)

    def abandon_round(self) -> None:
        """The round's sync failed: the node stops, and its writes meet their fate."""

    def _on_round(self, rnd: PaxosRound) -> None:
        """Observers look at a round once it is durable (:meth:`finish_round`)."""
