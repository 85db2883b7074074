"""``kvorum sim gossip``: runs pass, runs replay, and the checker has teeth."""

from __future__ import annotations

from click.testing import CliRunner

from kvorum.cli.sim import command
from kvorum.core.gossip import GossipUnsafe
from kvorum.sim.gossip import GossipSimOptions, parse_faults, run_seed

SMALL = GossipSimOptions(nodes=8, chaos_ticks=300, faults=parse_faults("all"), trace=False)


def test_gossip_runs_under_every_fault_converge() -> None:
    for seed in range(3):
        result = run_seed(seed, SMALL)
        assert result.ok, result.violation
        assert "ticks to converge after calm" in result.stats


def test_faults_really_strike() -> None:
    stats = run_seed(1, SMALL).stats
    struck = {k for k in stats if k.startswith("fault ")}
    assert len(struck) >= 4
    assert stats.get("dead verdicts", 0) > 0


def test_the_same_seed_gives_the_same_trace() -> None:
    traced = GossipSimOptions(nodes=8, chaos_ticks=150, faults=parse_faults("all"), trace=True)
    a, b = run_seed(5, traced), run_seed(5, traced)
    assert a.trace and a.trace_digest == b.trace_digest
    assert run_seed(6, traced).trace_digest != a.trace_digest


def test_ignoring_refutations_is_caught_within_a_few_seeds() -> None:
    """Teeth: members that never let a higher incarnation clear a suspicion keep a member that
    came back dead, and the liveness check must say so."""
    broken = GossipSimOptions(
        nodes=8,
        chaos_ticks=300,
        faults=parse_faults("all"),
        trace=False,
        unsafe=GossipUnsafe(ignore_refutations=True),
    )
    failed = next(
        (r for r in (run_seed(s, broken) for s in range(5)) if not r.ok), None
    )
    assert failed is not None, "no seed of 5 caught ignored refutations"
    assert failed.violation is not None and "Liveness" in failed.violation
    assert "DEAD" in failed.violation or "SUSPECT" in failed.violation


def test_the_cli_reports_seeds_and_violations() -> None:
    out = CliRunner().invoke(
        command,
        ["gossip", "--seeds", "1", "--start", "3", "--nodes", "8", "--jobs", "1",
         "--break", "ignore-refutations"],
    )
    assert out.exit_code == 1
    assert "1 seeds, 1 violations" in out.output
    assert "reproduce: kvorum sim gossip --start 3 --seeds 1" in out.output
