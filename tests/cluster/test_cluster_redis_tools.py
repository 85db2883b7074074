"""The stock Redis tools work against a real kvorum cluster: redis-cli and redis-benchmark.

Theory of operation: both tools are run as subprocesses against the client port of a 3-node
cluster (through a follower for redis-cli, so its writes are forwarded to the leader, and the
leader for redis-benchmark). The tests are skipped where the tools are not installed
(``apt-get install -y redis-tools``). The benchmark is a compatibility check, not a
performance test: it must finish, report both commands, and see no error reply — redis-benchmark
prints ``Error from server`` for each one but still exits 0, so the output is searched.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
from cluster_harness import HOST, Cluster


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install -y redis-tools)")
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("redis-tools"), 3) as running:
        running.start_all()
        running.wait_for_leader()
        yield running


def _run(args: list[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_redis_cli_sets_and_gets_through_a_follower(cluster: Cluster) -> None:
    cli = _tool("redis-cli")
    leader = cluster.wait_for_leader()
    follower = next(i for i in cluster.members if i != leader)
    port = str(cluster.ports[follower].client_port)
    base = [cli, "-h", HOST, "-p", port]
    set_result = _run([*base, "SET", "a", "b"])
    assert (set_result.returncode, set_result.stdout.strip()) == (0, "OK"), set_result.stderr
    get_result = _run([*base, "GET", "a"])
    assert (get_result.returncode, get_result.stdout.strip()) == (0, "b"), get_result.stderr
    # Errors come back as Redis errors that redis-cli prints as such.
    unknown = _run([*base, "NOSUCHCOMMAND"])
    assert unknown.stdout.startswith("ERR unknown command 'NOSUCHCOMMAND'")  # no tty: no "(error)"
    with cluster.client(leader) as client:
        assert client.get("a") == b"b"


def test_redis_benchmark_set_get_completes_without_errors(cluster: Cluster) -> None:
    benchmark = _tool("redis-benchmark")
    leader = cluster.wait_for_leader()
    port = str(cluster.ports[leader].client_port)
    result = _run(
        [benchmark, "-h", HOST, "-p", port, "-t", "set,get", "-n", "2000", "-c", "8", "-q"],
        timeout_s=90,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Error" not in output and "ERR" not in output, output
    summary = [line for line in output.replace("\r", "\n").splitlines() if "requests per" in line]
    assert [line.split(":")[0] for line in summary] == ["SET", "GET"], output
    with cluster.client(leader) as client:
        # redis-benchmark writes its value under key:__rand_int__ (no -r: one literal key).
        assert client.exists("key:__rand_int__") == 1


def test_redis_cli_scan_lists_every_key_even_long_ones(cluster: Cluster) -> None:
    # Cursors once named the next key itself (one was 20 digits past 2**64) and redis-cli
    # gave up after the first page with "ERR invalid cursor".
    cli = _tool("redis-cli")
    port = str(cluster.ports[cluster.members[0]].client_port)
    base = [cli, "-h", HOST, "-p", port]
    keys = {f"scan:{i:03d}" for i in range(60)}
    keys |= {"scan:long:" + "x" * 300 + str(i) for i in range(5)}
    for chunk in (sorted(keys)[:30], sorted(keys)[30:]):
        pairs = [part for key in chunk for part in (key, "v")]
        assert _run([*base, "MSET", *pairs]).stdout.strip() == "OK"
    listed = _run([*base, "--scan", "--pattern", "scan:*"])
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == keys
