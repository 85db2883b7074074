"""Local health awareness (Lifeguard): a member that is itself slow probes less aggressively.

Theory of operation: when a member's own probes time out, or it has to refute a suspicion of
itself, or relays' nacks it expected never came, the likeliest culprit is the member itself — a
starved CPU, a long pause, a congested link — not the many peers it would otherwise accuse.
Its *health score* counts such signs (0 is healthy, at most ``max_score``); every successful
probe lowers it by one. Probe intervals and timeouts are scaled by ``score + 1``, so a sick
member waits longer before it suspects anyone, and false accusations from it become rare.
"""

from __future__ import annotations


class HealthAwareness:
    """The local health score and the timeouts it stretches."""

    __slots__ = ("_max", "score")

    def __init__(self, max_score: int) -> None:
        self._max = max_score
        self.score = 0

    def apply(self, delta: int) -> None:
        """Raise (sign of trouble) or lower (a probe went well) the score, within bounds."""
        self.score = min(self._max, max(0, self.score + delta))

    def scale(self, ticks: int) -> int:
        """``ticks`` stretched by the current health: ``ticks * (score + 1)``."""
        return ticks * (self.score + 1)
