"""A node whose disk fills up: writes get a clear error, reads go on, nothing acknowledged is
lost, and writes resume by themselves once space is back.

The disk is "filled" through the file system's test-only switch (a flag file that makes free
space read as zero: see ``kvorum.storage.fs.DISK_FULL_FLAG_ENV``), so the test needs no small
file system of its own.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from cluster_harness import Cluster, missing_or_wrong, set_with_retry, wait_until

from kvorum.storage.fs import DISK_FULL_FLAG_ENV

pytestmark = pytest.mark.slow


def test_writes_are_refused_while_the_disk_is_full_and_resume_after(tmp_path: Path) -> None:
    flag = tmp_path / "disk-is-full"
    with Cluster(tmp_path, 3, env={DISK_FULL_FLAG_ENV: str(flag)}) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        expected = {f"before{i}": str(i) for i in range(20)}
        with cluster.client(2) as client:
            for key, value in expected.items():
                set_with_retry(client, key, value)
        flag.touch()  # every node's disk now reads as full

        def refused() -> bool:
            with cluster.client(1) as client:
                try:
                    client.set("probe", "x")
                except redis.ResponseError as exc:
                    return str(exc).startswith("disk full")
            return False

        wait_until(refused, 10, "writes refused with a disk-full error")
        for node_id in (1, 2, 3):
            with cluster.client(node_id) as client:
                with pytest.raises(redis.ResponseError, match="disk full"):
                    client.set("during", "x")
                # Reads go on, linearizable ones included.
                assert missing_or_wrong(client, expected) == {}
        flag.unlink()

        def accepted() -> bool:
            with cluster.client(3) as client:
                try:
                    return bool(client.set("after", "yes"))
                except redis.ResponseError:
                    time.sleep(0.05)
                    return False

        wait_until(accepted, 10, "writes accepted once space is back")
        expected["after"] = "yes"
        with cluster.client(1) as client:
            assert missing_or_wrong(client, expected) == {}
            assert client.get("during") is None
        for node_id in (1, 2, 3):
            assert "disk space low" in cluster.log_text(node_id)
