"""The hardware under one simulated node: its disk, how slow the disk is, and its clock.

Theory of operation: a node's software (a protocol host) runs on a :class:`SimMachine`, and
the generic faults degrade the machine, never the software: the disk's latency (every sync
keeps the node busy that long), the disk itself (a :class:`~kvorum.sim.disk.SimFileSystem`,
which loses and tears unsynced writes at a power cut, can fill up, fail an fsync or lie about
one), and the clock's rate (a node's tick lasts ``tick_us`` of virtual time, so clocks
drift). A fault that must strike *during* a sync sets :attr:`SimMachine.sync_trap` (the
node's drive loop springs it at a random instant inside its next sync) or
:attr:`SimMachine.fail_next_sync` (the sync's first fsync fails). The machine outlives
the software's crashes and restarts — the disk is what a restarted node finds.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kvorum.sim.disk import SimFileSystem

TICK_US = 10_000
"""A nominal tick is 10 ms of virtual time; a drifting clock makes it longer or shorter."""
NORMAL_DISK_LATENCY_US = 500
"""How long a sync takes on a healthy disk (what calm restores)."""


class SimMachine:
    """One node's disk and clock (see the module docstring)."""

    __slots__ = ("disk_latency_us", "fail_next_sync", "fs", "sync_trap", "tick_us")

    def __init__(self, rng: random.Random) -> None:
        self.fs = SimFileSystem(random.Random(rng.getrandbits(64)))
        # An fsync takes time on a real disk; zero would hide every persist/send race.
        self.disk_latency_us = rng.choice([100, 500, 1_000])
        self.tick_us = TICK_US
        self.sync_trap: Callable[[], None] | None = None
        """A fault waiting for the node's next sync: sprung at a random instant inside it."""
        self.fail_next_sync = False
        """The first fsync of the node's next sync fails (EIO)."""

    def heal(self) -> None:
        """A healthy machine again: normal disk speed, room on the disk, honest fsyncs, an
        accurate clock, no fault lying in wait."""
        self.disk_latency_us = NORMAL_DISK_LATENCY_US
        self.tick_us = TICK_US
        self.sync_trap = None
        self.fail_next_sync = False
        fs = self.fs
        fs.capacity_bytes = None
        fs.lying_fsync_rate = 0.0
        fs.fsync_failure_rate = 0.0
        fs.failing_fsyncs = 0
