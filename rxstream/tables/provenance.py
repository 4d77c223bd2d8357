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
from itertools import accumulate
from typing import Any

from ..events import HEADERS, OFFSET, PARTITION, TOPIC, Headers, Row
from ..transport.base import TopicPartition

__all__ = [
    "COMPACTION_LAG",
    "SOURCES_HEADER",
    "SOURCE_HEADER",
    "Committed",
    "Source",
    "SourceRuns",
    "SourceTrail",
    "name_offsets",
    "name_sources",
    "record_at",
    "source_of",
    "stamp",
]

SOURCE_HEADER = "rxstream-source"
"""The source of one changelog record, ``topic/partition/offset`` (a change with headers of its own)."""

SOURCES_HEADER = "rxstream-sources"
"""The sources of a send batch's records of one partition, on the first of them (see `SourceRuns`)."""

MAX_ENTRIES = 2048
"""Runs and deltas one ``rxstream-sources`` header holds at most: the next change of the partition starts
another header (a few kilobytes)."""

COMPACTION_LAG = 3600.0
"""Seconds a changelog record is kept from compaction (``min.compaction.lag.ms``): Kafka removes a record only
for a newer one of its key that is older than this, so the records of a crashed worker's uncommitted tail,
and the committed ones before them, are all there when its partitions are recovered within this time (an
hour: far above a commit interval and a group's session timeout, while a busy changelog stays compactable)."""

Source = tuple[str, int]
"""A changelog record's source: ``topic/partition`` of the source record, and its offset."""


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


class SourceRuns:
    """The sources of the changes queued for a changelog's next send batch, as runs per partition.

    A partition's first change in the batch carries the ``rxstream-sources`` header, filled when the batch
    is sent (`seal`): ``topics;runs``, where a run is ``T:O+N`` (N changes whose sources are offsets O,
    O+1, ... of the T-th topic, in the change's partition), ``T:O~D1.D2...`` (changes of sources O, O+D1,
    O+D1+D2, ...: events that changed nothing in between, or an event that made several changes) or ``-N``
    (N changes naming no source there). One partition's records of a batch are stored in order and next
    to each other, so a reader finds each record's source by its offset's distance from the header's.
    """

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open: dict[int, Runs] = {}
        """Per partition with a change queued since the last batch, its runs."""

    def put(self, partition: int, source: Row | Headers | None) -> Headers | None:
        """The headers of a change of ``partition`` made by ``source`` (a row, noted in the runs) or
        carrying ``source`` as its own headers."""
        runs = self.open.get(partition)
        head: dict[str, Any] | None = None
        if runs is None or runs.size >= MAX_ENTRIES - 1:  # the next change may add one
            if runs is not None:
                runs.close()
            head = {} if source is None or isinstance(source, tuple) else dict(source)
            runs = self.open[partition] = Runs(head)
        if not isinstance(source, tuple):
            runs.add_unsourced()
            return head if head is not None else source
        if source[PARTITION] == partition:
            runs.add(source[TOPIC], source[OFFSET])
            return head
        runs.add_unsourced()  # made by an event of another partition: the change names it itself
        if head is None:
            return stamp(source)
        head.update(stamp(source))
        return head

    def seal(self) -> None:
        """Fill the headers of the queued batch's first change of each partition; the next batch starts."""
        for runs in self.open.values():
            runs.close()
        self.open.clear()


def name_sources(
    partition: int, sources: Sequence[Row | None], own: Mapping[int, Headers | None]
) -> dict[int, Headers]:
    """The headers, by index, of one partition's changes in a send batch, their sources named as `SourceRuns`
    names them when each is queued; ``own`` holds the headers (or None) of the changes without a source
    record (None in ``sources``)."""
    runs = SourceRuns()
    named: dict[int, Headers] = {}
    for index, source in enumerate(sources):
        if source is not None:
            headers = runs.put(partition, source)
        else:
            headers = own.get(index)
            if partition in runs.open:
                headers = runs.put(partition, headers)
        if headers is not None:
            named[index] = headers
    runs.seal()
    return named


