"""``kvorum sim paxos``: clean seeds pass, runs replay from their seed, faults bite, and the
checkers have teeth (each test-only break is found, by the invariants and by linearizability
alone)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from kvorum.core.paxos import AcceptorState, Ballot, Register, UnsafeSwitches
from kvorum.sim.disk import SimFileSystem
from kvorum.sim.paxos import PaxosSimOptions, parse_faults, run_seed
from kvorum.sim.paxos.store import LOG, AcceptorStore

ALL = PaxosSimOptions(faults=parse_faults("all"), trace=False)
TEETH_SEEDS = 10


@pytest.mark.parametrize("nodes", [3, 5])
def test_clean_seeds_pass_under_every_fault(nodes: int) -> None:
    stats: Counter[str] = Counter()
    for seed in range(6):
        result = run_seed(seed, replace(ALL, nodes=nodes))
        assert result.ok, f"seed {seed}: {result.violation}"
        assert result.committed > 0
        stats.update(result.stats)
    assert stats["fault crash"] + stats["fault torn-write"] > 0


def test_a_seed_replays_its_trace_exactly() -> None:
    traced = replace(ALL, trace=True)
    assert run_seed(7, traced).trace_digest == run_seed(7, traced).trace_digest


def test_torn_tails_are_cut_somewhere_in_a_few_seeds() -> None:
    # A record within one sector is kept or lost whole; only records across sectors tear,
    # so power cuts inside syncs are made frequent here.
    torn = replace(ALL, faults=frozenset({"torn-write"}), fault_gap_ticks=10)
    cut = sum(run_seed(seed, torn).stats.get("torn tails cut", 0) for seed in range(8))
    assert cut > 0


BREAKS = {
    "accept below minN": UnsafeSwitches(accept_below_min_n=True),
    "skip adopting the highest": UnsafeSwitches(skip_adopt_highest=True),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
@pytest.mark.parametrize("only_linearizability", [False, True])
def test_each_break_is_found_within_a_few_seeds(name: str, only_linearizability: bool) -> None:
    options = replace(
        ALL,
        unsafe=BREAKS[name],
        check_acceptor_rules=not only_linearizability,
        check_chosen_states=not only_linearizability,
    )
    violations = [run_seed(seed, options).violation for seed in range(TEETH_SEEDS)]
    found = [v for v in violations if v is not None]
    assert found, f"{name}: no violation in {TEETH_SEEDS} seeds"
    if only_linearizability:
        assert all(v.startswith("Linearizability") for v in found)


def test_store_keeps_synced_records_and_cuts_a_torn_tail() -> None:
    fs = SimFileSystem(random.Random(3))
    store = AcceptorStore(fs)
    store.open()
    slot = AcceptorState(Ballot(2, 1), Ballot(2, 1), Register(b"v"))
    store.write({"k": slot}, 64)
    size = fs.file_size(LOG)
    f = fs.open(LOG)
    f.pwrite(b"\x40\x00\x00\x00garbage-not-a-record", size)  # written, never synced
    fs.crash(keep=lambda _offset, _length, _sector: True)  # the torn bytes do land
    reopened = AcceptorStore(fs)
    reopened.open()
    assert reopened.slots == {"k": slot}
    assert reopened.durable_round == 64
    assert reopened.cut_bytes > 0
    reopened.write({"j": AcceptorState(Ballot(3, 2))}, None)
    again = AcceptorStore(fs)
    again.open()
    assert set(again.slots) == {"k", "j"} and again.cut_bytes == 0
