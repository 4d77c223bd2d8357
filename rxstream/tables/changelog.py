"""Changelogs: the compacted topic every table change is written to, and the reader that replays it.

Writes go through the topic's batched send buffer, which the app flushes before every offset commit, so an
event is never committed before the table change it caused was stored. Recovery reads with a consumer of
a throw-away group (earliest offsets, never committing) up to the end offsets taken when it began.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..channels import Topic
from ..errors import TableError
from ..events import OFFSET, PARTITION, TOPIC, Headers, Row
from ..progress import Progress
from ..transport.base import Consumer, TopicPartition, TopicSpec, Transport
from ..transport.routed import PartitionRecords, Routed
from .provenance import COMPACTION_LAG, SourceRuns, name_offsets, name_sources, record_at

if TYPE_CHECKING:
    from ..app import App
    from ..monitor import RecoveryProgress

__all__ = ["ChangelogReader", "ChangelogTopic", "Queued", "RecoveryStats"]

logger = logging.getLogger(__name__)

Apply = Callable[[int, Sequence[Row]], None]
"""Applies a batch of changelog messages of one partition (in offset order)."""


class ChangelogTopic(Topic[Any, Any]):
    """A table's compacted changelog topic; `put` queues a change for the partition it belongs to."""

    def __init__(self, app: App, name: str, *, partitions: int | None, value_serializer: Any = None) -> None:
        super().__init__(
            app,
            name,
            partitions=partitions,
            compacting=True,
            key_serializer="json",
            value_serializer=value_serializer,
            on_error="crash",
            internal=True,
        )
        self.sources = SourceRuns()
        """The sources of the changes queued for the next send batch, as each is queued (a byte transport)."""
        self._open = self.sources.open
        self.queued: dict[int, Queued] = {}
        """Per partition, the changes queued for the next send batch, on a transport that takes objects (a
        table appends the common change to them itself)."""
        self._columns: bool | None = None
        """Whether changes queue as columns per partition (objects, no exactly-once); None: not known yet."""
        self.batching.prepare = self._seal

    def specs(self, default_partitions: int) -> list[TopicSpec]:
        """The compacted topic, whose records compaction leaves alone for `COMPACTION_LAG` seconds."""
        lag = {"min.compaction.lag.ms": str(round(COMPACTION_LAG * 1000))}
        return [spec._replace(config={**spec.config, **lag}) for spec in super().specs(default_partitions)]

    def put(self, key: Any, value: Any, partition: int, source: Row | Headers | None = None) -> None:
        """Queue one change (``value`` None is a deletion) for the next batched send; never waits.

        ``source`` is the record of the event that made the change (named in the batch's headers, see
        `provenance`), or the change's own headers.
        """
        columns = self._columns
        if columns is None:
            columns = self._columns = self.app.outbox is None and not self.app.transport.needs_bytes
        if columns:
            queued = self.queued.get(partition)
            if queued is None:
                # the send buffer holds each partition's first change, so that a batch is sent; `_seal` hands
                # over the partition's columns in its place
                self.batching.put(key, value, partition, None)
                queued = self.queued[partition] = Queued(partition, source)
            queued.add(key, value, source)
            return
        runs = self._open.get(partition)
        if isinstance(source, tuple):
            if runs is not None and source[OFFSET] == runs.next and source[TOPIC] == runs.name:
                if source[PARTITION] == partition:  # the next event's change: the open run grows
                    runs.next += 1
                    self.batching.put(key, value, partition, None)
                    return
            # with exactly-once, a transaction's records are read once committed: none names a source
            source = self.sources.put(partition, source) if self.app.outbox is None else None
        elif runs is not None:
            source = self.sources.put(partition, source)
        self.batching.put(key, value, partition, source)

    def _seal(self, batch: list[Any]) -> Sequence[Any]:
        """The batch being sent, each partition's sources named in its first change's headers: the queued
        columns of each partition (``batch`` holds their first changes), or ``batch`` itself."""
        self.sources.seal()
        if not self.queued:
            return batch
        queued = list(self.queued.values())
        self.queued.clear()
        return Routed(
            PartitionRecords(changes.partition, changes.keys, changes.values, changes.headers())
            for changes in queued
        )

    async def flush(self) -> None:
        """Send what is queued now (the app also does this before every commit)."""
        await self.batching.flush()


