"""Run one kvorum node in this process: Raft node, peer transport, RESP server and (when
configured) the HTTP admin endpoint together.

Theory of operation: :func:`serve` opens the node's storage, starts its transport and its
Redis-protocol listener, then waits for SIGINT or SIGTERM and shuts everything down in
reverse order, so that a Ctrl-C never leaves a half-written file behind (and a kill -9 is
survived anyway: everything acknowledged was fsynced first). uvloop drives the event loop when
it is installed; the plain asyncio loop otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from kvorum.kv.commands import COMMANDS
from kvorum.observe.admin_http import AdminHttp
from kvorum.observe.recorders import RequestCounts
from kvorum.runtime.node import KvorumNode, NodeConfig
from kvorum.runtime.transport import parse_address
from kvorum.server.server import RespServer, ServerConfig

log = logging.getLogger(__name__)


async def serve(config: NodeConfig, on_ready: Callable[[KvorumNode], None] | None = None) -> None:
    """Run the node until SIGINT/SIGTERM (or cancellation)."""
    node = KvorumNode(config)
    host, port = parse_address(config.me.client)
    server = RespServer(
        node,
        ServerConfig(
            host=host,
            port=port,
            max_bulk_bytes=config.max_value_bytes,
            requirepass=config.requirepass,
        ),
    )
    stop = asyncio.Event()
    node.on_fatal = lambda exc: stop.set()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await node.start()
    await server.start()
    admin: AdminHttp | None = None
    if config.admin is not None:
        server.request_counts = RequestCounts([*COMMANDS, "kvorum"])
        admin = AdminHttp(node, server, config.admin)
        await admin.start()
    log.info(
        "node %d: clients on %s, peers on %s", config.node_id, config.me.client, config.me.raft
    )
    if on_ready is not None:
        on_ready(node)
    try:
        await stop.wait()
    finally:
        if admin is not None:
            await admin.close()
        await server.close()
        await node.close()
        log.info("node %d stopped", config.node_id)
    if node.fatal_error is not None:
        raise NodeFailedError(f"node {config.node_id} stopped: {node.fatal_error!r}")


class NodeFailedError(RuntimeError):
    """The node hit an error it cannot serve through (see its log)."""


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when available, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    if sys.version_info >= (3, 12):
        uvloop.run(main)
    else:
        uvloop.install()
        asyncio.run(main)
