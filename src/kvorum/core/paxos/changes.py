"""CASPaxos's changes: a small closed set of functions of a register's current value.

Theory of operation: in CASPaxos (Rystsov, 2018) a client does not send a value but a
*change* — a function from the register's current state to its next one — and the proposer
applies it to the newest state it finds in phase 1. Arbitrary callables cannot be sent or
stored, so kvorum's changes are five typed operations: :class:`Get` (the identity: a
linearizable read), :class:`Set`, :class:`CompareAndSet`, :class:`Increment` and
:class:`Delete`. :func:`apply_change` is their one interpreter.

The register (:class:`Register`) holds the value (None: absent, i.e. never set or deleted —
a tombstone) and, per proposer node, the id and result of that node's last applied change.
A node's changes on one key run one at a time, and their ids (the round of the change's
first ballot) increase, so "was my change applied?" is one comparison; that is what lets a
proposer retry after a refused or lost accept without applying a change twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kvorum.core.shape import NodeId

Result = bytes | int | bool | None
"""What a change answers: Get the value (None: absent), Set None, CompareAndSet whether it
swapped, Increment the new number, Delete whether the key existed."""


@dataclass(frozen=True, slots=True)
class Get:
    """Read the value (the identity function, written back at a higher ballot)."""


@dataclass(frozen=True, slots=True)
class Set:
    value: bytes


@dataclass(frozen=True, slots=True)
class CompareAndSet:
    """Set ``new`` if the value is ``expected`` (None: if the key is absent)."""

    expected: bytes | None
    new: bytes


@dataclass(frozen=True, slots=True)
class Increment:
    """Add ``delta`` to a decimal integer value (absent counts as 0), as Redis's INCRBY."""

    delta: int = 1


@dataclass(frozen=True, slots=True)
class Delete:
    """Make the key absent (a tombstone: the register stays, with no value)."""


Change = Get | Set | CompareAndSet | Increment | Delete


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """The last change of one proposer node that this register's history includes."""

    node_id: NodeId
    change_id: int
    result: Result


@dataclass(frozen=True, slots=True)
class Register:
    """One key's state as acceptors store it and proposers change it."""

    value: bytes | None = None
    applied: tuple[AppliedChange, ...] = ()
    """At most one entry per node, sorted by node id."""

    def applied_by(self, node_id: NodeId) -> AppliedChange | None:
        for entry in self.applied:
            if entry.node_id == node_id:
                return entry
        return None

    def with_applied(self, value: bytes | None, entry: AppliedChange) -> Register:
        others = [e for e in self.applied if e.node_id != entry.node_id]
        return replace(
            self, value=value, applied=tuple(sorted([*others, entry], key=lambda e: e.node_id))
        )


class ChangeError(ValueError):
    """A change that cannot apply to the current value (e.g. Increment of a non-number): it
    has no effect, and the client is told why."""


def apply_change(change: Change, value: bytes | None) -> tuple[bytes | None, Result, bool]:
    """``(new value, result, mutated)``; raises :class:`ChangeError` if it cannot apply."""
    if isinstance(change, Get):
        return value, value, False
    if isinstance(change, Set):
        return change.value, None, True
    if isinstance(change, CompareAndSet):
        if value == change.expected:
            return change.new, True, True
        return value, False, False
    if isinstance(change, Increment):
        try:
            number = int(value) if value is not None else 0
        except ValueError:
            raise ChangeError("value is not an integer") from None
        number += change.delta
        return str(number).encode(), number, True
    existed = value is not None
    return None, existed, existed


def describe_change(change: Change) -> str:
    if isinstance(change, Get):
        return "get"
    if isinstance(change, Set):
        return f"set {change.value!r}"
    if isinstance(change, CompareAndSet):
        return f"cas {change.expected!r}->{change.new!r}"
    if isinstance(change, Increment):
        return f"incr {change.delta}"
    return "delete"
