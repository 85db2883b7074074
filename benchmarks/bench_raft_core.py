"""Committed entries per CPU-second of the pure Raft core, 3 and 5 nodes, with and without
batching.

Theory of operation: :class:`CoreCluster` hosts N :class:`~kvorum.core.raft.RaftCore` objects
in one process with the smallest driver that keeps the core's contract — drain a ready,
"persist" it (assign the hard state, append the entries to a Python list), queue its messages,
count its committed entries as applied, ``advance``. Messages travel through one FIFO queue:
no faults, no delays, no reordering, and no ticks after node 1 has been elected (heartbeats are
a per-second cost, not a per-entry one, and would only blur the number). The leader always
keeps a fixed window of proposals outstanding (proposed but not yet committed), so the
pipeline is full and the measurement is of steady-state replication.

Two host styles are compared. *Unbatched*: one entry per ``propose`` call and a ready drained
after every proposal and after every delivered message — as a naive host that handles each
request and each packet on its own. *Batched*: 64 entries per ``propose_batch`` (one full
AppendEntries, ``max_entries_per_append``), and every message queued at the start of a round
is stepped into its node before any node is drained, so one ready (one "fsync", one flush of
messages) covers many inputs — group commit. CPU time is ``time.process_time()`` around the
loop, so it includes the driver, which is kept to a few lines per ready; the cProfile table in
the results shows where the core's share of it goes.

Every run ends with a check that the persisted logs agree and that the leader's commit is on
a majority, so a fast but broken run cannot report a number.
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from benchmarks.run import machine_line
from kvorum.core.raft import ConfState, Entry, HardState, RaftConfig, RaftCore
from kvorum.core.raft.messages import AppendEntries

PAYLOAD = b"x" * 100
"""A 100-byte command: the size does not matter to the core, which never looks inside."""
WINDOW_ENTRIES = 1024
"""Proposals kept outstanding at the leader (proposed, not yet committed)."""
BATCH_ENTRIES = 64
"""Entries per ``propose_batch`` in batched mode: one full AppendEntries at the defaults."""
NODE_COUNTS = (3, 5)
PROFILE_TOP = 10


@dataclass(slots=True)
class Host:
    """One node as the benchmark sees it: its core and what its 'disk' holds."""

    core: RaftCore
    log: list[Entry] = field(default_factory=list)
    """Persisted entries; ``log[i]`` has index ``i + 1`` (no compaction in a benchmark)."""
    hard_state: HardState = field(default_factory=HardState)
    applied_entries: int = 0
    writes: int = 0
    """Readies that wrote entries or hard state: the fsyncs a host following the contract
    literally would do."""
    commit_only_writes: int = 0
    """Of ``writes``, those whose only change was the commit index (no entries, same term and
    vote) — writes that safety does not need to be synchronous."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one measured run did and how much CPU it took (counts cover the timed loop)."""

    nodes: int
    batched: bool
    window_entries: int
    entries_committed: int
    cpu_s: float
    messages: int
    appends_with_entries: int
    entries_in_appends: int
    empty_appends: int
    """AppendEntries that carried no entries (sent only to spread the commit index)."""
    leader_writes: int
    leader_commit_only_writes: int

    @property
    def mode(self) -> str:
        return f"batched ({BATCH_ENTRIES}/propose)" if self.batched else "unbatched"

    @property
    def entries_per_cpu_s(self) -> float:
        return self.entries_committed / self.cpu_s if self.cpu_s > 0 else float("inf")

    @property
    def messages_per_entry(self) -> float:
        return self.messages / self.entries_committed

    @property
    def entries_per_append(self) -> float:
        return self.entries_in_appends / max(1, self.appends_with_entries)

    @property
    def empty_appends_per_entry(self) -> float:
        return self.empty_appends / self.entries_committed

    @property
    def leader_writes_per_entry(self) -> float:
        return self.leader_writes / self.entries_committed

    @property
    def leader_commit_only_writes_per_entry(self) -> float:
        return self.leader_commit_only_writes / self.entries_committed


