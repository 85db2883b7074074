"""Raft's own faults: membership changes, leader transfers, and picking on new leaders.

Theory of operation: the generic schedule (:class:`~kvorum.sim.faults.FaultSchedule`) draws
``membership`` and ``transfer`` from its menu like any fault and hands them to
:class:`RaftFaults`. A *membership* fault removes a voter from every group (keeping at least
three), or replaces a removed server: it is decommissioned for good and a brand-new, empty
server with a new id joins every group as a learner, promoted once caught up (a removed id is
never reused: see :class:`~kvorum.core.raft.ConfState`). A *transfer* fault makes a group's
leader hand leadership to another voter.

Picking on new leaders (BUGGIFY): a leader that dies moments after winning leaves the most
delicate state behind — entries of older terms half-replicated, its no-op not yet on a
majority — so with crash faults on, each new leader of group 0 is crashed (``leader_crash_p``;
with torn writes on, often inside a sync) or, with partitions on, cut off while clients keep
writing to it (its log grows a suffix of its own term that a later leader must overwrite:
Figure 8's raw material). With partitions on, a leader is also cut off the moment it first
commits in its term, sometimes: the messages that would tell its followers are lost in
flight, and the next leader is elected by nodes that never heard of the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvorum.core.raft import ConfChange, ConfChangeKind, NotLeader
from kvorum.host.group import RaftGroup
from kvorum.host.waiters import CallbackWaiter
from kvorum.sim.faults import FaultKind

if TYPE_CHECKING:
    from kvorum.sim.faults import FaultSchedule
    from kvorum.sim.raft.cluster import RaftCluster

RAFT_FAULTS: tuple[FaultKind, ...] = (
    FaultKind(
        "membership",
        "a voter is removed, or a removed server is replaced by a new, empty one (learner,"
        " then promoted)",
    ),
    FaultKind("transfer", "a leader hands leadership to another voter"),
)


class RaftFaults:
    """Raft's side of the fault menu (see the module docstring)."""

    def __init__(self, cluster: RaftCluster, *, leader_crash_p: float) -> None:
        self.cluster = cluster
        self.leader_crash_p = leader_crash_p

    def start(self, schedule: FaultSchedule) -> None:
        if "crash" in schedule.faults:
            self.cluster.on_new_leader.append(
                lambda node_id: self._maybe_crash_new_leader(schedule, node_id)
            )
        if "partition" in schedule.faults:
            self.cluster.on_leader_commit.append(
                lambda node_id: self._maybe_cut_off_committing_leader(schedule, node_id)
            )

    def inject(self, kind: str, schedule: FaultSchedule) -> None:
        if kind == "membership":
            self._membership()
        elif kind == "transfer":
            self._transfer()
        else:
            raise ValueError(f"not a Raft fault: {kind}")

    def _maybe_crash_new_leader(self, schedule: FaultSchedule, node_id: int) -> None:
        world = schedule.world
        if not schedule.chaos:
            return
        p = self.leader_crash_p
        roll = world.rng.random()
        if roll < p:
            # Log-uniform from 0.1 ms to 20 ms: as often before its first round trip
            # completes as after, since "before" is where the delicate states are.
            when = int(100 * 200 ** world.rng.random())
            mid_sync = "torn-write" in schedule.faults and world.rng.random() < 0.5
            world.after(when, lambda: schedule.crash_node(node_id, mid_sync=mid_sync))
        elif roll < 2 * p and "partition" in schedule.faults:
            when = world.rng.randint(500, 20_000)
            world.after(when, lambda: schedule.isolate(node_id, "new leader"))

    def _maybe_cut_off_committing_leader(self, schedule: FaultSchedule, node_id: int) -> None:
        # The appends that would tell followers about the commit, and the entries after it,
        # are still in flight: cutting the leader off now drops them, and the followers must
        # elect a successor that may have never seen what was just committed.
        if schedule.chaos and schedule.world.rng.random() < self.leader_crash_p:
            schedule.isolate(node_id, "leader that just committed")

    def _membership(self) -> None:
        c = self.cluster
        leaders = {gid: c.leader(gid) for gid in c.group_ids}
        if any(leader is None for leader in leaders.values()):
            return
        confs = {gid: c.nodes[leader].core(gid).conf for gid, leader in leaders.items() if leader}
        members = set().union(*(conf.members for conf in confs.values()))
        removed = [n for n in c.node_ids if n not in members and not c.nodes[n].retired]
        voters = confs[0].voters
        rng = c.world.rng
        if removed and (len(voters) <= 3 or rng.random() < 0.5):
            for node_id in removed:
                c.decommission(node_id)
            node_id = c.add_node()
            change = ConfChange(ConfChangeKind.ADD_LEARNER, node_id, auto_promote=True)
        elif len(voters) > 3:
            change = ConfChange(ConfChangeKind.REMOVE, rng.choice(sorted(voters)))
        else:
            return
        for gid, leader_id in leaders.items():
            assert leader_id is not None
            if change.kind is ConfChangeKind.REMOVE and change.node_id not in confs[gid].members:
                continue
            c.trace(
                f"FAULT membership: g{gid} n{leader_id} proposes {change.kind.name}"
                f" n{change.node_id}"
            )
            self._propose_change(leader_id, gid, change)

    def _propose_change(self, leader_id: int, group_id: int, change: ConfChange) -> None:
        c = self.cluster

        def refused(_: object, error: BaseException | None) -> None:
            if error is not None:
                c.trace(f"  membership change g{group_id} refused: {error}")

        node = c.nodes[leader_id]
        node.host.run(group_id, lambda g: g.propose_conf_change(change, CallbackWaiter(refused)))
        node.pump()

    def _transfer(self) -> None:
        c = self.cluster
        gid = c.world.rng.choice(c.group_ids)
        leader_id = c.leader(gid)
        if leader_id is None:
            return
        leader = c.nodes[leader_id]
        others = sorted(leader.core(gid).conf.voters - {leader_id})
        if not others:
            return
        target = c.world.rng.choice(others)
        c.trace(f"FAULT transfer: g{gid} n{leader_id} hands leadership to n{target}")

        def transfer(group: RaftGroup) -> None:
            try:
                group.core.transfer_leadership(target)
            except (NotLeader, ValueError) as exc:
                c.trace(f"  transfer refused: {exc}")

        leader.host.run(gid, transfer)
        leader.pump()