def name_offsets(partition: int, topic: str, offsets: list[int]) -> dict[int, Headers]:
    """The headers, by index, of one partition's changes in a send batch made by the records at ``offsets``
    of ``topic`` in the same partition (the common batch: one run when each record made one change)."""
    count = len(offsets)
    if count and offsets == list(range(offsets[0], offsets[0] + count)):
        return {0: {SOURCES_HEADER: f"{topic};0:{offsets[0]}+{count}"}}
    return name_sources(partition, [record_at(topic, partition, offset) for offset in offsets], {})


def record_at(topic: str, partition: int, offset: int) -> Row:
    """A stand-in for the record at ``offset`` of ``topic``'s ``partition``: where it is, nothing else."""
    return (topic, partition, offset, 0.0, None, None, None, None, None)


class Runs:
    """The runs of one partition's changes in a send batch, from its first change (``headers``) on."""

    __slots__ = (
        "count",
        "deltas",
        "first",
        "headers",
        "kind",
        "last",
        "name",
        "next",
        "runs",
        "size",
        "topic",
        "topics",
    )

    def __init__(self, headers: dict[str, Any]) -> None:
        self.headers = headers
        self.topics: dict[str, int] = {}
        self.runs: list[str] = []
        self.size = 0
        """Runs and deltas written so far, and the open run: what bounds the header's length."""
        self.kind = ""
        """The open run's kind: "+", "~", "-", or "" for none."""
        self.topic = 0
        self.first = 0
        self.name = ""
        self.next = -1
        """The source offset that continues an open "+" run of topic ``name`` (-1: none); the run holds
        ``next - first`` changes."""
        self.last = 0
        """The source offset of an open "~" run's last change."""
        self.deltas: list[int] = []
        self.count = 0
        """How many changes an open "-" run holds."""

    def add(self, topic: str, offset: int) -> None:
        """Note a change made by the record at ``offset`` of ``topic``."""
        which = self.topics.get(topic)
        if which is None:
            which = self.topics[topic] = len(self.topics)
        if which == self.topic:
            if self.kind == "+":
                if offset == self.next:
                    self.next = offset + 1
                    return
                if self.next == self.first + 1 and offset >= self.first:  # one change so far: a "~" run
                    self.kind, self.next, self.last, self.deltas = "~", -1, offset, [offset - self.first]
                    self.size += 1
                    return
            elif self.kind == "~" and offset >= self.last:
                self.deltas.append(offset - self.last)
                self.last = offset
                self.size += 1
                return
        self.end()
        self.kind, self.topic, self.first, self.name, self.next = "+", which, offset, topic, offset + 1
        self.size += 1

    def add_unsourced(self) -> None:
        """Note a change that names no source in the runs."""
        if self.kind != "-":
            self.end()
            self.kind, self.count = "-", 0
            self.size += 1
        self.count += 1

    def end(self) -> None:
        kind = self.kind
        if kind == "+":
            self.runs.append(f"{self.topic}:{self.first}+{self.next - self.first}")
        elif kind == "~":
            self.runs.append(f"{self.topic}:{self.first}~{'.'.join(map(str, self.deltas))}")
        elif kind == "-":
            self.runs.append(f"-{self.count}")
        self.kind, self.next = "", -1

    def close(self) -> None:
        """Put the runs, when one names a source, in the first change's headers."""
        self.end()
        if self.topics:
            self.headers[SOURCES_HEADER] = "|".join(self.topics) + ";" + ",".join(self.runs)


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
            first, _, deltas = rest.partition("~")
            offsets = accumulate(map(int, deltas.split(".")), initial=int(first))
            sources.extend([(prefix, offset) for offset in offsets])
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

    def hand_over(self, partition: int, to: SourceTrail) -> None:
        """Give ``to`` what was read of ``partition``'s last header: a reader going on from here needs it."""
        runs = self._runs.pop(partition, None)
        if runs is not None:
            to._runs[partition] = runs

    def resume_at(self, partition: int, offset: int) -> int:
        """Where to read ``partition`` again to know the source of the record at ``offset``: ``offset``, or
        its batch's header when that header came before it (a reader persisting its position)."""
        runs = self._runs.get(partition)
        if runs is not None and runs[0] < offset < runs[0] + len(runs[1]):
            return runs[0]
        return offset


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
