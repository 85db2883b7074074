"""Updates waiting to be piggybacked, each sent a bounded number of times.

Theory of operation: an update needs about log(N) gossip rounds to reach everyone, so each is
transmitted ``retransmit_mult * ceil(log10(N + 1))`` times and then dropped (SWIM's λ·log N).
A newer update about the same subject (the same member, or the same observer's opinion of
the same target) replaces the older one, which is then never sent again. Messages carry the
least-transmitted updates first, so fresh news leaves before old news is repeated.
"""

from __future__ import annotations

import math

from kvorum.core.gossip.messages import MemberUpdate, Update

Subject = tuple[int, int, int]
"""(0, member, 0) for a member record; (1, observer, target) for an opinion."""


def subject_of(update: Update) -> Subject:
    if isinstance(update, MemberUpdate):
        return (0, update.member, 0)
    return (1, update.observer, update.target)


def retransmit_limit(retransmit_mult: int, members: int) -> int:
    """How many times each update is sent in a cluster of ``members``."""
    return retransmit_mult * max(1, math.ceil(math.log10(members + 1)))


class _Pending:
    __slots__ = ("transmits", "update")

    def __init__(self, update: Update) -> None:
        self.update = update
        self.transmits = 0


class TransmitQueue:
    """Pending updates and how often each was sent."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[Subject, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def enqueue(self, update: Update) -> None:
        """Queue ``update``, replacing anything queued about the same subject."""
        self._pending[subject_of(update)] = _Pending(update)

    def take(self, limit: int, max_count: int) -> tuple[Update, ...]:
        """Up to ``max_count`` updates, least sent first; each counts one transmission and is
        dropped once sent ``limit`` times."""
        if not self._pending or max_count <= 0:
            return ()
        chosen = sorted(self._pending.items(), key=lambda kv: kv[1].transmits)[:max_count]
        for subject, entry in chosen:
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._pending[subject]
        return tuple(entry.update for _, entry in chosen)
