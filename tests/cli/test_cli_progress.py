"""Progress lines are for people at a terminal: redrawn in place there, absent elsewhere."""

from __future__ import annotations

import io

from kvorum.cli._progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(10, "seeds", out)
    for i in range(1, 11):
        p.update(i, "0 violations")
    p.clear()
    assert out.getvalue() == ""


def test_progress_redraws_one_line_and_wipes_it() -> None:
    out = FakeTerminal()
    p = Progress(10, "seeds", out)
    p.update(1, "0 violations")
    p.update(10, "1 violations")  # the last one is always drawn
    p.clear()
    text = out.getvalue()
    assert "\n" not in text
    assert "1/10 seeds, 0 violations" in text and "10/10 seeds, 1 violations" in text
    assert text.endswith("\r")
