"""Basic Paxos's messages: the seed's two phases, plus what learners hear.

Theory of operation: phase 1 is :class:`Prepare` (only ``n``) and :class:`Promise` (the
acceptor's ``min_n`` and what it accepted last); phase 2 is :class:`Accept` (``n:value``)
and :class:`Accepted` (the acceptor's ``min_n``). An acceptor that accepts also tells every
learner (:class:`Learn`); a value is chosen once a majority of acceptors accepted one ``n``.
:class:`Forward` hands a value to the distinguished proposer when one is configured.
Every message is an immutable named tuple naming its sender and receiver, so a simulator
may copy, drop, duplicate and reorder them freely.
"""

from __future__ import annotations

from typing import NamedTuple

from kvorum.core.paxos.ballot import Ballot
from kvorum.core.shape import NodeId

Value = str
"""Basic Paxos chooses one opaque value; the seed's are ``X`` and ``Y``."""


class Prepare(NamedTuple):
    src: NodeId
    dst: NodeId
    n: Ballot


class Promise(NamedTuple):
    """The reply to prepare(n): a promise only if ``min_n == n``."""

    src: NodeId
    dst: NodeId
    n: Ballot
    min_n: Ballot
    accept_n: Ballot
    accept_value: Value | None


class Accept(NamedTuple):
    src: NodeId
    dst: NodeId
    n: Ballot
    value: Value


class Accepted(NamedTuple):
    """The reply to accept(n:value): accepted only if ``min_n == n``."""

    src: NodeId
    dst: NodeId
    n: Ballot
    min_n: Ballot


class Learn(NamedTuple):
    """An acceptor accepted ``n:value`` (sent to every learner)."""

    src: NodeId
    dst: NodeId
    n: Ballot
    value: Value


class Forward(NamedTuple):
    """A value for the distinguished proposer to propose."""

    src: NodeId
    dst: NodeId
    value: Value


BasicMessage = Prepare | Promise | Accept | Accepted | Learn | Forward


def describe(msg: BasicMessage) -> str:
    """One line in the seed's vocabulary: ``S1->S3 prepare(1.1)``."""
    head = f"S{msg.src}->S{msg.dst}"
    if isinstance(msg, Prepare):
        return f"{head} prepare(n={msg.n})"
    if isinstance(msg, Promise):
        acc = f"{msg.accept_n}:{msg.accept_value}" if msg.accept_value is not None else "none"
        return f"{head} promise(n={msg.n}) minN={msg.min_n} accepted={acc}"
    if isinstance(msg, Accept):
        return f"{head} accept({msg.n}:{msg.value})"
    if isinstance(msg, Accepted):
        verdict = "ok" if msg.min_n == msg.n else "REFUSED"
        return f"{head} accepted(n={msg.n}) minN={msg.min_n} {verdict}"
    if isinstance(msg, Learn):
        return f"{head} learn({msg.n}:{msg.value})"
    return f"{head} forward({msg.value})"
