"""The memory transport's partitioned log: messages at absolute offsets, the floors groups hold it at.

A partition keeps its messages as columns from ``base`` on (values; keys and headers once a message has
some; timestamps as one run per send call) and hands a fetch over as `Rows`: no tuple per message is built
to store or read one. What every known group committed past is trimmed, and ``room`` says how many more
fit before some group lags ``max_partition_backlog`` behind its commits, or some reader
``max_partition_unread`` behind what it fetched. A topic routes records to its partitions (explicit
partition, key hash, or round-robin for keyless records and bare values). `Transactions` keeps each
transactional id's epoch, so a partition's new owner fences the old one.
"""

from __future__ import annotations

import asyncio
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import countOf, itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

from .._core.rows import Columns, Rows
from ..errors import ConfigurationError, TransactionFencedError
from ..events import Headers, Row
from .base import TopicPartition
from .partitioner import partition_for
from .routed import PartitionRecords, Routed

if TYPE_CHECKING:
    from .memory import MemoryConsumer

__all__ = ["PartitionLog", "Record", "TopicLog", "Transactions", "resolve"]

Record = tuple[Any, Any, int | None, Headers | None]
_T = TypeVar("_T")


_key_of = itemgetter(0)
_value_of = itemgetter(1)


def _all_none(records: Sequence[Record], field: int) -> bool:
    """Whether field ``field`` (0 key, 2 partition, 3 headers) is None in every record (a C-level scan)."""
    return countOf(map(itemgetter(field), records), None) == len(records)


def resolve(fut: asyncio.Future[None]) -> None:
    """Wake whoever awaits ``fut`` (once; a future of a closed loop is left alone)."""
    if not fut.done() and not fut.get_loop().is_closed():
        fut.set_result(None)


LONG_LOG = 65_536
"""Retained messages beyond which a trimmed row's place in the list is emptied, and dropped in slices."""


