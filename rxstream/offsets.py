"""Per-partition offset bookkeeping: which offsets are acknowledged and how far a commit may go."""

from __future__ import annotations

from collections import deque

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """Tracks delivered and acknowledged offsets of one partition; commits never pass a gap.

    Offsets are delivered in increasing order. ``committable`` is the offset a consumer may commit (the
    next offset to read, as Kafka defines it): one past the longest acknowledged prefix.
    """

    __slots__ = ("_acked", "_committable", "_committed", "_pending")

    def __init__(self, committed: int = 0) -> None:
        self._pending: deque[int] = deque()
        self._acked: set[int] = set()
        self._committable = committed
        self._committed = committed

    def delivered(self, first: int, last: int) -> None:
        """Record that offsets ``first..last`` (inclusive) were handed to the application."""
        pending = self._pending
        start = max(first, self._committable, pending[-1] + 1 if pending else first)
        pending.extend(range(start, last + 1))

    def ack(self, offset: int) -> None:
        """Mark one offset processed; idempotent, and offsets never delivered are ignored."""
        pending = self._pending
        if not pending or offset < pending[0]:
            return
        if offset == pending[0]:
            last = pending.popleft()
            acked = self._acked
            while pending and pending[0] in acked:
                last = pending.popleft()
                acked.discard(last)
            self._committable = pending[0] if pending else last + 1
        elif offset <= pending[-1]:
            self._acked.add(offset)

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
        return len(self._pending) - len(self._acked)

    def reset(self, offset: int) -> None:
        """Forget everything in flight and restart from ``offset`` (after a rebalance or a seek)."""
        self._pending.clear()
        self._acked.clear()
        self._committable = offset
        self._committed = offset
