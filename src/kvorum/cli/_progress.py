"""A one-line progress report for long runs, shown only to a person at a terminal.

Theory of operation: a long command (thousands of simulator seeds) should say how far it
got, but its output is also read by scripts and CI, whose logs a redrawn line would fill with
noise. So :class:`Progress` writes only when its stream is a terminal, at most a few times a
second, redrawing one line with a carriage return, and wipes it before the command prints
anything else (its final line stays exactly as scripts expect).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``update(done, note)`` redraws "done/total <unit>, note, rate"; ``clear()`` wipes it."""

    def __init__(self, total: int, unit: str, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._total = total
        self._unit = unit
        self._began = time.monotonic()
        self._last_drawn = 0.0
        self._width = 0

    def update(self, done: int, note: str = "") -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last_drawn < 0.25 and done < self._total:
            return
        self._last_drawn = now
        elapsed = max(now - self._began, 1e-9)
        line = f"{done}/{self._total} {self._unit}"
        if note:
            line += f", {note}"
        line += f", {done / elapsed:.1f}/s"
        if 0 < done < self._total:
            line += f", about {(self._total - done) * elapsed / done:.0f}s left"
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        if self._enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
