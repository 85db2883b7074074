"""A busy group cannot pile up unbounded work: writes beyond its pending budget are refused
(retryable), and the host keeps serving the other groups."""

from __future__ import annotations

from typing import Any

from kvorum.core.raft import RaftConfig
from kvorum.host.errors import RetryableError
from kvorum.host.group import GroupConfig
from kvorum.host.waiters import CallbackWaiter
from kvorum.kv.commands import check_command, encode_write
from kvorum.sim.machine import TICK_US
from kvorum.sim.raft.cluster import RaftCluster
from kvorum.sim.world import World


def payload(key: bytes, value: bytes) -> bytes:
    args = [b"SET", key, value]
    spec = check_command(args, 0)
    return encode_write(spec, args, 0)  # type: ignore[arg-type]


def test_writes_beyond_a_groups_budget_are_refused_and_others_go_on() -> None:
    c = RaftCluster(
        World(3), 3, RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=2),
        groups=2, clients=0,
    )
    c.group_config = GroupConfig(max_pending_write_bytes=10_000)
    c.start()
    c.world.run_until(c.world.now_us + 50 * TICK_US)
    node = c.nodes[1]
    for group in node.host.groups.values():
        group.config = c.group_config
    outcomes: list[Any] = []
    big = b"x" * 4_000
    keys = [k for k in (b"k%d" % i for i in range(100)) if c.router.group_of(k) == 0][:5]
    for key in keys:  # 20 kB for group 0 in one go: the 10 kB budget takes two of them
        node.host.submit_writes(
            0, [payload(key, big)], CallbackWaiter(lambda r, e: outcomes.append(e or r))
        )
    refused = [o for o in outcomes if isinstance(o, RetryableError)]
    assert len(refused) == 3 and "slow down" in refused[0].message
    other: list[Any] = []
    waiter = CallbackWaiter(lambda r, e: other.append(e or r))
    other_key = next(k for k in (b"o%d" % i for i in range(100)) if c.router.group_of(k) == 1)
    node.host.submit_writes(1, [payload(other_key, b"v")], waiter)
    node.pump()
    c.world.run_until(c.world.now_us + 20 * TICK_US)
    assert other == [["OK"]]
    assert [o for o in outcomes if not isinstance(o, RetryableError)] == [["OK"]] * 2
