"""The admin endpoint of real nodes: /metrics parsed as Prometheus parses it, /status, and
/health turning unready when the node's groups lose their leader."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from cluster_harness import wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_cluster_cli import consecutive_free_ports, up_command


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""  # not listening yet


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_status_and_health_of_a_running_cluster(tmp_path: Path) -> None:
    data_dir = tmp_path / "cluster"
    client_base = consecutive_free_ports(3)
    raft_base = consecutive_free_ports(3, frozenset(range(client_base, client_base + 3)))
    cmd = up_command(data_dir, client_base, raft_base, "--groups", "4", "--for-seconds", "60")
    admin_base = int(cmd[cmd.index("--admin-port") + 1])
    up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{admin_base}"
    try:
        client = redis.Redis(port=client_base, socket_timeout=5)
        wait_until(lambda: _get(base_url + "/health")[0] == 200 or None, 20, "a ready node 1")
        for i in range(50):
            client.set(f"k{i}", "v")
        assert client.get("k7") == b"v"
        with pytest.raises(redis.ResponseError):
            client.execute_command("NOSUCHCOMMAND")  # type: ignore[no-untyped-call]

        status, body = _get(base_url + "/metrics")
        assert status == 200
        samples = _samples(body.decode())
        assert samples[("kvorum_requests_total", (("command", "set"), ("result", "ok")))] == 50
        assert samples[("kvorum_requests_total", (("command", "get"), ("result", "ok")))] >= 1
        assert samples[("kvorum_requests_total", (("command", "other"), ("result", "error")))] >= 1
        assert samples[("kvorum_request_seconds_count", ())] >= 52
        assert samples[("kvorum_groups", ())] == 4
        assert samples[("kvorum_fsyncs_total", ())] > 0
        assert samples[("kvorum_persist_seconds_count", ())] > 0
        assert samples[("kvorum_wal_bytes", ())] > 0
        roles = {labels: v for (name, labels), v in samples.items() if name == "kvorum_group_role"}
        for gid in range(4):
            # Exactly one role holds for each group.
            assert sum(v for labels, v in roles.items() if ("group", str(gid)) in labels) == 1
        assert samples[("kvorum_peer_connected", (("peer", "2"),))] == 1

        status, body = _get(base_url + "/status?group=2")
        assert status == 200 and json.loads(body)["group"] == 2
        assert _get(base_url + "/status?group=99")[0] == 404

        # Stop nodes 2 and 3: node 1's groups lose their leaders and it is no longer ready.
        for i in (2, 3):
            pid = int((data_dir / f"node{i}.pid").read_text())
            subprocess.run(["kill", "-STOP", str(pid)], check=True)
        wait_until(lambda: _get(base_url + "/health")[0] == 503 or None, 20, "unready")
        health = json.loads(_get(base_url + "/health")[1])
        assert health["live"] and not health["ready"]
        assert any("without a known leader" in p for p in health["problems"]), health
        assert _get(base_url + "/health?live")[0] == 200
        for i in (2, 3):
            pid = int((data_dir / f"node{i}.pid").read_text())
            subprocess.run(["kill", "-CONT", str(pid)], check=True)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.communicate()
