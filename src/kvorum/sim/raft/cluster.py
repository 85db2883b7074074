"""A simulated kvorum cluster: N servers with G Raft groups each, on one world.

Theory of operation: :class:`RaftCluster` is the Raft plugin's
:class:`~kvorum.sim.plugin.SimCluster`. It starts the servers (:class:`~kvorum.sim.raft.node.
SimNode`), ticks each at its own clock's rate, delivers the network's messages to them, and
watches them from outside: every round's readies go to its observers (the invariant checker),
and every change of leadership is traced and announced (the fault schedule picks on new
leaders). Servers join and leave as membership faults ask (:meth:`RaftCluster.add_node`,
:meth:`RaftCluster.decommission`); a removed id is never reused. Its clients
(:class:`~kvorum.sim.raft.clients.KVClients`) spread their keys over the groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from kvorum.core.raft import RaftConfig, RaftReady
from kvorum.core.shape import Envelope, GroupId
from kvorum.host.group import GroupConfig, RaftGroup
from kvorum.host.node import HostConfig
from kvorum.shard.router import SlotRouter
from kvorum.sim.machine import TICK_US
from kvorum.sim.raft.clients import KVClients
from kvorum.sim.raft.node import SimNode
from kvorum.sim.world import Network, World


@dataclass(slots=True)
class HostSwitches:
    """Test-only switches for the host's side of the contract."""

    send_before_persist: bool = False
    """Send a round's messages before its writes are durable (breaks persist-before-send)."""
    stale_reads: bool = False
    """Answer reads from the local state machine at once, skipping ReadIndex (breaks
    linearizability: a deposed leader or a lagging follower serves old values)."""


DEFAULT_SEGMENT_BYTES = 16 * 1024
"""WAL segments in the simulator are small, so rollover, checkpoints and segment deletion
happen in every run (and a full disk is met when a new segment needs room)."""