class CoreCluster:
    """N Raft cores wired by a FIFO queue, with node 1 elected leader and its no-op committed.

    Promises: construction is deterministic for a given ``node_count`` and ``seed``; after it,
    node 1 leads, has committed its no-op, and the queue is empty.
    """

    def __init__(self, node_count: int, seed: int = 1, config: RaftConfig | None = None) -> None:
        if node_count < 1:
            raise ValueError(f"node_count must be at least 1, got {node_count}")
        voters = frozenset(range(1, node_count + 1))
        rng = Random(seed)
        self.config = config or RaftConfig()
        self.hosts: dict[int, Host] = {
            i: Host(RaftCore(i, ConfState(voters), self.config, Random(rng.getrandbits(64))))
            for i in sorted(voters)
        }
        self.queue: deque[Any] = deque()
        self.leader = self.hosts[1]
        self.reset_counters()
        self._elect_node_1()

    def reset_counters(self) -> None:
        self.messages = 0
        self.appends_with_entries = 0
        self.entries_in_appends = 0
        self.empty_appends = 0
        for host in self.hosts.values():
            host.writes = host.commit_only_writes = 0

    def _elect_node_1(self) -> None:
        # Only node 1's clock runs, so it alone times out and campaigns (PreVote, then vote).
        for _ in range(10 * self.config.election_timeout_ticks):
            if self.leader.core.is_leader:
                break
            self.leader.core.tick()
            self.drain(self.leader)
            self.deliver_until_quiet()
        if not self.leader.core.is_leader:
            raise RuntimeError("node 1 did not become leader with only its clock running")
        self.deliver_until_quiet()
        if self.leader.core.commit_index < 1:
            raise RuntimeError("the leader's no-op did not commit")
        self.reset_counters()

    def drain(self, host: Host) -> None:
        """Carry out every ready ``host`` has, in contract order: persist, send, apply,
        advance."""
        core = host.core
        while core.has_ready():
            rd = core.ready()
            hs = rd.hard_state
            if rd.entries or hs is not None:
                host.writes += 1
                if not rd.entries and hs is not None:
                    before = host.hard_state
                    host.commit_only_writes += hs.term == before.term and hs.vote == before.vote
            if hs is not None:
                host.hard_state = hs
            if rd.entries:
                first = rd.entries[0].index
                if first <= len(host.log):
                    del host.log[first - 1 :]  # the core replaced a suffix
                host.log.extend(rd.entries)
            for msg in rd.all_messages:
                if type(msg) is AppendEntries:
                    if msg.entries:
                        self.appends_with_entries += 1
                        self.entries_in_appends += len(msg.entries)
                    else:
                        self.empty_appends += 1
            self.messages += len(rd.all_messages)
            self.queue.extend(rd.all_messages)
            host.applied_entries += len(rd.committed_entries)
            core.advance(rd)

    def deliver_one(self) -> None:
        """Step the oldest queued message into its node and drain that node at once."""
        msg = self.queue.popleft()
        host = self.hosts[msg.dst]
        host.core.step(msg)
        self.drain(host)

    def deliver_round(self) -> None:
        """Step every message queued now into its node, then drain each touched node once
        (messages those readies produce wait for the next round)."""
        touched: set[int] = set()
        hosts, queue = self.hosts, self.queue
        for _ in range(len(queue)):
            msg = queue.popleft()
            hosts[msg.dst].core.step(msg)
            touched.add(msg.dst)
        for node_id in sorted(touched):
            self.drain(hosts[node_id])

    def deliver_until_quiet(self) -> None:
        while self.queue:
            self.deliver_one()

    def check_agreement(self) -> None:
        """Raise AssertionError unless all persisted logs agree entry by entry where they
        overlap and the leader's commit index is persisted on a majority."""
        leader_log = self.leader.log
        committed = self.leader.core.commit_index
        holding = 0
        for node_id, host in self.hosts.items():
            overlap = min(len(host.log), len(leader_log))
            if host.log[:overlap] != leader_log[:overlap]:
                raise AssertionError(f"node {node_id}'s persisted log diverges from the leader's")
            holding += len(host.log) >= committed
        if holding < len(self.hosts) // 2 + 1:
            raise AssertionError(f"commit {committed} is persisted on only {holding} nodes")


def _check_sizes(entries: int, window_entries: int) -> None:
    if entries < 1:
        raise ValueError(f"entries must be at least 1, got {entries}")
    if window_entries < 1:
        raise ValueError(f"window_entries must be at least 1, got {window_entries}")


