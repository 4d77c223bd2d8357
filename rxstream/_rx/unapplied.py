"""A batch of plain values whose last map and filter its consumer applies as it takes each value.

Values without references (a functional chain's) need no acknowledgment and no `current_event()`, so when
a plain map and filter end a chain read by ``async for``, `iterate` calls the two functions just before
yielding each value: the calls a hand-written loop makes, without building a list of kept values first.
A failure is the same: the values before it were yielded, then the error names the operator and value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import length_hint
from typing import Any

from .batch import Batch, failed

__all__ = ["Unapplied", "filter_failed", "map_failed"]


class Unapplied(Batch):
    """Plain values still to go through ``fun`` (a map) and then ``keeps`` (a filter)."""

    __slots__ = ("fun", "keeps")

    def __init__(self, values: list[Any], fun: Callable[[Any], Any], keeps: Callable[[Any], Any]) -> None:
        super().__init__(values)
        self.fun = fun
        self.keeps = keeps


def map_failed(exc: Exception, batch: Batch, remaining: Iterator[Any]) -> Exception:
    """Annotate ``exc``, raised by the map on the value of ``batch`` before what ``remaining`` has left."""
    return failed(exc, batch, len(batch.values) - length_hint(remaining) - 1, "map")


def filter_failed(exc: Exception, mapped: Any) -> Exception:
    """Annotate ``exc``, raised by the filter on the mapped value ``mapped``."""
    return failed(exc, Batch([mapped]), 0, "filter")
