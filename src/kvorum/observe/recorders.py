"""Cheap recorders the hot paths write into, read only when metrics are scraped.

Theory of operation: a node serves tens of thousands of requests a second on one thread, so
what it records per request must cost a few dictionary operations, not a metrics library's
locks. :class:`LatencyHistogram` keeps Prometheus-style cumulative-at-read buckets as plain
counts and can record one latency for many requests at once (a pipelined batch is answered
together, so each of its requests took the batch's time). :class:`RequestCounts` counts
requests by command and result. Both are written by one thread (the event loop, or the disk
thread for fsync times) and read by the scraper on the loop; a scrape that races a write sees
a count off by one batch, which a metric can live with.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds in seconds: fine at the bottom (an fsync here takes about 0.2 ms)."""


class LatencyHistogram:
    """Counts of observations per bucket, their sum and count (see the module docstring)."""

    __slots__ = ("bounds", "count", "counts", "sum_s")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum_s = 0.0
        self.count = 0

    def observe(self, seconds: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += times
        self.sum_s += seconds * times
        self.count += times

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` for every bound and ``+Inf``."""
        out = []
        running = 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


OTHER_COMMAND = "other"
"""Requests whose command name is not a known one are counted under this name, so a client
sending random names cannot make the metrics grow without bound."""


class RequestCounts:
    """Requests by (command, result), and their latency by command kind."""

    def __init__(self, known_commands: Iterable[str]) -> None:
        self._known = {name.encode(): name for name in known_commands}
        self._known.update({name.upper().encode(): name for name in known_commands})
        self.by_command: dict[tuple[str, str], int] = {}
        self.latency = LatencyHistogram()

    def command_name(self, raw: bytes) -> str:
        name = self._known.get(raw)
        if name is None:
            name = self._known.get(raw.lower(), OTHER_COMMAND)
        return name

    def record(self, names: Iterable[str], errors: Iterable[bool], seconds: float) -> None:
        """One answered batch: each request's command name and whether it failed, and the
        time from the batch's start to its answer."""
        counts = self.by_command
        n = 0
        for name, failed in zip(names, errors, strict=True):
            key = (name, "error" if failed else "ok")
            counts[key] = counts.get(key, 0) + 1
            n += 1
        if n:
            self.latency.observe(seconds, n)
