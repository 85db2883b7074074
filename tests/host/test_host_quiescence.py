"""Idle groups quiesce, cost nothing, and wake when they must: the host on a simulated cluster.

Each test builds a small simulated cluster (the real NodeHost over in-memory storage), lets
virtual time run, and looks at the hosts: which groups tick, what crosses the network, how
often the log syncs, and whether a follower of a quiesced group still elects a new leader
when the leader's node dies.
"""

from __future__ import annotations

from kvorum.core.raft import RaftConfig
from kvorum.sim.machine import TICK_US
from kvorum.sim.raft.cluster import RaftCluster
from kvorum.sim.world import World


def cluster(groups: int = 3, nodes: int = 3, seed: int = 7, quiesce: int = 20) -> RaftCluster:
    config = RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=2)
    c = RaftCluster(
        World(seed), nodes, config, groups=groups, clients=0, quiesce_after_ticks=quiesce
    )
    c.start()
    return c


def run_ticks(c: RaftCluster, ticks: int) -> None:
    c.world.run_until(c.world.now_us + ticks * TICK_US)


def leaders(c: RaftCluster, gid: int) -> list[int]:
    return [n.id for n in c.nodes.values() if n.up and n.core(gid).is_leader]


def test_idle_groups_quiesce_on_every_node_and_stop_syncing() -> None:
    c = cluster()
    run_ticks(c, 200)
    for node in c.nodes.values():
        assert node.host.awake_groups() == 0, f"n{node.id} still ticks groups"
    syncs = {n.id: n.node_log.syncs for n in c.nodes.values()}
    sent = c.network.sent
    run_ticks(c, 500)
    assert {n.id: n.node_log.syncs for n in c.nodes.values()} == syncs, "an idle node synced"
    # Only liveness pings cross the network: one per ordered node pair per interval.
    interval_ticks = c.host_config.heartbeat_interval_ms * 1000 / TICK_US
    pings_bound = 6 * 500 / interval_ticks * 1.2
    assert c.network.sent - sent <= pings_bound
    for gid in c.group_ids:
        assert len(leaders(c, gid)) == 1


def test_without_quiescence_groups_keep_ticking_and_heartbeating() -> None:
    # The same cluster with quiescence off: proves the test above measures quiescence.
    c = cluster(quiesce=0)
    run_ticks(c, 200)
    assert all(n.host.awake_groups() == 3 for n in c.nodes.values())
    sent = c.network.sent
    run_ticks(c, 500)
    interval_ticks = c.host_config.heartbeat_interval_ms * 1000 / TICK_US
    assert c.network.sent - sent > 6 * 500 / interval_ticks * 1.2


def test_heartbeats_of_all_groups_travel_together() -> None:
    c = cluster(groups=8, quiesce=0)
    run_ticks(c, 100)
    stats = {n.id: n.host.stats for n in c.nodes.values()}
    # Eight groups with leaders spread over three nodes, yet each node sends at most one
    # NodeHeartbeat per peer per round: far fewer than one per group per interval.
    sent = sum(s.node_heartbeats_sent for s in stats.values())
    assert sent < 8 * 2 * 100 / 2


def test_a_quiesced_group_wakes_and_elects_when_its_leaders_node_dies() -> None:
    c = cluster()
    run_ticks(c, 200)
    assert all(n.host.awake_groups() == 0 for n in c.nodes.values())
    led = {gid: leaders(c, gid)[0] for gid in c.group_ids}
    victim = led[0]
    c.nodes[victim].crash()
    run_ticks(c, 100)
    for gid, old in led.items():
        now = [i for i in leaders(c, gid) if i != victim]
        if old == victim:
            assert len(now) == 1, f"group {gid} elected no leader after its leader died"
        else:
            assert now == [old]
    woken = sum(n.host.stats.wakes for n in c.nodes.values() if n.up)
    assert woken > 0


