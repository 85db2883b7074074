"""Proposal numbers: unique across nodes and increasing, as the seed requires.

Theory of operation: a proposal number ``n`` is the pair (round, node id), compared round
first. Two nodes never make the same number because the node id breaks every tie, and a
proposer that learns of a higher round (an acceptor's ``minN`` in a refusal) jumps past it.
A proposer must never reuse a number after a crash — two different values sent under one
number would break Paxos — so a core reserves rounds ahead and hands the reservation to its
host to persist (:class:`RoundReservation`), like an acceptor's state: before any message
using a round leaves the node, that round is durably below the reservation.
"""

from __future__ import annotations

from typing import NamedTuple

from kvorum.core.shape import NodeId


class Ballot(NamedTuple):
    """A proposal number; the zero ballot (0, 0) is below every real one."""

    round: int
    node_id: NodeId

    def __str__(self) -> str:
        return f"{self.round}.{self.node_id}"


ZERO_BALLOT = Ballot(0, 0)
"""Below every ballot a proposer makes: an acceptor starts with ``minN`` = ``acceptN`` = it."""


class RoundReservation:
    """The rounds a proposer may use without another write to disk.

    ``durable_round`` is what the host last persisted: every round up to it may be used. To go
    higher the core asks (via its ready) to persist ``reserved_round``; nothing using a round
    above ``durable_round`` is sent before that is durable, because the round's messages sit in
    the same ready as the reservation.
    """

    __slots__ = ("block_rounds", "durable_round", "reserved_round")

    def __init__(self, durable_round: int, block_rounds: int) -> None:
        self.durable_round = durable_round
        self.reserved_round = durable_round
        self.block_rounds = block_rounds

    def cover(self, round_: int) -> None:
        """Make sure ``round_`` is reserved (the next ready persists it if it is new)."""
        if round_ > self.reserved_round:
            self.reserved_round = round_ + self.block_rounds - 1

    @property
    def pending(self) -> int | None:
        """A reservation the host has not persisted yet."""
        return self.reserved_round if self.reserved_round > self.durable_round else None

    def persisted(self, round_: int) -> None:
        self.durable_round = max(self.durable_round, round_)
