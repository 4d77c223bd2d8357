"""Log floods summarised: a record repeated many times (a client retrying a lost broker) is logged once,
then once per interval with how many like it were held back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

__all__ = ["RepeatSummary", "summarise_repeats"]

SUMMARY_INTERVAL: Final = 30.0
"""Seconds between two lines of one repeated record."""
MAX_KINDS: Final = 1000  # distinct records tracked before the oldest counts are forgotten


class RepeatSummary(logging.Filter):
    """Per kind of record (logger, level, message template) at WARNING and above: the first passes, those
    within ``interval`` of the last that passed are counted instead, and the next one after it passes with
    the count. A kind quiet for a whole interval starts over, so each new outage logs its first line."""

    def __init__(
        self, interval: float = SUMMARY_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind: (when it last passed, held)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged; a summary of held-back ones is added to its message."""
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} more like this in the last {now - last[0]:.0f}s]"
        if len(self._kinds) >= MAX_KINDS and kind not in self._kinds:
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        return True


_installed: dict[str, RepeatSummary] = {}


def summarise_repeats(prefix: str) -> RepeatSummary:
    """Install one `RepeatSummary` on every logger named ``prefix`` or ``prefix.*`` that exists now."""
    summary = _installed.get(prefix)
    if summary is None:
        summary = _installed[prefix] = RepeatSummary()
    names = [prefix, *(n for n in logging.Logger.manager.loggerDict if n.startswith(prefix + "."))]
    for name in names:
        target = logging.getLogger(name)
        if summary not in target.filters:
            target.addFilter(summary)
    return summary
