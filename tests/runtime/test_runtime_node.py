"""The node runtime in-process: a one-node cluster over real files and sockets.

Multi-process behaviour (kill -9, catch-up, membership) is tested in tests/cluster; these
tests pin down the node's own contracts: writes reply after they are applied, data survives a
restart, and the engine is rebuilt from snapshot + WAL after a crash across a reboot.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest

from kvorum.kv.commands import CommandSpec, check_command, encode_write
from kvorum.kv.replies import Reply
from kvorum.runtime.datadir import EngineGuard
from kvorum.runtime.node import KvorumNode, NodeConfig, PeerAddress
from kvorum.server.executor import Consistency


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def one_node_config(data_dir: Path, snapshot_every: int = 20_000) -> NodeConfig:
    peers = {1: PeerAddress(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")}
    return NodeConfig(
        node_id=1, data_dir=data_dir, peers=peers, tick_ms=5, snapshot_every_entries=snapshot_every
    )


def write(args: list[bytes]) -> bytes:
    spec = check_command(args, 0)
    assert isinstance(spec, CommandSpec)
    return encode_write(spec, args, 1_000)


async def until_leader(node: KvorumNode) -> None:
    for _ in range(400):
        if node.core.is_leader:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a one-node cluster elects itself")


async def run_writes(config: NodeConfig, count: int) -> list[Reply]:
    node = KvorumNode(config)
    await node.start()
    try:
        await until_leader(node)
        replies: list[Reply] = []
        for i in range(count):
            replies += await node.write_batch([write([b"SET", b"k%d" % i, b"v%d" % i])])
        return replies
    finally:
        await node.close()


async def read_all(config: NodeConfig, count: int) -> list[Reply]:
    node = KvorumNode(config)
    await node.start()
    try:
        await until_leader(node)
        requests = [[b"GET", b"k%d" % i] for i in range(count)]
        replies: list[Reply] = await node.read_batch(requests, Consistency.LINEARIZABLE)
        return replies
    finally:
        await node.close()


def test_writes_survive_restart(tmp_path: Path) -> None:
    config = one_node_config(tmp_path / "n1")
    assert asyncio.run(run_writes(config, 30)) == ["OK"] * 30
    assert asyncio.run(read_all(config, 30)) == [b"v%d" % i for i in range(30)]


def test_engine_rebuilt_from_snapshot_and_wal_after_reboot(tmp_path: Path) -> None:
    config = one_node_config(tmp_path / "n1", snapshot_every=10)
    asyncio.run(run_writes(config, 35))
    # Pretend the machine crashed and rebooted while the node ran: unclean, another boot.
    state = tmp_path / "n1" / "engine-state.json"
    state.write_text(json.dumps({"boot_id": "another-boot", "clean": False}))
    (tmp_path / "n1" / "kv" / "data.mdb").write_bytes(b"garbage from a torn page")
    assert asyncio.run(read_all(config, 35)) == [b"v%d" % i for i in range(35)]


def test_engine_kept_after_process_crash_on_the_same_boot(tmp_path: Path) -> None:
    data = tmp_path / "n1"
    (data / "kv").mkdir(parents=True)
    marker = data / "kv" / "keep"
    marker.write_bytes(b"x")
    EngineGuard(data, data / "kv")  # running; now "crash" without closing
    EngineGuard(data, data / "kv")  # restart on the same boot: the page cache kept LMDB intact
    assert marker.exists()
    state = json.loads((data / "engine-state.json").read_text())
    state["boot_id"] = "another-boot"
    (data / "engine-state.json").write_text(json.dumps(state))
    EngineGuard(data, data / "kv")
    assert not marker.exists()


def test_forwarded_replies_round_trip() -> None:
    from kvorum.kv.replies import ErrorReply, Verbatim
    from kvorum.kv.results import pack_replies, unpack_replies

    replies: list[Reply] = [
        b"bulk",
        "OK",
        7,
        None,
        [b"a", 1],
        True,
        1.5,
        ErrorReply("ERR x"),
        Verbatim("text"),
    ]
    assert unpack_replies(pack_replies(replies)) == replies
    assert msgpack.unpackb(msgpack.packb([b"x"])) == [b"x"]


@pytest.mark.parametrize("count", [1, 64])
def test_batch_of_writes_is_one_entry(tmp_path: Path, count: int) -> None:
    async def go() -> tuple[int, list[object]]:
        node = KvorumNode(one_node_config(tmp_path / f"n{count}"))
        await node.start()
        try:
            await until_leader(node)
            before = node.raft_status()["stats"]["proposals"]
            payloads = [write([b"INCR", b"c"]) for _ in range(count)]
            replies = await node.write_batch(payloads)
            return node.raft_status()["stats"]["proposals"] - before, list(replies)
        finally:
            await node.close()

    proposals, replies = asyncio.run(go())
    assert proposals == 1
    assert replies == list(range(1, count + 1))


def test_a_node_holds_its_snapshot_as_a_file_view_not_as_bytes(tmp_path: Path) -> None:
    from kvorum.storage.snapshots import SnapshotFileData

    config = one_node_config(tmp_path / "n1", snapshot_every=10)
    asyncio.run(run_writes(config, 35))

    async def check() -> None:
        node = KvorumNode(config)  # restarted: the snapshot comes from its file
        await node.start()
        try:
            snap = node.core.snapshot
            assert snap is not None and isinstance(snap.data, SnapshotFileData)
            engine_chunks = b"".join(node.node_log.snapshot_store(0).chunks(snap.meta))
            assert snap.data[0 : len(snap.data)] == engine_chunks
        finally:
            await node.close()

    asyncio.run(check())


def test_a_seeded_node_makes_the_same_random_choices(tmp_path: Path) -> None:
    # The node's randomness comes from one seeded generator (logged, and shown by KVORUM
    # STATUS), so a run can be replayed: same seed, same incarnation, same election timeouts.
    async def choices(data_dir: Path, seed: int | None) -> tuple[int, int, list[int]]:
        config = replace(one_node_config(data_dir), seed=seed)
        node = KvorumNode(config)
        await node.start()
        try:
            timeouts = [g.core.randomized_election_timeout for g in node.host.groups.values()]
            return node.seed, node.host.incarnation, timeouts
        finally:
            await node.close()

    first = asyncio.run(choices(tmp_path / "a", 42))
    again = asyncio.run(choices(tmp_path / "b", 42))
    other = asyncio.run(choices(tmp_path / "c", None))
    assert first == again and first[0] == 42
    assert other[0] != 42 and other[1] != first[1]
