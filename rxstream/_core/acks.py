"""A subscription's acknowledgment state: which delivered offsets are done, and which messages wait."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from ..events import OFFSET, PARTITION, TOPIC, Row, offset_of
from ..offsets import OffsetTracker
from .redelivery import Redeliveries
from .rows import Rows, placed

__all__ = ["Acknowledgments", "Held", "ack_run"]

_partition_of = operator.itemgetter(TOPIC, PARTITION)


def ack_run(tracker: OffsetTracker, messages: Sequence[Row]) -> None:
    """Acknowledge an increasing run of one partition's messages: one range when it has no gap."""
    if type(messages) is Rows:
        tracker.ack_many(messages.offsets())
        return
    first, last = messages[0][OFFSET], messages[-1][OFFSET]
    if last - first + 1 == len(messages):
        tracker.ack_many(range(first, last + 1))
    else:
        tracker.ack_many(list(map(offset_of, messages)))


class Held:
    """Messages held back from acknowledgment, by identity: a redelivered copy is another message."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}

    def __contains__(self, row: Row) -> bool:
        return id(row) in self.rows

    def __bool__(self) -> bool:
        return bool(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Row) -> None:
        self.rows[id(row)] = row

    def discard(self, row: Row) -> None:
        self.rows.pop(id(row), None)

    def discard_all(self, rows: Sequence[Row]) -> None:
        if not self.rows:
            return
        pop = self.rows.pop
        for row in rows:
            pop(id(row), None)

    def forget(self, gone: set[tuple[str, int]]) -> None:
        """Drop the messages of partitions that moved away."""
        self.rows = {k: row for k, row in self.rows.items() if (row[TOPIC], row[PARTITION]) not in gone}


class Acknowledgments:
    """Which delivered messages of one subscription are done, per partition, and which may not be acked yet.

    A message waiting for its redelivery (rejected), replaced by a redelivered copy (superseded) or in the
    hands of the error policy (handled) is held back: an acknowledgment of it changes nothing, so only the
    copy, or the policy once it is done, completes its offset. An acknowledgment also clears the failures
    ``redeliveries`` counted against the messages it covers.
    """

    __slots__ = ("_handled", "_redeliveries", "_rejected", "_superseded", "_trackers")

    def __init__(self, redeliveries: Redeliveries) -> None:
        self._trackers: dict[str, dict[int, OffsetTracker]] = {}
        self._rejected = Held()
        self._superseded = Held()
        self._handled = Held()
        self._redeliveries = redeliveries

    # ------------------------------------------------------------ offsets

    def tracker(self, topic: str, partition: int, start: int | None = None) -> OffsetTracker:
        """The offset bookkeeping of one partition, created at ``start`` when first needed."""
        partitions = self._trackers.setdefault(topic, {})
        tracker = partitions.get(partition)
        if tracker is None:
            tracker = partitions[partition] = OffsetTracker(start or 0)
        return tracker

    def trackers(self) -> dict[tuple[str, int], OffsetTracker]:
        """Every partition's bookkeeping."""
        return {(t, p): tr for t, parts in self._trackers.items() for p, tr in parts.items()}

    def delivered(self, topic: str, partition: int, first: int, last: int, fetched: Sequence[Row]) -> None:
        """Record offsets ``first..last``, fetched as ``fetched``; offsets compacted away are done."""
        tracker = self.tracker(topic, partition, first)
        tracker.delivered(first, last)
        if last - first + 1 > len(fetched):
            present = set(map(offset_of, fetched))
            tracker.ack_many([o for o in range(first, last + 1) if o not in present])

    def ack_partition(self, topic: str, partition: int, refs: Sequence[Row]) -> None:
        """Acknowledge an increasing run of one partition's messages: one step while nothing is held back."""
        if self._rejected.rows or self._superseded.rows or self._handled.rows or self._redeliveries.attempts:
            self.ack(refs)
            return
        tracker = self._trackers.get(topic, {}).get(partition)
        if tracker is not None and refs:
            ack_run(tracker, refs)

    def ack(self, refs: Sequence[Row]) -> None:
        """Acknowledge messages of any partitions (one step per run of consecutive offsets of a partition)."""
        if self._rejected or self._superseded or self._handled:
            refs = [m for m in refs if not self.holds(m)]
        if not refs:
            return
        if self._redeliveries.attempts:
            self._redeliveries.clear(refs)
        first = refs[0]
        last = refs[-1]
        trackers = self._trackers
        if (
            first[TOPIC] == last[TOPIC]
            and first[PARTITION] == last[PARTITION]
            and len(set(map(_partition_of, refs))) == 1
        ):
            tracker = trackers.get(first[TOPIC], {}).get(first[PARTITION])
            if tracker is not None:
                ack_run(tracker, refs)
                return
        for message in refs:
            tracker = trackers.get(message[TOPIC], {}).get(message[PARTITION])
            if tracker is not None:
                tracker.ack(message[OFFSET])

    def settle(self, rows: Sequence[Row]) -> bool:
        """Whether every message of ``rows`` (one partition's batch) is done; their originals are then let go.

        A batch of a partition that moved away counts as done.
        """
        topic, partition, last, offsets = placed(rows)
        tracker = self._trackers.get(topic, {}).get(partition)
        if tracker is not None and not (tracker.committable > last or all(map(tracker.is_acked, offsets))):
            return False
        if self._superseded:  # their offsets are done: a late ack of an original can harm nothing now
            self._superseded.discard_all(rows)
        return True

    def take_back(self, rows: Sequence[Row]) -> list[Row]:
        """The messages of ``rows`` (one partition's batch) that a reader leaving must hand back.

        Those neither done nor held back, in order; none when the partition moved away. Originals among
        ``rows`` are let go: a copy handed back stands for them.
        """
        topic, partition, _, offsets = placed(rows)
        tracker = self._trackers.get(topic, {}).get(partition)
        if tracker is None:
            return []
        undone = [rows[i] for i, offset in enumerate(offsets) if not tracker.is_acked(offset)]
        left = [m for m in undone if not self.holds(m)]
        self._superseded.discard_all(rows)
        return left

    def forget(self, gone: set[tuple[str, int]]) -> None:
        """Drop everything about partitions that moved away, their failure counts too."""
        for topic, partition in gone:
            self._trackers.get(topic, {}).pop(partition, None)
        for held in (self._rejected, self._superseded, self._handled):
            held.forget(gone)
        self._redeliveries.forget(gone)

    # ------------------------------------------------------------ held back

    def holds(self, message: Row) -> bool:
        """Whether an acknowledgment of ``message`` must wait (for its copy, or for the error policy)."""
        return message in self._rejected or message in self._superseded or message in self._handled

    def reject(self, message: Row) -> bool:
        """Hold ``message`` back until it is redelivered; False when it already waits or the policy has it."""
        if message in self._rejected or message in self._handled:
            return False
        self._rejected.add(message)
        return True

    def redelivered(self, message: Row) -> None:
        """``message`` was redelivered as a copy: a late acknowledgment of it must not complete the copy."""
        self._rejected.discard(message)
        self._superseded.add(message)

    def to_policy(self, message: Row) -> None:
        """``message`` goes to the error policy: held back until the policy is done with it."""
        self._handled.add(message)
        self._rejected.discard(message)

    def with_policy(self, message: Row) -> bool:
        """Whether the error policy has ``message``."""
        return message in self._handled

    def policy_done(self, message: Row) -> None:
        """The error policy is done with ``message`` (dead-lettered or skipped): its offset is done."""
        self._handled.discard(message)
        self._redeliveries.clear((message,))
        tracker = self._trackers.get(message[TOPIC], {}).get(message[PARTITION])
        if tracker is not None:
            tracker.ack(message[OFFSET])

    @property
    def superseded(self) -> int:
        """How many originals replaced by a redelivered copy are still held back."""
        return len(self._superseded)
