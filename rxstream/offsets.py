"""Per-partition offset bookkeeping: which offsets are acknowledged and how far a commit may go."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Tracks delivered and acknowledged offsets of one partition; commits never pass a gap.

    Offsets are delivered in increasing ranges. ``committable`` is the offset a consumer may commit (the
    next offset to read, as Kafka defines it): one past the longest acknowledged prefix. Acknowledging
    the prefix in order costs O(1) per batch; out-of-order acknowledgments wait in a set.
    """

    __slots__ = ("_acked", "_committable", "_committed", "_end")

    def __init__(self, committed: int = 0) -> None:
        self._acked: set[int] = set()
        self._committable = committed
        self._committed = committed
        self._end = committed

    def delivered(self, first: int, last: int) -> None:
        """Record that offsets ``first..last`` (inclusive) were handed to the application."""
        if first > self._end and self._committable == self._end and not self._acked:
            self._committable = first  # offsets before ``first`` do not exist (compaction) or were skipped
        if last + 1 > self._end:
            self._end = last + 1

    def ack(self, offset: int) -> None:
        """Mark one offset processed; idempotent, and offsets never delivered are ignored."""
        committable = self._committable
        if offset == committable and offset < self._end:
            self._advance(committable + 1)
        elif committable < offset < self._end:
            self._acked.add(offset)

    def ack_many(self, offsets: Sequence[int]) -> None:
        """Mark offsets processed; a run that continues the acknowledged prefix is one step.

        Other offsets go through C-level set operations: the acknowledged prefix then moves past a whole
        span at once when every offset in it is acknowledged.
        """
        if not offsets:
            return
        committable = self._committable
        end = self._end
        first, last = offsets[0], offsets[-1]
        if first == committable and last - first + 1 == len(offsets) and last < end:
            self._advance(last + 1)
            return
        if min(offsets) < committable or max(offsets) >= end:
            offsets = [offset for offset in offsets if committable <= offset < end]
            if not offsets:
                return
        acked = self._acked
        acked.update(offsets)
        if committable in acked:
            span = range(committable, max(offsets) + 1)
            if acked.issuperset(span):
                acked.difference_update(span)
                committable = span.stop
            self._advance(committable)

    def _advance(self, committable: int) -> None:
        """Move the committable offset to ``committable`` and past any acknowledged offsets that follow."""
        acked = self._acked
        while committable in acked:
            acked.discard(committable)
            committable += 1
        self._committable = committable

    def is_acked(self, offset: int) -> bool:
        """Whether ``offset`` was acknowledged."""
        return offset < self._committable or offset in self._acked

    @property
    def committable(self) -> int:
        """The offset a commit may store now: one past the contiguous acknowledged prefix."""
        return self._committable

    @property
    def committed(self) -> int:
        """The offset last reported as committed."""
        return self._committed

    def mark_committed(self, offset: int) -> None:
        """Record that ``offset`` was committed by the transport."""
        self._committed = max(self._committed, offset)

    @property
    def needs_commit(self) -> bool:
        """Whether acknowledgments moved the committable offset past the last commit."""
        return self._committable > self._committed

    @property
    def pending(self) -> int:
        """How many delivered offsets are not yet acknowledged."""
        return self._end - self._committable - len(self._acked)

    def reset(self, offset: int) -> None:
        """Forget everything in flight and restart from ``offset`` (after a rebalance or a seek)."""
        self._acked.clear()
        self._committable = offset
        self._committed = offset
        self._end = offset
