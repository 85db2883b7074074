"""A node's metrics in Prometheus's model, read from the node when they are scraped.

Theory of operation: nothing here runs on a request's path. The node already counts what an
operator wants (the host's rounds and fsyncs, each group's proposals and applies, the
transport's frames and reconnects, the server's connections) and keeps two recorders for
latencies (:mod:`kvorum.observe.recorders`); a scrape walks them and builds Prometheus metric
families on the spot (a custom collector, so no metric object is updated per request). Each
node has its own registry, so several nodes in one process (tests) never mix their figures.

Per-group series (term, role, commit, applied, lag, writes in flight, quiesced) are labelled
with the group id. A node with thousands of groups would make every scrape large, so above
``per_group_limit`` groups only the totals and the worst figures are exported, as etcd and
TiKV do for their many regions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from kvorum.core.raft.status import Role
from kvorum.observe.recorders import LatencyHistogram

if TYPE_CHECKING:
    from kvorum.runtime.node import KvorumNode
    from kvorum.server.server import RespServer

PER_GROUP_LIMIT = 256
"""Above this many groups, per-group series are left out (see the module docstring)."""


def node_registry(node: KvorumNode, server: RespServer | None) -> CollectorRegistry:
    """A registry holding this node's metrics (and nothing else)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, server))
    return registry


