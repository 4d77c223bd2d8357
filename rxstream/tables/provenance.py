"""Where a changelog record came from, and the rule recovery applies with it.

A change made while an agent processes an event comes from that event's record (its source). The
changelog says so once per send batch and partition: the batch's first record of a partition carries
``rxstream-sources``, the sources of that record and of the ones after it in the partition, as runs (a
change with its own headers, a window's, names its source itself in ``rxstream-source:
topic/partition/offset``). Recovering a partition, a record whose source offset is at or past what the
app's consumer group committed for that source partition is not applied: its event will be processed
again, and the state must not count it twice. Records without a source (tables with
``use_partitioner=True``, whose writers do not own the partition) are always applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby, repeat
from operator import countOf, itemgetter
from typing import Any

from ..events import HEADERS, OFFSET, PARTITION, TOPIC, Headers, Row
from ..transport.base import TopicPartition

__all__ = [
    "COMPACTION_LAG",
    "SOURCES_HEADER",
    "SOURCE_HEADER",
    "Committed",
    "Source",
    "SourceTrail",
    "source_of",
    "stamp",
    "stamp_batch",
]

SOURCE_HEADER = "rxstream-source"
"""The source of one changelog record, ``topic/partition/offset`` (a change with headers of its own)."""

SOURCES_HEADER = "rxstream-sources"
"""The sources of a send batch's records of one partition, on the first of them (see `stamp_batch`)."""

MAX_RUNS = 512
"""Runs one ``rxstream-sources`` header holds at most: the next record of the partition starts another."""

COMPACTION_LAG = 3600.0
"""Seconds a changelog record is kept from compaction (``min.compaction.lag.ms``): Kafka removes a record only
for a newer one of its key that is older than this, so the records of a crashed worker's uncommitted tail,
and the committed ones before them, are all there when its partitions are recovered within this time (an
hour: far above a commit interval and a group's session timeout, while a busy changelog stays compactable)."""

Source = tuple[str, int]
"""A changelog record's source: ``topic/partition`` of the source record, and its offset."""

Record = tuple[Any, Any, int | None, Any]
"""A changelog record queued for sending: key, value, partition, and its source row or its own headers."""


_key, _value, _partition, _source = (itemgetter(i) for i in range(4))
_topic, _source_partition, _offset = itemgetter(TOPIC), itemgetter(PARTITION), itemgetter(OFFSET)


def stamp(row: Row) -> dict[str, str]:
    """The headers of a change, made while processing ``row``'s event, that names its source itself."""
    return {SOURCE_HEADER: f"{row[TOPIC]}/{row[PARTITION]}/{row[OFFSET]}"}


def _parse(value: str | bytes) -> Source:
    text = value if isinstance(value, str) else bytes(value).decode()
    prefix, _, offset = text.rpartition("/")
    return prefix, int(offset)


def source_of(headers: Headers | None) -> tuple[TopicPartition, int] | None:
    """The source record a changelog record's own headers name, or None when they name none."""
    value = headers.get(SOURCE_HEADER) if headers else None
    if value is None:
        return None
    prefix, offset = _parse(value)
    topic, _, partition = prefix.rpartition("/")
    return TopicPartition(topic, int(partition)), offset


def stamp_batch(records: list[Record]) -> list[Record]:
    """A changelog send batch as sent: each source row becomes a run in its partition's ``rxstream-sources``.

    Runs are ``T:O+N`` (N records whose sources are offsets O, O+1, ... of the header's T-th topic, in the
    record's partition), ``T:O*N`` (N records of source O) and ``-N`` (N records naming no source there).
    One partition's records of a batch are stored in order and next to each other, so a reader finds each
    record's source by its offset's distance from the header's record.
    """
    counted = _one_run_each(records)
    if counted is not None:
        return counted
    runs: dict[Any, _Runs] = {}
    out: list[Record] | None = None
    for index, (key, value, partition, source) in enumerate(records):
        head = runs.get(partition)
        if head is None or len(head.runs) >= MAX_RUNS - 1:  # the open run is one more
            if head is not None and out is not None:
                head.close(out)
            head = runs[partition] = _Runs(index)
        if not isinstance(source, tuple):
            head.add_unsourced()
            continue
        if out is None:
            out = list(records)
        if source[PARTITION] == partition:
            out[index] = (key, value, partition, None)
            head.add(source[TOPIC], source[OFFSET])
        else:  # made by an event of another partition: the record names it itself
            out[index] = (key, value, partition, stamp(source))
            head.add_unsourced()
    if out is None:
        return records
    for head in runs.values():
        head.close(out)
    return out


def _one_run_each(records: list[Record]) -> list[Record] | None:
    """`stamp_batch` at C level for its common shape, or None: every record made by one event of one topic,
    in its own partition, one record per event (counting), so each partition's sources are one run."""
    sources = list(map(_source, records))
    if countOf(map(type, sources), tuple) != len(sources) or not sources:
        return None
    partitions = list(map(_partition, records))
    if list(map(_source_partition, sources)) != partitions:
        return None
    topics = set(map(_topic, sources))
    if len(topics) != 1:
        return None
    (topic,) = topics
    offsets = list(map(_offset, sources))
    heads = []
    at = partitions.__getitem__
    for _, group in groupby(sorted(range(len(records)), key=at), at):
        indices = list(group)
        first = offsets[indices[0]]
        if list(map(offsets.__getitem__, indices)) != list(range(first, first + len(indices))):
            return None
        heads.append((indices[0], {SOURCES_HEADER: f"{topic};0:{first}+{len(indices)}"}))
    out: list[Record] = list(zip(map(_key, records), map(_value, records), partitions, repeat(None)))
    for index, headers in heads:
        out[index] = (*out[index][:3], headers)
    return out