@contextmanager
def _timed(profiler: cProfile.Profile | None) -> Iterator[list[float]]:
    """Measure the CPU seconds of the block into the yielded one-element list.

    The cyclic garbage collector is off inside (as :mod:`timeit` does): the benchmark never
    compacts its logs, so the heap grows with the run and full collections would charge long
    runs more per entry than short ones — a cost a real node, whose log is compacted, does
    not pay in that form."""
    elapsed = [0.0]
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    if profiler is not None:
        profiler.enable()
    start_cpu_s = time.process_time()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.process_time() - start_cpu_s
        if profiler is not None:
            profiler.disable()
        if gc_was_enabled:
            gc.enable()


def run_unbatched(
    cluster: CoreCluster,
    entries: int,
    window_entries: int = WINDOW_ENTRIES,
    profiler: cProfile.Profile | None = None,
) -> RunResult:
    """Commit at least ``entries`` entries proposing one at a time and draining after every
    proposal and every delivered message, with ``window_entries`` proposals outstanding.

    The window is filled before the clock starts, so the timed loop is steady state; message
    and write counts cover the timed loop only. ``profiler``, if given, runs only during it."""
    _check_sizes(entries, window_entries)
    leader, log = cluster.leader, cluster.leader.core

    def top_up() -> int:
        # Bounded, because a single-node cluster commits each entry as soon as it is drained
        # and its window would never fill.
        proposed = 0
        while log.last_index - log.commit_index < window_entries and proposed < window_entries:
            leader.core.propose(PAYLOAD)
            cluster.drain(leader)
            proposed += 1
        return proposed

    top_up()
    cluster.reset_counters()
    start_commit = log.commit_index
    target = start_commit + entries
    with _timed(profiler) as elapsed:
        while log.commit_index < target:
            proposed = top_up()
            if cluster.queue:
                cluster.deliver_one()
            elif not proposed:
                raise RuntimeError("stalled: window full and no message in flight")
    cpu_s = elapsed[0]
    return _result(cluster, False, window_entries, log.commit_index - start_commit, cpu_s)


def run_batched(
    cluster: CoreCluster,
    entries: int,
    window_entries: int = WINDOW_ENTRIES,
    profiler: cProfile.Profile | None = None,
) -> RunResult:
    """Commit at least ``entries`` entries proposing ``BATCH_ENTRIES`` at a time and letting
    a whole round of messages accumulate before each drain; as :func:`run_unbatched`
    otherwise. ``window_entries`` must hold at least one batch."""
    _check_sizes(entries, window_entries)
    if window_entries < BATCH_ENTRIES:
        raise ValueError(f"window_entries {window_entries} is smaller than a batch")
    leader, log = cluster.leader, cluster.leader.core
    batch = [PAYLOAD] * BATCH_ENTRIES

    def top_up() -> int:
        proposed = 0
        while log.last_index - log.commit_index + BATCH_ENTRIES <= window_entries:
            leader.core.propose_batch(batch)
            proposed += BATCH_ENTRIES
        cluster.drain(leader)
        return proposed

    top_up()
    cluster.reset_counters()
    start_commit = log.commit_index
    target = start_commit + entries
    with _timed(profiler) as elapsed:
        while log.commit_index < target:
            proposed = top_up()
            if cluster.queue:
                cluster.deliver_round()
            elif not proposed:
                raise RuntimeError("stalled: window full and no message in flight")
    cpu_s = elapsed[0]
    return _result(cluster, True, window_entries, log.commit_index - start_commit, cpu_s)


def _result(
    cluster: CoreCluster, batched: bool, window_entries: int, entries: int, cpu_s: float
) -> RunResult:
    cluster.check_agreement()
    return RunResult(
        nodes=len(cluster.hosts),
        batched=batched,
        window_entries=window_entries,
        entries_committed=entries,
        cpu_s=cpu_s,
        messages=cluster.messages,
        appends_with_entries=cluster.appends_with_entries,
        entries_in_appends=cluster.entries_in_appends,
        empty_appends=cluster.empty_appends,
        leader_writes=cluster.leader.writes,
        leader_commit_only_writes=cluster.leader.commit_only_writes,
    )


def measure(
    nodes: int, batched: bool, entries: int, repeats: int, window_entries: int = WINDOW_ENTRIES
) -> RunResult:
    """The fastest of ``repeats`` runs on fresh clusters. Message counts are deterministic, so
    only the CPU time varies, and on a shared machine it varies upwards only (cache and
    frequency interference): the best run is the most repeatable estimate, as :mod:`timeit`
    advises."""
    runner = run_batched if batched else run_unbatched
    runs = [
        runner(CoreCluster(nodes, seed=repeat + 1), entries, window_entries)
        for repeat in range(repeats)
    ]
    return max(runs, key=lambda r: r.entries_per_cpu_s)


