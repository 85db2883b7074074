"""Exceptions raised by the sharding building blocks.

Theory of operation: every bad argument is caught where it enters (a constructor, ``add_node``,
``split`` ...) and raised as a subclass of :class:`ShardingError`, itself a ``ValueError``, so
callers can catch the whole family or one precise mistake. Messages name the offending value.
"""

from __future__ import annotations


class ShardingError(ValueError):
    """Base class: a placement or range-map operation was given something it cannot accept."""


class NoNodesError(ShardingError):
    """A placement would be left with no node to place keys on."""


class DuplicateNodeError(ShardingError):
    """A node was added (or listed) twice."""


class UnknownNodeError(ShardingError):
    """An operation named a node that the placement does not hold."""


class BadWeightError(ShardingError):
    """A weight was zero, negative, not finite, or not supported by the method."""


class CapacityExceededError(ShardingError):
    """A bounded-load placement found no node under its capacity (cannot happen for c >= 1)."""


class RangeMapError(ShardingError):
    """A range-map operation does not fit the current ranges (bad split key, no neighbour...)."""


class ClockWentBackwardsError(ShardingError):
    """An injected ``now_ms`` was smaller than one already seen."""
