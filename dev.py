#!/usr/bin/env python3
"""Set up kvorum's virtual environment and run its main job or its tests.

Theory of operation: a fresh machine has Python and pip and nothing else. This script makes
`.venv` beside itself, installs kvorum into it in editable mode with the extras a task needs,
and records a hash of `pyproject.toml` so that the next run skips the install unless the
dependencies changed. Then it hands over to the real command inside the venv:

    python3 dev.py up [ARGS]      start a local cluster (`kvorum up`)
    python3 dev.py test [ARGS]    lint, type-check, simulate 1,000 seeds (at one Raft group
                                  per node and at four), 300 of a CASPaxos keyspace and 80
                                  of gossip membership, run the whole test suite
                                  (KVORUM_SIM_SEEDS / KVORUM_SIM_GROUP_SEEDS /
                                  KVORUM_SIM_PAXOS_SEEDS / KVORUM_SIM_GOSSIP_SEEDS: seeds)
    python3 dev.py bench [ARGS]   run the benchmarks and write results into benchmarks/results
    python3 dev.py kvorum ARGS    any other kvorum command inside the venv
    python3 dev.py compile        optional: compile the Raft core's hot modules with mypyc, in
                                  place (needs a C compiler); `compile --clean` goes back to
                                  pure Python. `kvorum --version` says which one runs.
    python3 dev.py test-compiled  compile, run the simulator (KVORUM_SIM_COMPILED_SEEDS, 200,
                                  at one group and at four) and tests/raft on the compiled
                                  core, then go back to the build the tree had before

A compiled core is rebuilt by the next `up`, `test`, `bench` or `kvorum` when its source has
changed since it was compiled, so a stale extension never hides an edit.

It uses only the standard library, so it can run before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
SRC = ROOT / "src"
# Keep in step with kvorum.corebuild.COMPILED_MODULES (this script cannot import kvorum).
COMPILED_SOURCES = [
    SRC / "kvorum" / "core" / "raft" / f"{name}.py"
    for name in ("node", "log", "progress", "quorum")
]
MYPYC_GROUP = "kvorum_core"
MYPYC_BUILD = ROOT / "build" / "mypyc"
MYPYC_STAMP = MYPYC_BUILD / "sources.sha256"


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


def _compiled_files() -> list[Path]:
    """Every extension module a compile put into the source tree."""
    files = [p for src in COMPILED_SOURCES for p in src.parent.glob(f"{src.stem}.*.so")]
    files += [p for src in COMPILED_SOURCES for p in src.parent.glob(f"{src.stem}.*.pyd")]
    files += list(SRC.glob(f"{MYPYC_GROUP}__mypyc.*"))
    return sorted(files)


def _sources_digest() -> str:
    # The compiled code depends on the modules it compiles and on the types of everything
    # they import; hashing the whole core (and the venv's mypyc) keeps it simple and safe.
    digest = hashlib.sha256()
    for path in sorted((SRC / "kvorum" / "core").rglob("*.py")):
        digest.update(str(path.relative_to(SRC)).encode() + b"\0" + path.read_bytes())
    installed = VENV / ".kvorum-installed-test,bench"  # names the pinned mypy(c) version
    digest.update(installed.read_bytes() if installed.exists() else b"")
    return digest.hexdigest()


def _clean_compiled() -> None:
    for path in _compiled_files():
        path.unlink()
    shutil.rmtree(MYPYC_BUILD, ignore_errors=True)


def _compile() -> int:
    """Build the compiled core in place; on any failure leave the pure code in charge."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None and shutil.which("gcc") is None:
        print(
            f"dev.py: no C compiler found ({compiler!r} and 'gcc' are not on PATH), so the "
            "Raft core stays pure Python (nothing changed). Install one (e.g. "
            "`apt-get install gcc python3-dev`) to compile it.",
            flush=True,
        )
        return 1
    _clean_compiled()
    print("dev.py: compiling the Raft core with mypyc (about a minute)", flush=True)
    code = _run([str(PY), str(Path(__file__).resolve()), "_mypyc-build"])
    if code != 0:
        _clean_compiled()
        print("dev.py: compiling failed; the Raft core stays pure Python", flush=True)
        return code
    MYPYC_STAMP.write_text(_sources_digest())
    return _run([str(BIN / "kvorum"), "--version"])


