"""The drive loop of one simulated node: a host's rounds on virtual time, as the runtime runs them.

Theory of operation: a host is driven in rounds (``start_round`` → ``persist`` →
``finish_round``, see :mod:`kvorum.host.node`). :class:`SimDriver` runs them the way
:class:`kvorum.runtime.driver.HostDriver` does, with the disk's latency made of virtual time:
a round that must sync keeps the node *busy* for the machine's disk latency, and inputs that
arrive meanwhile wait for the next round, as they do while a real node's fsync runs on its
disk thread. Then ``persist`` runs against the node's simulated disk, and ``finish_round``
sends, applies and answers. Failures are handled as the runtime handles them:

- a disk low on space: once a tick (:meth:`SimDriver.check_space`) the host is marked
  ``disk_full`` while its log says space is low, so it refuses new client writes while
  Raft's own writes go on;
- :class:`~kvorum.storage.contracts.DiskFullError`: the host is marked ``disk_full``, and
  the *same* round is retried every ``disk_retry_us`` until the log takes it; then the mark
  follows the log's space again;
- any other ``OSError`` (a failed fsync): the node can no longer promise anything, so it
  stops — the driver gives up the round and reports the error; the node then dies as a
  crash does, and its supervisor restarts it from disk.

Anything else a round raises is a bug and escapes to the runner, which reports the seed.

A power cut can land inside a sync: :meth:`SimDriver.cut_power_in_sync` runs the round's
``persist`` with the disk set to lose power at one of its first few operations
(:attr:`~kvorum.sim.disk.SimFileSystem.crash_after_ops`), so a batch is written but not
synced, or a new segment is half published, and the power cut then tears what was written.
A fault that wants this sets the machine's ``sync_trap``; the driver springs it at a random
instant inside the next sync.

One driver serves one incarnation of a node: after a crash the node builds a new one, and
events the old one had scheduled find it stopped and do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from kvorum.sim.disk import SimulatedPowerCut
from kvorum.sim.machine import TICK_US, SimMachine
from kvorum.sim.world import World
from kvorum.storage.contracts import DiskFullError

DISK_RETRY_US = 2 * TICK_US
"""How long a node waits before retrying a round its full disk refused."""
MAX_OPS_BEFORE_POWER_CUT = 6
"""A power cut inside a sync lands at one of the sync's first this many disk operations (a
batch write is two: the write and the fdatasync; publishing a new segment about six), and
half the time at the second: a batch written but not yet synced, the case that tears."""


class SyncRound(Protocol):
    @property
    def must_sync(self) -> bool: ...


RoundT = TypeVar("RoundT", bound=SyncRound)


class SpaceGauge(Protocol):
    def space_low(self) -> bool: ...


class RoundHost(Protocol[RoundT]):
    """What :class:`SimDriver` needs of a host (:class:`kvorum.host.node.NodeHost` has it)."""

    disk_full: bool

    @property
    def node_log(self) -> SpaceGauge: ...

    def has_work(self) -> bool: ...

    def start_round(self) -> RoundT: ...

    def persist(self, rnd: RoundT) -> None: ...

    def finish_round(self, rnd: RoundT) -> None: ...

    def abandon_round(self) -> None: ...


class SimDriver(Generic[RoundT]):
    """Runs one node incarnation's rounds (see the module docstring)."""

    def __init__(
        self,
        world: World,
        machine: SimMachine,
        host: RoundHost[RoundT],
        *,
        on_round: Callable[[RoundT], None],
        on_fatal: Callable[[OSError], None],
        trace: Callable[[str], None],
        disk_retry_us: int = DISK_RETRY_US,
    ) -> None:
        """``on_round`` sees each round as it starts (observers); ``on_fatal`` is told why
        the node must stop."""
        self.world = world
        self.machine = machine
        self.host = host
        self.disk_retry_us = disk_retry_us
        self.busy = False
        """A round is waiting for its sync to complete."""
        self.stopped = False
        self._on_round = on_round
        self._on_fatal = on_fatal
        self._trace = trace
        self._round: RoundT | None = None
        self._persist_stuck = False
        """A round's sync met a full disk and is being retried."""

    def stop(self) -> None:
        """The node died: nothing this driver scheduled may run any more."""
        self.stopped = True
        self.busy = False
        self._round = None

    def check_space(self) -> None:
        """Once a tick: refuse client writes while the disk is low on space, take them again
        once it is not (a round stuck on a full disk keeps them refused until it gets
        through)."""
        host = self.host
        if self.stopped or self._persist_stuck:
            return
        low = host.node_log.space_low()
        if low != host.disk_full:
            host.disk_full = low
            self._trace("DISK SPACE LOW: writes refused" if low else "disk space back: writes on")

    def pump(self) -> None:
        """Run rounds until there is nothing to do or the disk is busy."""
        host = self.host
        while not self.stopped and not self.busy and host.has_work():
            try:
                rnd = host.start_round()
            except OSError as exc:  # a disk error off the round's thread, reported now
                self._stop_on(exc)
                return
            self._on_round(rnd)
            if not rnd.must_sync:
                host.finish_round(rnd)
                continue
            latency = self.machine.disk_latency_us
            if latency <= 0:
                if self._persist_now(rnd):
                    host.finish_round(rnd)
                    continue
                return
            self.busy = True
            self._round = rnd
            trap, self.machine.sync_trap = self.machine.sync_trap, None
            if trap is not None:
                self.world.after(self.world.rng.randrange(latency), trap)
            self.world.after(latency, self._sync_done)
            return

    def _stop_on(self, exc: OSError) -> None:
        """A disk error the node cannot promise anything after: it stops."""
        self.host.abandon_round()
        self.stop()
        self.world.stats["fatal disk errors"] += 1
        self._on_fatal(exc)

    def _sync_done(self) -> None:
        rnd = self._round
        if self.stopped or rnd is None:
            return  # the node crashed before the sync completed: it never happened
        if not self._persist_now(rnd):
            return
        self.busy = False
        self._round = None
        self.host.finish_round(rnd)
        self.pump()

    def _persist_now(self, rnd: RoundT) -> bool:
        """Persist ``rnd``; False if it did not complete (disk full: a retry is scheduled;
        another disk error: the node stops)."""
        host = self.host
        fs = self.machine.fs
        if self.machine.fail_next_sync:
            self.machine.fail_next_sync = False
            fs.failing_fsyncs = 1
        try:
            host.persist(rnd)
        except DiskFullError as exc:
            if not self._persist_stuck:
                self._trace(f"DISK FULL ({exc.strerror}): the round waits for space")
                self.world.stats["disk-full rounds"] += 1
            self._persist_stuck = host.disk_full = True
            self.busy = True
            self._round = rnd
            self.world.after(self.disk_retry_us, self._sync_done)
            return False
        except OSError as exc:
            self._stop_on(exc)
            return False
        finally:
            fs.failing_fsyncs = 0
        if self._persist_stuck:
            self._persist_stuck = False
            host.disk_full = host.node_log.space_low()
            self._trace("the log has room again")
        return True

    def cut_power_in_sync(self) -> str:
        """Run the sync in flight until the power fails at one of its first few disk
        operations (see the module docstring); the caller then crashes the node. Returns
        what happened, for the trace."""
        rnd = self._round
        if rnd is None or self.stopped:
            return "no sync in flight"
        fs = self.machine.fs
        rng = self.world.rng
        at_op = 2 if rng.random() < 0.5 else rng.randint(1, MAX_OPS_BEFORE_POWER_CUT)
        fs.crash_after_ops = at_op
        try:
            self.host.persist(rnd)
        except SimulatedPowerCut:
            outcome = f"power cut at disk operation {at_op} of the sync"
        except OSError as exc:
            outcome = f"the sync failed first ({exc.strerror})"
        else:
            outcome = "the sync completed; the power cut came before anyone heard"
        finally:
            fs.crash_after_ops = None
        self.host.abandon_round()
        self.stop()
        self.world.stats["power cuts in a sync"] += 1
        return outcome
