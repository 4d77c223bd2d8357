"""Tables drawn as text: ``table.as_ansitable()`` for a terminal or a log, as Faust's tables are."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

__all__ = ["ansitable"]


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
