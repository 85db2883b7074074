"""CASPaxos's messages: the seed's two phases, per key, with the next promise piggybacked.

Theory of operation: every message names a key, since each key is its own register with its
own acceptor state. Phase 1 is :class:`CasPrepare` / :class:`CasPromise`, phase 2 is
:class:`CasAccept` / :class:`CasAccepted`, and each reply carries the acceptor's ``min_n``, as
in Basic Paxos. :attr:`CasAccept.next_n` asks the acceptor, once it accepts, to promise the
proposer's next ballot as well, which is what lets that proposer's next change on the key
skip phase 1 (the paper's one-round-trip optimisation). Named tuples naming sender and
receiver, immutable, so a simulator may copy, drop, duplicate and reorder them.
"""

from __future__ import annotations

from typing import NamedTuple

from kvorum.core.paxos.ballot import Ballot
from kvorum.core.paxos.changes import Register
from kvorum.core.shape import NodeId


class CasPrepare(NamedTuple):
    src: NodeId
    dst: NodeId
    key: str
    n: Ballot


class CasPromise(NamedTuple):
    """A promise only if ``min_n == n``; ``state`` is what the acceptor accepted last."""

    src: NodeId
    dst: NodeId
    key: str
    n: Ballot
    min_n: Ballot
    accept_n: Ballot
    state: Register | None


class CasAccept(NamedTuple):
    src: NodeId
    dst: NodeId
    key: str
    n: Ballot
    state: Register
    next_n: Ballot | None
    """If accepted, also promise this (the proposer's next ballot on the key)."""


class CasAccepted(NamedTuple):
    src: NodeId
    dst: NodeId
    key: str
    n: Ballot
    ok: bool
    min_n: Ballot


CasMessage = CasPrepare | CasPromise | CasAccept | CasAccepted
