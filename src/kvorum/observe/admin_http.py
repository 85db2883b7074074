"""The node's admin endpoint: ``/metrics``, ``/status`` and ``/health`` over HTTP.

Theory of operation: an aiohttp server on the node's event loop, beside the Redis listener and
the peer transport, on its own address (``admin`` in the node's TOML file, ``--admin`` on the
command line). Every handler only reads the node, so serving it never blocks a round:

- ``/metrics``: the node's registry (:mod:`kvorum.observe.node_metrics`) in Prometheus's text
  format.
- ``/status``: what ``KVORUM STATUS`` answers, as JSON (``?group=G`` for another group).
- ``/health``: ``{"live": true, "ready": ..., "problems": [...]}``. *Live* means the event loop
  answers at all (a stuck loop times the probe out). *Ready* means the node can serve: no
  fatal error, the disk has room, and every group knows a leader. 200 when ready, else 503,
  which is what a load balancer or a Kubernetes readiness probe acts on; ``/health?live``
  answers 200 whenever the loop runs, for liveness probes.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kvorum.observe.node_metrics import node_registry
from kvorum.runtime.transport import parse_address

if TYPE_CHECKING:
    from kvorum.runtime.node import KvorumNode
    from kvorum.server.server import RespServer

log = logging.getLogger(__name__)


class AdminHttp:
    """Serves one node's admin endpoint until :meth:`close`."""

    def __init__(self, node: KvorumNode, server: RespServer | None, address: str) -> None:
        self._node = node
        self._address = address
        self._registry = node_registry(node, server)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = 0

    async def start(self) -> None:
        host, port = parse_address(self._address)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses  # tells the port when 0 was asked for
        self.port = int(bound[0][1]) if bound else port
        log.info("node %d: admin endpoint on http://%s:%d", self._node.config.node_id, host,
                 self.port)  # fmt: skip

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: web.Request) -> web.Response:
        raw = request.query.get("group", "0")
        if not raw.isdigit() or int(raw) not in self._node.host.groups:
            return _json({"error": f"no group {raw!r} on this node"}, 404)
        return _json(self._node.admin_commands.status(int(raw)), 200)

    async def _health(self, request: web.Request) -> web.Response:
        if "live" in request.query:
            return _json({"live": True}, 200)
        problems = self.problems()
        return _json({"live": True, "ready": not problems, "problems": problems},
                     200 if not problems else 503)  # fmt: skip

    def problems(self) -> list[str]:
        """Why the node is not ready to serve (empty: it is)."""
        node = self._node
        problems = []
        if node.fatal_error is not None:
            problems.append(f"stopped by a fatal error: {node.fatal_error!r}")
        if node.host.disk_full:
            problems.append("disk full: writes are refused")
        leaderless = [g for g, grp in node.host.groups.items() if grp.core.leader_id is None]
        if leaderless:
            shown = ", ".join(map(str, leaderless[:8])) + (" ..." if len(leaderless) > 8 else "")
            problems.append(f"{len(leaderless)} group(s) without a known leader: {shown}")
        return problems


def _json(body: object, status: int) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")
