"""CASPaxos's safety properties, checked on every durable round of every node.

Theory of operation: the checker sees, from outside, each node's acceptor state as it
becomes durable (:meth:`PaxosInvariants.observe`) and keeps per key:

- *one value per ballot*: the register accepted under each ballot. Two different registers
  accepted under one (key, ballot) anywhere, ever, is a violation — and with it two values
  could be chosen for one slot.
- *chosen states*: a (key, ballot) accepted durably by a majority is chosen. Every change a
  chosen state includes must be in every chosen state of a higher ballot: the per-node
  change ids of a register (:class:`~kvorum.core.paxos.Register`) never go backwards along
  the chosen ballots. A proposer that did not adopt the newest state breaks this.
Both are checked unless ``check_chosen`` is off (tests turn it off to show that the
linearizability checker alone also catches what they catch).

- *the acceptor's rule* (``check_rules``): per node and key, ``min_n`` never decreases, and
  a new acceptance is never below the ``min_n`` durably promised before it.

A violation raises :class:`~kvorum.sim.plugin.InvariantViolation` at once, so the trace ends
where it happened.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from kvorum.core.paxos import Ballot, CasReady, Register, SlotState
from kvorum.sim.plugin import InvariantViolation

if TYPE_CHECKING:
    from kvorum.sim.paxos.cluster import PaxosCluster
    from kvorum.sim.paxos.node import PaxosSimNode


def _ids(register: Register) -> dict[int, int]:
    return {e.node_id: e.change_id for e in register.applied}


def _includes(newer: Register, older: Register) -> bool:
    have = _ids(newer)
    return all(have.get(node, 0) >= change for node, change in _ids(older).items())


class PaxosInvariants:
    """Observer of durable acceptor state (see the module docstring)."""

    def __init__(
        self, cluster: PaxosCluster, *, check_rules: bool = True, check_chosen: bool = True
    ) -> None:
        self.quorum = len(cluster.node_ids) // 2 + 1
        self.check_rules = check_rules
        self.check_chosen = check_chosen
        self.accepted: dict[tuple[str, Ballot], Register] = {}
        self.accepted_by: dict[tuple[str, Ballot], set[int]] = {}
        self.chosen: dict[str, dict[Ballot, Register]] = {}
        self.order: dict[str, list[Ballot]] = {}
        self.last: dict[tuple[int, str], SlotState] = {}
        cluster.observers.append(self.observe)

    @property
    def chosen_count(self) -> int:
        return sum(len(by_ballot) for by_ballot in self.chosen.values())

    def observe(self, node: PaxosSimNode, ready: CasReady) -> None:
        for key, slot in ready.acceptor_writes.items():
            if self.check_rules:
                self._check_rule(node.id, key, slot)
            register = slot.accept_value
            if register is None:
                continue
            slot_id = (key, slot.accept_n)
            seen = self.accepted.setdefault(slot_id, register)
            if seen != register and self.check_chosen:
                raise InvariantViolation(
                    f"Two values for one ballot: {key!r} at ballot {slot.accept_n}: n{node.id}"
                    f" accepted {register} but {seen} was accepted before"
                )
            by = self.accepted_by.setdefault(slot_id, set())
            by.add(node.id)
            if len(by) == self.quorum:
                self._chosen(key, slot.accept_n, register)

    def _check_rule(self, node_id: int, key: str, slot: SlotState) -> None:
        before = self.last.get((node_id, key))
        self.last[(node_id, key)] = slot
        if before is None:
            return
        if slot.min_n < before.min_n:
            raise InvariantViolation(
                f"Acceptor rule: n{node_id} lowered minN of {key!r} from {before.min_n} to"
                f" {slot.min_n}"
            )
        if slot.accept_n != before.accept_n and slot.accept_n < before.min_n:
            raise InvariantViolation(
                f"Acceptor rule: n{node_id} accepted {key!r} at {slot.accept_n} after"
                f" promising minN={before.min_n}"
            )

    def _chosen(self, key: str, ballot: Ballot, register: Register) -> None:
        # Inclusion is transitive, so checking the nearest chosen ballot on each side is
        # as good as checking them all.
        chosen = self.chosen.setdefault(key, {})
        chosen[ballot] = register
        if not self.check_chosen:
            return
        order = self.order.setdefault(key, [])
        at = bisect.bisect_left(order, ballot)
        order.insert(at, ballot)
        pairs = []
        if at > 0:
            pairs.append((order[at - 1], ballot))
        if at + 1 < len(order):
            pairs.append((ballot, order[at + 1]))
        for low, high in pairs:
            if not _includes(chosen[high], chosen[low]):
                raise InvariantViolation(
                    f"Chosen states diverge: {key!r} chose {chosen[low]} at {low}, but the"
                    f" state chosen at the higher ballot {high}, {chosen[high]}, lost"
                    " changes it included"
                )
