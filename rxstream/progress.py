"""Progress of long work (table recovery, loading a file): a bar on a terminal, rate and ETA lines in logs."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Progress"]

logger = logging.getLogger(__name__)


def _bar(label: str, total: int, unit: str, stream: TextIO) -> Any:
    """A tqdm bar when tqdm is installed (the ``progress`` extra) and ``stream`` is a terminal, else None."""
    if not stream.isatty():
        return None
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    return tqdm(total=total, desc=label, unit=f" {unit}", unit_scale=True, file=stream, leave=False)


class Progress:
    """Reports ``done`` of ``total`` units per batch: a tqdm bar on a terminal, else a log line with rate and
    ETA every ``interval`` seconds (so a worker's logs show how far a long replay is)."""

    __slots__ = ("_bar", "_clock", "_last", "began", "done", "interval", "label", "log", "total", "unit")

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "records",
        interval: float = 1.0,
        log: logging.Logger = logger,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.interval = interval
        self.log = log
        self.done = 0
        self._clock = clock
        self.began = self._last = clock()
        self._bar = _bar(label, total, unit, stream if stream is not None else sys.stderr)

    @property
    def rate(self) -> float:
        """Units per second so far."""
        elapsed = self._clock() - self.began
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None while nothing is done yet)."""
        rate = self.rate
        return max(self.total - self.done, 0) / rate if rate > 0 else None

    def advance(self, n: int) -> None:
        """``n`` more units are done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self._clock()
        if now - self._last >= self.interval and self.done < self.total:
            self._last = now
            self.log.info("%s", self.line())

    def line(self) -> str:
        """Where the work is, as one line: done/total, percent, rate and ETA."""
        eta = self.eta
        percent = 100.0 * self.done / self.total if self.total else 100.0
        left = "unknown" if eta is None else f"{eta:.1f} s"
        rate = f"{self.rate:.0f} {self.unit}/s"
        return f"{self.label}: {self.done}/{self.total} {self.unit} ({percent:.0f}%, {rate}, ETA {left})"

    def close(self) -> None:
        """The work ended (done or failed): take the bar off the terminal."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
