"""A cluster across "hosts": each node in its own network namespace with its own address,
started from a TOML file as an operator would, reached by a client in a fourth namespace.

Theory of operation: the test builds a tiny network of its own (Linux network namespaces,
one per node and one for the client, each joined by a veth pair to a bridge in a "switch"
namespace), so nothing touches the machine's own interfaces and two runs never meet (names
and the /24 are drawn per run). Each node gets a TOML file naming its peers by those
addresses and is started inside its namespace with ``ip netns exec``; a node can then only
bind and dial the address it was given. Needs root and iproute2 (CI runs as root); skipped
otherwise.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

IP = shutil.which("ip")


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def _can_make_namespaces() -> bool:
    if IP is None or os.geteuid() != 0:
        return False
    name = f"kvprobe{os.getpid()}"
    if _sh(IP, "netns", "add", name, check=False).returncode != 0:
        return False
    _sh(IP, "netns", "del", name, check=False)
    return True


class Network:
    """Namespaces ``<tag>n1..n3`` (nodes), ``<tag>cl`` (client) and ``<tag>sw`` (bridge)."""

    def __init__(self) -> None:
        assert IP is not None
        self.tag = f"kv{random.randrange(16**4):04x}"
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
        self.names: list[str] = []

    def ns(self, who: str) -> str:
        return f"{self.tag}{who}"

    def address(self, host_number: int) -> str:
        return f"{self.subnet}.{host_number}"

    def build(self, hosts: dict[str, int]) -> None:
        assert IP is not None
        switch = self.ns("sw")
        self._add(switch)
        _sh(IP, "-n", switch, "link", "add", "br0", "type", "bridge")
        _sh(IP, "-n", switch, "link", "set", "br0", "up")
        for who, number in hosts.items():
            ns = self.ns(who)
            self._add(ns)
            inside, outside = f"{self.tag}{who}i", f"{self.tag}{who}o"
            _sh(IP, "link", "add", inside, "type", "veth", "peer", "name", outside)
            _sh(IP, "link", "set", inside, "netns", ns)
            _sh(IP, "link", "set", outside, "netns", switch)
            _sh(IP, "-n", switch, "link", "set", outside, "master", "br0")
            _sh(IP, "-n", switch, "link", "set", outside, "up")
            _sh(IP, "-n", ns, "addr", "add", f"{self.address(number)}/24", "dev", inside)
            _sh(IP, "-n", ns, "link", "set", inside, "up")
            _sh(IP, "-n", ns, "link", "set", "lo", "up")

    def _add(self, name: str) -> None:
        assert IP is not None
        _sh(IP, "netns", "add", name)
        self.names.append(name)

    def teardown(self) -> None:
        assert IP is not None
        for name in reversed(self.names):
            _sh(IP, "netns", "del", name, check=False)

    def run_in(self, who: str, *args: str) -> list[str]:
        assert IP is not None
        return [IP, "netns", "exec", self.ns(who), *args]


@pytest.fixture
def network() -> Iterator[Network]:
    if not _can_make_namespaces():
        pytest.skip("needs root and iproute2 to make network namespaces")
    net = Network()
    try:
        net.build({"n1": 1, "n2": 2, "n3": 3, "cl": 9})
        yield net
    finally:
        net.teardown()


def _toml(net: Network, node_id: int, data_dir: Path) -> str:
    peers = "\n".join(
        f'{i} = {{ raft = "{net.address(i)}:17001", client = "{net.address(i)}:7001" }}'
        for i in (1, 2, 3)
    )
    return (
        f'id = {node_id}\ndata_dir = "{data_dir}"\ncluster_id = "{net.tag}"\n'
        f'admin = "{net.address(node_id)}:8001"\n[peers]\n{peers}\n'
    )


CLIENT = """
import sys, time, redis
host, action = sys.argv[1], sys.argv[2]
r = redis.Redis(host=host, port=7001, socket_timeout=5)
deadline = time.monotonic() + 30
while True:
    try:
        if action == "write":
            for i in range(50):
                r.set(f"k{i}", i)
            print("ok")
        else:
            print(",".join((r.get(f"k{i}") or b"-").decode() for i in range(50)))
        break
    except redis.RedisError as exc:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.3)
"""


def test_a_cluster_of_namespaced_hosts_from_toml_files(network: Network, tmp_path: Path) -> None:
    procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(node_id: int) -> None:
        config = tmp_path / f"node{node_id}.toml"
        config.write_text(_toml(network, node_id, tmp_path / f"data{node_id}"))
        with open(tmp_path / f"node{node_id}.log", "ab") as log:  # the child keeps its copy
            procs[node_id] = subprocess.Popen(
                network.run_in(f"n{node_id}", sys.executable, "-m", "kvorum", "node",
                               "--config", str(config)),
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def client(host: int, action: str) -> str:
        out = subprocess.run(
            network.run_in("cl", sys.executable, "-c", CLIENT, network.address(host), action),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr + _logs(tmp_path)
        return out.stdout.strip()

    try:
        for node_id in (1, 2, 3):
            start(node_id)
        assert client(2, "write") == "ok"
        expected = ",".join(str(i) for i in range(50))
        assert client(3, "read") == expected
        # A host dies: the other two keep serving; it comes back and has everything.
        procs[1].kill()
        procs[1].wait()
        assert client(2, "read") == expected
        start(1)
        assert client(1, "read") == expected
        # Its admin endpoint answers on its own address, and nowhere else.
        health = subprocess.run(
            network.run_in("cl", sys.executable, "-c",
                           "import urllib.request,sys;"
                           f"print(urllib.request.urlopen('http://{network.address(1)}:8001"
                           "/health?live', timeout=5).status)"),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert health.stdout.strip() == "200", health.stderr
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _logs(tmp_path: Path) -> str:
    return "".join(
        f"\n--- {p.name}\n" + p.read_text(errors="replace")[-2000:]
        for p in sorted(tmp_path.glob("node*.log"))
    )
