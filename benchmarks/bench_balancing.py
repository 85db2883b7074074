"""Client-side load balancing: tail latency and errors over a mixed fleet, per strategy.

Theory of operation: a seeded discrete-event simulation in virtual milliseconds (nothing is
timed, so the numbers do not depend on the machine). One client sends an open-loop Poisson
stream of requests — arrivals do not wait for answers, as with many independent users — at
75% of the fleet's nominal capacity to ten backends (about 90% of what is left while the
flaky and the dead backend are both ejected):

* ``s0``–``s2`` have 4 workers, ``s3``–``s9`` have 2; a worker serves one request at a time,
  FIFO, with exponential service times (mean 20 ms). Weights are the worker counts.
* ``s9`` is slow: its mean service time is 200 ms (10×), which its weight does not say.
* ``s5`` is flaky: 30% of its answers are errors, returned fast (1 ms) — the trap that makes
  a naive "least busy" balancer pour traffic into a broken server.
* ``s7`` is down (every request refused after 1 ms) from 35% to 55% of the run.

The client gives up after ``TIMEOUT_MS`` (an error; the server still does the work). Each
strategy runs twice on the same arrival stream, without and with passive health checking
(eject after 5 failures in a row or 30% errors in the last 20, 1 s doubling to 10 s, at most
30% of the fleet out). Reported: latency percentiles of the requests that succeeded (a fast
error is not a fast answer, so errors are counted apart), the error rate and the part of it
that were timeouts, and the share of requests sent to the slow backend.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from random import Random

from matplotlib.figure import Figure

from benchmarks.run import machine_line
from kvorum.balance import (
    Backend,
    Balancer,
    ConsistentHashBoundedLoad,
    EjectionPolicy,
    KeyHash,
    LeastConnections,
    LeastResponseTime,
    PassiveHealth,
    PeakEwmaP2C,
    PowerOfTwoChoices,
    RoundRobin,
    SmoothWeightedRoundRobin,
    WeightedRandom,
)

SEED = 20_240_404
UTILISATION = 0.75
TIMEOUT_MS = 1_000.0
FAST_FAILURE_MS = 1.0
CLIENTS = 1_000  # distinct keys (client IPs) for the hash strategies
HEALTH_POLICY = EjectionPolicy(consecutive_failures=5, error_rate=0.3, window_requests=20,
                               base_ejection_ms=1_000.0, max_ejection_ms=10_000.0,
                               max_ejected_fraction=0.3)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One simulated backend: capacity, speed and faults."""

    name: str
    workers: int
    service_mean_ms: float
    error_rate: float = 0.0
    down_from_fraction: float | None = None  # down for this part of the run
    down_to_fraction: float | None = None


FLEET = [
    *(ServerSpec(f"s{i}", 4, 20.0) for i in range(3)),
    *(ServerSpec(f"s{i}", 2, 20.0) for i in (3, 4, 6, 8)),
    ServerSpec("s5", 2, 20.0, error_rate=0.3),
    ServerSpec("s7", 2, 20.0, down_from_fraction=0.35, down_to_fraction=0.55),
    ServerSpec("s9", 2, 200.0),
]
SLOW = "s9"

Factory = Callable[[list[Backend], Random, PassiveHealth | None], Balancer]

