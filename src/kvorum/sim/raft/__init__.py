"""Raft as a plugin of the generic simulator (see :mod:`kvorum.sim.raft.plugin`).

``cluster`` (the servers on one world), ``node`` (one server: the real host on a simulated
machine), ``clients`` (the workload and its history), ``invariants`` (Raft's safety
properties), ``faults`` (membership changes, leader transfers, picking on new leaders) and
``plugin`` (options, building and judging a run).
"""

from kvorum.sim.raft.plugin import (
    FAULT_KINDS,
    RAFT,
    RaftSimOptions,
    parse_faults,
    run_seed,
    run_seeds,
)

__all__ = ["FAULT_KINDS", "RAFT", "RaftSimOptions", "parse_faults", "run_seed", "run_seeds"]
