"""Errors the Raft core raises about itself, kept apart from the code that raises them.

Theory of operation: the hot modules of the core (``node``, ``log``, ``progress``, ...) may
be compiled with mypyc (``python3 dev.py compile``), and a compiled module cannot define a
class that inherits from most built-in exception types, such as :class:`AssertionError`.
Errors that must keep such a base are defined here, in a module that always stays plain
Python, and the compiled modules raise them as they would any imported class.
"""

from __future__ import annotations


class LogInvariantError(AssertionError):
    """The log was asked to do something that would break Raft's safety (a bug, never input)."""
