"""The store protocol: where a table keeps its values, per partition, and how far it applied its changelog."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

__all__ = ["MISSING", "Store"]


class _Missing:
    """The marker for "no value" (None is a legal lookup result of nothing, and a tombstone)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


class Store(ABC):
    """A table's local state: values keyed by table key, each living in one partition, plus changelog offsets.

    Stores are plain synchronous classes with no knowledge of transports: the table feeds them writes,
    recovered changelog records and checkpoints. ``persisted_offset`` is where a recovery may start for a
    partition (None: replay the whole changelog), which is what makes a persistent store recover
    incrementally.
    """

    url: str
    persistent = False
    """Whether the store keeps values across restarts (then checkpoints carry changelog offsets)."""

    def open(self) -> None:  # noqa: B027 (optional hook)
        """Acquire resources (files); called when the app starts."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources; called when the app stops."""

    @abstractmethod
    def get(self, key: Any) -> Any:
        """The value of ``key`` in any owned partition, or ``MISSING``."""

    @abstractmethod
    def set(self, key: Any, value: Any, partition: int) -> None:
        """Store ``value`` for ``key`` in ``partition``."""

    @abstractmethod
    def delete(self, key: Any, partition: int) -> None:
        """Remove ``key`` from ``partition`` (a no-op when absent)."""

    @abstractmethod
    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[Any, Any]]:
        """(key, value) of the given partitions (all owned ones when None)."""

    @abstractmethod
    def partitions(self) -> frozenset[int]:
        """The partitions whose state is held here."""

    @abstractmethod
    def assign(self, partitions: Iterable[int]) -> None:
        """Hold ``partitions`` from now on, keeping only state their changelog replay will build on."""

    @abstractmethod
    def revoke(self, partitions: Iterable[int]) -> None:
        """Stop holding ``partitions``: their values are no longer served (persistent stores keep files)."""

    @abstractmethod
    def apply_changelog(self, partition: int, records: Iterable[tuple[Any, Any]], next_offset: int) -> int:
        """Apply recovered (key, value-or-None-tombstone) records; ``next_offset`` follows the last one.

        Returns how many records were applied.
        """

    def persisted_offset(self, partition: int) -> int | None:
        """The changelog offset recovery of ``partition`` may start from (None: from the beginning)."""
        return None

    def persisted_sources(self, partition: int) -> dict[str, int] | None:
        """Per source topic, the last source offset of a change the partition's checkpoint holds."""
        return None

    def reset(self, partitions: Iterable[int]) -> None:  # noqa: B027 (optional hook)
        """Drop what is persisted of held ``partitions``: their recovery starts from the beginning."""

    def checkpoint(  # noqa: B027 (optional hook)
        self, offsets: Mapping[int, int], sources: Mapping[int, Mapping[str, int]] | None = None
    ) -> None:
        """Persist every write so far with, per partition, the changelog offset it reflects and, per source
        topic, the last source offset of a change in it (a checkpoint with uncommitted ones is replayed)."""

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} partitions={sorted(self.partitions())}>"