def profile_rows(nodes: int, batched: bool, entries: int) -> list[tuple[str, int, float, float]]:
    """cProfile the timed loop of one run; the top functions *inside kvorum* by cumulative time, as
    (function, calls, own seconds, cumulative seconds). The driver's own frames are left out:
    they would top the list without saying anything about the core."""
    cluster = CoreCluster(nodes)
    runner = run_batched if batched else run_unbatched
    profiler = cProfile.Profile()
    runner(cluster, entries, WINDOW_ENTRIES, profiler)
    stats = pstats.Stats(profiler)
    rows: list[tuple[str, int, float, float]] = []
    # pstats keeps its table in an attribute that typeshed does not declare.
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in table.items():
        marker = "/kvorum/"
        if marker not in filename or "/benchmarks/" in filename:
            continue
        where = filename.split(marker, 1)[1]
        rows.append((f"`{where}:{line}` {func}", ncalls, tottime, cumtime))
    rows.sort(key=lambda row: row[3], reverse=True)
    return rows[:PROFILE_TOP]


def _row(r: RunResult) -> str:
    return (
        f"| {r.nodes} | {r.mode} | {r.window_entries:,} | {r.entries_committed:,} "
        f"| {r.cpu_s:.2f} | {r.entries_per_cpu_s:,.0f} | {r.messages_per_entry:.3f} "
        f"| {r.entries_per_append:.1f} | {r.empty_appends_per_entry:.3f} "
        f"| {r.leader_writes_per_entry:.3f} | {r.leader_commit_only_writes_per_entry:.3f} |"
    )


