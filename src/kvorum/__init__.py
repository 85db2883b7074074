"""kvorum: a Raft-replicated, Redis-compatible key-value store and distributed-systems toolkit.

The package is laid out by architecture:

- ``kvorum.core``: pure protocol state machines (Raft, and later Paxos, gossip, detectors,
  transactions). They take messages, ticks and requests and return what to persist, send and
  apply; they never touch time, randomness, sockets or files themselves.
- ``kvorum.sim``: the deterministic simulator that drives cores on virtual time from one seed,
  injects faults and checks invariants after every step.
- ``kvorum.scenarios``: the seed document's examples, runnable by ID.
- ``kvorum.sharding``, ``kvorum.balance``, ``kvorum.ids``, ``kvorum.detect``: pure building
  blocks (placement maps, load balancers, ID generators, failure detectors).
"""

__version__ = "0.1.0"
