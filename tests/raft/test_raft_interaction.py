"""Scripted interaction transcripts: every ``testdata/*.txt`` file replays exactly.

Each file is a list of commands for :mod:`kvorum.sim.interaction`, each followed by the output
it must print. A mismatch shows the whole actual transcript of the first differing command.
``KVORUM_REWRITE=1 pytest tests/raft`` regenerates the expected outputs in place; read the diff
before committing it, since the files are the reference for correct Raft behaviour.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvorum.sim.interaction import (
    InteractionEnv,
    ScriptError,
    env_from_init,
    parse_script,
    run_script,
)

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_transcript_replays(path: Path) -> None:
    text = path.read_text()
    actual_blocks, rewritten = run_script(text)
    if os.environ.get("KVORUM_REWRITE") == "1":
        if rewritten != text:
            path.write_text(rewritten)
        return
    for want, got in zip(parse_script(text), actual_blocks, strict=True):
        message = f"{path.name}: {want.command!r} printed:\n{got.expected}"
        assert got.expected == want.expected, message


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 10


def test_every_script_keeps_one_leader_per_term() -> None:
    # Safety over all transcripts: no term ever had two leaders.
    for path in SCRIPTS:
        env = InteractionEnv()
        for block in parse_script(path.read_text()):
            if block.command.startswith("init"):
                env = env_from_init(block.command)
            else:
                env.run_command(block.command)
            assert all(len(ids) == 1 for ids in env.leaders_by_term.values()), path.name


def test_bad_commands_are_reported() -> None:
    env = InteractionEnv(3)
    assert env.run_command("fly 1").startswith("error: unknown command 'fly'")
    assert env.run_command("tick 9") == "error: no node 9 (nodes: [1, 2, 3])"
    assert env.run_command("deliver-msgs 1") == "error: expected key=value, got '1'"
    assert env.run_command("campaign").startswith("error: bad arguments for campaign")
    assert "error: not the leader" in env.run_command("propose 2 x")
    with pytest.raises(ScriptError, match="unknown config option"):
        env_from_init("init 3 warp=9")
    with pytest.raises(ScriptError, match="expected '----'"):
        parse_script("campaign 1\nstabilize\n")
    with pytest.raises(ValueError, match="distinct positive"):
        InteractionEnv([1, 1])
