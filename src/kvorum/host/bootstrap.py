"""Bringing a group to life on a node: a new group's first entries, or a restart from disk.

Theory of operation: a group's storage is three things kept apart by contract — its log (with
the hard state), its snapshots and its state machine — and a restart must put them back
together consistently before a core may run on them. :func:`open_core` does that for every
host: it finishes a local snapshot that a crash interrupted (the file became durable but the
log never heard of it, so the marker is recorded now), refuses a log that names a snapshot no
store holds, brings a state machine that is behind the newest snapshot up to it, and builds
the core from the hard state, the snapshot and the log after it, resuming apply from where the
state machine stands. :func:`bootstrap_group` is the other way a group starts: every initial
member writes the same first entries, its initial membership (see
:func:`kvorum.core.raft.bootstrap_log`).

A group whose storage repaired damage to synced entries (its log's ``repair_fence``) starts
fenced: its core stays out of elections until a leader has sent the lost entries again
(:mod:`kvorum.core.raft.repair`), and the start says so in the log. A group of which this
node is the only voter cannot be repaired that way — nobody else has the entries, and no
leader can exist while its one voter does not campaign — so :func:`open_core` refuses it
(:class:`RepairImpossibleError`), with storage's own description of the damage. It judges by
the configuration the repaired log still holds; if the lost entries changed the membership,
that picture is older, which can only make it refuse a group that could have been repaired
(today's behaviour), or leave a group waiting for a leader that cannot come, saying so in its
status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from random import Random

from kvorum.core.raft import ConfState, RaftConfig, RaftCore, Snapshot, bootstrap_log
from kvorum.core.raft.messages import Entry
from kvorum.core.shape import GroupId, NodeId
from kvorum.storage.contracts import GroupLog, NodeLog, SnapshotStore, StateMachine

log = logging.getLogger(__name__)


class StorageMismatchError(Exception):
    """A group's log, snapshots and state machine disagree in a way no crash explains."""


class RepairImpossibleError(StorageMismatchError):
    """A group lost acknowledged entries that no other member of it can supply."""


def bootstrap_group(node_log: NodeLog, group_id: GroupId, voters: Iterable[NodeId]) -> GroupLog:
    """Create ``group_id`` on an initial member: its voters as the first, committed entries
    (durable at the log's next sync)."""
    hard_state, entries = bootstrap_log(voters)
    group_log = node_log.create_group(group_id)
    group_log.stage(hard_state, entries)
    return group_log


def open_core(
    node_id: NodeId,
    group_log: GroupLog,
    snapshots: SnapshotStore,
    machine: StateMachine,
    *,
    config: RaftConfig,
    rng: Random,
    on_entries: Callable[[Sequence[Entry]], None] | None = None,
) -> RaftCore:
    """A core for a group restarting from what its storage holds (see the module docstring).
    ``on_entries`` is shown the log's entries as read for the core (so a caller that wants
    to look at them, e.g. for addresses in membership changes, need not read them again)."""
    meta = snapshots.latest()
    log_snapshot_index = group_log.first_index - 1
    if meta is not None and meta.index > log_snapshot_index:
        # The snapshot became durable, then the node stopped before the log recorded it.
        group_log.stage_snapshot(meta)
    elif log_snapshot_index > 0 and (meta is None or meta.index < log_snapshot_index):
        have = "none" if meta is None else f"the newest is at {meta.index}"
        raise StorageMismatchError(
            f"group {group_log.group_id}: the log starts after a snapshot at "
            f"{log_snapshot_index}, but the snapshot store holds no such snapshot ({have})"
        )
    snapshot = None
    if meta is not None:
        if machine.applied_index() < meta.index:
            machine.restore(snapshots.chunks(meta), meta.index)
        snapshot = Snapshot(meta, snapshots.data(meta))
    entries = group_log.entries(group_log.first_index, group_log.last_index + 1)
    if on_entries is not None:
        on_entries(entries)
    # Membership is in the log (bootstrap entries, then changes) or the snapshot.
    fence = group_log.repair_fence
    core = RaftCore(
        node_id,
        ConfState(frozenset()),
        config,
        rng,
        hard_state=group_log.hard_state,
        snapshot=snapshot,
        entries=entries,
        applied=max(machine.applied_index(), meta.index if meta is not None else 0),
        repair_fence=fence,
    )
    if fence is not None and core.fenced:
        g = group_log.group_id
        damage = fence.damage or "storage damage"
        if core.conf.voters == {node_id}:
            raise RepairImpossibleError(
                f"{damage}; group {g} lost {fence.describe()}, which it had acknowledged, "
                "and has no other voter to fetch them from"
            )
        log.warning(
            "group %d: %s; %s lost, fetching them from the group's leader (not voting in "
            "this group until then)",
            g,
            damage,
            fence.describe(),
        )
    return core
