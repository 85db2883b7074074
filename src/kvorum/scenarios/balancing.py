"""Seed scenarios LB-1..LB-7: the load-balancing strategies, run step by step.

Theory of operation: each scenario builds a balancer from :mod:`kvorum.balance`, drives it
with a scripted clock (plain numbers, no sleeping) and a seeded ``Random``, prints every pick
it made, and derives its verdict from those picks — so a regression in a strategy shows up
here as "differs from the seed", not as a silently wrong trace.
"""

from __future__ import annotations

from collections import Counter
from random import Random

from kvorum.balance import (
    Backend,
    ConsistentHashBoundedLoad,
    EjectionPolicy,
    HealthState,
    KeyHash,
    LeastConnections,
    LeastResponseTime,
    PassiveHealth,
    RoundRobin,
    SmoothWeightedRoundRobin,
    WeightedRandom,
)
from kvorum.scenarios.registry import Printer, Verdict, scenario

_ABC = [Backend("a"), Backend("b"), Backend("c")]


@scenario("LB-1", "round robin cycles; a dead server is ejected from the rotation, then retried")
def lb1(out: Printer) -> Verdict:
    policy = EjectionPolicy(consecutive_failures=2, base_ejection_ms=1_000.0,
                            max_ejection_ms=8_000.0, max_ejected_fraction=0.5)
    health = PassiveHealth(policy)
    balancer = RoundRobin(_ABC, health=health)
    now_ms = 0.0
    last_failure_ms = 0.0

    def serve(dead: set[str]) -> str:
        """One request, 10 ms after the previous one; returns the backend's name, with a
        ``!`` if the request failed."""
        nonlocal now_ms, last_failure_ms
        now_ms += 10.0
        backend = balancer.pick(now_ms=now_ms)
        balancer.on_start(backend, now_ms)
        ok = backend.name not in dead
        balancer.on_finish(backend, 5.0, ok, now_ms)
        if not ok:
            last_failure_ms = now_ms
        return backend.name + ("" if ok else "!")

    healthy_picks = [serve(set()) for _ in range(6)]
    out(f"all up, 6 requests: {' '.join(healthy_picks)}")
    cycles = healthy_picks == ["a", "b", "c", "a", "b", "c"]

    out("b dies (its requests fail, shown as b!); policy: eject after 2 failures in a row")
    dying_picks = [serve({"b"}) for _ in range(9)]
    out(f"9 requests: {' '.join(dying_picks)}")
    state = balancer.health_state("b")
    out(f"b is now {state.value}, ejected until t={health.ejected_until_ms('b')} ms")
    second_failure = [i for i, name in enumerate(dying_picks) if name == "b!"][1]
    after = dying_picks[second_failure + 1:]
    ejected_ok = state is HealthState.EJECTED and not any(n.startswith("b") for n in after)

    now_ms += 1_000.0
    probe = [serve({"b"}) for _ in range(3)]
    out(f"1 s later b is half-open; 3 requests: {' '.join(probe)} (one probe, it fails)")
    until = health.ejected_until_ms("b")
    second_ejection_ms = (until or 0.0) - last_failure_ms
    out(f"b is re-ejected until t={until} ms: {second_ejection_ms:.0f} ms, twice the first")
    retried = probe.count("b!") == 1 and second_ejection_ms == 2 * policy.base_ejection_ms

    balancer.remove("b")
    removed = [serve(set()) for _ in range(4)]
    out(f"operator removes b from the list (HA-1); 4 requests: {' '.join(removed)}")
    gone = removed in (["a", "c", "a", "c"], ["c", "a", "c", "a"])

    matches = cycles and ejected_ok and retried and gone
    return Verdict(
        outcome=(f"cycled a b c: {cycles}; dead b ejected after 2 failures: {ejected_ok}; "
                 f"half-open probe then longer ejection: {retried}; removed b never picked: "
                 f"{gone}"),
        matches_seed=matches,
    )


@scenario("LB-2", "smooth weighted round robin: weights {a:5, b:1, c:1} give a a b a c a a")
def lb2(out: Printer) -> Verdict:
    balancer = SmoothWeightedRoundRobin([Backend("a", 5), Backend("b", 1), Backend("c", 1)])
    picks = [balancer.pick().name for _ in range(14)]
    out(f"weights a=5 b=1 c=1, 14 picks: {' '.join(picks)}")
    first, second = " ".join(picks[:7]), " ".join(picks[7:])
    shares = Counter(picks[:7])
    out(f"per 7-pick round: a={shares['a']} b={shares['b']} c={shares['c']}")
    expected = "a a b a c a a"
    return Verdict(outcome=f"one round is {first!r}, the next {second!r}",
                   matches_seed=first == expected and second == expected)


@scenario("LB-3", "least connections: new requests avoid a server that is still busy")
def lb3(out: Printer) -> Verdict:
    balancer = LeastConnections(_ABC)
    busy = _ABC[1]
    for _ in range(5):
        balancer.on_start(busy)
    out("b is serving 5 long requests; a and c are idle")
    picks = []
    for _ in range(8):
        backend = balancer.pick()
        balancer.on_start(backend)  # these requests stay in flight too
        picks.append(backend.name)
        load = " ".join(f"{b.name}={balancer.active(b)}" for b in _ABC)
        out(f"pick {backend.name}; in flight now {load}")
    to_b = picks.count("b")
    # a and c reach 4 each before b (5) is the least loaded again.
    return Verdict(
        outcome=f"8 new requests: a={picks.count('a')} b={to_b} c={picks.count('c')}; "
                f"b got one only once the others were as busy",
        matches_seed=picks[:6].count("b") == 0 and to_b <= 1,
    )


