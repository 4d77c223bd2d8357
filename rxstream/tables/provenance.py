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

    __slots__ = ("offsets", "skipped")

    def __init__(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.offsets = dict(offsets)
        self.skipped = 0
        """Records not applied so far (their events are processed again)."""

    def applies(self, message: Row) -> bool:
        """Whether a changelog record stays: it has no source, or its source event was committed."""
        source = source_of(message[HEADERS])
        if source is None:
            return True
        committed = self.offsets.get(source[0])
        return committed is None or source[1] < committed

    def keep(self, messages: Sequence[Row]) -> Sequence[Row]:
        """The records of ``messages`` that apply, in order (``messages`` itself when all do)."""
        if not self.offsets:
            return messages
        kept = [m for m in messages if self.applies(m)]
        if len(kept) == len(messages):
            return messages
        self.skipped += len(messages) - len(kept)
        return kept
