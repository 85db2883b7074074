"""Gossip membership as a plugin of the generic simulator (see :mod:`kvorum.sim.gossip.plugin`).

``node`` (one member: a gossip core on a simulated machine), ``cluster`` (members on one
world, churn, the truth), ``checker`` (invariants, convergence, false verdicts counted),
``faults`` (pauses, joins, leaves), ``plugin`` (options, building and judging a run) and
``rumour`` (the seed's push gossip on the simulated network, for GOSSIP-1..3).
"""

from kvorum.sim.gossip.plugin import (
    FAULT_KINDS,
    GOSSIP,
    LIVENESS_BOUND_TICKS,
    GossipSimOptions,
    parse_faults,
    run_seed,
    run_seeds,
)

__all__ = [
    "FAULT_KINDS",
    "GOSSIP",
    "LIVENESS_BOUND_TICKS",
    "GossipSimOptions",
    "parse_faults",
    "run_seed",
    "run_seeds",
]
