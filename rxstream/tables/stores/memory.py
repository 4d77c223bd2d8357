"""The in-memory store: one dict for the values and one for the partition each key lives in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .base import MISSING, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """A dict per table; recovery always replays the changelog from the beginning (nothing is persisted)."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self.data: dict[Any, Any] = {}
        self.partition_of: dict[Any, int] = {}
        self._partitions: set[int] = set()

    def get(self, key: Any) -> Any:
        """The value of ``key``, or ``MISSING``."""
        return self.data.get(key, MISSING)

    def set(self, key: Any, value: Any, partition: int) -> None:
        """Store ``value`` for ``key`` in ``partition``."""
        self.data[key] = value
        self.partition_of[key] = partition

    def delete(self, key: Any, partition: int) -> None:
        """Remove ``key``."""
        self.data.pop(key, None)
        self.partition_of.pop(key, None)

    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs, optionally of some partitions only."""
        if partitions is None:
            return iter(list(self.data.items()))
        wanted = set(partitions)
        part = self.partition_of
        return iter([(k, v) for k, v in self.data.items() if part.get(k) in wanted])

    def partitions(self) -> frozenset[int]:
        """The partitions held here."""
        return frozenset(self._partitions)

    def assign(self, partitions: Iterable[int]) -> None:
        """Hold ``partitions``; a memory store always starts them empty (the changelog is replayed)."""
        new = frozenset(partitions)
        self._drop(new)
        self._partitions |= new

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget the values of ``partitions``."""
        gone = frozenset(partitions)
        self._drop(gone)
        self._partitions -= gone

    def _drop(self, partitions: frozenset[int]) -> None:
        if not partitions or not self.data:
            return
        doomed = [k for k, p in self.partition_of.items() if p in partitions]
        for key in doomed:
            del self.data[key]
            del self.partition_of[key]

    def apply_changelog(self, partition: int, records: Iterable[tuple[Any, Any]], next_offset: int) -> int:
        """Apply recovered records (None values delete)."""
        data = self.data
        part = self.partition_of
        count = 0
        for key, value in records:
            count += 1
            if value is None:
                data.pop(key, None)
                part.pop(key, None)
            else:
                data[key] = value
                part[key] = partition
        return count

    def __len__(self) -> int:
        return len(self.data)