@scenario("LB-4", "least response time: the fast server gets most requests")
def lb4(out: Printer) -> Verdict:
    latency_ms = {"fast": 10.0, "slow": 100.0}
    backends = [Backend("fast"), Backend("slow")]
    balancer = LeastResponseTime(backends)
    in_flight: list[tuple[float, Backend]] = []  # (finish time, backend)
    now_ms = 0.0
    picks: list[str] = []
    # A request every 5 ms; each takes its server's latency, so both have requests in flight.
    for _ in range(40):
        now_ms += 5.0
        for done in [r for r in in_flight if r[0] <= now_ms]:
            in_flight.remove(done)
            balancer.on_finish(done[1], latency_ms[done[1].name], True, now_ms)
        backend = balancer.pick(now_ms=now_ms)
        balancer.on_start(backend, now_ms)
        in_flight.append((now_ms + latency_ms[backend.name], backend))
        picks.append(backend.name)
    out("a request every 5 ms; fast answers in 10 ms, slow in 100 ms")
    out("picks: " + " ".join("F" if p == "fast" else "s" for p in picks))
    estimates = ", ".join(f"{b.name}≈{balancer.latency_ms(b):.0f} ms" for b in backends)
    out(f"latency estimates: {estimates}")
    fast_share = picks.count("fast") / len(picks)
    return Verdict(outcome=f"fast got {fast_share:.0%} of {len(picks)} requests",
                   matches_seed=fast_share >= 0.75)


@scenario("LB-5", "random: picks spread roughly evenly")
def lb5(out: Printer) -> Verdict:
    balancer = WeightedRandom(_ABC, Random(5))
    first = [balancer.pick().name for _ in range(15)]
    out(f"first 15 picks (seed 5): {' '.join(first)}")
    counts = Counter(first)
    counts.update(balancer.pick().name for _ in range(2_985))
    out("after 3000 picks: " + " ".join(f"{n}={counts[n]}" for n in "abc"))
    spread = max(abs(counts[n] - 1_000) for n in "abc") / 1_000
    return Verdict(outcome=f"largest deviation from an even 1000 each: {spread:.1%}",
                   matches_seed=spread <= 0.10)


@scenario("LB-6", "hash: the same client IP always reaches the same server")
def lb6(out: Printer) -> Verdict:
    balancer = KeyHash(_ABC)
    ips = [f"192.168.1.{i}" for i in (7, 23, 42, 101, 150, 233)]
    stable = True
    for ip in ips:
        picks = [balancer.pick(ip.encode()).name for _ in range(4)]
        stable &= len(set(picks)) == 1
        out(f"{ip:>14} → {' '.join(picks)}")
    used = {balancer.pick(ip.encode()).name for ip in ips}
    return Verdict(outcome=f"every IP stuck to one server: {stable}; servers used: "
                           f"{' '.join(sorted(used))}",
                   matches_seed=stable and len(used) > 1)


@scenario("LB-7", "consistent hash: adding a server moves few keys (hash mod n moves most)")
def lb7(out: Printer) -> Verdict:
    keys = [f"user:{i}".encode() for i in range(1_000)]
    modulo = KeyHash(_ABC)
    ring = ConsistentHashBoundedLoad(_ABC)
    modulo_before = [modulo.pick(k).name for k in keys]
    ring_before = [ring.pick(k).name for k in keys]
    out("1000 keys over a, b, c: "
        + "mod n " + str(dict(sorted(Counter(modulo_before).items())))
        + ", ring " + str(dict(sorted(Counter(ring_before).items()))))
    modulo.add(Backend("d"))
    ring.add(Backend("d"))
    modulo_after = [modulo.pick(k).name for k in keys]
    ring_after = [ring.pick(k).name for k in keys]
    moved_modulo = sum(a != b for a, b in zip(modulo_before, modulo_after, strict=True))
    ring_moves = [(a, b) for a, b in zip(ring_before, ring_after, strict=True) if a != b]
    out(f"add d: hash mod n moved {moved_modulo}/1000 keys; the ring moved {len(ring_moves)}")
    only_to_d = all(b == "d" for _, b in ring_moves)
    out(f"every key the ring moved went to the new server d: {only_to_d}")
    moved_keys = [k for k, a, b in zip(keys, ring_before, ring_after, strict=True) if a != b]
    out("first keys the ring moved: " + ", ".join(
        f"{k.decode()} {ring_before[keys.index(k)]}→d" for k in moved_keys[:4]))
    return Verdict(
        outcome=f"ring moved {len(ring_moves) / 10:.1f}% of keys (ideal 25%), "
                f"hash mod n {moved_modulo / 10:.1f}%",
        matches_seed=len(ring_moves) < 350 and moved_modulo > 600 and only_to_d,
    )
