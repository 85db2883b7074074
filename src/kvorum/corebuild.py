"""Which build of the Raft core this process runs: pure Python, or compiled with mypyc.

Theory of operation: ``python3 dev.py compile`` builds C extension modules from the hot
modules of the Raft core (:data:`COMPILED_MODULES`) and puts them beside their ``.py`` files;
Python's import system then prefers the extension, so the same source runs compiled.
``python3 dev.py compile --clean`` removes them and the pure code runs again. A module that
was loaded from an extension has a ``__file__`` that does not end in ``.py``; that is all this
module looks at, so ``kvorum --version``, ``INFO server`` and benchmark reports can say what
they run without knowing how it was built. An extension older than its source is *stale*
(``dev.py`` rebuilds it, but a process started directly would run the old code), and
:func:`describe_raft_core` says so.
"""

from __future__ import annotations

import importlib
from pathlib import Path

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


def stale_compiled_modules() -> list[str]:
    """Compiled modules whose ``.py`` source changed after the extension was built."""
    stale = []
    for name in compiled_core_modules():
        extension = Path(str(importlib.import_module(name).__file__))
        source = extension.parent / (extension.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
            stale.append(name)
    return stale


def describe_raft_core() -> str:
    """One line for humans: the build, and a warning if a compiled module is stale."""
    stale = stale_compiled_modules()
    if stale:
        return (f"{raft_core_build()}, STALE: {', '.join(stale)} changed since compiled "
                "(python3 dev.py compile, or compile --clean)")
    return raft_core_build()