class Queued:
    """One partition's changes queued for the next send batch: their keys, values and sources.

    While every change was made by a record of one topic in this partition (the common case), ``topic``
    names it and ``offsets`` holds the offset of each change's record; else ``topic`` is None and
    ``sources`` holds each change's record, or None for a change without one (its own headers in ``own``).
    """

    __slots__ = ("keys", "offsets", "own", "partition", "sources", "topic", "values")

    def __init__(self, partition: int, first: Row | Headers | None) -> None:
        self.partition = partition
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self.topic: str | None = (
            first[TOPIC] if isinstance(first, tuple) and first[PARTITION] == partition else None
        )
        self.offsets: list[int] = []
        self.sources: list[Row | None] = []
        self.own: dict[int, Headers | None] = {}

    def add(self, key: Any, value: Any, source: Row | Headers | None) -> None:
        """Queue a change made by the record ``source``, or carrying ``source`` as its own headers."""
        topic = self.topic
        if topic is not None:
            if isinstance(source, tuple) and source[TOPIC] == topic and source[PARTITION] == self.partition:
                self.offsets.append(source[OFFSET])
                self.keys.append(key)
                self.values.append(value)
                return
            self.sources = [record_at(topic, self.partition, offset) for offset in self.offsets]
            self.topic = None
        if not isinstance(source, tuple):
            self.own[len(self.keys)] = source
            source = None
        self.sources.append(source)
        self.keys.append(key)
        self.values.append(value)

    def headers(self) -> dict[int, Headers]:
        """The headers of the changes that have some, by index: the batch's sources named (`provenance`)."""
        if self.topic is not None:
            return name_offsets(self.partition, self.topic, self.offsets)
        return name_sources(self.partition, self.sources, self.own)


class RecoveryStats(NamedTuple):
    """What one recovery did: partitions, records read, seconds taken, records not applied (uncommitted)."""

    partitions: tuple[int, ...]
    records: int
    seconds: float
    skipped: int = 0

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else float(self.records)


