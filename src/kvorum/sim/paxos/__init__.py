"""Paxos in the simulator: the seed's examples by hand, and a CASPaxos keyspace under faults.

``scripted`` (Basic Paxos cores on a network a script drives: the PAXOS-* scenarios),
``store`` (a node's acceptor records on its simulated disk), ``node`` (one CASPaxos node:
core, store, drive loop), ``cluster`` (the nodes on one world), ``clients`` (the workload and
its history), ``invariants`` (Paxos's safety properties) and ``plugin`` (options, building
and judging a run: ``kvorum sim paxos``).
"""

from kvorum.sim.paxos.plugin import (
    FAULT_KINDS,
    PAXOS,
    PaxosSimOptions,
    parse_faults,
    run_seed,
    run_seeds,
)

__all__ = ["FAULT_KINDS", "PAXOS", "PaxosSimOptions", "parse_faults", "run_seed", "run_seeds"]
