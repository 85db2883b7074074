"""Crash tests on a real 3-node cluster: kill -9 the leader, a lagging follower, everyone.

Theory of operation: every test writes through background :class:`Writer` threads (or
plain sequential SETs) and records what a node *acknowledged* — and what it refused with a
promise that the write was not applied (``CLUSTERDOWN``, ``TRYAGAIN``). After the crash and
any restart it reads every such key back from every node, with a linearizable read on that
node: an acknowledged key missing, or a refused one present, fails the test by name. Process ids and
ports are the harness's; each test's cluster is killed in the ``with`` block's exit.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from cluster_harness import Cluster, Writer, missing_or_wrong, present, wait_until


@pytest.mark.slow
def test_writes_carry_on_after_kill_9_of_the_leader(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        survivors = [i for i in cluster.members if i != leader]
        # The writer talks to a follower that survives: it forwards to whoever leads.
        writer = Writer(cluster, survivors[0], prefix="k").start()
        try:
            wait_until(lambda: writer.acked_count() >= 30, 15, "30 writes before the crash")
            killed_at_s = time.monotonic()
            cluster.kill(leader)
            new_leader = cluster.wait_for_leader(survivors, timeout_s=15)
            wait_until(
                lambda: writer.acked_since(killed_at_s) >= 30, 20, "30 writes after the crash"
            )
        finally:
            writer.stop()
        acked = writer.snapshot()
        refused = writer.refused_keys()
        assert new_leader in survivors
        for node_id in survivors:
            with cluster.client(node_id) as client:
                assert missing_or_wrong(client, acked) == {}, f"node {node_id}"
                assert present(client, refused) == {}, (f"node {node_id}", writer.refused)

        # The old leader comes back as a follower of the new one and catches up.
        cluster.start(leader)
        cluster.wait_ready(leader)
        commit = cluster.status(new_leader)
        assert commit is not None
        status = cluster.wait_applied(leader, commit["commit"])
        assert status["role"] == "follower"
        assert status["term"] >= commit["term"]
        with cluster.client(leader) as client:
            assert missing_or_wrong(client, acked) == {}
            assert present(client, refused) == {}


def test_a_node_far_behind_catches_up_through_a_snapshot(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, snapshot_every=50) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        lagger = next(i for i in cluster.members if i != leader)
        expected: dict[str, str] = {}
        with cluster.client(leader) as client:
            for n in range(20):
                assert client.set(f"early{n}", str(n))
                expected[f"early{n}"] = str(n)
            leader_status = cluster.status(leader)
            assert leader_status is not None
            before = cluster.wait_applied(lagger, leader_status["commit"])
            cluster.kill(lagger)
            # One SET per round trip: each becomes its own log entry, so the leader's log
            # grows by hundreds of entries and is compacted every 50.
            for n in range(300):
                assert client.set(f"late{n}", str(n))
                expected[f"late{n}"] = str(n)
        leader_status = cluster.status(leader)
        assert leader_status is not None
        # The entries the lagger lacks are gone from the leader's log: only a snapshot helps.
        assert leader_status["snapshot_index"] > before["last_index"]

        cluster.start(lagger)
        cluster.wait_ready(lagger)
        after = cluster.wait_applied(lagger, leader_status["commit"])
        assert after["snapshot_index"] > before["last_index"], (before, after)
        assert after["snapshot_index"] > before["snapshot_index"]
        with cluster.client(lagger) as client:
            assert missing_or_wrong(client, expected) == {}
        # ... and it is a working member again: it takes writes and replicates them.
        with cluster.client(lagger) as client:
            assert client.set("after-catch-up", "yes")
        with cluster.client(leader) as client:
            assert client.get("after-catch-up") == b"yes"


@pytest.mark.slow
def test_kill_9_of_every_node_loses_no_acknowledged_write(tmp_path: Path) -> None:
    # Frequent snapshots so that the crashes also land around snapshotting and compaction.
    with Cluster(tmp_path, 3, snapshot_every=50) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        acked: dict[str, str] = {}
        refused: list[str] = []
        for round_no in range(2):
            writers = [
                Writer(cluster, node_id, prefix=f"r{round_no}n{node_id}-").start()
                for node_id in cluster.members
            ]
            try:
                for writer in writers:
                    wait_until(
                        lambda w=writer: w.acked_count() >= 40,  # type: ignore[misc]
                        20,
                        f"40 writes through node {writer.node_id}",
                    )
                cluster.kill_all()  # while the writers are still writing
            finally:
                for writer in writers:
                    writer.stop()
            for writer in writers:
                acked.update(writer.snapshot())
                refused += writer.refused_keys()
            if round_no == 1:
                # As if the machine had lost power: LMDB commits without flushing, so its
                # newest pages may be gone. Drop the engines outright; each node must rebuild
                # its state from its snapshots and its WAL alone.
                for node_id in cluster.members:
                    shutil.rmtree(cluster.data_dir(node_id) / "kv")
                    (cluster.data_dir(node_id) / "engine-state.json").unlink(missing_ok=True)

            cluster.start_all()
            leader = cluster.wait_for_leader(timeout_s=30)
            leader_status = cluster.status(leader)
            assert leader_status is not None
            # Snapshots were taken (and, in round 1, are what the engines were rebuilt from).
            assert leader_status["snapshot_index"] > 0
            for node_id in cluster.members:
                cluster.wait_applied(node_id, leader_status["commit"])
                with cluster.client(node_id) as client:
                    lost = missing_or_wrong(client, acked)
                    applied_anyway = present(client, refused)
                assert lost == {}, f"round {round_no}, node {node_id} lost {len(lost)} writes"
                assert applied_anyway == {}, f"round {round_no}, node {node_id}: refused writes"
        assert len(acked) >= 2 * 3 * 40
