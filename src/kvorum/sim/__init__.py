"""Deterministic simulation of kvorum clusters, and the checkers that judge its runs.

The generic part knows no protocol: ``world`` (virtual time, the network), ``machine`` and
``disk`` (each node's clock and simulated disk), ``storage`` (a node's log and snapshots on
that disk), ``driver`` (a node's rounds), ``partitions`` and ``faults`` (the fault menu and its
schedule), ``runner`` (running and judging seeds) and ``plugin`` (what a protocol provides).
``raft`` is the Raft plugin; ``linearizability`` checks client histories; ``interaction`` is
the scripted, step-by-step harness the Raft scenarios and paper tests use.
"""
