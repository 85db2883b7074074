"""Membership changes on a running real cluster: ``kvorum member add/remove`` and the
``KVORUM MEMBER`` command.

Theory of operation: a 3-node cluster takes writes; a fourth node is started with ``--join``
(it knows the members' addresses but holds no configuration, so it waits to be contacted)
and added through the ``kvorum member add`` command line, which asks the leader to add it as
a learner and promote it once caught up. The test then waits for node 4 to appear among the
leader's voters and reads, *on node 4*, every key written before it existed. Removal goes
through ``KVORUM MEMBER REMOVE`` (or the CLI, for the leader itself), after which the
remaining members must keep committing writes without the removed one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from cluster_harness import Cluster, missing_or_wrong, set_with_retry, wait_until


def _kvorum_cli(*args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvorum", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _client_addresses(cluster: Cluster, ids: list[int]) -> str:
    return ",".join(cluster.ports[i].client for i in ids)


def _voters_are(cluster: Cluster, node_id: int, voters: list[int]) -> dict[str, Any] | None:
    status = cluster.status(node_id)
    if status is None or status["voters"] != voters or status["learners"]:
        return None
    return status


def _add_node_4(cluster: Cluster) -> None:
    ports = cluster.reserve(4)
    cluster.start(4, join=True)
    cluster.wait_ready(4)
    added = _kvorum_cli(
        "member", "add", "4",
        "--raft", ports.raft,
        "--client", ports.client,
        "--nodes", _client_addresses(cluster, cluster.members),
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    assert "node 4 added" in added.stdout


def _promoted_node_4(cluster: Cluster, leader: int) -> dict[str, Any]:
    """Add node 4, wait until the leader counts it as a voter and it has applied everything
    the leader committed; return node 4's status then."""
    _add_node_4(cluster)
    wait_until(
        lambda: _voters_are(cluster, leader, [1, 2, 3, 4]), 20, "node 4 promoted to voter"
    )
    leader_status = cluster.status(leader)
    assert leader_status is not None
    return cluster.wait_applied(4, leader_status["commit"])


def test_a_node_is_added_serves_old_data_and_is_removed(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        expected = {f"before{n}": f"v{n}" for n in range(150)}
        with cluster.client(leader) as client:
            for start in range(0, 150, 10):
                # Small pipelines: several log entries, several keys each.
                pipe = client.pipeline(transaction=False)
                for n in range(start, start + 10):
                    pipe.set(f"before{n}", f"v{n}")
                assert all(pipe.execute())

        joined = _promoted_node_4(cluster, leader)
        assert joined["role"] == "follower"
        assert joined["leader"] == leader
        with cluster.client(4) as client:
            assert missing_or_wrong(client, expected) == {}
            # A full member: writes through it commit and reach the others.
            assert client.set("via-node-4", "hello")
        with cluster.client(leader) as client:
            assert client.get("via-node-4") == b"hello"

        with cluster.client(leader) as client:
            assert client.execute_command("KVORUM", "MEMBER", "REMOVE", "4") in (b"OK", "OK")
        wait_until(lambda: _voters_are(cluster, leader, [1, 2, 3]), 20, "node 4 removed")
        assert cluster.stop(4) == 0
        with cluster.client(leader) as client:
            assert client.set("after-removal", "yes")
        for node_id in cluster.members:
            with cluster.client(node_id) as client:
                assert client.get("after-removal") == b"yes"


@pytest.mark.slow
def test_a_joined_node_knows_every_voter_and_cannot_commit_alone(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader()
        with cluster.client(leader) as client:
            assert client.set("before", "1")
        joined = _promoted_node_4(cluster, leader)
        assert joined["voters"] == [1, 2, 3, 4]
        # One voter of four is no quorum: node 4 must not acknowledge a write on its own.
        for node_id in cluster.members:
            cluster.kill(node_id)
        with cluster.client(4, timeout_s=8.0) as client:
            with pytest.raises(redis.ResponseError, match=r"^(CLUSTERDOWN|TIMEOUT)"):
                client.set("alone", "must-not-commit")
            status = cluster.status(4)
            assert status is not None
            assert status["role"] != "leader"


@pytest.mark.slow
def test_removing_the_leader_hands_over_to_the_rest(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        cluster.start_all()
        old_leader = cluster.wait_for_leader()
        with cluster.client(old_leader) as client:
            assert client.set("written-by-old-leader", "1")

        removed = _kvorum_cli(
            "member", "remove", str(old_leader),
            "--nodes", _client_addresses(cluster, cluster.members),
        )  # fmt: skip
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"node {old_leader} removed" in removed.stdout
        rest = [i for i in cluster.members if i != old_leader]
        new_leader = cluster.wait_for_leader(rest, timeout_s=20)
        wait_until(lambda: _voters_are(cluster, new_leader, rest), 20, "the leader's removal")
        assert cluster.stop(old_leader) == 0

        with cluster.client(rest[0]) as client:
            set_with_retry(client, "written-after-removal", "2")
        for node_id in rest:
            with cluster.client(node_id) as client:
                assert client.mget("written-by-old-leader", "written-after-removal") == [
                    b"1",
                    b"2",
                ]
