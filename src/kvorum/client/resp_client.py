"""A minimal blocking RESP2 client, so kvorum's own commands need no third-party client.

Theory of operation: one socket, one command at a time; the command is encoded as a RESP
multibulk and the reply read back with a small recursive parser over a buffered reader.
Errors come back as :class:`RespError` values rather than exceptions, because a status
command wants to show them, not stop at them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RespError:
    message: str


RespValue = bytes | int | None | RespError | list["RespValue"]


PASSWORD_ENV = "KVORUM_PASSWORD"
"""Where kvorum's commands (and nodes, for their ``requirepass``) find the password, as
redis-cli finds it in REDISCLI_AUTH: not on a command line, which ``ps`` shows."""


class RespClient:
    """One connection; with ``password`` (default: ``$KVORUM_PASSWORD``) it authenticates
    first, and an AUTH refusal is raised as :class:`PermissionError`."""

    def __init__(
        self, host: str, port: int, timeout_s: float = 2.0, password: str | None = None
    ) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._file = self._sock.makefile("rb")
        password = password if password is not None else os.environ.get(PASSWORD_ENV)
        if password:
            reply = self.call("AUTH", password)
            if isinstance(reply, RespError):
                self.close()
                raise PermissionError(f"{host}:{port} refused the password: {reply.message}")

    def __enter__(self) -> RespClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def call(self, *args: bytes | str | int) -> RespValue:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = [b"*%d\r\n" % len(parts)]
        for p in parts:
            out.append(b"$%d\r\n%s\r\n" % (len(p), p))
        self._sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> RespValue:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed mid-reply")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply type {kind!r}")