class NodeCollector(Collector):
    """Builds the node's metric families at each scrape (see the module docstring)."""

    def __init__(
        self, node: KvorumNode, server: RespServer | None, per_group_limit: int = PER_GROUP_LIMIT
    ) -> None:
        self._node = node
        self._server = server
        self._per_group_limit = per_group_limit

    def collect(self) -> Iterator[Metric]:
        yield from self._groups()
        yield from self._host()
        yield from self._storage()
        yield from self._transport()
        yield from self._clients()

    # --- Raft groups ---------------------------------------------------------------------------

    def _groups(self) -> Iterator[Metric]:
        node = self._node
        host = node.host
        groups = host.groups
        led = sum(1 for g in groups.values() if g.core.is_leader)
        yield _gauge("kvorum_groups", "Raft groups this node hosts.", len(groups))
        yield _gauge("kvorum_groups_led", "Raft groups this node leads.", led)
        yield _gauge("kvorum_groups_awake", "Groups still ticking (not quiesced).",
                     host.awake_groups())  # fmt: skip
        yield _gauge(
            "kvorum_groups_without_leader", "Groups that know of no leader now.",
            sum(1 for g in groups.values() if g.core.leader_id is None),
        )  # fmt: skip
        lags = [g.core.commit_index - node.machines[gid].applied_index() for gid, g in
                groups.items()]  # fmt: skip
        yield _gauge("kvorum_apply_lag_entries_max",
                     "The largest gap between commit and apply over all groups.",
                     max(lags, default=0))  # fmt: skip
        totals = {"proposals": 0, "entries_applied": 0, "reads": 0, "forwards": 0,
                  "snapshots_taken": 0, "snapshots_installed": 0}  # fmt: skip
        for group in groups.values():
            stats = group.stats
            totals["proposals"] += stats.proposals
            totals["entries_applied"] += stats.entries_applied
            totals["reads"] += stats.reads
            totals["forwards"] += stats.forwards
            totals["snapshots_taken"] += stats.snapshots_taken
            totals["snapshots_installed"] += stats.snapshots_installed
        yield _counter("kvorum_proposals", "Entries proposed by groups this node led.",
                       totals["proposals"])  # fmt: skip
        yield _counter("kvorum_entries_applied", "Log entries applied to the keyspace.",
                       totals["entries_applied"])  # fmt: skip
        yield _counter("kvorum_reads", "Linearizable reads served (ReadIndex).", totals["reads"])
        yield _counter("kvorum_forwards", "Client writes forwarded to another node's leader.",
                       totals["forwards"])  # fmt: skip
        yield _counter("kvorum_snapshots_taken", "Snapshots this node took.",
                       totals["snapshots_taken"])  # fmt: skip
        yield _counter("kvorum_snapshots_installed", "Snapshots received from a leader.",
                       totals["snapshots_installed"])  # fmt: skip
        yield _gauge("kvorum_writes_in_flight",
                     "Client writes queued or proposed and not yet applied, all groups.",
                     sum(g.writes_in_flight for g in groups.values()))  # fmt: skip
        if len(groups) > self._per_group_limit:
            return
        term = GaugeMetricFamily("kvorum_group_term", "The group's current term.",
                                 labels=["group"])  # fmt: skip
        role = GaugeMetricFamily("kvorum_group_role", "1 for the role the group has here.",
                                 labels=["group", "role"])  # fmt: skip
        commit = GaugeMetricFamily("kvorum_group_commit_index", "The group's commit index.",
                                   labels=["group"])  # fmt: skip
        applied = GaugeMetricFamily("kvorum_group_applied_index",
                                    "The last entry applied to the keyspace.",
                                    labels=["group"])  # fmt: skip
        lag = GaugeMetricFamily("kvorum_group_apply_lag_entries",
                                "Committed entries not yet applied.", labels=["group"])
        inflight = GaugeMetricFamily("kvorum_group_writes_in_flight",
                                     "Client writes queued or proposed, not yet applied.",
                                     labels=["group"])  # fmt: skip
        quiesced = GaugeMetricFamily("kvorum_group_quiesced",
                                     "1 while the group is quiesced (idle, not ticking).",
                                     labels=["group"])  # fmt: skip
        for gid, group in sorted(groups.items()):
            core = group.core
            label = str(gid)
            term.add_metric([label], core.term)
            for r in Role:
                role.add_metric([label, r.value], 1 if core.role is r else 0)
            commit.add_metric([label], core.commit_index)
            done = node.machines[gid].applied_index()
            applied.add_metric([label], done)
            lag.add_metric([label], core.commit_index - done)
            inflight.add_metric([label], group.writes_in_flight)
            quiesced.add_metric([label], 1 if host.is_quiesced(gid) else 0)
        yield from (term, role, commit, applied, lag, inflight, quiesced)

    # --- the host's rounds -----------------------------------------------------------------------

    def _host(self) -> Iterator[Metric]:
        node = self._node
        stats = node.host.stats
        yield _counter("kvorum_rounds", "Drive rounds (one WAL batch each at most).", stats.rounds)
        yield _counter("kvorum_fsyncs", "fdatasyncs of the shared log.", stats.syncs)
        yield _counter("kvorum_group_wakes", "Quiesced groups woken.", stats.wakes)
        yield _counter("kvorum_group_quiesces", "Groups that quiesced.", stats.quiesces)
        yield _counter("kvorum_node_heartbeats_sent", "Coalesced node heartbeats sent.",
                       stats.node_heartbeats_sent)  # fmt: skip
        yield _gauge("kvorum_disk_full", "1 while writes are refused for lack of disk space.",
                     1 if node.host.disk_full else 0)  # fmt: skip
        yield _histogram("kvorum_persist_seconds",
                         "Time to write and fsync one round's log batch.",
                         node.driver.persist_seconds)  # fmt: skip

    # --- storage ---------------------------------------------------------------------------------

    def _storage(self) -> Iterator[Metric]:
        raft_dir = self._node.config.data_dir / "raft"
        wal_bytes = _bytes_under(raft_dir / "wal")
        snapshot_bytes = _bytes_under(raft_dir / "snapshots")
        yield _gauge("kvorum_wal_bytes", "Bytes of WAL segments on disk.", wal_bytes)
        yield _gauge("kvorum_snapshot_bytes", "Bytes of Raft snapshots on disk.", snapshot_bytes)

    # --- peers -----------------------------------------------------------------------------------

    def _transport(self) -> Iterator[Metric]:
        transport = self._node.transport
        if transport is None:
            return
        peers = transport.peer_metrics()
        connected = GaugeMetricFamily("kvorum_peer_connected",
                                      "1 while the connection to the peer is up.",
                                      labels=["peer"])  # fmt: skip
        sent = CounterMetricFamily("kvorum_peer_sent_frames", "Frames sent to the peer.",
                                   labels=["peer"])  # fmt: skip
        sent_bytes = CounterMetricFamily("kvorum_peer_sent_bytes", "Bytes sent to the peer.",
                                         labels=["peer"])  # fmt: skip
        reconnects = CounterMetricFamily("kvorum_peer_reconnects",
                                         "Connections to the peer made again after a loss.",
                                         labels=["peer"])  # fmt: skip
        queued = GaugeMetricFamily("kvorum_peer_queued_frames",
                                   "Frames waiting to be sent to the peer.", labels=["peer"])
        for peer, counts in sorted(peers.items()):
            label = str(peer)
            up = counts.get("connects", 0) + counts.get("reconnects", 0) > counts.get(
                "connections_lost", 0
            )
            connected.add_metric([label], 1 if up else 0)
            sent.add_metric([label], counts.get("sent_frames", 0))
            sent_bytes.add_metric([label], counts.get("sent_bytes", 0))
            reconnects.add_metric([label], counts.get("reconnects", 0))
            queued.add_metric([label], counts.get("queued_frames", 0))
        yield from (connected, sent, sent_bytes, reconnects, queued)
        totals = transport.metrics()
        yield _counter("kvorum_peer_received_frames", "Frames received from all peers.",
                       totals.get("received_frames", 0))  # fmt: skip
        yield _counter("kvorum_peer_received_bytes", "Bytes received from all peers.",
                       totals.get("received_bytes", 0))  # fmt: skip

    # --- clients ---------------------------------------------------------------------------------

    def _clients(self) -> Iterator[Metric]:
        server = self._server
        if server is None:
            return
        yield _gauge("kvorum_client_connections", "Open client connections.", len(server.sessions))
        yield _counter("kvorum_client_connections_received", "Client connections accepted.",
                       server.stats.total_connections_received)  # fmt: skip
        counts = server.request_counts
        if counts is None:
            return
        requests = CounterMetricFamily("kvorum_requests", "Client requests answered.",
                                       labels=["command", "result"])  # fmt: skip
        for (command, result), n in sorted(counts.by_command.items()):
            requests.add_metric([command, result], n)
        yield requests
        yield _histogram("kvorum_request_seconds",
                         "Time from a request's batch being read to its answer.",
                         counts.latency)  # fmt: skip


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, hist: LatencyHistogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=hist.cumulative(), sum_value=hist.sum_s)


def _bytes_under(directory: Path) -> int:
    """Bytes of the files below ``directory`` (files deleted meanwhile count as none)."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue  # a segment or snapshot freed while we walked
    return total