class PartitionLog:
    """One partition's log (offsets from ``base`` on), the groups holding it back and who waits on it."""

    __slots__ = (
        "base",
        "compacting",
        "first",
        "floors",
        "headers",
        "keys",
        "last_headers",
        "last_keyed",
        "low",
        "readers",
        "space_waiters",
        "stamp_starts",
        "stamps",
        "tp",
        "values",
    )

    def __init__(self, tp: TopicPartition, compacting: bool = False) -> None:
        self.tp = tp
        self.compacting = compacting
        """A compacted topic (a table changelog) never makes senders wait: readers that never commit
        (table recovery, global-table readers) must not hold its writers back."""
        self.values: list[Any] = []
        """The messages' values, ``[i]`` at offset ``base + i``."""
        self.keys: list[Any] | None = None
        self.headers: list[Headers | None] | None = None
        """Keys and headers in the same places; each None while no message appended so far had one."""
        self.stamp_starts: list[int] = []
        self.stamps: list[float] = []
        """Timestamps as runs: ``stamps[k]`` from offset ``stamp_starts[k]`` on (one per send call)."""
        self.last_keyed = -1
        self.last_headers = -1
        """The offset of the last message appended with a key, with headers (-1: none yet): a fetch from
        past it knows that none of its messages has one without looking."""
        self.base = 0
        """The offset of the first place of the columns."""
        self.first = 0
        """The first offset retained: a long log's places before it hold None until they are dropped."""
        self.floors: dict[str, int] = {}
        """Per known group, the first offset it still needs (its commit, or where it started)."""
        self.low: int | None = None
        """The smallest floor, or None while no group is known (then retention trims)."""
        self.readers: set[MemoryConsumer] = set()
        """The consumers assigned this partition: woken once per send call that appends to it."""
        self.space_waiters: set[asyncio.Future[None]] = set()

    @property
    def end(self) -> int:
        """The offset the next appended message gets."""
        return self.base + len(self.values)

    def room(self, max_backlog: int, max_unread: int = sys.maxsize) -> int:
        """How many messages fit before some known group lags ``max_backlog`` behind its commit, or some
        reader has ``max_unread`` it did not fetch yet (no group, no reader: no limit)."""
        if self.compacting:
            return sys.maxsize
        end = self.base + len(self.values)
        low = self.low
        room = sys.maxsize if low is None else max_backlog - (end - max(low, self.base))
        readers = self.readers
        if readers:
            tp = self.tp
            room = min(room, max_unread - (end - min(reader.position_of(tp, end) for reader in readers)))
        return room

    def wake_senders(self) -> None:
        """Wake the sends waiting for room (readers fetched, moved, or went away)."""
        waiters, self.space_waiters = self.space_waiters, set()
        for fut in waiters:
            resolve(fut)

    def extend(self, records: Sequence[Record], stamp: float) -> None:
        """Append records (key, value, partition, headers) with the next offsets."""
        if type(records) is PartitionRecords:
            self._extend_columns(records, stamp)
            return
        keys = None if _all_none(records, 0) else map(_key_of, records)
        headers = None if _all_none(records, 3) else [dict(r[3]) if r[3] else None for r in records]
        self._append(len(records), stamp, map(_value_of, records), keys, headers)

    def _extend_columns(self, records: PartitionRecords, stamp: float) -> None:
        """Append one partition's records given as columns."""
        n = len(records.keys)
        headers: list[Headers | None] | None = None
        for i, given in records.headers.items():
            if given:
                if headers is None:
                    headers = [None] * n
                headers[i] = dict(given)
        keys = None if countOf(records.keys, None) == n else records.keys
        self._append(n, stamp, records.values, keys, headers)

    def extend_values(self, values: Sequence[Any], stamp: float) -> None:
        """Append values without key or headers with the next offsets."""
        self._append(len(values), stamp, values, None, None)

    def _append(
        self,
        n: int,
        stamp: float,
        values: Iterable[Any],
        keys: Iterable[Any] | None,
        headers: Iterable[Headers | None] | None,
    ) -> None:
        """Append ``n`` messages sent at ``stamp``: their values, keys and headers (None: none of them has
        any). The keys and headers columns are made, None in every place so far, when the first ones come."""
        if not n:
            return
        start = self.base + len(self.values)
        if not self.stamps or self.stamps[-1] != stamp:
            self.stamp_starts.append(start)
            self.stamps.append(stamp)
        if keys is not None:
            self.last_keyed = start + n - 1
            if self.keys is None:
                self.keys = [None] * len(self.values)
            self.keys.extend(keys)
        elif self.keys is not None:
            self.keys.extend(repeat(None, n))
        if headers is not None:
            self.last_headers = start + n - 1
            if self.headers is None:
                self.headers = [None] * len(self.values)
            self.headers.extend(headers)
        elif self.headers is not None:
            self.headers.extend(repeat(None, n))
        self.values.extend(values)

    def read(self, offset: int, limit: int) -> Rows:
        """Up to ``limit`` messages from ``offset`` on (retained, not past the end)."""
        i = offset - self.base
        j = min(len(self.values), i + limit)
        starts = self.stamp_starts
        runs = slice(bisect_right(starts, offset) - 1, bisect_left(starts, self.base + j))
        keys, headers = self.keys, self.headers
        columns = Columns(
            self.tp.topic,
            self.tp.partition,
            offset,
            self.values[i:j],
            None if keys is None or self.last_keyed < offset else keys[i:j],
            None if headers is None or self.last_headers < offset else headers[i:j],
            starts[runs],
            self.stamps[runs],
        )
        return Rows(columns, range(j - i))

    @property
    def log(self) -> list[Row]:
        """The retained messages as rows (built on each call: for inspection, not for the hot path)."""
        return list(self.read(self.first, sys.maxsize))

    def set_floor(self, group_id: str, offset: int) -> None:
        """Record where ``group_id`` now needs this partition from; trims and wakes senders if room grew."""
        self.floors[group_id] = offset
        self._floors_changed()

    def drop_floor(self, group_id: str) -> None:
        """Forget a deleted group's claim on this partition."""
        if self.floors.pop(group_id, None) is not None:
            self._floors_changed()

    def _floors_changed(self) -> None:
        """Recompute the low watermark, trim what no group needs, wake blocked senders."""
        self.low = min(self.floors.values()) if self.floors else None
        if self.low is not None:
            self.trim_to(min(self.low, self.end))
        self.wake_senders()

    def trim_to(self, offset: int) -> None:
        """Drop the messages before ``offset`` (offsets stay absolute: ``first``, then ``base``, move).

        Cutting the head of a list moves every remaining pointer, so in a log longer than `LONG_LOG` the
        messages are freed by emptying their places, which are cut once as many as the messages that remain.
        """
        start = self.first - self.base
        cut = offset - self.base
        if cut <= start:
            return
        self.first = offset
        columns = [column for column in (self.values, self.keys, self.headers) if column is not None]
        remaining = len(self.values) - cut
        if remaining <= LONG_LOG or cut >= remaining:
            for column in columns:
                del column[:cut]
            self.base = offset
        else:
            emptied = [None] * (cut - start)
            for column in columns:
                column[start:cut] = emptied
        runs = bisect_right(self.stamp_starts, offset) - 1  # the runs that end before ``offset``
        if runs > 0:
            del self.stamp_starts[:runs], self.stamps[:runs]


