"""Where a changelog record came from: the source header every change made by an event carries, and the rule
recovery applies with it.

A change made while an agent processes an event is stamped ``rxstream-source: topic/partition/offset``
(that event's record). Recovering a partition, a record whose source offset is at or past what the app's
consumer group committed for that source partition is not applied: its event will be processed again, and
the state must not count it twice. Records without the header (tables with ``use_partitioner=True``, whose
writers do not own the partition) are always applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..events import HEADERS, OFFSET, PARTITION, TOPIC, Headers, Row
from ..transport.base import TopicPartition

__all__ = ["COMPACTION_LAG", "SOURCE_HEADER", "Committed", "source_of", "stamp"]

SOURCE_HEADER = "rxstream-source"

COMPACTION_LAG = 3600.0
"""Seconds a changelog record is kept from compaction (``min.compaction.lag.ms``): Kafka removes a record only
for a newer one of its key that is older than this, so the records of a crashed worker's uncommitted tail,
and the committed ones before them, are all there when its partitions are recovered within this time (an
hour: far above a commit interval and a group's session timeout, while a busy changelog stays compactable)."""


def stamp(row: Row) -> dict[str, str]:
    """The headers of a change made while processing ``row``'s event."""
    return {SOURCE_HEADER: f"{row[TOPIC]}/{row[PARTITION]}/{row[OFFSET]}"}


def source_of(headers: Headers | None) -> tuple[TopicPartition, int] | None:
    """The source record a changelog record's headers name, or None when it carries none."""
    if not headers:
        return None
    value = headers.get(SOURCE_HEADER)
    if value is None:
        return None
    text = value if isinstance(value, str) else bytes(value).decode()
    rest, _, offset = text.rpartition("/")
    topic, _, partition = rest.rpartition("/")
    return TopicPartition(topic, int(partition)), int(offset)


class Committed:
    """The consumer group's committed offsets: which recovered changelog records apply.

    ``offsets`` holds a committed offset (0 when the group never committed) for every source partition the
    app consumes; a record from any other source is applied.
    """

    __slots__ = ("_by_prefix", "offsets", "skipped")

    def __init__(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.offsets = dict(offsets)
        self.skipped = 0
        """Records not applied so far (their events are processed again)."""
        self._by_prefix: dict[str | bytes, int] = {}
        """The committed offsets by the header's ``topic/partition`` part, as text and as bytes (Kafka)."""
        for tp, offset in self.offsets.items():
            prefix = f"{tp.topic}/{tp.partition}"
            self._by_prefix[prefix] = self._by_prefix[prefix.encode()] = offset

    def applies(self, message: Row) -> bool:
        """Whether a changelog record stays: it has no source, or its source event was committed."""
        headers = message[HEADERS]
        value = headers.get(SOURCE_HEADER) if headers else None
        if value is None:
            return True
        if isinstance(value, str):
            prefix, _, offset = value.rpartition("/")
            committed = self._by_prefix.get(prefix)
        else:
            raw, _, offset_bytes = bytes(value).rpartition(b"/")
            committed = self._by_prefix.get(raw)
            offset = offset_bytes.decode()
        return committed is None or int(offset) < committed

    def keep(self, messages: Sequence[Row]) -> Sequence[Row]:
        """The records of ``messages`` that apply, in order (``messages`` itself when all do)."""
        if not self.offsets:
            return messages
        kept = [m for m in messages if self.applies(m)]
        if len(kept) == len(messages):
            return messages
        self.skipped += len(messages) - len(kept)
        return kept
