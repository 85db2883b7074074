"""Seed scenarios CH-1 and SHARD-1..3: where keys live, and what moves when things change.

Theory of operation: each scenario builds placements and range maps from
:mod:`kvorum.sharding`, changes them the way the seed describes (a server joins, a range gets
hot, time passes), prints what every key or range did, and derives its verdict from those
observations — counts of moved keys, shards touched by a scan, load per shard. Time is a plain
``now_ms`` number advanced by the script; nothing is random, so every run prints the same trace.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from kvorum.scenarios.registry import Printer, Verdict, scenario
from kvorum.sharding import (
    HashRing,
    JumpHash,
    KeyRange,
    ModuloHash,
    Placement,
    RangeMap,
    RangePolicy,
    RangeStats,
    apply_proposal,
)

_SERVERS = ["server-A", "server-B", "server-C"]
_NEW_SERVER = "server-D"


def _moved(before: Placement, after: Placement, keys: list[str]) -> list[str]:
    return [k for k in keys if before.lookup(k) != after.lookup(k)]


def _average_moved(
    make: type[ModuloHash] | type[HashRing], trials: int, keys_per_trial: int
) -> float:
    """Mean number of keys (out of ``keys_per_trial``) that move when server-D joins, over
    ``trials`` different key sets — what to expect, as opposed to one draw."""
    before, after = make(_SERVERS), make([*_SERVERS, _NEW_SERVER])
    total = 0
    for trial in range(trials):
        keys = [f"trial-{trial}-key-{i}" for i in range(keys_per_trial)]
        total += len(_moved(before, after, keys))
    return total / trials


@scenario("CH-1", "consistent hashing: adding a 4th server moves few keys")
def ch1(out: Printer) -> Verdict:
    keys = [f"key-{i}" for i in range(1, 11)]
    modulo_3, modulo_4 = ModuloHash(_SERVERS), ModuloHash([*_SERVERS, _NEW_SERVER])
    ring_3, ring_4 = HashRing(_SERVERS), HashRing([*_SERVERS, _NEW_SERVER])
    out("3 servers, 10 keys; then server-D joins. hash = BLAKE2b-64 of the key.")
    out("ring: 160 virtual nodes per server.")
    out(f"{'key':<8} {'mod 3':<10} {'mod 4':<10} {'':<6} {'ring(3)':<10} {'ring(4)':<10}")
    for key in keys:
        m3, m4, r3, r4 = (p.lookup(key) for p in (modulo_3, modulo_4, ring_3, ring_4))
        out(
            f"{key:<8} {m3:<10} {m4:<10} {'MOVED' if m3 != m4 else 'stays':<6} "
            f"{r3:<10} {r4:<10} {'MOVED' if r3 != r4 else 'stays'}"
        )
    modulo_moved = len(_moved(modulo_3, modulo_4, keys))
    ring_moved = len(_moved(ring_3, ring_4, keys))
    ring_to_new = all(ring_4.lookup(k) == _NEW_SERVER for k in _moved(ring_3, ring_4, keys))
    out(f"hash mod N moved {modulo_moved}/10 keys (seed: 9/10, all but one)")
    out(f"ring moved {ring_moved}/10 keys (seed: 3/10), all to server-D: {ring_to_new}")
    # One set of 10 keys is a small sample; say what to expect on average too.
    modulo_mean = _average_moved(ModuloHash, 300, 10)
    ring_mean = _average_moved(HashRing, 300, 10)
    out(
        f"over 300 other sets of 10 keys: mod N moves {modulo_mean:.1f} on average "
        f"(theory 7.5: a key stays only if h mod 3 == h mod 4), the ring {ring_mean:.1f} "
        f"(theory 2.5 = 10 × 1/4, the new server's share)"
    )
    matches = modulo_moved >= 6 and ring_moved <= 4 and ring_to_new and ring_moved < modulo_moved
    outcome = (
        f"mod N moved {modulo_moved}/10 keys (seed 9), the ring {ring_moved}/10 (seed 3); "
        f"averages over 300 key sets {modulo_mean:.1f} vs {ring_mean:.1f} (theory 7.5 vs 2.5)"
    )
    differences = tuple(
        f"{what} moved {got}/10 where the seed's drawing moved {seed}/10"
        for what, got, seed in (("mod N", modulo_moved, 9), ("the ring", ring_moved, 3))
        if got != seed
    )
    if differences:
        differences += (
            "the seed's counts are one drawing of 10 keys; the fair comparison is the "
            "average over many, which is close to theory",
        )
    return Verdict(outcome=outcome, matches_seed=matches, differences=differences)


@scenario("SHARD-1", "hash sharding: even, but mod N moves almost everything; related keys scatter")
def shard1(out: Printer) -> Verdict:
    nodes = [f"shard-{i}" for i in range(4)]
    keys = [f"order:{i}" for i in range(10_000)]
    out(f"{len(keys)} keys on 4 shards, then a 5th shard joins")
    fractions: dict[str, float] = {}
    for name, make in (("mod N", ModuloHash), ("ring", HashRing), ("jump", JumpHash)):
        before: Placement = make(nodes)
        after: Placement = make([*nodes, "shard-4"])
        counts = dict.fromkeys(nodes, 0)
        for key in keys:
            counts[before.lookup(key)] += 1
        fractions[name] = len(_moved(before, after, keys)) / len(keys)
        out(f"  {name:<6} keys per shard before: {sorted(counts.values())}; "
            f"moved {fractions[name]:.1%} (ideal 1/5 = 20%)")
    related = [f"user:42:{part}" for part in ("profile", "orders", "cart", "wishlist", "reviews",
                                                "address", "payment", "sessions")]
    ring = HashRing(nodes)
    homes = {key: ring.lookup(key) for key in related}
    for key, home in homes.items():
        out(f"  {key:<18} -> {home}")
    scattered = len(set(homes.values()))
    out(f"reading everything about user 42 means asking {scattered} of 4 shards")
    matches = fractions["mod N"] > 0.6 and fractions["ring"] < 0.3 and fractions["jump"] < 0.3
    matches = matches and scattered >= 3
    outcome = (
        f"mod N moved {fractions['mod N']:.0%} of keys, ring {fractions['ring']:.0%}, "
        f"jump {fractions['jump']:.0%}; 8 related keys landed on {scattered} of 4 shards"
    )
    return Verdict(outcome=outcome, matches_seed=matches)


def _stats_for(range_map: RangeMap, key_loads: Mapping[str, float]) -> dict[bytes, RangeStats]:
    """Per-range stats from per-key loads: 100 bytes per key, the split key at the load
    median (so a hot range splits where its load divides)."""
    stats: dict[bytes, RangeStats] = {}
    ordered = sorted(key_loads)
    for key_range in range_map.ranges():
        inside = [k for k in ordered if key_range.contains(k)]
        load = sum(key_loads[k] for k in inside)
        split_key: bytes | None = None
        running = 0.0
        for previous, key in itertools.pairwise(inside):
            running += key_loads[previous]
            if running >= load / 2:
                split_key = key.encode()
                break
        stats[key_range.start] = RangeStats(100 * len(inside), load, split_key)
    return stats


def _show(out: Printer, ranges: list[KeyRange], stats: Mapping[bytes, RangeStats]) -> None:
    for key_range in ranges:
        s = stats[key_range.start]
        out(f"    {key_range!s:<44} {s.size_bytes:>6} B {s.load_ops:>7g} ops/s")


@scenario("SHARD-2", "range sharding: scans stay on one shard; hot ranges split, cold ones merge")
def shard2(out: Printer) -> Verdict:
    keys = [f"user:{i:04d}" for i in range(400)]
    range_map = RangeMap.from_boundaries(
        [b"user:0100", b"user:0200", b"user:0300"], ["s1", "s2", "s3", "s4"], now_ms=0
    )
    scan = range_map.overlapping("user:0120", "user:0130")
    hashed = HashRing(["s1", "s2", "s3", "s4"])
    hashed_shards = {hashed.lookup(f"user:{i:04d}") for i in range(120, 130)}
    out(f"scan [user:0120, user:0130): range map asks {sorted({r.shard for r in scan})}; "
        f"hash sharding would ask {sorted(hashed_shards)}")
    policy = RangePolicy(split_size_bytes=20_000, split_load_ops=500.0,
                         merge_size_bytes=12_000, merge_load_ops=60.0, cooldown_ms=60_000)
    loads = dict.fromkeys(keys, 1.0)
    for i in range(200, 220):
        loads[f"user:{i:04d}"] = 40.0  # a hot spot inside s3's range
    now_ms = 10_000
    stats = _stats_for(range_map, loads)
    out(f"t={now_ms} ms, user:0200..0219 get hot:")
    _show(out, range_map.ranges(), stats)
    proposals = policy.propose(range_map, stats, now_ms)
    for proposal in proposals:
        out(f"  policy: {proposal}")
        apply_proposal(range_map, proposal, now_ms)
    split_done = len(range_map) == 5
    # The hot spot passes and every key cools down; the fresh halves look mergeable.
    cold = dict.fromkeys(keys, 0.1)
    now_ms = 30_000
    stats = _stats_for(range_map, cold)
    early = policy.propose(range_map, stats, now_ms)
    out(f"t={now_ms} ms, all cold: policy proposes {len(early)} change(s) "
        f"(the split halves are {now_ms - 10_000} ms old, cool-down 60000 ms)")
    now_ms = 80_000
    late = policy.propose(range_map, stats, now_ms)
    out(f"t={now_ms} ms, still cold:")
    for proposal in late:
        out(f"  policy: {proposal}")
        apply_proposal(range_map, proposal, now_ms)
    _show(out, range_map.ranges(), _stats_for(range_map, cold))
    merged = len(range_map) < 5
    matches = len({r.shard for r in scan}) == 1 and split_done and not early and merged
    matches = matches and len(hashed_shards) > 1
    outcome = (
        f"scan touched {len({r.shard for r in scan})} shard (hashing: {len(hashed_shards)}); "
        f"hot range split in two; no merge within the cool-down; "
        f"{len(late)} merge(s) of cold neighbours after it, {len(range_map)} ranges left"
    )
    return Verdict(outcome=outcome, matches_seed=matches)


def _shard_loads(
    range_map: RangeMap, stats: Mapping[bytes, RangeStats], shards: list[str]
) -> dict[str, float]:
    loads = dict.fromkeys(shards, 0.0)
    for key_range in range_map.ranges():
        loads[key_range.shard] += stats[key_range.start].load_ops
    return loads


def _peak_to_mean(loads: Mapping[str, float]) -> float:
    return max(loads.values()) / (sum(loads.values()) / len(loads))


@scenario("SHARD-3", "static vs dynamic scheduling: a manager reshapes and moves hot ranges")
def shard3(out: Printer) -> Verdict:
    shards = ["s1", "s2", "s3"]
    keys = [f"item:{i:03d}" for i in range(300)]
    loads = dict.fromkeys(keys, 1.0)
    for i in range(20, 80):
        loads[f"item:{i:03d}"] = 12.0  # most traffic falls in s1's range
    boundaries = [b"item:100", b"item:200"]
    static = RangeMap.from_boundaries(boundaries, shards)
    static_loads = _shard_loads(static, _stats_for(static, loads), shards)
    out(f"static: ranges stay put unless a person moves them; load per shard {static_loads}, "
        f"peak/mean {_peak_to_mean(static_loads):.2f}")
    dynamic = RangeMap.from_boundaries(boundaries, shards)
    policy = RangePolicy(split_size_bytes=50_000, split_load_ops=150.0,
                         merge_size_bytes=2_000, merge_load_ops=20.0, cooldown_ms=60_000)
    now_ms = 0
    for round_number in range(1, 9):
        now_ms += 30_000
        stats = _stats_for(dynamic, loads)
        reshapes = policy.propose(dynamic, stats, now_ms)
        for proposal in reshapes:
            apply_proposal(dynamic, proposal, now_ms)
        stats = _stats_for(dynamic, loads)
        moves = policy.propose_moves(dynamic, stats, shards)
        for move in moves:
            apply_proposal(dynamic, move, now_ms)
        shard_loads = _shard_loads(dynamic, _stats_for(dynamic, loads), shards)
        out(f"dynamic round {round_number} (t={now_ms} ms): {len(reshapes)} split/merge, "
            f"{len(moves)} move(s); {len(dynamic)} ranges; load per shard "
            f"{ {s: round(v) for s, v in shard_loads.items()} }")
        for change in [*reshapes, *moves]:
            out(f"    {change}")
        if not reshapes and not moves:
            break
    dynamic_loads = _shard_loads(dynamic, _stats_for(dynamic, loads), shards)
    static_peak, dynamic_peak = _peak_to_mean(static_loads), _peak_to_mean(dynamic_loads)
    out(f"dynamic: peak/mean {dynamic_peak:.2f} after the manager's moves")
    matches = static_peak > 1.5 and dynamic_peak < 1.2
    outcome = (
        f"static peak/mean load {static_peak:.2f} (needs a person to fix), "
        f"dynamic {dynamic_peak:.2f} after the policy's splits and moves"
    )
    return Verdict(outcome=outcome, matches_seed=matches)
