"""The acceptor's two rules, as the seed states them, shared by Basic Paxos and CASPaxos.

Theory of operation: an acceptor keeps three things per register — ``min_n`` (the smallest
proposal number it will still accept), ``accept_n`` and ``accept_value`` (what it accepted
last) — and they must be durable before its reply leaves (the core puts the new state in its
ready beside the reply). On *prepare(n)* it raises ``min_n`` to ``n`` if ``n`` is higher and
answers with ``min_n`` and what it accepted. On *accept(n, value)* it accepts only if
``n >= min_n``, raising ``min_n`` to ``n``, and always answers with its ``min_n``. A proposer
reads ``min_n > n`` in either reply as "you were pre-empted". The functions are pure: state in,
new state and reply fields out, so both cores and their tests use the very same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from kvorum.core.paxos.ballot import ZERO_BALLOT, Ballot

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class AcceptorState(Generic[V]):
    """One register's acceptor state (the seed's minN, acceptN, acceptValue)."""

    min_n: Ballot = ZERO_BALLOT
    accept_n: Ballot = ZERO_BALLOT
    accept_value: V | None = None


@dataclass(frozen=True, slots=True)
class AcceptorRules:
    """Test-only breaks of the acceptor's rules (see :class:`UnsafeSwitches`)."""

    accept_below_min_n: bool = False


def on_prepare(state: AcceptorState[V], n: Ballot) -> AcceptorState[V]:
    """The state after prepare(n): ``min_n`` raised to ``n`` if ``n`` is higher.

    The reply is the new state's ``min_n``, ``accept_n`` and ``accept_value``; it promises
    something only if ``min_n == n``."""
    if n > state.min_n:
        return AcceptorState(n, state.accept_n, state.accept_value)
    return state


def on_accept(
    state: AcceptorState[V], n: Ballot, value: V, rules: AcceptorRules = AcceptorRules()
) -> tuple[AcceptorState[V], bool]:
    """The state after accept(n, value), and whether it was accepted (``n >= min_n``).

    The reply carries the new state's ``min_n``: equal to ``n`` exactly when accepted."""
    if n >= state.min_n:
        return AcceptorState(n, n, value), True
    if rules.accept_below_min_n:
        # TEST ONLY: accepts a pre-empted proposal and keeps the promise it broke.
        return AcceptorState(state.min_n, n, value), True
    return state, False
