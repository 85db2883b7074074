"""The fault menu, and a seeded schedule that draws from it.

Theory of operation: a run has a chaos phase and a calm phase. Message loss, duplication and
delay are set once per run. During chaos a :class:`FaultSchedule` wakes at random intervals
and, with the run's own random generator, picks one fault from those enabled: a partition
(:mod:`~kvorum.sim.partitions`), a crash with a restart later, a slow disk, a clock that
drifts, a disk fault, or one of the protocol's own faults (which the protocol injects, see
:class:`~kvorum.sim.plugin.ProtocolRun`). The generic faults know nodes only as
:class:`~kvorum.sim.plugin.NodeHandle` objects on :class:`~kvorum.sim.machine.SimMachine`
hardware, and the protocol only through its cluster's :meth:`focus_node` — the node whose
loss hurts most (a leader), which crashes and partitions pick on more often than chance
would, in the spirit of FoundationDB's BUGGIFY.

The disk faults act on a node's :class:`~kvorum.sim.disk.SimFileSystem`:

- *torn-write*: a power cut lands inside the node's next sync, at a random instant of its
  latency, so the batch being written is torn sector by sector or lost;
- *disk-full*: the disk has no room to grow for a while; the node must refuse writes, keep
  its acknowledged data, and carry on by itself once space returns;
- *fsync-fail*: the first fsync of the node's next sync fails with EIO; the node must
  stop, and it is restarted from its disk;
- *fsync-fail-anywhere*: the node's next fsync fails, whatever writes it — a snapshot
  written in the background included: the node must stop on it as on a failed sync of its
  log (once it only logged it, and a later power cut could erase the directory its log
  pointed into: the node then refused to start);
- *lying-fsync*: for a while fsync returns without syncing, then the power fails. A Raft
  node cannot survive losing data it acknowledged, so this one is left out of ``all`` until
  nodes can repair such damage from their peers; ask for it by name.

When chaos ends everything is repaired — partitions healed, nodes restarted, machines made
healthy — so that liveness can be judged. A node that stops by itself (a fatal disk error)
is restarted by the schedule too, as a supervisor would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvorum.sim.machine import TICK_US
from kvorum.sim.partitions import Links, draw_partition, isolate

if TYPE_CHECKING:
    from kvorum.sim.plugin import NodeHandle, ProtocolRun, SimCluster


@dataclass(frozen=True, slots=True)
class FaultKind:
    """One entry of the menu."""

    name: str
    help: str
    in_all: bool = True
    """Part of ``--faults all`` (lying-fsync is not)."""
    per_run: bool = False
    """Set once when the run starts (a network's quality), not injected during chaos."""


GENERIC_FAULTS: tuple[FaultKind, ...] = (
    FaultKind("loss", "messages are lost (a rate per run)", per_run=True),
    FaultKind("duplicate", "messages are delivered twice (a rate per run)", per_run=True),
    FaultKind(
        "delay", "random delays and slow spikes, which reorder messages (alias: reorder)",
        per_run=True,
    ),
    FaultKind(
        "partition",
        "halves, a bridge node, a ring of overlapping majorities, one-way links, the leader"
        " cut off",
    ),
    FaultKind("crash", "a node crashes (often the leader) and restarts later"),
    FaultKind("disk", "a node's disk becomes slow"),
    FaultKind("clock", "a node's clock runs slow or fast"),
    FaultKind("torn-write", "a power cut inside a sync tears or loses the batch being written"),
    FaultKind("disk-full", "a node's disk has no room for a while"),
    FaultKind(
        "fsync-fail", "the fsync of a node's next sync fails (EIO): it stops and restarts"
    ),
    FaultKind(
        "fsync-fail-anywhere",
        "a node's next fsync fails (EIO), whatever it syncs (a background snapshot too):"
        " it stops and restarts",
    ),
    FaultKind(
        "lying-fsync",
        "fsync returns without syncing, then the power fails: the node loses data it"
        " acknowledged",
        in_all=False,
    ),
)
"""Every fault the generic simulator knows."""


def parse_faults(spec: str, kinds: Sequence[FaultKind]) -> frozenset[str]:
    """Parse ``all``, ``none`` or a comma list of fault kinds (``all`` may be one of them:
    ``all,lying-fsync``); ``reorder`` is an alias of ``delay``."""
    if spec == "none":
        return frozenset()
    known = {k.name for k in kinds}
    chosen: set[str] = set()
    for part in (p.strip() for p in (spec or "all").split(",")):
        if part == "all":
            chosen |= {k.name for k in kinds if k.in_all}
        else:
            chosen.add("delay" if part == "reorder" else part)
    unknown = chosen - known
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {sorted(unknown)}; known: {', '.join(k.name for k in kinds)}"
        )
    return frozenset(chosen)


