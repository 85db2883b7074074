"""How a new cluster's initial members start: their membership written into the log.

Theory of operation: every initial member of a new cluster writes the same first entries —
term 1, one ADD_VOTER per member, already committed — as etcd does. Because they are the
same on every member, no agreement is needed for them; because they are in the log, the log
alone says who votes, and a server that joins later learns the initial voters by replaying it
(a configuration passed only on the command line would be invisible to it).
"""

from __future__ import annotations

from collections.abc import Iterable

from kvorum.core.raft.messages import ConfChange, ConfChangeKind, Entry, EntryKind, HardState


def bootstrap_log(voters: Iterable[int]) -> tuple[HardState, list[Entry]]:
    """The hard state and entries every initial member persists before it first starts."""
    entries = [
        Entry(1, i + 1, ConfChange(ConfChangeKind.ADD_VOTER, n).encode(), EntryKind.CONF_CHANGE)
        for i, n in enumerate(sorted(set(voters)))
    ]
    if not entries:
        raise ValueError("a new cluster needs at least one voter")
    return HardState(term=1, vote=None, commit=len(entries)), entries