def _mypyc_build() -> int:
    """Runs inside the venv (which has mypy, so mypyc): build_ext --inplace into src/."""
    import warnings

    from mypyc.build import mypycify
    from setuptools import setup

    # setup() reads pyproject.toml and calls its [tool.setuptools] table "beta": noise here.
    warnings.filterwarnings("ignore", message=".*tool.setuptools.*")

    os.chdir(ROOT)
    modules = mypycify(
        [str(p.relative_to(ROOT)) for p in COMPILED_SOURCES],
        opt_level="3",
        target_dir=str(MYPYC_BUILD / "c"),
        group_name=MYPYC_GROUP,
    )
    setup(
        name="kvorum-compiled-core",
        package_dir={"": "src"},
        ext_modules=modules,
        script_args=[
            "--quiet",
            "build_ext",
            "--inplace",
            "--build-temp",
            str(MYPYC_BUILD / "temp"),
            "--build-lib",
            str(MYPYC_BUILD / "lib"),
        ],
    )
    return 0


def _refresh_compiled() -> None:
    """Recompile a compiled core whose source changed since (a stale one would hide edits)."""
    if not _compiled_files():
        return
    if MYPYC_STAMP.exists() and MYPYC_STAMP.read_text() == _sources_digest():
        return
    print("dev.py: the Raft core changed since it was compiled; compiling again", flush=True)
    if _compile() != 0:
        sys.exit("dev.py: recompiling failed; `python3 dev.py compile --clean` goes back to pure")


def _test_compiled(rest: list[str]) -> int:
    """The compiled core is the same code: the simulator's gate and the core's own tests."""
    was_compiled = bool(_compiled_files())
    code = _compile()
    if code != 0:
        return code
    seeds = os.environ.get("KVORUM_SIM_COMPILED_SEEDS", "200")
    sim = [str(BIN / "kvorum"), "sim", "raft", "--nodes", "5", "--faults=all", "--seeds", seeds]
    try:
        for step in (
            [*sim],
            [*sim, "--groups", "4"],
            [str(PY), "-m", "pytest", "-n", "2", "-q", "tests/raft", *rest],
        ):
            code = _run(step)
            if code != 0:
                return code
        return 0
    finally:
        if not was_compiled:
            _clean_compiled()
            print("dev.py: removed the compiled core again (pure Python runs)", flush=True)


def _run(argv: list[str]) -> int:
    print("dev.py: $ " + " ".join(argv), flush=True)
    child = subprocess.Popen(argv, cwd=ROOT)
    # Ctrl-C reaches the child as well (one process group): let it stop in its own way and
    # wait for it, rather than raise here and kill it in the middle of its clean-up.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    task, rest = args[0], args[1:]
    if task == "_mypyc-build":
        return _mypyc_build()
    if task == "compile":
        _ensure_venv("test,bench")
        if rest == ["--clean"]:
            _clean_compiled()
            return _run([str(BIN / "kvorum"), "--version"])
        if rest:
            print(f"dev.py: compile takes no arguments but --clean, not {rest}")
            return 2
        return _compile()
    if task == "test-compiled":
        _ensure_venv("test,bench")
        return _test_compiled(rest)
    if task in ("up", "test", "bench", "kvorum"):
        _refresh_compiled()
    if task == "up":
        _ensure_venv("")
        return _run([str(BIN / "kvorum"), "up", *rest])
    if task == "test":
        _ensure_venv("test,bench")
        seeds = os.environ.get("KVORUM_SIM_SEEDS", "1000")
        group_seeds = os.environ.get("KVORUM_SIM_GROUP_SEEDS", seeds)
        paxos_seeds = os.environ.get("KVORUM_SIM_PAXOS_SEEDS", "300")
        gossip_seeds = os.environ.get("KVORUM_SIM_GOSSIP_SEEDS", "80")
        sim = [str(BIN / "kvorum"), "sim", "raft", "--nodes", "5", "--faults=all"]
        for step in (
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "mypy")],
            # The simulator's own gate: 1,000 seeds, 5 nodes, every fault...
            [*sim, "--seeds", seeds],
            # ...and again with four Raft groups per node sharing each node's WAL, reading on
            # leader leases as the runtime does (the run above checks ReadIndex alone).
            [*sim, "--seeds", group_seeds, "--groups", "4", "--lease-reads"],
            # A CASPaxos keyspace under every fault (1,000 seeds: about 160 s of CPU).
            [str(BIN / "kvorum"), "sim", "paxos", "--faults=all", "--seeds", paxos_seeds],
            # Gossip membership under loss, partitions, pauses, crashes and churn (a seed
            # costs about half a CPU second: 80 here; `kvorum sim gossip --seeds 1000`
            # is the long run).
            [str(BIN / "kvorum"), "sim", "gossip", "--faults=all", "--seeds", gossip_seeds],
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
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("dev.py: interrupted", file=sys.stderr)
        sys.exit(130)
