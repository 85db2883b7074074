"""The Raft core benchmark's driver: it must elect, replicate correctly and count honestly.

Nothing here times anything. These tests pin what the benchmark's numbers rest on — that the
in-process driver really commits what it claims, that persisted logs agree, and that the
message counts behave as the protocol says (one entry per append at a window of 1, full
appends when batched, twice the messages with twice the followers).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    # The benchmarks package lives at the repository root, beside src/.
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_raft_core import (  # noqa: E402
    BATCH_ENTRIES,
    CoreCluster,
    run_batched,
    run_unbatched,
)

from kvorum.core.raft import Entry  # noqa: E402


def test_cluster_elects_node_1_and_commits_its_noop() -> None:
    cluster = CoreCluster(5)
    assert cluster.leader.core.is_leader
    assert not any(h.core.is_leader for i, h in cluster.hosts.items() if i != 1)
    assert cluster.leader.core.log.committed == 1
    assert not cluster.queue
    assert cluster.messages == 0


def test_cluster_rejects_no_nodes() -> None:
    with pytest.raises(ValueError, match="node_count"):
        CoreCluster(0)


@pytest.mark.parametrize("nodes", [1, 3, 5])
def test_unbatched_commits_what_it_reports(nodes: int) -> None:
    cluster = CoreCluster(nodes)
    result = run_unbatched(cluster, 300, window_entries=32)
    assert result.entries_committed >= 300
    assert cluster.leader.core.log.committed >= 1 + 300
    # The leader applied what it committed, and a majority persisted it.
    assert cluster.leader.applied_entries == cluster.leader.core.log.committed
    holding = sum(len(h.log) >= cluster.leader.core.log.committed for h in cluster.hosts.values())
    assert holding >= nodes // 2 + 1


def test_batched_sends_full_appends_and_fewer_messages() -> None:
    unbatched = run_unbatched(CoreCluster(3), 1_000, window_entries=256)
    batched = run_batched(CoreCluster(3), 1_000, window_entries=256)
    assert batched.entries_committed >= 1_000
    assert batched.entries_per_append == BATCH_ENTRIES
    assert batched.messages_per_entry < unbatched.messages_per_entry / 4
    assert batched.leader_writes_per_entry < unbatched.leader_writes_per_entry


def test_window_of_one_sends_one_entry_per_append() -> None:
    result = run_unbatched(CoreCluster(3), 50, window_entries=1)
    assert result.entries_committed == 50
    assert result.entries_per_append == 1.0
    # Per entry: two appends, two answers, and the commit index spread by empty appends.
    assert result.messages_per_entry == pytest.approx(8.0, abs=0.2)


def test_five_nodes_send_twice_the_messages_of_three() -> None:
    three = run_batched(CoreCluster(3), 2_000)
    five = run_batched(CoreCluster(5), 2_000)
    assert five.messages_per_entry / three.messages_per_entry == pytest.approx(2.0, rel=0.1)


def test_counts_are_deterministic() -> None:
    first = run_unbatched(CoreCluster(3, seed=7), 200, window_entries=64)
    second = run_unbatched(CoreCluster(3, seed=7), 200, window_entries=64)
    assert (first.messages, first.leader_writes, first.entries_committed) == (
        second.messages,
        second.leader_writes,
        second.entries_committed,
    )


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="entries"):
        run_unbatched(CoreCluster(3), 0)
    with pytest.raises(ValueError, match="window_entries"):
        run_unbatched(CoreCluster(3), 10, window_entries=0)
    with pytest.raises(ValueError, match="smaller than a batch"):
        run_batched(CoreCluster(3), 10, window_entries=BATCH_ENTRIES - 1)


def test_agreement_check_catches_a_diverged_log() -> None:
    cluster = CoreCluster(3)
    run_unbatched(cluster, 20, window_entries=4)
    follower = cluster.hosts[2]
    last = follower.log[-1]
    follower.log[-1] = Entry(last.term + 1, last.index, b"forged")
    with pytest.raises(AssertionError, match="diverges"):
        cluster.check_agreement()
