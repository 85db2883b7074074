"""A cluster whose keyspace is cut into several Raft groups, on real processes.

Every node hosts every group; keys are routed by hash slot. Commands on one key work through
any node; commands over keys in several groups are split and merged (DEL, EXISTS, MGET,
DBSIZE, SCAN) or refused with CROSSSLOT (MSET) as Redis Cluster proxies do; the data survives
a restart; and an idle cluster stops writing to disk (its groups quiesce).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from cluster_harness import Cluster, missing_or_wrong, set_with_retry, wait_until

from kvorum.shard.router import SlotRouter

pytestmark = pytest.mark.slow

GROUPS = 4


def keys_in_distinct_groups(count: int) -> list[str]:
    router = SlotRouter(list(range(GROUPS)))
    found: dict[int, str] = {}
    i = 0
    while len(found) < count:
        key = f"key{i}"
        found.setdefault(router.group_of(key.encode()), key)
        i += 1
    return list(found.values())


def test_a_multi_group_cluster_serves_routes_and_survives_a_restart(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, groups=GROUPS) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        status = cluster.status(1)
        assert status is not None and status["groups"]["count"] == GROUPS
        expected = {f"k{i}": str(i) for i in range(200)}
        with cluster.client(2) as client:
            for key, value in expected.items():
                set_with_retry(client, key, value)
        spread = keys_in_distinct_groups(GROUPS)
        with cluster.client(3) as client:
            assert missing_or_wrong(client, expected) == {}
            assert client.dbsize() == len(expected)
            assert client.mget(["k1", "nope", "k2", "k150"]) == [b"1", None, b"2", b"150"]
            assert client.exists(*spread[:2], "nope") == 0
            with pytest.raises(redis.ResponseError, match="hash to the same slot"):
                client.mset({spread[0]: "a", spread[1]: "b"})
            assert client.mset({"{tag}a": "a", "{tag}b": "b"})  # one slot: allowed
            expected.update({"{tag}a": "a", "{tag}b": "b"})
            for key in spread:
                client.set(key, "x")
            assert client.delete(*spread) == GROUPS
            scanned = set(client.scan_iter(count=17))
            assert scanned == {key.encode() for key in expected}
        # Every node leads some groups only: leadership is spread over the cluster.
        led = [set(cluster.status(i)["groups"]["leading"]) for i in (1, 2, 3)]  # type: ignore[index]
        assert set().union(*led) == set(range(GROUPS))
        cluster.stop(2)
        cluster.start(2)
        cluster.wait_ready(2)
        with cluster.client(2) as client:
            # The quiesced groups' leaders wake when they see node 2 restarted (a new
            # incarnation) and tell it who leads at once.
            wait_until(lambda: _serves(client, expected), 5, "node 2 serving again")


def _serves(client: redis.Redis, expected: dict[str, str]) -> bool:
    try:
        return missing_or_wrong(client, expected) == {}
    except redis.exceptions.ClusterDownError:
        return False


def test_an_idle_multi_group_cluster_stops_writing_to_disk(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, groups=GROUPS) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        with cluster.client(1) as client:
            for i in range(20):
                set_with_retry(client, f"k{i}", "v")

        def all_quiesced() -> bool:
            for node_id in (1, 2, 3):
                st = cluster.status(node_id)
                if st is None or st["groups"]["awake"] != 0:
                    return False
            return True

        wait_until(all_quiesced, 20, "every group quiesced on every node")
        fsyncs = {i: cluster.status(i)["stats"]["fsyncs"] for i in (1, 2, 3)}  # type: ignore[index]
        time.sleep(2.0)
        assert {i: cluster.status(i)["stats"]["fsyncs"] for i in (1, 2, 3)} == fsyncs  # type: ignore[index]
        with cluster.client(3) as client:  # and a write wakes its group at once
            assert client.set("k0", "w")
            assert client.get("k0") == b"w"
