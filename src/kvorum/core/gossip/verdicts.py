"""Sentinel's verdict over gossip: SDOWN opinions in, ODOWN/up events out.

Theory of operation: a member's own failed probe of a target (direct, then through
``indirect_checks`` relays — the seed's "limited retries"), followed by the phi of the
target's silence crossing the threshold (the seed's "alarm level" of accumulated heartbeat
statistics), makes the target *subjectively down* (SDOWN) for that member; it gossips that
opinion, and every member keeps the latest
opinion of every observer about every target. A target is *objectively down* (ODOWN) at a
member while a quorum — a majority of the members it knows that have not left, the target
excepted — hold valid down-opinions of it, its own included. An opinion is valid for
``validity_ticks`` after it arrived (observers re-send theirs while it stands), so an
observer that died or was cut off stops counting. Each change of a target's ODOWN status
becomes a :class:`Verdict` event with the observers that made it, for the host to act on.

These are the semantics of :class:`kvorum.detect.QuorumAggregator`; that class is not reused
because its observers and quorum are fixed when it is made, whereas here the observers are
the current membership, which changes as members join, leave and die.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvorum.core.gossip.messages import DownOpinion
from kvorum.core.shape import NodeId


@dataclass(frozen=True, slots=True)
class Verdict:
    """``member`` became objectively down (``down``) or stopped being so, at ``tick``;
    ``evidence`` are the observers whose valid down-opinions were counted."""

    member: NodeId
    down: bool
    tick: int
    evidence: frozenset[NodeId]


class OdownTally:
    """Every observer's latest opinion of every target, and the ODOWN verdicts they give."""

    __slots__ = ("_odown", "_opinions", "validity_ticks")

    def __init__(self, validity_ticks: int) -> None:
        self.validity_ticks = validity_ticks
        self._opinions: dict[NodeId, dict[NodeId, tuple[DownOpinion, int]]] = {}
        """target -> observer -> (latest opinion, tick it arrived)"""
        self._odown: dict[NodeId, frozenset[NodeId]] = {}
        """targets objectively down now -> the evidence that made them so"""

    def offer(self, opinion: DownOpinion, now_tick: int, age_ticks: int = 0) -> bool:
        """Keep ``opinion`` (``age_ticks`` old already) if it is newer than what is held, or
        what is held has expired; True if kept (it is then worth gossiping on)."""
        if age_ticks >= self.validity_ticks:
            return False
        held = self._opinions.setdefault(opinion.target, {}).get(opinion.observer)
        if held is not None:
            old, at = held
            fresh = now_tick - at < self.validity_ticks
            if fresh and old.seq >= opinion.seq:
                return False
        self._opinions[opinion.target][opinion.observer] = (opinion, now_tick - age_ticks)
        return True

    def agreeing(self, target: NodeId, now_tick: int) -> frozenset[NodeId]:
        """Observers whose valid opinion says ``target`` is down."""
        held = self._opinions.get(target, {})
        return frozenset(
            obs
            for obs, (op, at) in held.items()
            if op.down and now_tick - at < self.validity_ticks
        )

    def is_odown(self, target: NodeId) -> bool:
        return target in self._odown

    def opinions(self, now_tick: int) -> list[tuple[DownOpinion, int]]:
        """Every valid opinion held, with its age (what a push-pull carries)."""
        return [
            (op, now_tick - at)
            for held in self._opinions.values()
            for op, at in held.values()
            if now_tick - at < self.validity_ticks
        ]

    def forget(self, member: NodeId) -> None:
        """``member`` left: no verdicts about it, and its opinions no longer count."""
        self._opinions.pop(member, None)
        self._odown.pop(member, None)
        for held in self._opinions.values():
            held.pop(member, None)

    def evaluate(self, now_tick: int, quorum_for: Callable[[NodeId], int]) -> list[Verdict]:
        """The ODOWN changes as of ``now_tick``: a target with at least ``quorum_for(target)``
        agreeing observers becomes down; one with fewer becomes up again."""
        events: list[Verdict] = []
        for target in sorted(set(self._opinions) | set(self._odown)):
            agree = self.agreeing(target, now_tick)
            down = len(agree) >= quorum_for(target)
            if down and target not in self._odown:
                self._odown[target] = agree
                events.append(Verdict(target, True, now_tick, agree))
            elif not down and target in self._odown:
                del self._odown[target]
                events.append(Verdict(target, False, now_tick, agree))
        return events
