"""DETECT-1: heartbeats, Sentinel-style quorum and an accrual detector with limited retries.

Theory of operation: both halves are small deterministic simulations on a millisecond grid,
driving the pure detectors of :mod:`kvorum.detect` with injected time and a seeded
:class:`random.Random`, and printing what happens. The verdict is computed from the events the
detectors actually emitted, never written in advance.

1. Sentinel: five sentinels each run a fixed-timeout detector on the master (Sentinel's
   ``down-after-milliseconds``) and report their view every 500 ms to a
   :class:`~kvorum.detect.QuorumAggregator` (quorum 3). The master's link to s1 breaks first:
   s1 goes SDOWN, which alone must not make ODOWN. Then the master crashes: as the other
   sentinels time out one by one, the third agreeing sentinel makes ODOWN, which starts the
   failover.
2. Accrual: a node heartbeats every second with network jitter into a φ accrual detector
   wrapped in :class:`~kvorum.detect.RetryingDetector` (3 probes, 1 s apart). A brief GC pause
   stays below the threshold; a long one crosses it but the node answers a probe, so it is not
   declared; a real crash makes φ climb smoothly through the threshold and, after three
   unanswered probes, the node is declared failed.
"""

from __future__ import annotations

import bisect
from itertools import pairwise
from random import Random

from kvorum.detect import (
    DeclaredFailed,
    FixedTimeoutDetector,
    OdownCleared,
    OdownSet,
    PhiAccrualDetector,
    QuorumAggregator,
    QuorumEvent,
    RetryingDetector,
    SdownCleared,
    SdownSet,
    SendProbe,
)
from kvorum.scenarios.detect_gossip import gossip_part
from kvorum.scenarios.registry import Printer, Verdict, scenario

SEED = 20240604


def _secs(t_ms: float) -> str:
    return f"t={t_ms / 1000:7.2f}s"


# --- part 1: Sentinel -------------------------------------------------------------------------

SENTINELS = ["s1", "s2", "s3", "s4", "s5"]
DOWN_AFTER_MS = 3000  # Sentinel's down-after-milliseconds
REPORT_VALIDITY_MS = 5000
LINK_TO_S1_BREAKS_MS = 2_000
MASTER_CRASHES_MS = 12_000
SENTINEL_END_MS = 20_000


def _print_quorum_event(
    out: Printer,
    event: QuorumEvent,
    aggregator: QuorumAggregator,
    detectors: dict[str, FixedTimeoutDetector],
    now: int,
) -> frozenset[str] | None:
    """Print one transition; returns the agreeing sentinels if it starts the failover."""
    match event:
        case SdownSet(observer=observer):
            agree = len(aggregator.agreeing("master"))
            silence = detectors[observer].suspicion(now)
            out(
                f"{_secs(now)}  {observer}: +sdown master ({silence:.0f} ms without a reply); "
                f"{agree} agree, quorum is {aggregator.quorum}"
            )
        case SdownCleared(observer=observer, expired=expired):
            why = "report expired" if expired else "master answers again"
            out(f"{_secs(now)}  {observer}: -sdown master ({why})")
        case OdownSet(agreeing=agreeing):
            names = ", ".join(sorted(agreeing))
            out(f"{_secs(now)}  +odown master: {names} agree -> the failover starts")
            return agreeing
        case OdownCleared():
            out(f"{_secs(now)}  -odown master")
    return None


