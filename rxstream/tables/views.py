"""Views of tables: drawn as text (``as_ansitable()``), and a windowed table's time-relative key views."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..durations import Duration, seconds

if TYPE_CHECKING:
    from ..events import Event

__all__ = ["WindowedView", "ansitable"]


def ansitable(
    pairs: Iterable[tuple[Any, Any]],
    *,
    title: str,
    key: str = "Key",
    value: str = "Value",
    sort: bool = False,
    sortkey: Callable[[tuple[Any, Any]], Any] = itemgetter(0),
) -> str:
    """(key, value) pairs as a bordered text table titled ``title``, one row a pair.

    >>> print(counts.as_ansitable(key="word", value="count", sort=True))
    """
    rows = [(str(k), str(v)) for k, v in (sorted(pairs, key=sortkey) if sort else pairs)]
    widths = [max([len(key), *(len(k) for k, _ in rows)]), max([len(value), *(len(v) for _, v in rows)])]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    top = rule if not title else _titled(rule, title)

    def line(cells: tuple[str, str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([top, line((key, value)), rule, *(line(row) for row in rows), rule])


def _titled(rule: str, title: str) -> str:
    """The top border with the title written into it (cut to fit)."""
    room = len(rule) - 2
    text = title if len(title) <= room else title[: max(room - 3, 0)] + "..."
    return "+" + text + rule[1 + len(text) :]


class WindowedView(list[Any]):
    """``keys()``, ``items()`` or ``values()`` of a windowed table: each key's latest window, as a list.

    Faust's time-relative reads give the same keys in another window: ``now()`` (the wall clock's),
    ``current()`` (the event's, as the table's ``relative_to_*`` says; now outside an agent) and
    ``delta(d)`` (``d`` seconds before the current one).

    >>> views.relative_to_now().items().delta(30)
    """

    def __init__(
        self,
        latest: Iterable[Any],
        pairs_at: Callable[[float], list[tuple[Any, Any]]],
        reference: Callable[[Event | None], float],
        shape: Callable[[list[tuple[Any, Any]]], list[Any]],
    ) -> None:
        super().__init__(latest)
        self._pairs_at = pairs_at
        self._reference = reference
        self._shape = shape

    def now(self) -> list[Any]:
        """The keys, items or values in the window of the wall-clock time now."""
        return self._shape(self._pairs_at(time.time()))

    def current(self, event: Event | None = None) -> list[Any]:
        """The keys, items or values in the window of the current event's time (now outside an agent)."""
        return self._shape(self._pairs_at(self._reference(event)))

    def delta(self, d: Duration, event: Event | None = None) -> list[Any]:
        """The keys, items or values in the window ``d`` seconds (or a timedelta) before `current`'s."""
        return self._shape(self._pairs_at(self._reference(event) - seconds(d)))
