"""The simulator's disk faults: nodes run the real WAL on a simulated disk that tears, fills
up, fails and lies — clean runs under each fault, proof that each fault bites, and teeth.

"Bites" is read from the run's counters (:attr:`kvorum.sim.world.World.stats`): a clean run
under a fault that never struck would prove nothing.
"""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from kvorum.cli.sim import command as sim_command
from kvorum.core.raft import RaftConfig
from kvorum.host.waiters import CallbackWaiter
from kvorum.kv.commands import check_command, encode_write
from kvorum.kv.replies import ErrorReply
from kvorum.sim.machine import TICK_US
from kvorum.sim.raft import RaftSimOptions, parse_faults, run_seed, run_seeds
from kvorum.sim.raft.cluster import RaftCluster
from kvorum.sim.raft.node import SimNode
from kvorum.sim.runner import SimResult
from kvorum.sim.storage import NODE_DIRECTORY
from kvorum.sim.world import World


def run_clean(options: RaftSimOptions, seeds: range) -> Counter[str]:
    """Run ``seeds``, assert none fails, and return what happened, summed over the seeds."""
    results = list(run_seeds(seeds, options))
    bad = [(r.seed, r.violation) for r in results if not r.ok]
    assert not bad, f"violations (seed, what): {bad}"
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.stats)
    return total


def first_violation(options: RaftSimOptions, max_seeds: int) -> SimResult | None:
    for seed in range(max_seeds):
        result = run_seed(seed, options)
        if not result.ok:
            return result
    return None


TORN = RaftSimOptions(nodes=3, faults=parse_faults("torn-write"), fault_gap_ticks=15, trace=False)


def test_torn_writes_are_cut_on_restart_and_nothing_is_lost() -> None:
    seen = run_clean(TORN, range(12))
    assert seen["fault torn-write"] > 0
    assert seen["power cuts in a sync"] > 0, "no power cut landed inside a sync"
    assert seen["torn tails cut"] > 0, "no torn batch was ever left for recovery to cut"


def test_teeth_without_torn_tail_repair_a_node_refuses_to_start() -> None:
    broken = replace(TORN, break_torn_tail_repair=True)
    found = first_violation(broken, max_seeds=40)
    assert found is not None, "a WAL that refuses its torn tail went unnoticed"
    assert found.violation is not None
    assert "refuses to start" in found.violation
    print(f"found at seed {found.seed}: {found.violation}")
    repaired = run_seed(found.seed, TORN)
    assert repaired.ok, repaired.violation


def test_a_full_disk_refuses_writes_and_the_node_recovers_by_itself() -> None:
    options = RaftSimOptions(
        nodes=3, faults=parse_faults("disk-full"), fault_gap_ticks=8, trace=False
    )
    seen = run_clean(options, range(12))
    assert seen["fault disk-full"] > 0
    assert seen["disk-full rounds"] > 0, "no round ever met the full disk"
    assert seen["writes refused: disk full"] > 0, "no client was told the disk is full"
    assert seen["fatal disk errors"] == 0, "a full disk stopped a node"


def test_a_failed_fsync_stops_the_node_and_it_restarts_from_disk() -> None:
    options = RaftSimOptions(
        nodes=3, faults=parse_faults("fsync-fail"), fault_gap_ticks=8, trace=False
    )
    seen = run_clean(options, range(12))
    assert seen["fault fsync-fail"] > 0
    assert seen["fatal disk errors"] > 0, "no failed fsync ever stopped a node"


def test_every_fault_at_once_with_four_groups() -> None:
    options = RaftSimOptions(groups=4, faults=parse_faults("all"), trace=False)
    seen = run_clean(options, range(8))
    for kind in ("torn-write", "disk-full", "fsync-fail", "crash", "membership"):
        assert seen[f"fault {kind}"] > 0, kind


def test_the_in_memory_storage_still_runs_every_fault() -> None:
    options = RaftSimOptions(faults=parse_faults("all"), storage="memory", trace=False)
    run_clean(options, range(8))


def test_same_seed_same_trace_on_the_simulated_disk() -> None:
    options = RaftSimOptions(faults=parse_faults("all,lying-fsync"), fault_gap_ticks=10)
    a = run_seed(11, options)
    b = run_seed(11, options)
    assert a.trace == b.trace and a.trace_digest == b.trace_digest
    assert a.stats == b.stats
    assert any("RESTART" in line for line in a.trace)


