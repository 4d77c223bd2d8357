"""Progress of long work: a bar on a terminal (tqdm), rate and ETA log lines otherwise."""

from __future__ import annotations

import io
import logging

import pytest

from rxstream.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_logged_with_rate_and_eta_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="rxstream.progress")
    progress = Progress("recovering 'counts'", 1000, interval=1.0, clock=clock, stream=io.StringIO())
    progress.advance(100)  # no time passed: nothing logged yet
    clock.now += 2.0
    progress.advance(100)
    clock.now += 0.5
    progress.advance(100)  # within the interval of the last line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["recovering 'counts': 200/1000 records (20%, 100 records/s, ETA 8.0 s)"]
    assert progress.eta == pytest.approx(700 / (300 / 2.5))
    clock.now += 1.0
    progress.advance(700)  # done: no line for the end, the caller logs its own summary
    assert len(caplog.records) == 1
    progress.close()


def test_before_anything_is_done_the_eta_is_unknown() -> None:
    progress = Progress("sending lines.txt", 10, unit="lines", clock=Clock(), stream=io.StringIO())
    assert progress.eta is None
    assert progress.line() == "sending lines.txt: 0/10 lines (0%, 0 lines/s, ETA unknown)"


def test_on_a_terminal_progress_draws_a_bar_and_takes_it_away_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("tqdm")
    caplog.set_level(logging.INFO, logger="rxstream.progress")
    terminal = Terminal()
    progress = Progress("recovering 'counts'", 50, stream=terminal)
    for _ in range(5):
        progress.advance(10)
    assert "recovering 'counts'" in terminal.getvalue() and "records/s" in terminal.getvalue()
    assert progress.done == 50
    drawn = len(terminal.getvalue())
    progress.close()
    assert len(terminal.getvalue()) > drawn  # the bar was cleared off the line
    assert not caplog.records  # the bar replaces the log lines
