"""A node whose storage lost acknowledged entries of a group: open_core fences the group, the
host repairs it from the group's leader (even a quiesced one) and says so.

The cluster is the simulator's (the real NodeHost over in-memory storage, on virtual time);
:meth:`~kvorum.storage.memory.MemoryNodeLog.damage` plays what the WAL's repair leaves after
a synced batch was damaged.
"""

from __future__ import annotations

import logging
import random

import pytest

from kvorum.core.raft import Entry, RaftConfig
from kvorum.host.bootstrap import RepairImpossibleError, bootstrap_group, open_core
from kvorum.sim.machine import TICK_US
from kvorum.sim.raft.cluster import RaftCluster
from kvorum.sim.world import World
from kvorum.storage.memory import MemoryNodeLog, MemorySnapshotStore
from kvorum.storage.wal.errors import WALCorruptionError


def cluster(seed: int = 7) -> RaftCluster:
    config = RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=2)
    c = RaftCluster(
        World(seed), 3, config, groups=3, clients=0, quiesce_after_ticks=20, storage="memory"
    )
    c.start()
    return c


def run_ticks(c: RaftCluster, ticks: int) -> None:
    c.world.run_until(c.world.now_us + ticks * TICK_US)


def leader_of(c: RaftCluster, gid: int) -> int:
    (leader,) = [n.id for n in c.nodes.values() if n.up and n.core(gid).is_leader]
    return leader


def test_a_damaged_group_is_fenced_then_repaired_from_its_quiesced_leader(
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = cluster()
    run_ticks(c, 200)
    assert all(n.host.awake_groups() == 0 for n in c.nodes.values())  # all quiesced
    gid = 1
    leader = leader_of(c, gid)
    victim = next(n for n in c.nodes.values() if n.id != leader)
    last = victim.core(gid).last_index
    term = victim.core(gid).term
    assert last >= 4
    victim.crash()
    # The bootstrap entries (the membership) survive; the leader's no-op and after are lost.
    crashed_log = victim.node_log
    assert isinstance(crashed_log, MemoryNodeLog)
    crashed_log.damage(gid, 4, "WAL corrupted in test at byte offset 1: rot")
    with caplog.at_level(logging.INFO):
        victim.restart()
        group = victim.host.groups[gid]
        report = group.repair_report()
        assert report is not None and not report.completed
        assert victim.core(gid).fenced and victim.core(gid).last_index == 3
        assert "not voting in this group until then" in caplog.text
        run_ticks(c, 100)
    report = group.repair_report()
    assert report is not None and report.completed, victim.core(gid).status()
    assert report.repaired_from == leader
    assert f"repaired entries 4-{last} of group {gid} from node {leader}" in caplog.text
    assert victim.node_log.group(gid).repair_fence is None  # lifted durably
    # Nobody had to elect anyone: the fenced node never stood, the leader kept leading.
    assert leader_of(c, gid) == leader and victim.core(gid).term == term
    status = group.repair_status()
    assert status is not None and status["completed"] and status["lost_from"] == 4
    assert status["repaired_from"] == leader and status["completed_at_ms"] is not None
    assert status["text"] == f"repaired entries 4-{last} of group {gid} from node {leader}"
    for g in c.group_ids:  # the other groups were never touched
        assert c.nodes[victim.id].host.groups[g].repair_report() is None or g == gid


class _EmptyMachine:
    def applied_index(self) -> int:
        return 0


def _open_damaged(voters: list[int]) -> None:
    node_log = MemoryNodeLog()
    bootstrap_group(node_log, 0, voters)
    node_log.sync()
    last = node_log.group(0).last_index
    node_log.group(0).stage(None, [Entry(1, last + 1, b"x")])
    node_log.sync()
    node_log = node_log.crash()
    node_log.damage(
        0, last + 1, "WAL corrupted in /d/1.wal at byte offset 77: batch body CRC mismatch"
    )
    open_core(
        1,
        node_log.group(0),
        MemorySnapshotStore(),
        _EmptyMachine(),  # type: ignore[arg-type]
        config=RaftConfig(),
        rng=random.Random(1),
    )


def test_a_single_voter_group_cannot_be_repaired_and_says_why() -> None:
    with pytest.raises(RepairImpossibleError) as got:
        _open_damaged([1])
    message = str(got.value)
    assert message.startswith("WAL corrupted in /d/1.wal at byte offset 77")
    assert "entries 2-2" in message and "no other voter" in message
    assert not isinstance(got.value, WALCorruptionError)


@pytest.mark.parametrize("voters", [[1, 2], [1, 2, 3]])
def test_a_group_with_other_voters_starts_fenced(voters: list[int]) -> None:
    # No error: another voter is elected (with this node's vote if its log covers what was
    # lost, which a leader holding the lost entries' term does) and repairs it.
    _open_damaged(voters)
