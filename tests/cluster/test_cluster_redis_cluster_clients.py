"""Redis Cluster clients on a multi-group kvorum cluster: ``redis.cluster.RedisCluster`` and
``redis-cli -c`` route by slot using CLUSTER SLOTS, where each group's leader is the master
of its slot run; they keep working while leadership moves."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
from cluster_harness import Cluster, wait_until
from redis.cluster import RedisCluster

pytestmark = pytest.mark.slow

GROUPS = 4


def _slot_masters(cluster: Cluster, node_id: int) -> dict[tuple[int, int], int]:
    """CLUSTER SLOTS as seen by ``node_id``: each slot run's master, by client port."""
    with cluster.client(node_id) as client:
        runs = client.execute_command("CLUSTER", "SLOTS")
    return {(int(run[0]), int(run[1])): int(run[2][1]) for run in runs}


def test_cluster_clients_route_by_slot_and_ride_out_leader_moves(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, groups=GROUPS) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        # Spread leadership: group g to node g % 3 + 1, so the slot runs have several masters
        # (only the group's leader takes a transfer: the others answer TRYAGAIN).
        for gid in range(GROUPS):
            target = gid % 3 + 1
            for node_id in cluster.members:
                if node_id == target:
                    continue
                with cluster.client(node_id) as client, contextlib.suppress(redis.ResponseError):
                    client.execute_command("KVORUM", "TRANSFER", str(target), "GROUPS", str(gid))
        ports = {i: cluster.ports[i].client_port for i in cluster.members}

        def spread() -> bool | None:
            masters = _slot_masters(cluster, 2)
            return len(set(masters.values())) >= 2 or None

        wait_until(spread, 20, "leadership spread over several nodes")
        masters = _slot_masters(cluster, 3)
        runs = sorted(masters)
        assert runs[0][0] == 0 and runs[-1][1] == 16383
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(runs))
        assert set(masters.values()) <= set(ports.values())

        rc = RedisCluster(host="127.0.0.1", port=ports[1], socket_timeout=10)
        try:
            for i in range(300):
                assert rc.set(f"user:{i}", str(i))
            # Move every group node 1 leads to node 2 while the client keeps working: its
            # slot map is stale until it asks again, and the old master forwards meanwhile.
            with cluster.client(1) as client, contextlib.suppress(redis.ResponseError):
                client.execute_command("KVORUM", "TRANSFER", "2")
            for i in range(300, 400):
                assert rc.set(f"user:{i}", str(i))
            assert [rc.get(f"user:{i}") for i in (0, 199, 399)] == [b"0", b"199", b"399"]
            assert rc.mget("{u}a", "{u}b") == [None, None]
            assert rc.mset_nonatomic({"{u}a": "1", "{u}b": "2"}) is not None
            assert rc.mget("{u}a", "{u}b") == [b"1", b"2"]
            slot = rc.execute_command("CLUSTER KEYSLOT", "user:7")  # type: ignore[no-untyped-call]
            assert slot == rc.keyslot("user:7")  # type: ignore[no-untyped-call]
        finally:
            rc.close()

        redis_cli = shutil.which("redis-cli")
        if redis_cli is not None:
            out = subprocess.run(
                [redis_cli, "-c", "-p", str(ports[2]), "GET", "user:42"],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            assert out.stdout.strip() == "42"
