"""MULTI/EXEC and WATCH on a real multi-group cluster, through redis-py as applications use
them: pipelines with transaction=True, optimistic locking with WATCH from other nodes, and
Redis Cluster's rule that a transaction stays in one slot's group."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from cluster_harness import Cluster

pytestmark = pytest.mark.slow


def test_transactions_are_atomic_watched_and_kept_to_one_group(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, groups=4) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        ports = [cluster.ports[i].client_port for i in cluster.members]
        a = redis.Redis(port=ports[0], socket_timeout=10)
        b = redis.Redis(port=ports[2], socket_timeout=10)

        pipe = a.pipeline(transaction=True)
        pipe.set("{acct}x", 10)
        pipe.incrby("{acct}x", 5)
        pipe.get("{acct}x")
        pipe.set("{acct}y", "z")
        assert pipe.execute() == [True, 15, b"15", True]
        assert b.mget("{acct}x", "{acct}y") == [b"15", b"z"]

        # Keys of different groups cannot be one entry: refused whole, nothing applied.
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            cross = a.pipeline(transaction=True)
            cross.set("k-one", 1)
            cross.set("k-two-other", 2)
            cross.execute()
        assert a.exists("k-one", "k-two-other") == 0

        # Optimistic locking: a transfer retried until no one else touched the balance.
        a.set("{acct}bal", 100)
        spent: list[int] = []
        failures: list[Exception] = []

        def spend(client: redis.Redis, amount: int) -> None:
            def work(pipe: redis.client.Pipeline) -> None:
                balance = int(pipe.get("{acct}bal") or 0)
                pipe.multi()
                pipe.set("{acct}bal", balance - amount)

            try:
                for _ in range(20):
                    client.transaction(work, "{acct}bal")
                    spent.append(amount)
            except Exception as exc:  # shown by the assertion below
                failures.append(exc)

        workers = [threading.Thread(target=spend, args=(c, n)) for c, n in ((a, 1), (b, 2))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        # Every retried transaction applied exactly once: no lost update.
        assert failures == []
        assert int(a.get("{acct}bal") or 0) == 100 - sum(spent) == 100 - 20 - 40

        # A write from another node between WATCH and EXEC aborts the EXEC.
        with a.pipeline(transaction=True) as pipe:
            pipe.watch("{acct}w")  # type: ignore[no-untyped-call]
            b.set("{acct}w", "theirs")
            pipe.multi()
            pipe.set("{acct}w", "mine")
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert a.get("{acct}w") == b"theirs"