class ChangelogReader:
    """Reads a changelog topic's partitions from given offsets: to the end (recovery), then on (follow).

    Each reader is a consumer of its own group (``auto_offset_reset="earliest"``, never committing), so it
    is the group's only member and owns every partition; partitions it does not need are paused.
    """

    def __init__(
        self,
        transport: Transport,
        topic: str,
        apply: Apply,
        *,
        label: str,
        group_prefix: str,
        progress_interval: float = 1.0,
        stall_timeout: float = 60.0,
        progress: RecoveryProgress | None = None,
    ) -> None:
        self.transport = transport
        self.topic = topic
        self._apply = apply
        self.label = label
        self.group_id = f"{group_prefix}-{uuid.uuid4().hex[:12]}"
        self.progress_interval = progress_interval
        self.stall_timeout = stall_timeout
        self.progress = progress
        self._consumer: Consumer | None = None
        self._ready = False
        """Whether start() returned (a Kafka consumer cannot seek from a listener called inside start)."""
        self._starts: dict[int, int] = {}
        self._wanted: set[int] = set()
        self.applied = 0

    async def _on_rebalance(
        self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]
    ) -> None:
        if self._ready and assigned:
            self._position(assigned)

    def _position(self, assigned: Sequence[TopicPartition] | frozenset[TopicPartition]) -> None:
        """Pause the partitions not asked for and seek the others to their start offsets."""
        consumer = self._consumer
        if consumer is None:
            return
        unwanted = [tp for tp in assigned if tp.partition not in self._wanted]
        if unwanted:
            consumer.pause(unwanted)
        for tp in assigned:
            start = self._starts.get(tp.partition)
            if start is not None and tp.partition in self._wanted:
                consumer.seek(tp, start)

    async def catch_up(self, starts: Mapping[int, int], *, follow: bool = False) -> RecoveryStats:
        """Apply every record from ``starts`` (partition -> offset) up to the end offsets taken now.

        With ``follow`` the consumer stays open for `follow` (a global table's background reader).
        """
        began = time.monotonic()
        ends = await self.transport.end_offsets(self.topic)
        self._starts = dict(starts)
        self._wanted = set(starts)
        todo = {
            TopicPartition(self.topic, p): ends.get(TopicPartition(self.topic, p), 0)
            for p, start in starts.items()
            if ends.get(TopicPartition(self.topic, p), 0) > start
        }
        total = sum(end - starts[tp.partition] for tp, end in todo.items())
        partitions = tuple(sorted(starts))
        if not todo and not follow:
            return RecoveryStats(partitions, 0, time.monotonic() - began)
        logger.info(
            "%s: recovering %d changelog records of partitions %s from %r",
            self.label,
            total,
            list(partitions),
            self.topic,
        )
        progress = self.progress
        if progress is not None:
            progress.begin({tp.partition: end - starts[tp.partition] for tp, end in todo.items()})
        consumer = self._consumer = self.transport.consumer(
            self.group_id, [self.topic], self._on_rebalance, auto_offset_reset="earliest"
        )
        await consumer.start()
        self._ready = True
        self._position(consumer.assignment())
        applied = 0
        position: Callable[[TopicPartition], Awaitable[int]] | None = getattr(consumer, "position", None)
        last_progress = time.monotonic()
        bar = Progress(
            f"{self.label}: recovering {self.topic!r}", total, interval=self.progress_interval, log=logger
        )
        try:
            while todo:
                batch = await consumer.getmany(timeout=0.2, max_records=10_000)
                for tp, messages in batch.items():
                    end = todo.get(tp)
                    if end is None:
                        if follow and tp.partition in self._wanted:
                            self._apply(tp.partition, messages)
                        continue
                    if messages[-1][OFFSET] >= end:
                        messages = [m for m in messages if m[OFFSET] < end]
                        if messages:
                            self._apply(tp.partition, messages)
                            applied += len(messages)
                            bar.advance(len(messages))
                            if progress is not None:
                                progress.advance(tp.partition, len(messages))
                        del todo[tp]
                    else:
                        self._apply(tp.partition, messages)
                        applied += len(messages)
                        bar.advance(len(messages))
                        if progress is not None:
                            progress.advance(tp.partition, len(messages))
                        if messages[-1][OFFSET] + 1 >= end:
                            del todo[tp]
                    if tp not in todo and not follow:
                        consumer.pause([tp])
                if todo and position is not None:  # a read-committed Kafka consumer skips transaction markers
                    for tp in [tp for tp in todo if tp not in batch]:
                        if await position(tp) >= todo[tp]:
                            del todo[tp]
                            if not follow:
                                consumer.pause([tp])
                now = time.monotonic()
                if batch:
                    last_progress = now
                elif now - last_progress > self.stall_timeout:
                    raise TableError(
                        f"{self.label}: changelog {self.topic!r} recovery stalled for "
                        f"{self.stall_timeout:.0f} s with partitions {sorted(tp.partition for tp in todo)} "
                        "short of their end offsets"
                    )
        except BaseException:
            await self.close()
            raise
        finally:
            bar.close()
            if progress is not None:
                progress.end()
        self.applied += applied
        took = time.monotonic() - began
        stats = RecoveryStats(partitions, applied, took)
        logger.info(
            "%s: recovered %d/%d changelog records of partitions %s in %.2f s (%.0f records/s)",
            self.label,
            applied,
            total,
            list(partitions),
            took,
            stats.rate,
        )
        if not follow:
            await self.close()
        return stats

    async def follow(self) -> None:
        """Apply new records as they arrive until cancelled or closed (after ``catch_up(follow=True)``)."""
        if self._consumer is None:
            raise TableError(f"{self.label}: follow() needs catch_up(..., follow=True) first")
        while (consumer := self._consumer) is not None:
            batch = await consumer.getmany(timeout=0.5, max_records=10_000)
            for tp, messages in batch.items():
                if tp.partition in self._wanted:
                    self._apply(tp.partition, messages)
                    self.applied += len(messages)

    async def close(self) -> None:
        """Leave the reader's group, and forget it where the transport keeps groups (memory://)."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        await consumer.stop()
        forget: Callable[[str], Awaitable[None] | None] | None = getattr(self.transport, "delete_group", None)
        if forget is not None:
            try:
                result = forget(self.group_id)
                if result is not None:
                    await result
            except Exception:
                logger.exception("%s: forgetting recovery group %s failed", self.label, self.group_id)