class TopicLog:
    """A topic's partitions and its round-robin cursor for messages without a key."""

    __slots__ = ("compacting", "name", "next_rr", "partitions")

    def __init__(self, name: str, partitions: int, compacting: bool) -> None:
        if partitions < 1:
            raise ConfigurationError(f"topic {name!r} needs at least one partition, got {partitions}")
        self.name = name
        self.partitions = [PartitionLog(TopicPartition(name, i), compacting) for i in range(partitions)]
        self.compacting = compacting
        self.next_rr = 0

    def partition(self, index: int) -> PartitionLog:
        """Partition ``index``; a ConfigurationError naming the topic when it does not exist."""
        if not 0 <= index < len(self.partitions):
            raise self._no_partition(index)
        return self.partitions[index]

    def _no_partition(self, index: int) -> ConfigurationError:
        """The error for a partition this topic does not have."""
        return ConfigurationError(
            f"topic {self.name!r} has partitions 0..{len(self.partitions) - 1}: there is no partition {index}"
        )

    def round_robin(self, items: Sequence[_T]) -> tuple[list[list[_T]], int]:
        """Items (keyless records, or values) bucketed round-robin by slicing, and the last partition."""
        count = len(self.partitions)
        turn = self.next_rr
        n = len(items)
        buckets = [list(items[(i - turn) % count :: count]) for i in range(count)]
        self.next_rr = (turn + n) % count
        return buckets, (turn + n - 1) % count

    def route(self, records: Sequence[Record]) -> tuple[list[list[Record]], int]:
        """Records bucketed by partition (explicit, else key hash, else round-robin), and the last partition.

        Every record is routed before any is appended, so a bad partition number appends nothing.
        """
        if type(records) is Routed:
            return self._route_parts(records)
        if not isinstance(records, (list, tuple)):
            records = list(records)
        if records and _all_none(records, 0) and _all_none(records, 2):
            return self.round_robin(records)
        count = len(self.partitions)
        turn = self.next_rr
        buckets: list[list[Record]] = [[] for _ in range(count)]
        index = 0
        for record in records:
            key, partition = record[0], record[2]
            if partition is not None:
                if not 0 <= partition < count:
                    raise self._no_partition(partition)
                index = partition
            elif key is None:
                index = turn % count
                turn += 1
            else:
                index = partition_for(key, count)
            buckets[index].append(record)
        self.next_rr = turn % count
        return buckets, index

    def _route_parts(self, records: Routed) -> tuple[list[list[Record]], int]:
        """The buckets of a batch its sender grouped by partition, and the last partition."""
        count = len(self.partitions)
        buckets: list[Any] = [[] for _ in range(count)]
        index = 0
        for part in records.parts:
            index = part.partition
            if not 0 <= index < count:
                raise self._no_partition(index)
            buckets[index] = part
        return buckets, index


class Transactions:
    """The epoch of every transactional id: initialising an id again fences whoever held it before.

    A transaction's records and offset are appended and committed in one step without an await between
    them, so a reader never sees part of one and an aborted transaction leaves nothing behind: every
    reader of the memory log reads committed records only.
    """

    __slots__ = ("epochs",)

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}

    def init(self, transactional_id: str) -> int:
        """Take ``transactional_id`` over: its new epoch (the previous holder can commit no more)."""
        epoch = self.epochs.get(transactional_id, 0) + 1
        self.epochs[transactional_id] = epoch
        return epoch

    def check(self, transactional_id: str, epoch: int) -> None:
        """A TransactionFencedError naming the id when ``epoch`` is no longer its current one."""
        current = self.epochs.get(transactional_id)
        if current != epoch:
            raise TransactionFencedError(
                f"transactional id {transactional_id!r} was taken over (epoch {current}, this member "
                f"holds {epoch}): another member owns its partition now"
            )
