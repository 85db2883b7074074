"""The small interface every key-placement method offers, and the checks they share.

Theory of operation: a placement maps a key to one of a set of named nodes. All methods in this
package (modulo, jump, ring, ketama ring, rendezvous, Maglev, bounded loads) offer the same
three operations — :meth:`Placement.lookup`, :meth:`Placement.add_node`,
:meth:`Placement.remove_node` — so a benchmark, a load balancer or the cluster can swap one for
another. A placement always holds at least one node: constructing one with no nodes, or
removing the last node, raises :class:`NoNodesError`, so ``lookup`` never has to fail.
Weights are relative (only their ratios matter), finite and strictly positive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol

from kvorum.sharding._errors import (
    BadWeightError,
    DuplicateNodeError,
    NoNodesError,
    ShardingError,
    UnknownNodeError,
)
from kvorum.sharding._hash import Key

Nodes = Iterable[str] | Mapping[str, float]
"""Nodes to start with: names (weight 1 each) or a mapping of name to weight."""


class Placement(Protocol):
    """Places keys on nodes. Implementations are deterministic: the same nodes, weights and
    parameters (and, where stated, the same order of changes) give the same placement."""

    @property
    def nodes(self) -> tuple[str, ...]:
        """The current nodes (in the order added; JumpHash: in bucket order)."""
        ...

    def lookup(self, key: Key) -> str:
        """The node that owns ``key``."""
        ...

    def add_node(self, node: str, weight: float = 1.0) -> None:
        """Add ``node``; raises DuplicateNodeError if present, BadWeightError on a bad weight."""
        ...

    def remove_node(self, node: str) -> None:
        """Remove ``node``; raises UnknownNodeError if absent, NoNodesError if it is the last."""
        ...


def check_node_name(node: str) -> None:
    """Raise unless ``node`` is a non-empty string."""
    if not isinstance(node, str) or not node:
        raise ShardingError(f"a node name must be a non-empty str, got {node!r}")


def check_weight(node: str, weight: float) -> float:
    """``weight`` as a float; raises BadWeightError unless it is finite and > 0."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise BadWeightError(f"weight of node {node!r} must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight <= 0:
        raise BadWeightError(f"weight of node {node!r} must be finite and > 0, got {weight!r}")
    return float(weight)


def weighted_nodes(nodes: Nodes) -> dict[str, float]:
    """Validate a starting node set: names (weight 1) or name -> weight, at least one node,
    no duplicates. The result keeps the given order."""
    if isinstance(nodes, str):
        # A bare string is iterable, which would silently make one node per character.
        raise ShardingError(f"nodes must be a collection of names, got the string {nodes!r}")
    result: dict[str, float] = {}
    if isinstance(nodes, Mapping):
        pairs: list[tuple[str, float]] = list(nodes.items())
    else:
        pairs = [(name, 1.0) for name in nodes]
    for name, weight in pairs:
        check_node_name(name)
        if name in result:
            raise DuplicateNodeError(f"node {name!r} is listed twice")
        result[name] = check_weight(name, weight)
    if not result:
        raise NoNodesError("a placement needs at least one node")
    return result


def check_can_add(current: Iterable[str], node: str, weight: float) -> float:
    """Validate adding ``node`` with ``weight``; returns the weight as a float."""
    check_node_name(node)
    if node in current:
        raise DuplicateNodeError(f"node {node!r} is already present")
    return check_weight(node, weight)


def check_can_remove(current: Mapping[str, object] | list[str], node: str) -> None:
    """Validate removing ``node``: it must be present and not the last node."""
    if node not in current:
        raise UnknownNodeError(f"node {node!r} is not present; nodes: {sorted(current)}")
    if len(current) == 1:
        raise NoNodesError(f"cannot remove {node!r}: it is the last node")