def _sentinel_part(out: Printer) -> tuple[bool, str]:
    """Run the Sentinel half; return (matches the seed, outcome phrase)."""
    out("part 1 — Redis Sentinel: 5 sentinels watch 'master', quorum 3, down-after 3000 ms")
    aggregator = QuorumAggregator(SENTINELS, quorum=3, validity_ms=REPORT_VALIDITY_MS)
    detectors = {s: FixedTimeoutDetector(DOWN_AFTER_MS) for s in SENTINELS}
    # Each sentinel pings the master at its own phase within the second, so their timeouts fire
    # at different moments, as they would in a real deployment.
    phase_ms = {s: 150 * i for i, s in enumerate(SENTINELS)}
    odown_while_only_s1: bool = False
    lone_sdown_seen = False
    failover_started_ms: float | None = None
    agreeing_at_failover: frozenset[str] = frozenset()

    for now in range(0, SENTINEL_END_MS + 1, 50):
        if now == LINK_TO_S1_BREAKS_MS:
            out(f"{_secs(now)}  the network link master <-> s1 breaks (master is fine)")
        if now == MASTER_CRASHES_MS:
            out(f"{_secs(now)}  the master crashes")
        for s in SENTINELS:
            master_answers = now < MASTER_CRASHES_MS and not (
                s == "s1" and now >= LINK_TO_S1_BREAKS_MS
            )
            if master_answers and now % 1000 == phase_ms[s]:
                detectors[s].heartbeat(now)
        if now % 500:
            continue
        for s in SENTINELS:
            down = not detectors[s].is_available(now)
            for event in aggregator.report(s, "master", down, now):
                started = _print_quorum_event(out, event, aggregator, detectors, now)
                if started is not None and failover_started_ms is None:
                    failover_started_ms, agreeing_at_failover = now, started
        only_s1 = aggregator.agreeing("master") == frozenset({"s1"})
        if only_s1:
            lone_sdown_seen = True
            odown_while_only_s1 |= aggregator.is_objectively_down("master")
    if lone_sdown_seen and not odown_while_only_s1:
        out("  while only s1 saw the master down, it stayed subjective: no failover")
    ok = (
        lone_sdown_seen
        and not odown_while_only_s1
        and failover_started_ms is not None
        and failover_started_ms > MASTER_CRASHES_MS
        and len(agreeing_at_failover) >= aggregator.quorum
    )
    when = (
        f"{(failover_started_ms - MASTER_CRASHES_MS) / 1000:.1f} s after the crash"
        if failover_started_ms is not None
        else "never"
    )
    phrase = (
        f"1/5 SDOWN {'made' if odown_while_only_s1 else 'did not make'} ODOWN, "
        f"{len(agreeing_at_failover)}/5 started the failover {when}"
    )
    return ok, phrase


# --- part 2: accrual detector with limited retries -------------------------------------------

HEARTBEAT_INTERVAL_MS = 1000
THRESHOLD_PHI = 8.0
MAX_RETRIES = 3
RETRY_TIMEOUT_MS = 1000
PROBE_REPLY_MS = 20
BRIEF_PAUSE_MS = (60_500, 63_000)  # a GC pause the detector should shrug off
LONG_PAUSE_MS = (80_500, 85_800)  # crosses the threshold, but the node answers a probe
CRASH_MS = 100_300
ACCRUAL_END_MS = 112_000