TABLE_HEAD = [
    "| nodes | mode | window | entries committed | CPU s | entries/CPU-s | msgs/entry "
    "| entries/append | empty appends/entry | leader writes/entry | of which commit-only |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def run(results_dir: Path, quick: bool) -> None:
    unbatched_entries = 400 if quick else 50_000
    batched_entries = 2_000 if quick else 500_000
    repeats = 1 if quick else 5
    sweep_repeats = 1 if quick else 3
    window_sweep = (1, 16, 64, 256) if not quick else (1, 64)
    profiled_nodes, profiled_batched = 3, True
    profile_entries = 2_000 if quick else 100_000

    load_before = ", ".join(f"{load:.2f}" for load in os.getloadavg())
    results: dict[tuple[int, bool], RunResult] = {}
    for nodes in NODE_COUNTS:
        for batched in (False, True):
            entries = batched_entries if batched else unbatched_entries
            result = measure(nodes, batched, entries, repeats)
            results[nodes, batched] = result
            print(f"  {_row(result)}", flush=True)
    sweep: list[RunResult] = []
    for window in window_sweep:
        for batched in (False, True):
            if batched and window < BATCH_ENTRIES:
                continue
            entries = (batched_entries if batched else unbatched_entries) // 4
            sweep.append(measure(3, batched, entries, sweep_repeats, window))
            print(f"  {_row(sweep[-1])}", flush=True)
    sweep += [results[3, False], results[3, True]]
    top = profile_rows(profiled_nodes, profiled_batched, profile_entries)

    config = RaftConfig()
    lines = [
        machine_line(),
        "",
        "# Pure Raft core: committed entries per CPU-second",
        "",
        "In-process driver, one FIFO queue, no faults, no ticks after node 1 is elected; the "
        f"leader keeps a window of {WINDOW_ENTRIES} proposals outstanding (filled before the "
        f"clock starts); {len(PAYLOAD)}-byte commands; default `RaftConfig` "
        f"(≤{config.max_entries_per_append} entries per append, "
        f"≤{config.max_inflight_appends} appends in flight per follower). *Unbatched*: one "
        "entry per `propose`, a ready drained after every proposal and every message. "
        f"*Batched*: {BATCH_ENTRIES} entries per `propose_batch`, a whole round of queued "
        "messages stepped in before each touched node drains once. Best of "
        f"{repeats} run(s); CPU time is `time.process_time()` around the loop and "
        "includes the (minimal) driver; the cyclic garbage collector is off while timing "
        "(the logs are never compacted here, so its cost would grow with run length).",
        "",
        f"Load average when the run began: {load_before} (a shared 2-core machine; CPU time, "
        "unlike wall time, does not count the time other processes hold the CPU, but the "
        "numbers still move by ~10-20% between runs — compare ratios within one run).",
        "",
        "*entries/append*: entries per non-empty AppendEntries. *Empty appends* carry only a "
        "commit index (the leader sends one to every idle follower whenever its commit "
        "advances), and each draws an answer. *Leader writes*: readies with entries or hard "
        "state (an fsync each, taken literally); *commit-only*: of those, the ones whose only "
        "change was the commit index.",
        "",
        *TABLE_HEAD,
        *(_row(r) for r in results.values()),
        "",
        "## Ratios",
        "",
        "| comparison | entries/CPU-s ratio | msgs/entry ratio |",
        "|---|---:|---:|",
    ]
    for nodes in NODE_COUNTS:
        b, u = results[nodes, True], results[nodes, False]
        lines.append(
            f"| batched / unbatched, {nodes} nodes "
            f"| {b.entries_per_cpu_s / u.entries_per_cpu_s:.2f}× "
            f"| {b.messages_per_entry / u.messages_per_entry:.2f}× |"
        )
    for batched in (False, True):
        three, five = results[3, batched], results[5, batched]
        lines.append(
            f"| 3 nodes / 5 nodes, {three.mode} "
            f"| {three.entries_per_cpu_s / five.entries_per_cpu_s:.2f}× "
            f"| {three.messages_per_entry / five.messages_per_entry:.2f}× |"
        )
    lines += [
        "",
        f"## How the window changes it (3 nodes, best of {sweep_repeats}; quarter-length runs)",
        "",
        "With a window of 1 every entry makes its own round trip. Once more than "
        f"{config.max_inflight_appends} appends are in flight to a follower the leader pauses "
        "it, and the next acknowledgement releases everything proposed meanwhile in one "
        "append — so even the unbatched host gets batched messages at large windows.",
        "",
        *TABLE_HEAD,
        *(_row(r) for r in sorted(sweep, key=lambda r: (r.batched, r.window_entries))),
        "",
        f"## Where the CPU goes: cProfile, {profiled_nodes} nodes "
        f"{'batched' if profiled_batched else 'unbatched'}, window {WINDOW_ENTRIES}, "
        f"{profile_entries:,} entries",
        "",
        f"Top {PROFILE_TOP} functions under `src/kvorum/` by cumulative time (cProfile's own "
        "overhead inflates every number; read them relative to each other).",
        "",
        "| function | calls | calls/entry | own s | cumulative s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, calls, own_s, cum_s in top:
        lines.append(
            f"| {name} | {calls:,} | {calls / profile_entries:.2f} | {own_s:.3f} | {cum_s:.3f} |"
        )
    if quick:
        lines += ["", "(quick smoke run: not results)"]
    table = "\n".join(lines) + "\n"
    print(table)
    (results_dir / "raft_core.md").write_text(table)
    _chart(results, results_dir / "raft_core.png")


def _chart(results: dict[tuple[int, bool], RunResult], path: Path) -> None:
    # Imported here so the backend is chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    fig, (ax_rate, ax_msgs) = plt.subplots(1, 2, figsize=(10, 4.5))
    width = 0.38
    xs = list(range(len(NODE_COUNTS)))
    for offset, batched, color in ((-width / 2, False, "#c44e52"), (width / 2, True, "#4c72b0")):
        rows = [results[n, batched] for n in NODE_COUNTS]
        label = rows[0].mode
        positions = [x + offset for x in xs]
        rates = [r.entries_per_cpu_s for r in rows]
        ax_rate.bar(positions, rates, width, label=label, color=color)
        for x, rate in zip(positions, rates, strict=True):
            ax_rate.annotate(f"{rate:,.0f}", (x, rate), ha="center", va="bottom", fontsize=8)
        ax_msgs.bar(positions, [r.messages_per_entry for r in rows], width, label=label,
                    color=color)
    for ax in (ax_rate, ax_msgs):
        ax.set_xticks(xs, [f"{n} nodes" for n in NODE_COUNTS])
        ax.legend(fontsize=8)
    ax_rate.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax_rate.set_ylabel("committed entries per CPU-second")
    ax_rate.set_title("Throughput of the pure core")
    ax_msgs.set_ylabel("messages per committed entry")
    ax_msgs.set_title("Messages per entry")
    fig.suptitle("kvorum RaftCore, in-process FIFO driver")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
