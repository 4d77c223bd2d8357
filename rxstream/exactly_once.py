"""Exactly-once processing: what an event produces is held for the transaction of the partition it came from.

With ``App(processing_guarantee="exactly_once")``:

- Routing. A sink send (an agent's sinks, `Topic.send_buffered`) or a table change made while a value is
  processed is held in the app's `Outbox` under the record that value came from (its topic, partition and
  offset: `rxstream.events.current_source`, read from the batch, no event is built), if a transactional
  consumer reads that topic (`Outbox.read`). What is sent with no such record being processed (timers,
  `app.send` from outside an agent, tasks, an agent reading a channel) and ``await topic.send(...)``
  (which returns where the message was stored, so it cannot wait for a commit) go out at once, outside
  any transaction, as with at-least-once.
- Committing. At every commit (each ``commit_interval``, on revocation, at stop) the app's consumer
  (`rxstream.consumer.Conductor`) takes, per source partition whose acknowledged offset moved on, the held
  records of the events before that offset and hands them with the offset to the transport's
  `commit_transaction` (`rxstream.transport.base.Transactional`), partitions concurrently: they become
  visible together, or not at all. Records of events not acknowledged yet wait for a later transaction;
  a partition with nothing held commits its offset as usual.
- Failure. A transaction that fails (fenced by a new owner, a send refused, a timeout) is aborted by the
  transport; the consumer then drops, for that partition number, the events in flight and queued, the
  held records and the tables' state, recovers the state from the changelog (read committed) and reads the
  partition again from its committed offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .events import OFFSET, PARTITION, TOPIC, current_source
from .transport.base import OutputRecord, TopicPartition

__all__ = ["EARLY_COMMIT_RECORDS", "Outbox"]

EARLY_COMMIT_RECORDS = 8192
"""How many held records make a commit come before ``commit_interval`` is over."""

Held = list[tuple[int, str, OutputRecord]]
"""A source partition's held records: (offset of the event that produced it, topic, record), in order."""


class Outbox:
    """Per source partition, the records its events produced since its last transaction."""

    __slots__ = ("_wakers", "held", "size")

    def __init__(self) -> None:
        self.held: dict[str, dict[int, Held]] = {}
        """Source topic -> partition -> held records, for the topics transactional consumers read."""
        self.size = 0
        """How many records are held in all."""
        self._wakers: list[asyncio.Event] = []

    def read(self, topics: Iterable[str]) -> None:
        """Hold what records of ``topics`` produce: a consumer commits their partitions in transactions."""
        for topic in topics:
            self.held.setdefault(topic, {})

    def hold(self, topic: str, record: OutputRecord) -> bool:
        """Hold ``record`` (to ``topic``) for the transaction of the record being processed.

        False when no record is being processed in this context, or when no transaction commits the
        record's source (a channel, a topic read at least once): the caller sends it at once.
        """
        source = current_source()
        if source is None:
            return False
        partitions = self.held.get(source[TOPIC])
        if partitions is None:
            return False
        held = partitions.get(source[PARTITION])
        if held is None:
            held = partitions[source[PARTITION]] = []
        held.append((source[OFFSET], topic, record))
        self.size += 1
        if self.size == EARLY_COMMIT_RECORDS:
            for waker in self._wakers:
                waker.set()
        return True

    def waker(self) -> asyncio.Event:
        """An event set whenever ``EARLY_COMMIT_RECORDS`` are held (a commit loop waits on it)."""
        waker = asyncio.Event()
        self._wakers.append(waker)
        return waker

    def forget(self, waker: asyncio.Event) -> None:
        """Stop setting ``waker``."""
        if waker in self._wakers:
            self._wakers.remove(waker)

    def take(self, source: TopicPartition, before: int) -> dict[str, list[OutputRecord]]:
        """Remove and return, per topic in order, the records of ``source``'s events before ``before``."""
        partitions = self.held.get(source.topic)
        held = partitions.get(source.partition) if partitions is not None else None
        if not held:
            return {}
        taken: dict[str, list[OutputRecord]] = {}
        kept: Held = []
        for entry in held:
            if entry[0] < before:
                records = taken.get(entry[1])
                if records is None:
                    records = taken[entry[1]] = []
                records.append(entry[2])
            else:
                kept.append(entry)
        self.size -= len(held) - len(kept)
        held[:] = kept
        return taken

    def drop(self, sources: Iterable[TopicPartition]) -> None:
        """Forget what is held for ``sources`` (their transaction failed, or they moved away)."""
        for source in sources:
            partitions = self.held.get(source.topic)
            if partitions is not None:
                self.size -= len(partitions.pop(source.partition, ()))

    def count(self, source: TopicPartition, before: int | None = None) -> int:
        """How many records are held for ``source`` (of its events before offset ``before``)."""
        partitions = self.held.get(source.topic)
        held = partitions.get(source.partition) if partitions is not None else None
        if not held:
            return 0
        return len(held) if before is None else sum(1 for entry in held if entry[0] < before)
