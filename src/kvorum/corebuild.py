"""Which build of the Raft core this process runs: pure Python, or compiled with mypyc.

Theory of operation: ``python3 dev.py compile`` builds C extension modules from the hot
modules of the Raft core (:data:`COMPILED_MODULES`) and puts them beside their ``.py`` files;
Python's import system then prefers the extension, so the same source runs compiled.
``python3 dev.py compile --clean`` removes them and the pure code runs again. A module that
was loaded from an extension has a ``__file__`` that does not end in ``.py``; that is all this
module looks at, so ``kvorum --version``, ``INFO server`` and benchmark reports can say what
they run without knowing how it was built.
"""

from __future__ import annotations

import importlib

COMPILED_MODULES = (
    "kvorum.core.raft.node",
    "kvorum.core.raft.log",
    "kvorum.core.raft.progress",
    "kvorum.core.raft.quorum",
)
"""The modules ``dev.py compile`` compiles: the ones a busy node or simulation spends its core
time in. Values handed across the core's boundary (messages, config, ready, status) stay
plain Python so every caller sees the same dataclasses."""


def compiled_core_modules() -> list[str]:
    """The modules of :data:`COMPILED_MODULES` this process runs compiled."""
    return [
        name
        for name in COMPILED_MODULES
        if not str(getattr(importlib.import_module(name), "__file__", "")).endswith(".py")
    ]


def raft_core_build() -> str:
    """``mypyc`` if every hot module runs compiled, ``python`` if none does, else ``mixed``
    (a partial build: compile again or clean)."""
    compiled = len(compiled_core_modules())
    if compiled == 0:
        return "python"
    return "mypyc" if compiled == len(COMPILED_MODULES) else "mixed"
