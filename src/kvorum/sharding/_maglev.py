"""Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table filled from node permutations.

Theory of operation: the table has ``M`` entries, ``M`` prime. Each node derives a permutation
of ``0..M-1`` from two hashes of its name — ``offset = h1 mod M`` and
``skip = h2 mod (M-1) + 1`` give ``(offset + j·skip) mod M``, a full permutation because
``M`` is prime. Nodes take turns claiming the next entry of their permutation that is still
free, until the table is full; a key goes to ``table[hash(key) mod M]``, one array read.

Turn-taking makes entry counts differ by at most one between equal nodes (near-perfect
balance); with weights, a node claims entries in proportion to its weight (each round a node
earns ``weight / max_weight`` of a turn). When nodes change the table is rebuilt: entries
mostly keep their owner, but, unlike a ring, a few keys may move between two nodes that both
stayed — Maglev trades a little extra movement for balance. ``M`` should be much larger than
the number of nodes (the paper uses ``M ≥ 100·N``); building costs about ``M·ln M`` steps.
"""

from __future__ import annotations

from kvorum.sharding._errors import ShardingError
from kvorum.sharding._hash import Key, hash64
from kvorum.sharding._placement import Nodes, check_can_add, check_can_remove, weighted_nodes

DEFAULT_TABLE_SIZE = 65537


def is_prime(value: int) -> bool:
    """Whether ``value`` is prime (trial division; table sizes are small)."""
    if value < 2:
        return False
    if value % 2 == 0:
        return value == 2
    divisor = 3
    while divisor * divisor <= value:
        if value % divisor == 0:
            return False
        divisor += 2
    return True


class Maglev:
    """Maglev placement over a prime-sized lookup table."""

    def __init__(self, nodes: Nodes, table_size: int = DEFAULT_TABLE_SIZE) -> None:
        if isinstance(table_size, bool) or not isinstance(table_size, int):
            raise ShardingError(f"table_size must be an int, got {table_size!r}")
        if not is_prime(table_size):
            raise ShardingError(f"table_size must be prime, got {table_size}")
        self._table_size = table_size
        self._weights = weighted_nodes(nodes)
        self._check_fits(len(self._weights))
        self._table: list[str] = []
        self._build()

    def _check_fits(self, node_count: int) -> None:
        if node_count > self._table_size:
            raise ShardingError(
                f"{node_count} nodes cannot share a table of {self._table_size} entries"
            )

    def _build(self) -> None:
        size = self._table_size
        # Sorted names: the table depends on the node set, not on the order of changes.
        names = sorted(self._weights)
        offsets = [hash64(n, salt=b"maglev-offset") % size for n in names]
        skips = [hash64(n, salt=b"maglev-skip") % (size - 1) + 1 for n in names]
        max_weight = max(self._weights.values())
        turn_shares = [self._weights[n] / max_weight for n in names]
        credits = [0.0] * len(names)
        tried = [0] * len(names)  # how far along its permutation each node has looked
        table: list[int] = [-1] * size
        filled = 0
        while filled < size:
            for i in range(len(names)):
                credits[i] += turn_shares[i]
                while credits[i] >= 1.0 and filled < size:
                    credits[i] -= 1.0
                    entry = (offsets[i] + tried[i] * skips[i]) % size
                    while table[entry] >= 0:
                        tried[i] += 1
                        entry = (offsets[i] + tried[i] * skips[i]) % size
                    table[entry] = i
                    tried[i] += 1
                    filled += 1
                if filled == size:
                    break
        self._table = [names[i] for i in table]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    @property
    def table_size(self) -> int:
        """``M``, the number of table entries."""
        return self._table_size

    def entry_counts(self) -> dict[str, int]:
        """How many table entries each node owns (its share is this over ``M``)."""
        counts = dict.fromkeys(self._weights, 0)
        for owner in self._table:
            counts[owner] += 1
        return counts

    def lookup(self, key: Key) -> str:
        return self._table[hash64(key) % self._table_size]

    def add_node(self, node: str, weight: float = 1.0) -> None:
        weight = check_can_add(self._weights, node, weight)
        self._check_fits(len(self._weights) + 1)
        self._weights[node] = weight
        self._build()

    def remove_node(self, node: str) -> None:
        check_can_remove(self._weights, node)
        del self._weights[node]
        self._build()
