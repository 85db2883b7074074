#!/usr/bin/env python3
"""Set up kvorum's virtual environment and run its main job or its tests.

Theory of operation: a fresh machine has Python and pip and nothing else. This script makes
`.venv` beside itself, installs kvorum into it in editable mode with the extras a task needs,
and records a hash of `pyproject.toml` so that the next run skips the install unless the
dependencies changed. Then it hands over to the real command inside the venv:

    python3 dev.py up [ARGS]      start a local cluster (`kvorum up`)
    python3 dev.py test [ARGS]    lint, type-check, simulate 1,000 seeds (at one Raft group
                                  per node and at four), run the whole test suite
                                  (KVORUM_SIM_SEEDS / KVORUM_SIM_GROUP_SEEDS: fewer seeds)
    python3 dev.py bench [ARGS]   run the benchmarks and write results into benchmarks/results
    python3 dev.py kvorum ARGS    any other kvorum command inside the venv

It uses only the standard library, so it can run before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _ensure_venv(extras: str) -> None:
    if not PY.exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".kvorum-installed-{extras or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"dev.py: installing kvorum{f'[{extras}]' if extras else ''} into {VENV}", flush=True)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", target],
        check=True,
    )
    stamp.write_text(digest)


def _run(argv: list[str]) -> int:
    print("dev.py: $ " + " ".join(argv), flush=True)
    return subprocess.call(argv, cwd=ROOT)


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    task, rest = args[0], args[1:]
    if task == "up":
        _ensure_venv("")
        return _run([str(BIN / "kvorum"), "up", *rest])
    if task == "test":
        _ensure_venv("test,bench")
        seeds = os.environ.get("KVORUM_SIM_SEEDS", "1000")
        group_seeds = os.environ.get("KVORUM_SIM_GROUP_SEEDS", seeds)
        sim = [str(BIN / "kvorum"), "sim", "raft", "--nodes", "5", "--faults=all"]
        for step in (
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "mypy")],
            # The simulator's own gate: 1,000 seeds, 5 nodes, every fault...
            [*sim, "--seeds", seeds],
            # ...and again with four Raft groups per node sharing each node's WAL, reading on
            # leader leases as the runtime does (the run above checks ReadIndex alone).
            [*sim, "--seeds", group_seeds, "--groups", "4", "--lease-reads"],
            [str(PY), "-m", "pytest", "-n", "2", "-q", *rest],
        ):
            code = _run(step)
            if code != 0:
                return code
        return 0
    if task == "bench":
        _ensure_venv("test,bench")
        return _run([str(PY), str(ROOT / "benchmarks" / "run.py"), *rest])
    if task == "kvorum":
        _ensure_venv("test,bench")
        return _run([str(BIN / "kvorum"), *rest])
    print(f"dev.py: unknown task {task!r}\n{__doc__}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