class FaultSchedule:
    """Draws faults during chaos and repairs everything at calm (see the module docstring)."""

    def __init__(
        self,
        run: ProtocolRun,
        faults: frozenset[str],
        chaos_end_us: int,
        *,
        protocol_kinds: Sequence[FaultKind] = (),
        mean_gap_us: int = 25 * TICK_US,
        max_clock_drift: float = 0.1,
    ) -> None:
        self.run = run
        self.cluster: SimCluster = run.cluster
        self.world = self.cluster.world
        self.faults = faults
        self.chaos_end_us = chaos_end_us
        self.mean_gap_us = mean_gap_us
        self.max_clock_drift = max_clock_drift
        """Clock faults make a node's ticks up to this fraction slower or faster."""
        generic = [k.name for k in GENERIC_FAULTS if not k.per_run]
        own = [k.name for k in protocol_kinds if not k.per_run]
        self._menu = [k for k in (*generic, *own) if k in faults]
        self._own = set(own)

    @property
    def chaos(self) -> bool:
        return self.world.now_us < self.chaos_end_us

    def start(self) -> None:
        net = self.cluster.network.faults
        rng = self.world.rng
        if "loss" in self.faults:
            net.loss = rng.choice([0.0, 0.01, 0.05, 0.1])
        if "duplicate" in self.faults:
            net.duplicate = rng.choice([0.0, 0.02, 0.05])
        if "delay" in self.faults:
            net.max_delay_us = rng.choice([2_000, 5_000, 20_000])
            net.slow_p = rng.choice([0.0, 0.01, 0.05])
            net.slow_delay_us = rng.choice([50_000, 200_000])
        self.cluster.on_node_stopped.append(self._stopped_by_itself)
        self.run.start_faults(self)
        self._schedule_next()
        self.world.at(self.chaos_end_us, self.calm)

    def _schedule_next(self) -> None:
        gap = self.world.rng.randint(self.mean_gap_us // 2, self.mean_gap_us * 3 // 2)
        if self.world.now_us + gap < self.chaos_end_us:
            self.world.after(gap, self._inject)

    def _inject(self) -> None:
        if self._menu:
            kind = self.world.rng.choice(self._menu)
            self.world.stats[f"fault {kind}"] += 1
            if kind in self._own:
                self.run.inject(kind, self)
            else:
                getattr(self, "_" + kind.replace("-", "_"))()
        self._schedule_next()

    # --- what protocols' faults may use too --------------------------------------------------

    def up_nodes(self) -> list[int]:
        c = self.cluster
        return [n for n in c.node_ids if c.nodes[n].up]

    def pick_victim(self) -> int | None:
        """An up node: the focus node half the time (if there is one), else any."""
        up = self.up_nodes()
        if not up:
            return None
        focus = self.cluster.focus_node()
        rng = self.world.rng
        return focus if focus is not None and rng.random() < 0.5 else rng.choice(up)

    def crash_node(self, node_id: int, *, mid_sync: bool = False) -> None:
        """Crash ``node_id`` (inside its sync in flight with ``mid_sync``) and restart it
        5 to 60 ticks later; nothing happens once chaos is over."""
        node = self.cluster.nodes[node_id]
        if not node.up or not self.chaos:
            return
        if mid_sync:
            node.crash_mid_sync()
        else:
            node.crash()
        self._restart_later(node_id, self.world.rng.randint(5 * TICK_US, 60 * TICK_US))

    def isolate(self, node_id: int, why: str) -> None:
        """Cut ``node_id`` off from every node for 5 to 40 ticks."""
        c = self.cluster
        links = isolate(node_id, c.node_ids)
        c.network.block(c.network.faults.blocked | links)
        c.trace(f"FAULT n{node_id} ({why}) isolated")
        heal_after = self.world.rng.randint(5 * TICK_US, 40 * TICK_US)
        self.world.after(heal_after, lambda: self._unblock(links))

    def _unblock(self, links: Links) -> None:
        net = self.cluster.network
        net.block(net.faults.blocked - links)

    def _restart_later(self, node_id: int, delay_us: int) -> None:
        self.world.after(delay_us, lambda: self._restart(node_id))

    def _restart(self, node_id: int) -> None:
        node = self.cluster.nodes[node_id]
        if node.up or node.retired:
            return
        if not node.restart():
            # The disk did not let it start (full, or failing): a supervisor tries again.
            self._restart_later(node_id, 10 * TICK_US)

    def _stopped_by_itself(self, node_id: int) -> None:
        self._restart_later(node_id, self.world.rng.randint(2 * TICK_US, 20 * TICK_US))

    # --- the generic menu ----------------------------------------------------------------------

    def _partition(self) -> None:
        c = self.cluster
        if len(c.node_ids) < 2:
            return  # nothing to cut apart
        shape, links = draw_partition(self.world.rng, c.node_ids, c.focus_node())
        c.network.block(links)
        c.trace(f"FAULT partition {shape}: {len(links)} links blocked")

    def _crash(self) -> None:
        victim = self.pick_victim()
        if victim is not None:
            self.crash_node(victim)

    def _disk(self) -> None:
        node = self._any_node()
        node.machine.disk_latency_us = self.world.rng.choice([100, 1_000, 5_000, 30_000])
        self.cluster.trace(
            f"FAULT n{node.id} disk latency {node.machine.disk_latency_us / 1000:.0f}ms"
        )

    def _clock(self) -> None:
        node = self._any_node()
        # Lease reads are designed for bounded drift (lease_margin_ticks); the default
        # ±10% stays within it, larger values show what happens beyond it.
        d = self.max_clock_drift
        node.machine.tick_us = int(TICK_US * self.world.rng.uniform(1 - d, 1 + d))
        self.cluster.trace(f"FAULT n{node.id} clock tick {node.machine.tick_us / 1000:.2f}ms")

    def _torn_write(self) -> None:
        victim = self.pick_victim()
        if victim is None:
            return
        self.cluster.trace(f"FAULT n{victim}: a power cut will land inside its next sync")
        self.cluster.nodes[victim].machine.sync_trap = lambda: self.crash_node(
            victim, mid_sync=True
        )

    def _disk_full(self) -> None:
        victim = self.pick_victim()
        if victim is None:
            return
        fs = self.cluster.nodes[victim].machine.fs
        if fs.capacity_bytes is not None:
            return  # already full
        rng = self.world.rng
        fs.capacity_bytes = fs.used_bytes() + rng.choice([0, 0, 512, 4096])
        ticks = rng.randint(10, 80)
        self.cluster.trace(
            f"FAULT n{victim} disk full for {ticks} ticks (capacity {fs.capacity_bytes} bytes)"
        )

        def space_freed() -> None:
            if fs.capacity_bytes is not None:
                fs.capacity_bytes = None
                self.cluster.trace(f"n{victim}: space freed on its disk")

        self.world.after(ticks * TICK_US, space_freed)

    def _fsync_fail(self) -> None:
        victim = self.pick_victim()
        if victim is None:
            return
        self.cluster.nodes[victim].machine.fail_next_sync = True
        self.cluster.trace(f"FAULT n{victim}: the fsync of its next sync fails (EIO)")

    def _fsync_fail_anywhere(self) -> None:
        victim = self.pick_victim()
        if victim is None:
            return
        self.cluster.nodes[victim].machine.fs.failing_fsyncs = 1
        self.cluster.trace(f"FAULT n{victim}: its next fsync fails (EIO), whatever it syncs")

    def _lying_fsync(self) -> None:
        victim = self.pick_victim()
        if victim is None:
            return
        fs = self.cluster.nodes[victim].machine.fs
        # A short spell loses a batch or two at the end of the log (silently: the log just
        # ends earlier), a long one leaves holes that recovery sees.
        ticks = self.world.rng.choice([1, 1, 2, 5, 20])
        fs.lying_fsync_rate = 1.0
        self.cluster.trace(f"FAULT n{victim}: fsync lies for {ticks} ticks, then the power fails")

        def power_cut() -> None:
            fs.lying_fsync_rate = 0.0
            self.crash_node(victim)

        self.world.after(ticks * TICK_US, power_cut)

    def _any_node(self) -> NodeHandle:
        c = self.cluster
        return c.nodes[self.world.rng.choice(c.node_ids)]

    # --- calm ----------------------------------------------------------------------------------

    def calm(self) -> None:
        """End all faults: heal, restart, healthy machines, a reliable network."""
        c = self.cluster
        c.network.heal()
        f = c.network.faults
        f.loss = f.duplicate = f.slow_p = 0.0
        f.max_delay_us = 2_000
        for node_id in c.node_ids:
            node = c.nodes[node_id]
            node.machine.heal()
            if not node.up and not node.retired:
                node.restart()
        self.run.calm()
        c.trace("CALM: all faults repaired")
