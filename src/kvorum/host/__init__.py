"""The host: what carries out a protocol core's outputs, for every core on a node.

Theory of operation: see :mod:`kvorum.host.group` (one Raft group: its core, storage and state
machine, and the requests waiting on it) and :mod:`kvorum.host.node` (every group of a node:
one write and one fsync per round for all of them, coalesced heartbeats, quiescence). The
asyncio runtime and the deterministic simulator both drive this package, so the simulator
runs the code users run.
"""