class _Runs:
    """The runs of one partition's records in a send batch, from its head record on."""

    __slots__ = ("count", "first", "head", "kind", "runs", "topic", "topics")

    def __init__(self, head: int) -> None:
        self.head = head
        self.topics: dict[str, int] = {}
        self.runs: list[str] = []
        self.kind = ""
        """The open run's kind: "+", "*", "-", or "" for none."""
        self.topic = 0
        self.first = 0
        self.count = 0

    def add(self, topic: str, offset: int) -> None:
        which = self.topics.get(topic)
        if which is None:
            which = self.topics[topic] = len(self.topics)
        kind = self.kind
        if which == self.topic and (kind == "+" or kind == "*"):
            count = self.count
            if kind == "+" and offset == self.first + count:
                self.count = count + 1
                return
            last = self.first if kind == "*" else self.first + count - 1
            if offset == last and (kind == "*" or count == 1):
                self.kind, self.count = "*", count + 1
                return
        self.end()
        self.kind, self.topic, self.first, self.count = "+", which, offset, 1

    def add_unsourced(self) -> None:
        if self.kind != "-":
            self.end()
            self.kind, self.count = "-", 0
        self.count += 1

    def end(self) -> None:
        kind = self.kind
        if kind == "-":
            self.runs.append(f"-{self.count}")
        elif kind:
            self.runs.append(f"{self.topic}:{self.first}{kind}{self.count}")
        self.kind = ""

    def close(self, out: list[Record]) -> None:
        """Put the runs, when one names a source, in a header of the head record."""
        self.end()
        if not self.topics:
            return
        key, value, partition, own = out[self.head]
        text = "|".join(self.topics) + ";" + ",".join(self.runs)
        headers = {SOURCES_HEADER: text} if not own else {**own, SOURCES_HEADER: text}
        out[self.head] = (key, value, partition, headers)


def _expand(text: str | bytes, partition: int) -> list[Source | None]:
    """The sources ``rxstream-sources`` runs of ``partition`` name, one per record (None: no source there)."""
    if not isinstance(text, str):
        text = bytes(text).decode()
    names, _, runs = text.partition(";")
    prefixes = [f"{topic}/{partition}" for topic in names.split("|")]
    sources: list[Source | None] = []
    for run in runs.split(","):
        if run[0] == "-":
            sources.extend([None] * int(run[1:]))
            continue
        which, _, rest = run.partition(":")
        prefix = prefixes[int(which)]
        if "+" in rest:
            first, _, count = rest.partition("+")
            start = int(first)
            sources.extend([(prefix, offset) for offset in range(start, start + int(count))])
        else:
            first, _, count = rest.partition("*")
            sources.extend([(prefix, int(first))] * int(count))
    return sources


class SourceTrail:
    """Reads the sources of one changelog's records, in order per partition, across fetched batches."""

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: dict[int, tuple[int, list[Source | None]]] = {}
        """Per partition, the offset of the last ``rxstream-sources`` header read and its records' sources."""

    def sources(self, partition: int, messages: Sequence[Row]) -> list[Source | None]:
        """The source of each message of ``partition`` (None: it names none), in order."""
        runs = self._runs.get(partition)
        out: list[Source | None] = []
        for message in messages:
            headers = message[HEADERS]
            offset = message[OFFSET]
            if headers:
                named = headers.get(SOURCES_HEADER)
                if named is not None:
                    runs = self._runs[partition] = (offset, _expand(named, partition))
                own = headers.get(SOURCE_HEADER)
                if own is not None:
                    out.append(_parse(own))
                    continue
            if runs is not None and 0 <= offset - runs[0] < len(runs[1]):
                out.append(runs[1][offset - runs[0]])
            else:
                out.append(None)
        return out

    def forget(self, partitions: Sequence[int] | frozenset[int] | set[int]) -> None:
        """Drop what was read of ``partitions`` (no longer followed)."""
        for partition in partitions:
            self._runs.pop(partition, None)


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
        self._by_prefix = {f"{tp.topic}/{tp.partition}": offset for tp, offset in self.offsets.items()}
        """The committed offsets by ``topic/partition``."""

    def applies(self, source: Source | None) -> bool:
        """Whether a changelog record of ``source`` stays: it has none, or its source event was committed."""
        if source is None:
            return True
        committed = self._by_prefix.get(source[0])
        return committed is None or source[1] < committed

    def keep(self, messages: Sequence[Row], sources: Sequence[Source | None]) -> Sequence[Row]:
        """The records of ``messages`` (of ``sources``) that apply, in order (``messages`` when all do)."""
        if not self.offsets:
            return messages
        applies = self.applies
        kept = [m for m, source in zip(messages, sources, strict=True) if applies(source)]
        if len(kept) == len(messages):
            return messages
        self.skipped += len(messages) - len(kept)
        return kept
