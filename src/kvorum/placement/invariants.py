"""What must hold after every step of a placement operator, as checks the simulator runs.

Theory of operation: beside the cover (:func:`kvorum.placement.cover.check_cover`), two
properties are about single steps, so they compare a range's descriptor just before and just
after one:

* **fault tolerance never drops below what the range had, nor below one node for three
  replicas** (:func:`check_tolerance`). A range's tolerance is its live voters minus its
  quorum: how many more nodes it can lose and still commit. A step may leave it lower only
  where it already was lower (a range that has lost a voter is repaired with tolerance 0
  throughout). Adding a learner first and removing last keeps it; removing first drops a
  healthy range of 3 to 2 voters that are both needed, which this check reports.
* **a request routed by a descriptor from before a split or merge is refused**
  (:func:`check_stale_routing`): the range's bounds changed, so its epoch's ``version`` must
  have, or :func:`~kvorum.placement.descriptor.check_epoch` would let an old request be
  served for a key the range no longer holds — two ranges serving one key.

Each returns the problems in words; an empty list is a pass.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from kvorum.core.shape import NodeId
from kvorum.placement.descriptor import RangeDescriptor, StaleEpochError, check_epoch


def tolerance(desc: RangeDescriptor, live: Collection[NodeId]) -> int:
    """How many more voters ``desc`` can lose and keep a quorum (negative: it has none)."""
    voters = desc.voters()
    live_voters = sum(1 for n in voters if n in live)
    return live_voters - (len(voters) // 2 + 1)


def check_tolerance(before: RangeDescriptor, after: RangeDescriptor,
                    live: Collection[NodeId], replicas: int) -> list[str]:
    """Problems if the step ``before`` -> ``after`` lowered the range's fault tolerance below
    both what it had and what ``replicas`` voters give."""
    target = (replicas - 1) // 2
    was, now = tolerance(before, live), tolerance(after, live)
    if now < min(was, target):
        live_voters = sorted(set(after.voters()) & set(live))
        return [f"{before} -> {after}: tolerance fell from {was} to {now} "
                f"(voters {sorted(after.voters())}, live {live_voters})"]
    return []


def check_stale_routing(before: Iterable[RangeDescriptor],
                        after: Iterable[RangeDescriptor]) -> list[str]:
    """Problems if a range whose bounds changed would still accept a key-routed request
    carrying its epoch from ``before``."""
    old = {d.range_id: d for d in before}
    problems: list[str] = []
    for desc in after:
        prior = old.get(desc.range_id)
        if prior is None or (prior.start, prior.end) == (desc.start, desc.end):
            continue
        try:
            check_epoch(prior.epoch, desc.epoch, bounds_only=True)
        except StaleEpochError:
            continue
        problems.append(f"a request routed by {prior} would be served by {desc}, "
                        "whose bounds changed: stale routing not caught")
    return problems
