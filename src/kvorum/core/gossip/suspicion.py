"""Lifeguard's suspicion timeout: long while one member accuses, shorter as others confirm.

Theory of operation: a suspicion starts with the longest timeout, ``max_ticks``, because one
accuser may simply be the slow one. Each *independent* confirmation (a distinct member
accusing the same incarnation) is evidence that the target really is unreachable, so the
timeout shrinks logarithmically towards ``min_ticks``, which it reaches after
``expected_confirmations``. This is the formula of Lifeguard (Dadgar et al., 2018) as
hashicorp/memberlist applies it; the arithmetic here is our own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kvorum.core.shape import NodeId


def suspicion_bounds_ticks(
    members: int, probe_interval_ticks: int, suspicion_mult: int, max_timeout_mult: int
) -> tuple[int, int]:
    """(min, max) suspicion timeouts for a cluster of ``members``: the minimum grows with
    log10(N), since news of a refutation needs about that many gossip rounds to spread."""
    scale = max(1.0, math.log10(max(1, members)))
    min_ticks = max(1, math.ceil(suspicion_mult * scale * probe_interval_ticks))
    return min_ticks, min_ticks * max_timeout_mult


def suspicion_timeout_ticks(
    min_ticks: int, max_ticks: int, confirmations: int, expected_confirmations: int
) -> int:
    """The timeout after ``confirmations`` independent ones (``expected`` reach the minimum)."""
    if expected_confirmations < 1:
        return min_ticks
    frac = math.log(confirmations + 1) / math.log(expected_confirmations + 1)
    return max(min_ticks, math.floor(max_ticks - (max_ticks - min_ticks) * frac))


@dataclass(slots=True)
class Suspicion:
    """One running suspicion of a member at one incarnation."""

    incarnation: int
    started_tick: int
    min_ticks: int
    max_ticks: int
    expected_confirmations: int
    accusers: set[NodeId] = field(default_factory=set)
    """Distinct members that accused this incarnation; the first is not a confirmation."""

    def confirm(self, accuser: NodeId) -> bool:
        """Count ``accuser``; True if it is a new, independent one."""
        if accuser in self.accusers:
            return False
        self.accusers.add(accuser)
        return True

    @property
    def confirmations(self) -> int:
        return max(0, len(self.accusers) - 1)

    def deadline_tick(self) -> int:
        return self.started_tick + suspicion_timeout_ticks(
            self.min_ticks, self.max_ticks, self.confirmations, self.expected_confirmations
        )
