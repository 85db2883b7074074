"""What a protocol brings to the simulator, and what the simulator asks of it.

Theory of operation: the generic simulator — virtual time and the network
(:mod:`~kvorum.sim.world`), each node's hardware (:mod:`~kvorum.sim.machine`), its drive loop
(:mod:`~kvorum.sim.driver`), the fault menu (:mod:`~kvorum.sim.faults`) and the runner that
judges a seed (:mod:`~kvorum.sim.runner`) — knows nothing about Raft, Paxos or gossip. A
protocol plugs in with a :class:`Plugin`: given a :class:`~kvorum.sim.world.World` and its
options, it builds a :class:`ProtocolRun` — its nodes, its clients, its checkers. The
generic faults act on the run's :class:`SimCluster` and its :class:`NodeHandle` objects
(partitions on the network, crashes and restarts, slow, torn, full and failing disks, clock
drift); a protocol adds faults of its own (Raft: membership changes, leader transfers) as
:class:`~kvorum.sim.faults.FaultKind` entries whose injection it implements. After every
event the runner asks the run to check its invariants; when the faults stop it asks for a
liveness verdict, and at the end for a final one (e.g. linearizability of the history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from kvorum.sim.machine import SimMachine
from kvorum.sim.world import Network, World

if TYPE_CHECKING:
    from kvorum.sim.faults import FaultKind, FaultSchedule
    from kvorum.sim.runner import RunOptions


class InvariantViolation(AssertionError):
    """A property the run must keep was broken; the message says which and where."""


class NodeHandle(Protocol):
    """One simulated node, as the generic faults see it."""

    @property
    def id(self) -> int: ...

    @property
    def up(self) -> bool:
        """Running (not crashed, not stopped)."""

    @property
    def retired(self) -> bool:
        """Switched off for good (e.g. removed from the cluster): never restarted."""

    @property
    def machine(self) -> SimMachine:
        """Its disk and clock, which the faults degrade."""

    def crash(self) -> None:
        """Power cut: everything in memory is gone; unsynced writes meet their fate."""

    def crash_mid_sync(self) -> None:
        """Power cut landing inside the sync in flight (or a plain :meth:`crash` if none is):
        the sync's writes are torn or lost; nothing waiting on the sync learns it finished."""

    def restart(self) -> bool:
        """Boot from what the disk holds. False if the disk did not let it (full, or an
        fsync failed: try again later); raises :class:`InvariantViolation` if the node
        refuses the storage it finds."""


class SimCluster(Protocol):
    """A protocol's nodes on one world, as the generic faults see them."""

    @property
    def world(self) -> World: ...

    @property
    def network(self) -> Network: ...

    @property
    def nodes(self) -> Mapping[int, NodeHandle]:
        """Every node ever started, by id (retired ones included)."""

    @property
    def node_ids(self) -> Sequence[int]:
        """The ids of every node ever started, in start order."""

    @property
    def on_node_stopped(self) -> list[Callable[[int], None]]:
        """Called with a node's id when it stopped by itself (a fatal disk error): whoever
        supervises nodes restarts it later."""

    def focus_node(self) -> int | None:
        """The node whose loss or isolation hurts most right now (a leader), if any: faults
        pick on it more often than chance would."""

    def trace(self, line: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RunStats:
    """What a run did, for the summary line."""

    ops: int
    """Client operations issued."""
    committed: int
    """How far the protocol got (Raft: the highest commit index of group 0)."""


class ProtocolRun(Protocol):
    """One protocol's run on a world: built by :meth:`Plugin.build`, driven by the runner."""

    @property
    def cluster(self) -> SimCluster: ...

    def start(self) -> None:
        """Start the nodes and the clients."""

    def start_faults(self, schedule: FaultSchedule) -> None:
        """Hook the protocol's own fault habits into ``schedule`` (e.g. picking on a new
        leader); called once, before chaos begins."""

    def inject(self, kind: str, schedule: FaultSchedule) -> None:
        """Inject one of the protocol's own faults (one of :attr:`Plugin.fault_kinds`)."""

    def stop_clients(self) -> None:
        """Chaos is over: clients stop issuing operations."""

    def calm(self) -> None:
        """Repair whatever the protocol's own faults left broken (the generic ones are
        repaired by the schedule)."""

    def after_event(self) -> None:
        """Check the safety invariants; raise :class:`InvariantViolation` if one broke."""

    def liveness(self) -> str | None:
        """Once faults have stopped for the liveness bound: what is not yet as it must be."""

    def final(self) -> str | None:
        """At the end of the run: what the history shows is wrong (e.g. linearizability)."""

    def stats(self) -> RunStats: ...

    def trace_lines(self) -> list[str]: ...


OptionsT_contra = TypeVar("OptionsT_contra", bound="RunOptions", contravariant=True)


class Plugin(Protocol[OptionsT_contra]):
    """A protocol the simulator can run (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def fault_kinds(self) -> Sequence[FaultKind]:
        """The protocol's own faults, injected through :meth:`ProtocolRun.inject`."""

    def build(self, world: World, options: OptionsT_contra) -> ProtocolRun:
        """A fresh run on ``world``; everything random draws from ``world.rng`` (or the
        seed), so the same seed builds the same run."""