STRATEGIES: list[tuple[str, Factory]] = [
    ("round robin", lambda bs, rng, h: RoundRobin(bs, health=h)),
    ("smooth weighted RR", lambda bs, rng, h: SmoothWeightedRoundRobin(bs, health=h)),
    ("weighted random", lambda bs, rng, h: WeightedRandom(bs, rng, health=h)),
    ("IP hash", lambda bs, rng, h: KeyHash(bs, health=h)),
    ("consistent hash, bounded 1.25", lambda bs, rng, h: ConsistentHashBoundedLoad(bs, health=h)),
    ("least connections", lambda bs, rng, h: LeastConnections(bs, health=h)),
    ("power of two choices", lambda bs, rng, h: PowerOfTwoChoices(bs, rng, health=h)),
    ("least response time", lambda bs, rng, h: LeastResponseTime(bs, health=h)),
    ("peak-EWMA P2C", lambda bs, rng, h: PeakEwmaP2C(bs, rng, decay_ms=1_000.0, health=h)),
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one strategy achieved on one run."""

    strategy: str
    health: bool
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_p999: float
    error_rate: float
    timeout_rate: float
    slow_share: float


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass(slots=True)
class RunLog:
    """What one simulated run recorded."""

    success_latencies_ms: list[float]
    errors: int = 0
    timeouts: int = 0
    to_slow: int = 0


def simulate(factory: Factory, health: bool, requests: int) -> RunLog:
    """Run one strategy over ``requests`` arrivals and record every outcome."""
    specs = {spec.name: spec for spec in FLEET}
    backends = [Backend(spec.name, spec.workers) for spec in FLEET]
    capacity_per_ms = sum(spec.workers / spec.service_mean_ms for spec in FLEET)
    arrival_rate_per_ms = UTILISATION * capacity_per_ms
    run_ms = requests / arrival_rate_per_ms
    # Separate streams: every strategy sees the same arrivals and keys (common random
    # numbers), and its own choices do not shift them.
    arrivals_rng, service_rng = Random(SEED), Random(SEED + 1)
    balancer = factory(backends, Random(SEED + 2),
                       PassiveHealth(HEALTH_POLICY) if health else None)
    workers_free_at_ms = {spec.name: [0.0] * spec.workers for spec in FLEET}
    # (when the client learns the outcome, tiebreak, backend, latency, ok)
    completions: list[tuple[float, int, Backend, float, bool]] = []
    log = RunLog(success_latencies_ms=[])
    now_ms = 0.0
    for seq in range(requests):
        now_ms += arrivals_rng.expovariate(arrival_rate_per_ms)
        key = f"client-{arrivals_rng.randrange(CLIENTS)}".encode()
        while completions and completions[0][0] <= now_ms:
            done_ms, _, backend, latency_ms, ok = heapq.heappop(completions)
            balancer.on_finish(backend, latency_ms, ok, done_ms)
        backend = balancer.pick(key, now_ms=now_ms)
        balancer.on_start(backend, now_ms)
        spec = specs[backend.name]
        log.to_slow += spec.name == SLOW
        down = (spec.down_from_fraction is not None and spec.down_to_fraction is not None
                and spec.down_from_fraction * run_ms <= now_ms < spec.down_to_fraction * run_ms)
        if down:
            latency_ms, ok = FAST_FAILURE_MS, False
        else:
            # FIFO over identical workers: the request takes the first worker to come free.
            free_at = workers_free_at_ms[spec.name]
            start_ms = max(now_ms, heapq.heappop(free_at))
            ok = service_rng.random() >= spec.error_rate
            work_ms = service_rng.expovariate(1.0 / spec.service_mean_ms) if ok else FAST_FAILURE_MS
            heapq.heappush(free_at, start_ms + work_ms)
            latency_ms = start_ms + work_ms - now_ms
        if latency_ms > TIMEOUT_MS:
            latency_ms, ok = TIMEOUT_MS, False
            log.timeouts += 1
        if ok:
            log.success_latencies_ms.append(latency_ms)
        else:
            log.errors += 1
        heapq.heappush(completions, (now_ms + latency_ms, seq, backend, latency_ms, ok))
    return log


def measure(requests: int) -> list[Outcome]:
    outcomes = []
    for name, factory in STRATEGIES:
        for health in (False, True):
            log = simulate(factory, health, requests)
            latencies_ms = sorted(log.success_latencies_ms)
            outcomes.append(Outcome(
                strategy=name,
                health=health,
                latency_ms_p50=_percentile(latencies_ms, 0.50),
                latency_ms_p99=_percentile(latencies_ms, 0.99),
                latency_ms_p999=_percentile(latencies_ms, 0.999),
                error_rate=log.errors / requests,
                timeout_rate=log.timeouts / requests,
                slow_share=log.to_slow / requests,
            ))
    return outcomes


def table(outcomes: list[Outcome], requests: int) -> str:
    lines = [
        f"# Client-side load balancing over a mixed fleet ({requests} requests per run)",
        "",
        machine_line(),
        "",
        f"Open-loop Poisson arrivals at {UTILISATION:.0%} of nominal capacity; 10 backends "
        "(3 with 4 workers, 7 with 2; mean service 20 ms), s9 10x slower, s5 fails 30% fast, "
        f"s7 down for 20% of the run; client timeout {TIMEOUT_MS:.0f} ms. Latency of successful "
        "requests, in simulated milliseconds; errors include timeouts.",
        "",
        "| strategy | health checks | p50 ms | p99 ms | p99.9 ms | errors % | timeouts % "
        "| to slow s9 % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.strategy} | {'on' if o.health else 'off'} | {o.latency_ms_p50:.1f} | "
            f"{o.latency_ms_p99:.1f} | {o.latency_ms_p999:.1f} | {100 * o.error_rate:.2f} | "
            f"{100 * o.timeout_rate:.2f} | {100 * o.slow_share:.2f} |"
        )
    return "\n".join(lines)


def chart(outcomes: list[Outcome], path: Path) -> None:
    names = [name for name, _ in STRATEGIES]
    by_key = {(o.strategy, o.health): o for o in outcomes}
    # A bare Figure renders through the Agg canvas without touching pyplot's global state.
    fig = Figure(figsize=(10, 7))
    latency_ax, error_ax = fig.subplots(2, 1, sharex=True)
    positions = list(range(len(names)))
    width = 0.38
    for offset, health, colour in ((-width / 2, False, "tab:gray"), (width / 2, True, "tab:blue")):
        label = "health checks on" if health else "health checks off"
        xs = [p + offset for p in positions]
        latency_ax.bar(xs, [by_key[(n, health)].latency_ms_p99 for n in names], width,
                       color=colour, label=label)
        error_ax.bar(xs, [100 * by_key[(n, health)].error_rate for n in names], width,
                     color=colour, label=label)
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel("p99 latency of successes, ms (log)")
    latency_ax.set_title("Load balancing strategies: 10 backends, one 10x slow, one flaky, "
                         "one down for a while")
    latency_ax.legend()
    error_ax.set_ylabel("errors, %")
    error_ax.set_xticks(positions, names, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(results_dir: Path, quick: bool) -> None:
    requests = 3_000 if quick else 60_000
    outcomes = measure(requests)
    text = table(outcomes, requests)
    print(text)
    (results_dir / "balancing.md").write_text(text + "\n")
    chart(outcomes, results_dir / "balancing.png")
