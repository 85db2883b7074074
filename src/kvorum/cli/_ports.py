"""Is a TCP port free to listen on, and if not, who holds it: for ``kvorum up``'s pre-flight.

Theory of operation: the only reliable test of "can a node listen here" is to try, so
:func:`taken_ports` binds each address in turn (with ``SO_REUSEADDR``, as the node's server
does, so a port in TIME_WAIT after a previous run counts as free) and closes it at once. For
a port that is taken it then asks Linux who holds it: ``/proc/net/tcp`` and ``tcp6`` map the
listening socket to an inode, and the process with a file descriptor on ``socket:[inode]``
is the holder. That needs permission to read other processes' ``/proc/PID/fd``; where it is
missing (or not on Linux) the answer is just "in use".
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

_LISTEN = "0A"
"""The state column of /proc/net/tcp for a listening socket."""


def taken_ports(addresses: list[str]) -> list[str]:
    """One line for each ``host:port`` in ``addresses`` that cannot be listened on."""
    problems = []
    for address in addresses:
        host, _, port_text = address.rpartition(":")
        port = int(port_text)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as e:
                holder = port_holder(port)
                who = f"held by {holder}" if holder else (e.strerror or "in use")
                problems.append(f"{address}: {who}")
    return problems


def port_holder(port: int) -> str | None:
    """``pid N (command line)`` of the process listening on ``port``, if it can be found."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return f"pid {proc.name} ({_command_line(proc)})"
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != _LISTEN:
                    continue
                if int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _command_line(proc: Path) -> str:
    try:
        raw = (proc / "cmdline").read_bytes()
    except OSError:
        return "?"
    words = raw.rstrip(b"\0").split(b"\0")
    text = " ".join(" ".join(w.decode(errors="replace").split()) for w in words)
    return text if len(text) <= 80 else text[:77] + "..."
