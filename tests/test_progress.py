"""Progress where stderr is not a terminal: plain lines at an interval, and one at the end."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pylaundering import progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_line_bar_prints_at_the_interval_with_rate_and_eta():
    buf, clock = io.StringIO(), FakeClock()
    bar = progress._LineBar(100, "teacher", 0, 30.0, clock=clock, out=Console(file=buf, width=40))
    for _ in range(10):  # 10 steps in 20 s: under the interval, nothing yet
        clock.now += 2
        bar.advance(1, epoch=1, loss=1.386294)
    assert buf.getvalue() == ""
    clock.now += 20
    bar.advance(2, epoch=2, loss=1.2)  # 12 steps in 40 s
    lines = buf.getvalue().splitlines()
    assert lines == ["teacher: 12/100 (12%), 0.30 it/s, 0:00:40 elapsed, eta 0:04:53 epoch=2 loss=1.2"]
    clock.now += 5
    bar.advance(1)  # 5 s after the last line: silent
    assert len(buf.getvalue().splitlines()) == 1


def test_line_bar_resumed_counts_only_new_steps_in_its_rate():
    buf, clock = io.StringIO(), FakeClock()
    bar = progress._LineBar(50, "student", 40, 0.0, clock=clock, out=Console(file=buf))
    clock.now += 10
    bar.advance(5)
    assert buf.getvalue().splitlines()[-1] == "student: 45/50 (90%), 0.50 it/s, 0:00:10 elapsed, eta 0:00:10"


def test_progress_bar_off_a_terminal_prints_lines_and_a_last_one_even_on_interrupt(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=buf, force_terminal=False, force_jupyter=False))
    monkeypatch.setenv("PYLAUNDERING_PROGRESS_SECONDS", "3600")
    with progress.progress_bar(4, "evaluating") as bar:
        for _ in range(4):
            bar.advance()
    assert buf.getvalue().splitlines()[-1].startswith("evaluating: 4/4 (100%)")
    with pytest.raises(KeyboardInterrupt):
        with progress.progress_bar(None, "scanning") as bar:
            bar.advance(7)
            raise KeyboardInterrupt
    assert buf.getvalue().splitlines()[-1].startswith("scanning: 7,")
    with progress.progress_bar(4, "quiet one", quiet=True) as bar:
        bar.advance()
    assert "quiet one" not in buf.getvalue()
