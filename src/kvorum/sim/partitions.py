"""Partition shapes: which directed links a network partition blocks.

Theory of operation: a partition is a set of blocked directed links (src, dst) — see
:class:`~kvorum.sim.world.NetworkFaults` — so every shape is just a way of drawing that set:
two halves cut apart, a *bridge* node that alone still sees both halves, a *ring* in which
each node reaches only its neighbours (overlapping majorities, for five nodes), random
*one-way* links, the focus node (a leader) cut off from everyone, or nothing at all (a heal).
:func:`draw_partition` draws a shape and its links from the run's random generator.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

Links = set[tuple[int, int]]

SHAPES = ("halves", "halves", "bridge", "ring", "one-way", "isolate-focus", "heal")
"""The shapes drawn from, with repeats for weight (halves is the common case)."""


def cut_apart(a: set[int], b: set[int]) -> Links:
    """Both directions of every link between ``a`` and ``b``."""
    return {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}


def isolate(node: int, ids: Sequence[int]) -> Links:
    """Every link to and from ``node``."""
    return cut_apart({node}, {y for y in ids if y != node})


def draw_partition(rng: random.Random, ids: Sequence[int], focus: int | None) -> tuple[str, Links]:
    """A shape and the links it blocks, among ``ids`` (at least two nodes)."""
    ids = list(ids)
    rng.shuffle(ids)
    shape = rng.choice(SHAPES)
    links: Links = set()
    if shape == "halves":
        cut = rng.randint(1, len(ids) - 1)
        links = cut_apart(set(ids[:cut]), set(ids[cut:]))
    elif shape == "bridge":
        rest = ids[1:]  # ids[0] is the bridge: it keeps every link
        links = cut_apart(set(rest[: len(rest) // 2]), set(rest[len(rest) // 2 :]))
    elif shape == "ring":
        pos = {n: i for i, n in enumerate(ids)}
        k = len(ids)
        links = {
            (x, y) for x in ids for y in ids if x != y and (pos[x] - pos[y]) % k not in (1, k - 1)
        }
    elif shape == "one-way":
        links = {(x, y) for x in ids for y in ids if x != y and rng.random() < 0.3}
    elif shape == "isolate-focus" and focus is not None:
        links = isolate(focus, ids)
    return shape, links
