"""The operator's commands end to end: ``kvorum up`` (start, status, stop, resume with the
same data) and ``kvorum node --config FILE.toml``."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest
import redis
from cluster_harness import _port_pool, wait_until

KVORUM = [sys.executable, "-m", "kvorum"]


def consecutive_free_ports(count: int, avoid: frozenset[int] = frozenset()) -> int:
    """The first of ``count`` consecutive ports that are free now (from this worker's pool)."""
    pool = _port_pool()
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(pool.start, pool.stop - count)
        ports = range(base, base + count)
        if avoid & set(ports):
            continue
        try:
            socks = []
            for port in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no run of free ports")


def up_command(data_dir: Path, client_base: int, raft_base: int, *more: str) -> list[str]:
    taken = frozenset(range(client_base, client_base + 3)) | frozenset(
        range(raft_base, raft_base + 3)
    )
    admin = consecutive_free_ports(3, taken)
    return [*KVORUM, "up", "--data-dir", str(data_dir), "--client-port", str(client_base),
            "--raft-port", str(raft_base), "--admin-port", str(admin), *more]  # fmt: skip


def start_up(
    data_dir: Path, client_base: int, raft_base: int, seconds: float
) -> subprocess.Popen[str]:
    cmd = up_command(data_dir, client_base, raft_base, "--for-seconds", str(seconds))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_up_status_stop_and_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    up = start_up(data_dir, client_base, raft_base, seconds=8)
    try:
        wait_until(lambda: (data_dir / "cluster.json").exists() or None, 10, "cluster.json")
        client = redis.Redis(port=client_base, socket_timeout=5)
        wait_until(lambda: _try_set(client, "kept", "across restarts") or None, 15, "a write")
        status = subprocess.run(
            [*KVORUM, "status", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        rows = status.stdout.strip().splitlines()[1:]
        assert len(rows) == 3, status.stdout
        assert sum(" leader " in f" {r} " for r in rows) == 1, status.stdout
        out, _ = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, out
    assert "starting a new 3-node cluster" in out and "stopped" in out, out
    # Every node process is gone once `up` returns.
    for i in (1, 2, 3):
        assert not (data_dir / f"node{i}.pid").exists()

    again = start_up(data_dir, client_base, raft_base, seconds=6)
    try:
        client = redis.Redis(port=client_base + 1, socket_timeout=5)
        wait_until(
            lambda: _try_get(client, "kept") == b"across restarts" or None, 15, "the old data"
        )
        out, _ = again.communicate(timeout=30)
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()
    assert "resuming the 3-node cluster" in out, out


def test_node_from_a_toml_file(tmp_path: Path) -> None:
    client_port = consecutive_free_ports(1)
    raft_port = consecutive_free_ports(1, frozenset({client_port}))
    config = tmp_path / "node.toml"
    config.write_text(
        f'id = 1\ndata_dir = "{tmp_path / "n1"}"\ncluster_id = "toml-test"\n'
        f'[peers]\n1 = {{ raft = "127.0.0.1:{raft_port}", client = "127.0.0.1:{client_port}" }}\n'
    )
    proc = subprocess.Popen(
        [*KVORUM, "node", "--config", str(config), "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = redis.Redis(port=client_port, socket_timeout=5)
        wait_until(lambda: _try_set(client, "a", "1") or None, 15, "the node to serve")
        assert client.get("a") == b"1"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_data_folder_of_the_old_layout_is_refused_then_rebuilt(tmp_path: Path) -> None:
    client_port = consecutive_free_ports(1)
    raft_port = consecutive_free_ports(1, frozenset({client_port}))
    config = tmp_path / "node.toml"
    config.write_text(
        f'id = 1\ndata_dir = "{tmp_path / "n1"}"\ncluster_id = "upgrade-test"\n'
        f'[peers]\n1 = {{ raft = "127.0.0.1:{raft_port}", client = "127.0.0.1:{client_port}" }}\n'
    )
    command = [*KVORUM, "node", "--config", str(config), "--log-level", "WARNING"]

    def serve_once(check: Callable[[redis.Redis], object]) -> None:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            with redis.Redis(port=client_port, socket_timeout=5) as client:
                check(client)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
            assert proc.returncode == 0, out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    serve_once(lambda c: wait_until(lambda: _try_set(c, "kept", "1") or None, 15, "a write"))
    # What an older kvorum left in kv/: the single-group LMDB layout (format 1).
    kv_dir = tmp_path / "n1" / "kv"
    shutil.rmtree(kv_dir)
    env = lmdb.open(str(kv_dir), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"kkept", b"\x001", db=env.open_db(b"data", txn=txn))
        txn.put(b"applied_index", (3).to_bytes(8, "big"), db=env.open_db(b"meta", txn=txn))
    env.close()
    refused = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3, refused.stderr
    assert "refusing to start" in refused.stderr and "format 1" in refused.stderr
    # As the message says: delete the folder, and the node rebuilds it from its log.
    shutil.rmtree(kv_dir)
    serve_once(lambda c: wait_until(lambda: _try_get(c, "kept") == b"1" or None, 15, "a read"))


def test_node_with_a_broken_toml_file_says_so(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("id = 1\n[peers\n")
    proc = subprocess.run(
        [*KVORUM, "node", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr and str(config) in proc.stderr


def _try_set(client: redis.Redis, key: str, value: str) -> bool:
    try:
        return bool(client.set(key, value))
    except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
        time.sleep(0.1)
        return False


def _try_get(client: redis.Redis, key: str) -> bytes | None:
    try:
        value = client.get(key)
    except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
        time.sleep(0.1)
        return None
    return value if isinstance(value, bytes) else None


def test_up_refuses_taken_ports_at_once_and_names_the_holder(tmp_path: Path) -> None:
    # It once asked whatever listened on its client port for a leader, labelled its node 1
    # "(leader)" from the answer, and kept running with no node alive.
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", client_base + 1))
    squatter.listen()
    try:
        up = start_up(tmp_path / "cluster", client_base, raft_base, seconds=30)
        out, _ = up.communicate(timeout=30)
    finally:
        squatter.close()
    assert up.returncode == 2, out
    assert f"127.0.0.1:{client_base + 1}: held by pid {os.getpid()}" in out, out
    assert "node 1:" not in out and "leader" not in out, out
    assert not list((tmp_path / "cluster").glob("node*.pid")), "a node was started"


def test_up_says_which_options_a_resumed_cluster_ignores(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    first = start_up(data_dir, client_base, raft_base, seconds=1)
    first.communicate(timeout=60)
    again = subprocess.run(
        [*KVORUM, "up", "--data-dir", str(data_dir), "--groups", "4", "--for-seconds", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "resuming the 3-node cluster" in again.stdout, again.stdout
    assert "--groups ignored" in again.stdout, again.stdout
    assert "--client-port ignored" not in again.stdout, again.stdout


def test_up_restart_starts_a_killed_node_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    cmd = up_command(data_dir, client_base, raft_base, "--restart", "--for-seconds", "12")
    up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pid_file = data_dir / "node2.pid"
        wait_until(lambda: pid_file.exists() or None, 15, "node 2's pid file")
        client = redis.Redis(port=client_base + 1, socket_timeout=5)
        wait_until(lambda: _try_set(client, "k", "v") or None, 15, "a write through node 2")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        wait_until(lambda: _try_get(client, "k") == b"v" or None, 15, "node 2 serving again")
        out, _ = up.communicate(timeout=40)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert "node 2 exited with code -9; starting it again in 1 s" in out, out
    assert "node 2 started again" in out, out
    assert up.returncode == 0, out


def test_member_remove_stops_the_removed_node_of_an_up_cluster(tmp_path: Path) -> None:
    # A removed node once kept running as a pre-candidate answering CLUSTERDOWN.
    data_dir = tmp_path / "cluster"
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    cmd = up_command(data_dir, client_base, raft_base, "--restart", "--for-seconds", "15")
    up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = redis.Redis(port=client_base, socket_timeout=5)
        wait_until(lambda: _try_set(client, "k", "v") or None, 20, "a write")
        pid = int((data_dir / "node3.pid").read_text())
        removed = subprocess.run(
            [*KVORUM, "member", "remove", "3", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert "stopped node 3's process" in removed.stdout, removed.stdout
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        out, _ = up.communicate(timeout=40)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert "node 3 was removed from the cluster and has stopped" in out, out
    assert "node 3 started again" not in out, out
    assert up.returncode == 0, out


def test_a_cluster_with_a_password_serves_only_clients_that_give_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    env = {**os.environ, "KVORUM_PASSWORD": "s3cret"}
    cmd = up_command(data_dir, client_base, raft_base, "--for-seconds", "20")
    up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        good = redis.Redis(port=client_base + 1, password="s3cret", socket_timeout=5)
        wait_until(lambda: _try_set(good, "k", "v") or None, 20, "an authenticated write")
        assert good.get("k") == b"v"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=client_base, socket_timeout=5).get("k")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=client_base, password="wrong", socket_timeout=5).get("k")
        status = subprocess.run(
            [*KVORUM, "status", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=30, check=True, env=env,
        )  # fmt: skip
        assert sum(" leader " in f" {r} " for r in status.stdout.splitlines()[1:]) == 1
        refused = subprocess.run(
            [*KVORUM, "status", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=30, check=False,
            env={k: v for k, v in os.environ.items() if k != "KVORUM_PASSWORD"},
        )  # fmt: skip
        assert "NOAUTH" in refused.stdout + refused.stderr
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=30)
    assert "stopped" in out, out