def test_a_write_wakes_a_quiesced_group_and_it_quiesces_again() -> None:
    from kvorum.host.waiters import CallbackWaiter
    from kvorum.kv.commands import check_command, encode_write

    c = cluster(groups=1)
    run_ticks(c, 200)
    leader = c.nodes[leaders(c, 0)[0]]
    assert leader.host.is_quiesced(0)
    follower = next(n for n in c.nodes.values() if n is not leader)
    results: list[object] = []
    args = [b"SET", b"k", b"v"]
    spec = check_command(args, 0)
    payload = encode_write(spec, args, 0)  # type: ignore[arg-type]
    follower.host.submit_writes(0, [payload], CallbackWaiter(lambda r, e: results.append(r or e)))
    follower.pump()
    run_ticks(c, 10)
    assert results == [["OK"]]
    run_ticks(c, 200)
    assert all(n.host.is_quiesced(0) for n in c.nodes.values())
    assert all(n.machine_of(0).read([b"GET", b"k"], 0) == b"v" for n in c.nodes.values())


def test_a_quiesced_leader_cut_off_from_its_followers_steps_down() -> None:
    # Asleep, a leader runs no CheckQuorum: unless suspecting its followers wakes it, one cut
    # off from them calls itself leader for ever (simulator seed 422, where the majority
    # then removed it, so no newer leader ever wrote to it).
    from kvorum.sim.partitions import isolate

    c = cluster(groups=1)
    run_ticks(c, 200)
    old = leaders(c, 0)[0]
    assert c.nodes[old].host.is_quiesced(0)
    c.network.block(isolate(old, list(c.nodes)))
    run_ticks(c, 300)
    assert not c.nodes[old].core(0).is_leader, "the cut-off leader never stepped down"
    assert not c.nodes[old].host.is_quiesced(0)
    others = [i for i in leaders(c, 0) if i != old]
    assert len(others) == 1, "the majority elected no leader"


def test_steady_reads_keep_a_group_awake_and_all_succeed() -> None:
    # Reads are activity: a leader serving them neither quiesces between them (each wake
    # voids its lease and restarts CheckQuorum) nor loses its followers' attention.
    from kvorum.host.waiters import CallbackWaiter

    c = cluster(groups=1)
    run_ticks(c, 200)
    leader = c.nodes[leaders(c, 0)[0]]
    term = leader.core(0).term
    quiesces = leader.host.stats.quiesces
    outcomes: list[object] = []
    for _ in range(100):
        waiter = CallbackWaiter(lambda r, e: outcomes.append(e if e is not None else "ok"))
        leader.host.submit_reads(0, lambda: None, waiter)
        leader.pump()
        run_ticks(c, 5)
    assert leader.host.stats.quiesces == quiesces, "the group quiesced between reads"
    assert outcomes == ["ok"] * 100
    run_ticks(c, 200)
    assert all(n.host.is_quiesced(0) for n in c.nodes.values()), "idle again, yet awake"
    assert leaders(c, 0) == [leader.id] and leader.core(0).term == term


def _lease_cluster() -> RaftCluster:
    config = RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=2)
    c = RaftCluster(
        World(7), 3, config, groups=1, clients=0, lease_reads=True, quiesce_after_ticks=0
    )
    c.start()
    return c


def _read_served_at_once(c: RaftCluster, drop_ticks: bool) -> bool:
    """Whether the leader answers a read in its own round, before any message comes back:
    only a lease allows that. With ``drop_ticks`` the host first drops ticks (it fell behind
    by more than ``max_pending_ticks``)."""
    from dataclasses import replace

    from kvorum.host.waiters import CallbackWaiter

    run_ticks(c, 100)
    leader = c.nodes[leaders(c, 0)[0]]
    host = leader.host
    host.config = replace(host.config, max_pending_ticks=2)
    if drop_ticks:
        for _ in range(3):
            host.tick()
    outcomes: list[object] = []
    host.submit_reads(0, lambda: "v", CallbackWaiter(lambda r, e: outcomes.append(r)))
    leader.pump()
    return outcomes == ["v"]


def test_a_leader_serves_reads_on_its_lease() -> None:
    assert _read_served_at_once(_lease_cluster(), drop_ticks=False)


def test_dropped_ticks_void_the_lease() -> None:
    # A host that drops ticks counts time slower than it passes; its leaders' leases, kept
    # in ticks, would then outlive the followers' promise not to elect another.
    assert not _read_served_at_once(_lease_cluster(), drop_ticks=True)
