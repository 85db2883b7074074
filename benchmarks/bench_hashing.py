"""Hash placement methods compared: keys moved on a node change, load spread, lookup speed.

Theory of operation: for N = 10 and N = 100 nodes, every method in :mod:`kvorum.sharding`
places the same set of keys three times — with N nodes, with one node added, and with one node
(the middle one, not the last) removed — and we count the keys whose owner changed. The ideal
is the smallest movement that keeps the load even: ``1/(N+1)`` of keys when a node joins,
``1/N`` (the leaver's keys) when one leaves. Load spread is the per-node key count's
std/mean and max/mean over the same keys (sampling alone puts a floor of about
``sqrt(N/keys)`` under std/mean). A second table and the chart give the *exact* share of the
hash space per node for the ring (against the number of virtual nodes) and Maglev (against the
table size), free of sampling noise. Lookups per second time ``lookup`` over the key set in
this pure-Python implementation (hashing included), so compare the methods with each other,
not with compiled libraries.

Bounded loads counts each key as one unit of load, assigned in key order (c = 1.25); its
"moved" compares two such assignments. Jump hash cannot remove a middle bucket cleanly: the
last node takes over the freed bucket, so its removal moves about ``2/N``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.run import machine_line
from kvorum.sharding import (
    BoundedLoadRing,
    HashRing,
    JumpHash,
    KetamaRing,
    Maglev,
    ModuloHash,
    Placement,
    Rendezvous,
)

NAME = "hashing"
NODE_COUNTS = (10, 100)


def _methods(table_size: int) -> dict[str, Callable[[list[str]], Placement]]:
    return {
        "modulo": ModuloHash,
        "jump": JumpHash,
        "ring (160 vnodes)": lambda nodes: HashRing(nodes, vnodes=160),
        "ketama (40×4 points)": KetamaRing,
        "rendezvous": Rendezvous,
        f"maglev (M={table_size})": lambda nodes: Maglev(nodes, table_size=table_size),
        "bounded loads (c=1.25)": lambda nodes: BoundedLoadRing(nodes, vnodes=160),
    }


def _owners(placement: Placement, keys: list[str]) -> list[str]:
    if isinstance(placement, BoundedLoadRing):
        return [placement.assign(key) for key in keys]
    return [placement.lookup(key) for key in keys]


def _moved(make: Callable[[list[str]], Placement], nodes: list[str], keys: list[str]) -> tuple[
    float, float, list[str]
]:
    """Fractions of keys moved by adding a node and by removing the middle node, and the
    owners with the original nodes."""
    base = _owners(make(nodes), keys)
    grown = make(nodes)
    grown.add_node("node-new")
    shrunk = make(nodes)
    shrunk.remove_node(nodes[len(nodes) // 2])
    if isinstance(grown, BoundedLoadRing):
        # Bounded loads depends on what is already assigned: replay from empty.
        grown = make([*nodes, "node-new"])
        shrunk = make([n for n in nodes if n != nodes[len(nodes) // 2]])
    added = sum(a != b for a, b in zip(base, _owners(grown, keys), strict=True)) / len(keys)
    removed = sum(a != b for a, b in zip(base, _owners(shrunk, keys), strict=True)) / len(keys)
    return added, removed, base


def _spread(counts: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(counts)
    return statistics.pstdev(counts) / mean, max(counts) / mean


def _lookups_per_s(placement: Placement, keys: list[str]) -> float:
    started = time.perf_counter()
    for key in keys:
        placement.lookup(key)
    return len(keys) / (time.perf_counter() - started)


def _ring_spread(node_count: int, vnodes: int) -> float:
    ring = HashRing([f"node-{i}" for i in range(node_count)], vnodes=vnodes)
    return _spread(list(ring.shares().values()))[0]


def _maglev_spread(node_count: int, table_size: int) -> float:
    maglev = Maglev([f"node-{i}" for i in range(node_count)], table_size=table_size)
    return _spread([float(c) for c in maglev.entry_counts().values()])[0]


def run(results_dir: Path, quick: bool) -> None:
    key_count = 2_000 if quick else 50_000
    table_size = 4093 if quick else 65537
    vnode_steps = (1, 16, 160) if quick else (1, 4, 16, 40, 100, 160, 400, 1000)
    table_steps = (1009, 4093) if quick else (1009, 4093, 16381, 65537)
    keys = [f"key:{i}" for i in range(key_count)]
    lines = [
        f"# Hash placement: movement, spread, speed\n\n{machine_line()}\n",
        f"{key_count} keys `key:0..`; node added: `node-new`; node removed: the middle one.\n",
        "| N | method | moved on add | ideal 1/(N+1) | moved on remove | ideal 1/N "
        "| std/mean | max/mean | lookups/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for node_count in NODE_COUNTS:
        nodes = [f"node-{i}" for i in range(node_count)]
        for name, make in _methods(table_size).items():
            added, removed, base = _moved(make, nodes, keys)
            counts = Counter(base)
            std_over_mean, max_over_mean = _spread([float(counts[n]) for n in nodes])
            speed = _lookups_per_s(make(nodes), keys)
            row = (
                f"| {node_count} | {name} | {added:.3f} | {1 / (node_count + 1):.3f} "
                f"| {removed:.3f} | {1 / node_count:.3f} | {std_over_mean:.3f} "
                f"| {max_over_mean:.2f} | {speed:,.0f} |"
            )
            print(row, flush=True)
            lines.append(row)
    lines += [
        "",
        "Exact share of the hash space per node, std/mean (no sampling):\n",
        "| N | ring vnodes | std/mean |",
        "|---|---|---|",
    ]
    ring_curves: dict[int, list[float]] = {}
    maglev_curves: dict[int, list[float]] = {}
    for node_count in NODE_COUNTS:
        ring_curves[node_count] = [_ring_spread(node_count, v) for v in vnode_steps]
        lines += [
            f"| {node_count} | {v} | {s:.3f} |"
            for v, s in zip(vnode_steps, ring_curves[node_count], strict=True)
        ]
    lines += ["", "| N | Maglev table size M | std/mean |", "|---|---|---|"]
    for node_count in NODE_COUNTS:
        maglev_curves[node_count] = [_maglev_spread(node_count, m) for m in table_steps]
        lines += [
            f"| {node_count} | {m} | {s:.4f} |"
            for m, s in zip(table_steps, maglev_curves[node_count], strict=True)
        ]
    lines.append(
        "\nA ring's spread falls roughly as 1/sqrt(vnodes); Maglev's turn-taking keeps entry "
        "counts within one of each other, so its spread is at most about N/(2M)."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    (results_dir / f"{NAME}.md").write_text(text)
    _chart(results_dir / f"{NAME}.png", vnode_steps, ring_curves, table_steps, maglev_curves)


def _chart(
    path: Path,
    vnode_steps: tuple[int, ...],
    ring_curves: dict[int, list[float]],
    table_steps: tuple[int, ...],
    maglev_curves: dict[int, list[float]],
) -> None:
    figure, (ring_axes, maglev_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for node_count, curve in ring_curves.items():
        ring_axes.plot(vnode_steps, curve, marker="o", label=f"N = {node_count}")
    reference = [1 / math.sqrt(v) for v in vnode_steps]
    ring_axes.plot(vnode_steps, reference, linestyle="--", color="grey", label="1/sqrt(vnodes)")
    ring_axes.set(xscale="log", yscale="log", xlabel="virtual nodes per node",
                  ylabel="std/mean of hash-space share", title="consistent-hash ring")
    ring_axes.legend()
    for node_count, curve in maglev_curves.items():
        maglev_axes.plot(table_steps, curve, marker="o", label=f"N = {node_count}")
    maglev_axes.set(xscale="log", yscale="log", xlabel="table size M (prime)",
                    ylabel="std/mean of table entries", title="Maglev")
    maglev_axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
