"""One Raft group's KV state machine, as the host drives it (the ``StateMachine`` contract).

Theory of operation: :class:`KVGroupMachine` implements
:class:`kvorum.storage.contracts.StateMachine` over one group's
:class:`~kvorum.kv.engine.Engine` (a view of the node's shared keyspace). ``apply`` takes the
committed entries a Ready hands out: a command entry goes through
:meth:`KVStateMachine.apply_entry`; a leader's empty no-op and a membership change only record
their index, in the same atomic write scheme, so the applied index always names the last
entry whatever its kind. Entries at or below the applied index are skipped (a restarted node
is handed entries its store already holds). All the entries of one call are applied in one
engine transaction, which joins the host's transaction when it applies a whole round of
groups at once.

Expiry is driven by the leader: :meth:`KVGroupMachine.housekeeping` returns a sweep payload to
propose only when the engine's expiry index says a key *may* be due, so a group with no keys
to expire proposes nothing, commits nothing and writes nothing to disk while idle. Replicas
never expire keys by their own clocks; the sweep entry carries the leader's time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kvorum.core.raft.messages import Entry, EntryKind
from kvorum.kv.engine import Engine
from kvorum.kv.replies import Reply
from kvorum.kv.state_machine import DEFAULT_MAX_VALUE_BYTES, KVStateMachine, encode_expire_sweep

SWEEP_KEYS = 1000
"""Most keys one sweep entry deletes (bounds the entry's work on every replica)."""


class KVGroupMachine:
    """A group's KV state machine; see :class:`kvorum.storage.contracts.StateMachine`."""

    def __init__(
        self,
        engine: Engine,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        sweep_keys: int = SWEEP_KEYS,
    ) -> None:
        if sweep_keys < 1:
            raise ValueError(f"sweep_keys must be >= 1, got {sweep_keys}")
        self.engine = engine
        self.kv = KVStateMachine(engine, max_value_bytes)
        """The command logic; reads (``kv.read``) and INFO (``kv.keyspace_info``) go here."""
        self.sweep_keys = sweep_keys

    def applied_index(self) -> int:
        return self.engine.applied_index()

    def apply(self, entries: Sequence[Entry]) -> list[list[Reply] | None]:
        """Apply committed ``entries`` in order; one result each: a command entry's replies
        (one per write it carries), ``[]`` for a membership change (it took effect; nothing
        to reply), None for a no-op and for entries already applied. Raises ValueError if an
        entry would leave a gap after the applied index (an entry must never be skipped)."""
        results: list[list[Reply] | None] = []
        kv = self.kv
        engine = self.engine
        with engine.transaction():
            for entry in entries:
                index = entry.index
                applied = engine.applied_index()
                if index <= applied:
                    results.append(None)
                    continue
                if index != applied + 1:
                    raise ValueError(f"entry {index} leaves a gap after applied index {applied}")
                if entry.kind is EntryKind.NORMAL and entry.data:
                    results.append(kv.apply_entry(entry.data, index))
                    continue
                kv.apply_many([], index)  # record the index, change nothing else
                results.append([] if entry.kind is EntryKind.CONF_CHANGE else None)
        return results

    def snapshot(self) -> tuple[int, Iterator[bytes]]:
        """The applied index and the group's pairs, read from one point-in-time view."""
        return self.engine.snapshot_chunks()

    def restore(self, chunks: Iterator[bytes], applied_index: int) -> None:
        """Replace the group's keys (only its span: other groups are untouched)."""
        self.engine.restore(chunks, applied_index)

    def housekeeping(self, now_ms: int) -> bytes | None:
        """What the group's leader should propose now to keep the store tidy, or None.

        Today that is an expiry sweep, returned only when some key's expire time may have
        passed at ``now_ms`` (the engine answers from its expiry index, without touching the
        keys). Proposing it twice before it applies is harmless: the second finds less."""
        due_ms = self.engine.next_expiry_ms()
        if due_ms is None or due_ms > now_ms:
            return None
        return encode_expire_sweep(now_ms, self.sweep_keys)
