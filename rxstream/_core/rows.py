"""One partition's fetched messages held as columns: a message's row is built the first time it is read.

A log that stores its messages as columns hands a fetch over as `Rows`, a read-only sequence of `Row`. The
hot paths read what they need from the columns (the values, whether any message has a key or headers, the
offsets) without building a tuple per message; anything else reads rows, each built once and kept, so a
message read twice is the same object (acknowledgments hold messages back by identity).
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, repeat
from operator import countOf
from typing import Any, overload

from ..events import OFFSET, PARTITION, TOPIC, Headers, Row, offset_of

__all__ = ["Columns", "Rows", "placed", "same_message"]


class Columns:
    """One fetch's columns (``start``: the offset of their first message) and the rows built from them.

    ``keys`` and ``headers`` are None when no message of the fetch has one; timestamps come as runs,
    ``stamps[k]`` from offset ``stamp_starts[k]`` on.
    """

    __slots__ = (
        "any_headers",
        "any_keys",
        "built",
        "headers",
        "keys",
        "partition",
        "stamp_starts",
        "stamps",
        "start",
        "topic",
        "values",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        start: int,
        values: list[Any],
        keys: list[Any] | None = None,
        headers: list[Headers | None] | None = None,
        stamp_starts: Sequence[int] = (0,),
        stamps: Sequence[float] = (0.0,),
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.start = start
        self.values = values
        self.keys = keys
        self.headers = headers
        self.stamp_starts = stamp_starts
        self.stamps = stamps
        self.built: dict[int, Row] = {}
        self.any_keys: bool | None = None if keys is not None else False
        self.any_headers: bool | None = None if headers is not None else False
        """Whether any message has a key, headers; None until asked."""

    def stamped(self, first: int, stop: int) -> Iterator[float]:
        """The timestamps of offsets ``first..stop-1``, a run at a time."""
        starts, stamps = self.stamp_starts, self.stamps
        if len(stamps) == 1:
            return repeat(stamps[0], stop - first)
        k = bisect_right(starts, first) - 1
        runs = []
        while first < stop:
            end = min(starts[k + 1], stop) if k + 1 < len(starts) else stop
            runs.append(repeat(stamps[k], end - first))
            first, k = end, k + 1
        return chain.from_iterable(runs)

    def row(self, j: int) -> Row:
        """The row of message ``j`` of the fetch, built once."""
        row = self.built.get(j)
        if row is None:
            offset = self.start + j
            keys, headers, stamps = self.keys, self.headers, self.stamps
            row = self.built[j] = (
                self.topic,
                self.partition,
                offset,
                stamps[0] if len(stamps) == 1 else stamps[bisect_right(self.stamp_starts, offset) - 1],
                None if keys is None else keys[j],
                self.values[j],
                None if headers is None else headers[j],
                None,
                None,
            )
        return row


class Rows(Sequence[Row]):
    """Messages of one fetch in offset order: ``places`` (plus ``shift``) are theirs among its columns.

    Slices and `take` share the fetch's columns and built rows.
    """

    __slots__ = ("columns", "places", "shift")

    def __init__(self, columns: Columns, places: Sequence[int], shift: int = 0) -> None:
        self.columns = columns
        self.places = places
        self.shift = shift

    def __len__(self) -> int:
        return len(self.places)

    @overload
    def __getitem__(self, i: int) -> Row: ...

    @overload
    def __getitem__(self, i: slice) -> Rows: ...

    def __getitem__(self, i: int | slice) -> Row | Rows:
        if type(i) is slice:
            return Rows(self.columns, self.places[i], self.shift)
        j = self.places[i] + self.shift
        columns = self.columns
        row = columns.built.get(j)
        return columns.row(j) if row is None else row

    def __iter__(self) -> Iterator[Row]:
        return iter(self.listed())  # whoever iterates reads every row: built together

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Rows, list, tuple)):
            return len(self) == len(other) and all(map(operator.eq, self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"<Rows of {self.columns.topic}[{self.columns.partition}], {len(self.places)} messages>"

    def place(self, i: int) -> int:
        """Where message ``i`` of this sequence sits among the fetch's columns."""
        return self.places[i] + self.shift

    def listed(self) -> list[Row]:
        """Every message's row, in order, for a reader that goes through a batch's events: the rows not
        built yet are built together at C level; a row built before stays the same object."""
        columns, places, shift = self.columns, self.places, self.shift
        if type(places) is not range or places.step != 1:
            return list(map(columns.row, (j + shift for j in places)))
        start, stop = places.start + shift, places.stop + shift
        keys, headers, none = columns.keys, columns.headers, repeat(None)
        rows = zip(
            repeat(columns.topic),
            repeat(columns.partition),
            range(columns.start + start, columns.start + stop),
            columns.stamped(columns.start + start, columns.start + stop),
            none if keys is None else keys[start:stop],
            columns.values[start:stop],
            none if headers is None else headers[start:stop],
            none,
            none,
        )
        built = dict(zip(range(start, stop), rows, strict=True))
        built.update(columns.built)
        columns.built = built
        return list(map(built.__getitem__, range(start, stop)))

    def key_at(self, i: int) -> Any:
        """The key of message ``i``, read from the columns."""
        keys = self.columns.keys
        return None if keys is None else keys[self.places[i] + self.shift]

    def keys(self) -> list[Any]:
        """The messages' keys, in order."""
        keys = self.columns.keys
        return [None] * len(self.places) if keys is None else self._column(keys)

    def offset_at(self, i: int) -> int:
        """The offset of message ``i``, read without its row."""
        return self.columns.start + self.places[i] + self.shift

    def take(self, positions: list[int]) -> Rows:
        """The messages at ``positions`` (increasing indexes into this sequence)."""
        places = self.places
        if type(places) is range and places.step == 1:
            return Rows(self.columns, positions, self.shift + places.start)
        return Rows(self.columns, [places[i] for i in positions], self.shift)

    def values(self) -> list[Any]:
        """The messages' values, in order."""
        return self._column(self.columns.values)

    def offsets(self) -> Sequence[int]:
        """The messages' offsets, in order."""
        places = self.places
        start = self.columns.start + self.shift
        if type(places) is range:
            return range(places.start + start, places.stop + start, places.step)
        return [start + j for j in places]

    def keyed(self) -> bool:
        """Whether any of the messages has a key (the fetch's column is counted once, then this view's)."""
        columns, keys = self.columns, self.columns.keys
        if columns.any_keys is None:
            columns.any_keys = _any(keys)
        return columns.any_keys and keys is not None and _any(self._column(keys))

    def with_headers(self) -> bool:
        """Whether any of the messages has headers (as `keyed` finds keys)."""
        columns, headers = self.columns, self.columns.headers
        if columns.any_headers is None:
            columns.any_headers = _any(headers)
        return columns.any_headers and headers is not None and _any(self._column(headers))

    def _column(self, column: list[Any]) -> list[Any]:
        """This sequence's entries of one of the fetch's columns."""
        places, shift = self.places, self.shift
        if type(places) is range and places.step == 1:
            return column[places.start + shift : places.stop + shift]
        return [column[j + shift] for j in places]


def _any(entries: list[Any] | None) -> bool:
    """Whether there are entries and any is not None (a C-level count)."""
    return entries is not None and countOf(entries, None) != len(entries)


def placed(rows: Sequence[Row]) -> tuple[str, int, int, Iterable[int]]:
    """A one-partition batch's topic, partition, last offset and offsets (from its columns if it has them)."""
    if type(rows) is Rows:
        columns = rows.columns
        offsets = rows.offsets()
        return columns.topic, columns.partition, offsets[-1], offsets
    last = rows[-1]
    return last[TOPIC], last[PARTITION], last[OFFSET], map(offset_of, rows)


def same_message(a: Sequence[Any], i: int, b: Sequence[Any], j: int) -> bool:
    """Whether ``a[i]`` and ``b[j]`` are one message (in `Rows` of one fetch: one place, no row built)."""
    if type(a) is Rows and type(b) is Rows:
        return a.columns is b.columns and a.place(i) == b.place(j)
    return a[i] is b[j]