class RaftCluster:
    """N simulated nodes, G groups each, on one :class:`World`, with clients and observers."""

    def __init__(
        self,
        world: World,
        node_count: int,
        raft_config: RaftConfig,
        *,
        groups: int = 1,
        clients: int = 3,
        keys: int = 3,
        client_timeout_ticks: int = 60,
        lease_reads: bool = False,
        snapshot_every_entries: int = 40,
        quiesce_after_ticks: int = 20,
        switches: HostSwitches | None = None,
        trace_enabled: bool = True,
        storage: str = "durable",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        value_padding: int = 0,
        keyspace_survives_crash: bool = True,
    ) -> None:
        """``value_padding``: filler bytes after every value clients write.
        ``keyspace_survives_crash``: a node's state machines keep what they committed over a
        crash (as LMDB survives a process crash) or lose it all (a machine crash, after which
        a node rebuilds them from its snapshots and log)."""
        self.world = world
        self.raft_config = raft_config
        self.node_ids = list(range(1, node_count + 1))
        self.initial_ids = list(self.node_ids)
        self.group_ids = list(range(groups))
        self.router = SlotRouter(self.group_ids)
        """Which group holds a key: the runtime's routing (hash slots cut into runs)."""
        self.keyspace_survives_crash = keyspace_survives_crash
        self.lease_reads = lease_reads
        self.storage_kind = storage
        self.segment_bytes = segment_bytes
        self.value_padding = value_padding
        self.group_config = GroupConfig(
            snapshot_every_entries=snapshot_every_entries, lease_reads=lease_reads
        )
        self.host_config = HostConfig(
            heartbeat_interval_ms=raft_config.election_timeout_ticks * TICK_US / 3000,
            liveness_timeout_ms=raft_config.election_timeout_ticks * TICK_US / 1000,
            quiesce_after_ticks=quiesce_after_ticks,
            request_timeout_ms=client_timeout_ticks * 2 * TICK_US // 1000,
            tick_ms=TICK_US / 1000,
        )
        self.switches = switches or HostSwitches()
        self.trace_enabled = trace_enabled
        self.trace_lines: list[str] = []
        self.network = Network(world, self._deliver)
        self.observers: list[Any] = []
        self.on_new_leader: list[Callable[[int], None]] = []
        """Called with a node's id when it becomes leader of group 0."""
        self.on_leader_commit: list[Callable[[int], None]] = []
        """Called with a node's id when, leading group 0, it commits for the first time in
        its term (the moment its followers have not yet heard of)."""
        self.on_node_stopped: list[Callable[[int], None]] = []
        self.changed: set[tuple[int, GroupId]] = set()
        """(node, group) pairs whose core may have changed since the checkers last looked.
        A core changes only in its node's rounds, and every change that matters to them — a
        commit, a new term, a leader — comes out in a ready, so the pairs that produced a
        ready (and every group of a node that just started) are all that need a look."""
        self.nodes = {i: SimNode(self, i, world.child_rng()) for i in self.node_ids}
        for node in self.nodes.values():
            self.mark_node(node)
        key_names = [f"k{i}" for i in range(max(keys, 2 * groups))]
        self.clients = KVClients(self, clients, key_names, client_timeout_ticks)
        self._was_leader: dict[tuple[int, GroupId], int] = {}
        self._committed_as_leader: dict[int, tuple[int, int]] = {}
        """Per node: (term, commit index) when it led group 0 at the last look."""

    def add_node(self) -> int:
        """Start a brand-new, empty server under a new id; every node learns of it."""
        node_id = max(self.node_ids) + 1
        self.node_ids.append(node_id)
        node = SimNode(self, node_id, self.world.child_rng(), join=True)
        self.nodes[node_id] = node
        self.mark_node(node)
        for other in self.nodes.values():
            if other.up:
                other.host.set_peers(self.node_ids)
        self.trace(f"n{node_id} STARTED (a new, empty server)")
        self.schedule_tick(node)
        return node_id

    def decommission(self, node_id: int) -> None:
        """Switch off a server removed from every group, for good."""
        node = self.nodes[node_id]
        node.crash()
        node.retired = True
        self.trace(f"n{node_id} DECOMMISSIONED")

    def group_of(self, key: str) -> GroupId:
        return self.router.group_of(key.encode())

    def leader(self, group_id: GroupId = 0) -> int | None:
        """The up node that leads ``group_id`` in the highest term, if any."""
        leaders = [n.id for n in self.nodes.values() if n.up and n.core(group_id).is_leader]
        return max(leaders, key=lambda i: self.nodes[i].core(group_id).term) if leaders else None

    def focus_node(self) -> int | None:
        return self.leader(0)

    # --- time ------------------------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes.values():
            # Stagger first ticks so nodes do not tick in lockstep.
            self.world.after(
                self.world.rng.randrange(node.machine.tick_us),
                partial(self._tick, node, node.incarnation),
            )

    def schedule_tick(self, node: SimNode) -> None:
        inc = node.incarnation
        self.world.after(node.machine.tick_us, lambda: self._tick(node, inc))

    def _tick(self, node: SimNode, incarnation: int) -> None:
        if not node.up or node.incarnation != incarnation:
            return
        node.tick()
        self.schedule_tick(node)

    def _deliver(self, env: Envelope) -> None:
        node = self.nodes.get(env.dst)
        if node is None or not node.up:
            return
        if self.trace_enabled:
            self.trace(f"n{env.src}->n{env.dst} g{env.group_id} {describe(env.body)}")
        node.receive(env)

    # --- after each event ------------------------------------------------------------------

    def mark_node(self, node: SimNode) -> None:
        """Every group of ``node`` may have changed (it just started)."""
        self.changed.update((node.id, gid) for gid in self.group_ids)

    def take_changed(self) -> list[tuple[int, GroupId]]:
        """The pairs changed since the last call (see :attr:`changed`), in order."""
        if not self.changed:
            return []
        changed = sorted(self.changed)
        self.changed.clear()
        return changed

    def note_roles(self, changed: list[tuple[int, GroupId]]) -> None:
        """After an event: trace leadership changes among ``changed`` and tell the hooks
        about new leaders of group 0 and their first commit."""
        for node_id, gid in changed:
            node = self.nodes[node_id]
            if not node.up:
                continue
            core = node.core(gid)
            term = core.term if core.is_leader else -1
            before = self._was_leader.get((node_id, gid), -1)
            if term != before:
                self._was_leader[(node_id, gid)] = term
                if term != -1:
                    self.trace(
                        f"n{node_id} became LEADER of g{gid} term {term} last={core.last_index}"
                    )
                    if gid == 0:
                        self._committed_as_leader[node_id] = (term, core.commit_index)
                        for hook in self.on_new_leader:
                            hook(node_id)
            if gid == 0 and term != -1:
                seen = self._committed_as_leader.get(node_id)
                if seen is not None and seen[0] == term and core.commit_index > seen[1]:
                    del self._committed_as_leader[node_id]  # once per term
                    for hook in self.on_leader_commit:
                        hook(node_id)

    # --- observation -----------------------------------------------------------------------

    def trace(self, line: str) -> None:
        if self.trace_enabled:
            self.trace_lines.append(f"{self.world.now_us / 1000:10.1f}ms {line}")

    def on_ready(self, node: SimNode, group: RaftGroup, rd: RaftReady) -> None:
        self.changed.add((node.id, group.group_id))
        for obs in self.observers:
            obs.on_ready(node, group, rd)
        if rd.committed_entries:
            for obs in self.observers:
                obs.on_apply(node, group, rd.committed_entries)


def describe(msg: Any) -> str:
    """A short, readable rendering of a message for traces."""
    name = type(msg).__name__
    fields = []
    for f in msg.__slots__:
        if f in ("src", "dst"):
            continue
        v = getattr(msg, f)
        if f == "entries":
            v = "[" + ",".join(f"{e.term}:{e.index}" for e in v) + "]"
        elif f == "data":
            v = f"<{len(v)}B>"
        elif f == "meta":
            v = f"snap@{v.index}:{v.term}"
        elif f in ("beats", "acks"):
            v = "[" + ",".join(
                f"g{b.group_id}:t{b.term}" + ("Q" if getattr(b, "quiesce", False) else "")
                for b in v
            ) + "]"
        elif f == "payloads":
            v = f"<{len(v)} writes>"
        fields.append(f"{f}={v}")
    return f"{name}(" + " ".join(fields) + ")"
