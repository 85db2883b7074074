"""Who may talk to a node: Redis's ``requirepass`` for the ``default`` user.

Theory of operation: with a password configured, a new connection may only authenticate
(``AUTH password``, ``AUTH default password``, or ``HELLO <proto> AUTH default password``) or
quit; every other command, kvorum's own administration included, is answered ``-NOAUTH``
until it has. Without one, the ``default`` user is Redis's ``nopass`` user: ``AUTH default
anything`` succeeds and the one-argument form is refused with Redis's warning that no
password is set. The password is kept only as a salted SHA-256 digest and compared in
constant time, so a memory dump or a timing side channel does not give it away. Named users
and ACL rules are not here (see the README's known limits).
"""

from __future__ import annotations

import hashlib
import hmac
import os

DEFAULT_USER = b"default"
ERR_NOAUTH = "NOAUTH Authentication required."
ERR_WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
ERR_NO_PASSWORD_SET = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
ERR_HELLO_NOAUTH = (
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)


class Passwords:
    """The default user's password, if any (see the module docstring)."""

    def __init__(self, requirepass: str | None) -> None:
        self.required = bool(requirepass)
        self._salt = os.urandom(16)
        self._digest = self._hash(requirepass.encode()) if requirepass else b""

    def _hash(self, password: bytes) -> bytes:
        return hashlib.sha256(self._salt + password).digest()

    def check(self, username: bytes, password: bytes) -> bool:
        """Whether ``username``/``password`` may log in."""
        if username != DEFAULT_USER:
            return False
        if not self.required:
            return True  # nopass
        return hmac.compare_digest(self._hash(password), self._digest)