def test_lying_fsync_is_seen_by_the_checkers() -> None:
    # A disk that acknowledges writes and loses them makes a node lose entries it promised
    # to keep. Until nodes repair such damage from their peers, that is a violation the
    # simulator must report (which is why lying-fsync is not part of --faults all): either
    # the node finds a hole in its log and refuses to start, or — when only the end of its
    # log is gone, which no format can tell from a torn tail — Raft's own invariants break.
    options = RaftSimOptions(
        nodes=3, faults=parse_faults("lying-fsync"), fault_gap_ticks=10, trace=False
    )
    seen: dict[str, tuple[int, str]] = {}
    for seed in range(60):
        result = run_seed(seed, options)
        if result.violation is not None:
            kind = "refused" if "refuses to start" in result.violation else "raft"
            seen.setdefault(kind, (seed, result.violation))
        if len(seen) == 2:
            break
    for kind, (seed, violation) in sorted(seen.items()):
        print(f"{kind} at seed {seed}: {violation}")
    assert "refused" in seen, "a hole in a node's log went unnoticed"
    assert "raft" in seen, "a node that silently lost the end of its log went unnoticed"


def test_cli_prints_the_seed_and_the_command_that_reproduces_it() -> None:
    args = [
        "raft", "--seeds", "40", "--nodes", "3", "--faults", "torn-write",
        "--fault-gap-ticks", "15", "--break", "torn-tail-repair", "--jobs", "1",
        "--trace-lines", "5",
    ]
    result = CliRunner().invoke(sim_command, args)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    violation = next(line for line in lines if line.startswith("--- seed "))
    seed = int(violation.split()[2].rstrip(":"))
    assert "refuses to start" in violation
    assert (
        f"    reproduce: kvorum sim raft --start {seed} --seeds 1 --nodes 3 --groups 1"
        " --faults torn-write --fault-gap-ticks 15 --break torn-tail-repair"
    ) in lines
    assert lines[-1].startswith("40 seeds, ") and not lines[-1].startswith("40 seeds, 0 ")


def _set_key(node: SimNode, key: str) -> None:
    args = [b"SET", key.encode(), b"v"]
    spec = check_command(args, 0)
    assert not isinstance(spec, ErrorReply)
    node.host.submit_writes(0, [encode_write(spec, args, 0)], CallbackWaiter(lambda r, e: None))
    node.pump()


def _node_whose_snapshot_directory_fsync_failed(seed: int) -> SimNode:
    """A one-node cluster that took snapshots after the fsync making the new snapshot
    directory's name durable failed."""
    cluster = RaftCluster(
        World(seed),
        1,
        RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=2),
        clients=0,
        snapshot_every_entries=4,
        quiesce_after_ticks=0,
    )
    cluster.start()
    cluster.world.run_until(30 * TICK_US)
    node = cluster.nodes[1]
    fs = node.machine.fs
    sync_dir = fs.fsync_dir
    failed: list[Path] = []

    def failing_fsync_dir(path: Path) -> None:
        if path == NODE_DIRECTORY and not failed:
            failed.append(path)
            raise OSError(errno.EIO, "Input/output error (injected)")
        sync_dir(path)

    fs.fsync_dir = failing_fsync_dir  # type: ignore[method-assign]
    for n in range(12):
        _set_key(node, f"k{n}")
        cluster.world.run_until(cluster.world.now_us + 3 * TICK_US)
    assert failed, "the snapshot directory was never created"
    return node


def test_a_failed_fsync_of_the_new_snapshot_directory_stops_the_node() -> None:
    # One node. Its first snapshot creates /node/snapshots, and the fsync that makes that
    # name durable fails. Carrying on would let the next snapshots go into a directory a
    # power cut can erase while the log points at them (the node then refuses to start:
    # found with fsync-fail-anywhere). So the node stops at the failed fsync, as when its
    # log's sync fails, and restarts from what is really on the disk, whatever the power cut
    # kept of that directory.
    for seed in range(20):
        node = _node_whose_snapshot_directory_fsync_failed(seed)
        assert not node.up, "the node went on after a failed fsync"
        assert node.restart(), "the node cannot start again from its own disk"
        assert node.core().commit_index >= 1