def _send_times_ms() -> list[int]:
    """When the node sends heartbeats: every second, delayed to the end of any pause."""
    sends: list[int] = []
    for k in range(CRASH_MS // HEARTBEAT_INTERVAL_MS + 1):
        t = k * HEARTBEAT_INTERVAL_MS
        for start, end in (BRIEF_PAUSE_MS, LONG_PAUSE_MS):
            if start <= t < end:
                t = end  # the sends due during the pause all go out when it ends, as one
        if t < CRASH_MS and (not sends or t > sends[-1]):
            sends.append(t)
    return sends


def _paused_until_ms(now_ms: float) -> float | None:
    for start, end in (BRIEF_PAUSE_MS, LONG_PAUSE_MS):
        if start <= now_ms < end:
            return end
    return None


def _accrual_part(out: Printer) -> tuple[bool, str]:
    """Run the accrual half; return (matches the seed, outcome phrase)."""
    out("")
    out(
        f"part 2 — phi accrual: heartbeat every {HEARTBEAT_INTERVAL_MS} ms with jitter, "
        f"threshold phi={THRESHOLD_PHI:g}, acceptable pause 2000 ms, "
        f"{MAX_RETRIES} probes {RETRY_TIMEOUT_MS} ms apart before declaring failure"
    )
    rng = Random(SEED)
    # One-way delay 100 ms ± jitter; sorting keeps arrivals in order, as a TCP stream would.
    arrivals = sorted(t + max(5.0, rng.gauss(100.0, 150.0)) for t in _send_times_ms())
    phi = PhiAccrualDetector(
        THRESHOLD_PHI, min_std_deviation_ms=100.0, acceptable_heartbeat_pause_ms=2000.0
    )
    detector = RetryingDetector(phi, MAX_RETRIES, RETRY_TIMEOUT_MS)

    declared_ms: list[float] = []
    probes: list[tuple[float, int]] = []
    answered_probes: list[int] = []
    max_phi_brief = 0.0
    crossed_in_long = False
    crash_trace: list[float] = []  # phi every 250 ms from the crash to the declaration
    next_arrival = 0
    for now in range(0, ACCRUAL_END_MS + 1, 50):
        if now == CRASH_MS - CRASH_MS % 50:
            out(f"{_secs(CRASH_MS)}  the node crashes (last heartbeat sent before this)")
        while next_arrival < len(arrivals) and arrivals[next_arrival] <= now:
            detector.heartbeat(arrivals[next_arrival])
            next_arrival += 1
        level = detector.suspicion(now)
        if BRIEF_PAUSE_MS[0] <= now < BRIEF_PAUSE_MS[1] + 500:
            max_phi_brief = max(max_phi_brief, level)
            if now % 500 == 0:
                out(f"{_secs(now)}  brief GC pause: phi={level:6.3f}")
        if LONG_PAUSE_MS[0] <= now < LONG_PAUSE_MS[1] + 500:
            crossed_in_long |= level >= THRESHOLD_PHI
            if now % 500 == 0:
                out(f"{_secs(now)}  long GC pause:  phi={level:6.3f}")
        if now >= CRASH_MS and not declared_ms and now % 250 == 0:
            crash_trace.append(level)
            out(f"{_secs(now)}  after the crash: phi={level:6.3f}")
        for action in detector.poll(now):
            if isinstance(action, SendProbe):
                probes.append((now, action.attempt))
                paused_until = _paused_until_ms(now)
                alive = now < CRASH_MS
                if alive:
                    # A paused node answers when the pause ends; a crashed one never does.
                    reply_ms = (paused_until or now) + PROBE_REPLY_MS
                    bisect.insort(arrivals, reply_ms, lo=next_arrival)
                    answered_probes.append(action.attempt)
                out(
                    f"{_secs(now)}  phi={level:.2f} >= {THRESHOLD_PHI:g}: probe "
                    f"{action.attempt}/{MAX_RETRIES} sent"
                    + (" (it will be answered)" if alive else " (no answer will come)")
                )
            elif isinstance(action, DeclaredFailed):
                declared_ms.append(now)
                out(
                    f"{_secs(now)}  {action.probes_unanswered} probes unanswered: "
                    "node declared FAILED"
                )

    rising = all(b >= a for a, b in pairwise(crash_trace))
    intermediate = sum(1 for p in crash_trace if 0.5 <= p < THRESHOLD_PHI)
    probes_after_crash = [a for t, a in probes if t >= CRASH_MS]
    brief_ok = max_phi_brief < THRESHOLD_PHI and not any(
        BRIEF_PAUSE_MS[0] <= t <= BRIEF_PAUSE_MS[1] + 500 for t, _ in probes
    )
    long_ok = crossed_in_long and bool(answered_probes) and all(t > CRASH_MS for t in declared_ms)
    crash_ok = (
        len(declared_ms) == 1
        and probes_after_crash == list(range(1, MAX_RETRIES + 1))
        and rising
        and intermediate >= 3
    )
    out(
        f"  brief pause: max phi {max_phi_brief:.2f} (tolerated: {brief_ok}); long pause: "
        f"probe {answered_probes[-1] if answered_probes else '-'} answered, not declared "
        f"({long_ok}); crash: phi rose monotonically ({rising}) through {intermediate} "
        f"intermediate samples"
    )
    detect_s = (declared_ms[0] - CRASH_MS) / 1000 if declared_ms else float("nan")
    phrase = (
        f"brief pause max phi {max_phi_brief:.2f} tolerated, long pause saved by a probe reply, "
        f"crash declared after {len(probes_after_crash)} unanswered probes, "
        f"{detect_s:.1f} s after it"
    )
    return brief_ok and long_ok and crash_ok, phrase


@scenario("DETECT-1", "heartbeats: Sentinel SDOWN->ODOWN quorum; accrual detector with retries")
def detect1(out: Printer) -> Verdict:
    """Both halves of DETECT-1; matches the seed only if every expected behaviour was seen."""
    sentinel_ok, sentinel_phrase = _sentinel_part(out)
    accrual_ok, accrual_phrase = _accrual_part(out)
    gossip_ok, gossip_phrase = gossip_part(out)
    return Verdict(
        outcome=(
            f"sentinel: {sentinel_phrase}; accrual: {accrual_phrase}; gossip: {gossip_phrase}"
        ),
        matches_seed=sentinel_ok and accrual_ok and gossip_ok,
    )
