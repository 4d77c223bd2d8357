"""Send batches their sender already grouped by partition, as columns of keys and values.

A sender that knows each record's partition as it queues it (a table's changelog) keeps one partition's
records as a list of keys, a list of values and the headers of the few that have some. A transport that
stores objects appends such a partition whole, without unpacking or routing each record; to any other
reader the batch is a plain sequence of ``(key, value, partition, headers)`` records, partition after
partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, repeat
from typing import Any, overload

from ..events import Headers

__all__ = ["PartitionRecords", "Routed"]

Record = tuple[Any, Any, int | None, Headers | None]


class PartitionRecords(Sequence[Record]):
    """One partition's records of a send batch, in order: their keys, their values, and the headers of
    those that have some (by index)."""

    __slots__ = ("headers", "keys", "partition", "values")

    def __init__(
        self, partition: int, keys: list[Any], values: list[Any], headers: dict[int, Headers]
    ) -> None:
        self.partition = partition
        self.keys = keys
        self.values = values
        self.headers = headers
        """The headers of the records that have some, by index (most have none)."""

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.keys)))]
        if index < 0:
            index += len(self.keys)
        return self.keys[index], self.values[index], self.partition, self.headers.get(index)

    def __iter__(self) -> Iterator[Record]:
        if not self.headers:
            return zip(self.keys, self.values, repeat(self.partition), repeat(None))
        headers = self.headers.get
        return zip(self.keys, self.values, repeat(self.partition), map(headers, range(len(self.keys))))


class Routed(Sequence[Record]):
    """A send batch grouped by partition: each partition's `PartitionRecords`, one after the other."""

    __slots__ = ("parts",)

    def __init__(self, parts: Iterable[PartitionRecords]) -> None:
        self.parts = [part for part in parts if part.keys]

    def __len__(self) -> int:
        return sum(map(len, self.parts))

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        return list(self)[index]

    def __iter__(self) -> Iterator[Record]:
        return chain.from_iterable(self.parts)
