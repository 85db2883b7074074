"""A peer whose connections were reset (RST) is redialled, and hears from the cluster again.

Theory of operation: when a node dies with unread bytes in its socket buffers, the kernel
resets its connections instead of closing them, and the other nodes' senders see a dead
connection that is *not* at end-of-file. The test produces exactly that, deterministically:
node 3's Raft port is first held by a :class:`ResettingPeer` that accepts nodes 1 and 2,
reads their hellos and resets both connections while they elect a leader and heartbeat.
Then the stand-in goes away, the real node 3 starts on that port, and it must catch up with
the leader within a few reconnect back-offs — which needs nodes 1 and 2 to have kept
redialling it.
"""

from __future__ import annotations

from pathlib import Path

from cluster_harness import Cluster, ResettingPeer, missing_or_wrong, wait_until


def test_a_node_behind_reset_connections_is_redialled(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        with ResettingPeer(cluster.ports[3].raft_port) as stand_in:
            cluster.start(1)
            cluster.start(2)
            leader = cluster.wait_for_leader([1, 2])
            expected = {f"k{n}": str(n) for n in range(20)}
            with cluster.client(leader) as client:
                for key, value in expected.items():
                    assert client.set(key, value)
            # Both nodes dialled "node 3" and were reset at least once.
            wait_until(lambda: stand_in.resets >= 2, 10, "both nodes to be reset by node 3")

        cluster.start(3)
        cluster.wait_ready(3)
        leader_status = cluster.status(leader)
        assert leader_status is not None
        # The longest reconnect back-off is 5 s: a few of them is plenty.
        caught_up = cluster.wait_applied(3, leader_status["commit"], timeout_s=20)
        assert caught_up["leader"] == leader
        with cluster.client(3) as client:
            assert missing_or_wrong(client, expected) == {}
