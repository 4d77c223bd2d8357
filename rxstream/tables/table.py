"""Tables: dict-like state sharded like the source topic, every change written to a compacted changelog.

    counts = app.Table("word-counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1          # stored locally and queued for {app_id}-word-counts-changelog

A change goes to the changelog partition of the event being processed (``current_event()``), so the
worker that owns a source partition owns the same table partition; when partitions are assigned the table
replays their changelog before agents see new events, and when they are revoked it drops their state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping, MutableSet, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from .._core.rows import Rows
from ..codecs import decode_value
from ..durations import Duration
from ..errors import ConfigurationError, DecodeError, TableError
from ..events import (
    KEY,
    OFFSET,
    PARTITION,
    TOPIC,
    VALUE,
    Event,
    Row,
    current_event,
    current_source,
    event_source,
)
from ..records import decoder_for
from ..transport.base import TopicPartition
from ..transport.partitioner import partition_for
from .changelog import ChangelogReader, ChangelogTopic, RecoveryStats
from .provenance import Committed, SourceTrail, stamp
from .stores import MISSING, MemoryStore, Store, store_for
from .stores.rocksdb import hashable
from .views import ansitable

if TYPE_CHECKING:
    from ..app import App
    from ..channels import Topic
    from .standby import Standby
    from .windowed import WindowedTable, _Windowing

__all__ = ["GlobalTable", "SetTable", "Table"]

logger = logging.getLogger(__name__)


class Table(MutableMapping[Any, Any]):
    """A dict-like table (``MutableMapping``) whose changes are written to ``{app_id}-{name}-changelog``.

    ``default`` is a callable giving the value of a missing key (``default=int`` for counters); reading a
    missing key does not store it. Set and delete only while an agent processes an event (the change goes
    to that event's partition), or with ``use_partitioner=True`` anywhere (the key's hash picks the
    partition). A value of None cannot be stored: None is the changelog's deletion marker.
    """

    kind = "table"

    def __init__(
        self,
        app: App,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        partitions: int | None = None,
        key_type: Any = None,
        value_type: Any = None,
        store: str | None = None,
        use_partitioner: bool = False,
        help: str | None = None,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        changelog_topic: Topic[Any, Any] | str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"app.Table() needs a non-empty string name, got {name!r}")
        if default is not None and not callable(default):
            raise ConfigurationError(
                f"table {name!r}: default must be a callable returning the value of a missing key "
                f"(like default=int), got {default!r}"
            )
        if partitions is not None and (
            isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
        ):
            raise ConfigurationError(
                f"table {name!r}: partitions must be a positive integer, got {partitions!r}"
            )
        if on_window_close is not None and not callable(on_window_close):
            raise ConfigurationError(
                f"table {name!r}: on_window_close must be callable, got {on_window_close!r}"
            )
        self.app = app
        self.name = name
        self.default = default
        self.key_type = key_type
        self.value_type = value_type
        self.use_partitioner = use_partitioner
        self.help = help or ""
        self.on_window_close = on_window_close
        self.store_url = store or app.store
        logged, partitions = _changelog_of(app, name, changelog_topic, partitions)
        self.changelog = ChangelogTopic(app, logged, partitions=partitions)
        self._partitions = partitions or app.topic_partitions
        self._windowing: _Windowing | None = None
        self._key_decoder = decoder_for(key_type) if key_type is not None else None
        self._store: Store = store_for(
            self.store_url,
            app_id=app.id,
            table=name,
            decode_key=self._decode_key,
            value_type=None,
        )
        self._value_decoder = decoder_for(value_type) if value_type is not None else None
        self.last_recovery: RecoveryStats | None = None
        self.recovered_records = 0
        self._revoked: set[int] = set()
        """Partitions that moved to another worker: changes of them made by events are dropped."""
        self.fenced_writes = 0
        """Changes dropped because their partition had moved to another worker."""
        self.standby: Standby | None = None
        """Warm copies of partitions another worker owns (``App(table_standby_replicas=N)``)."""
        self.skipped_records = 0
        """Changelog records recovery did not apply: their events were not committed (see `provenance`)."""
        self._written: dict[tuple[int, str], int] | None = {} if self._store.persistent else None
        """For a persistent store, per (partition, source topic), the last source offset of a change."""
        memory = self._store if isinstance(self._store, MemoryStore) else None
        self._values: dict[Any, Any] | None = memory.data if memory is not None else None
        """A memory store's dict, read and written directly by ``table[key]`` (the hot path of counting)."""
        self._partition_of: dict[Any, int] = memory.partition_of if memory is not None else {}
        self._queued = self.changelog.queued
        """The changelog's queued changes per partition, which ``table[key] = value`` appends to."""

    # ------------------------------------------------------------ properties

    @property
    def partitions(self) -> int:
        """How many partitions the table (and its changelog) has."""
        return self._partitions

    @property
    def store(self) -> Store:
        """Where the values live (memory or RocksDB)."""
        return self._store

    @property
    def changelog_topic(self) -> str:
        """The name of the compacted changelog topic."""
        return self.changelog.name

    # ------------------------------------------------------------ mapping

    def __getitem__(self, key: Any) -> Any:
        values = self._values
        value = self._store.get(key) if values is None else values.get(key, MISSING)
        if value is MISSING:
            if self.default is None:
                raise KeyError(key)
            return self.default()
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        # the hot path of counting: what MemoryStore.set and ChangelogTopic.put (Queued.add) do, done here
        cursor = event_source()
        values = self._values
        try:
            refs, index = cursor.batch.refs, cursor.index
            if type(refs) is Rows and values is not None and value is not None and not self.use_partitioner:
                columns, partition = refs.columns, refs.columns.partition  # a memory fetch: no row needed
                queued = self._queued.get(partition)
                if queued is not None and queued.topic == columns.topic and partition not in self._revoked:
                    values[key] = value
                    self._partition_of[key] = partition
                    queued.keys.append(key)
                    queued.values.append(value)
                    queued.offsets.append(columns.start + refs.places[index] + refs.shift)
                    return
            row = refs[index]  # `Cursor.current_row`'s common case
        except (AttributeError, IndexError, TypeError):
            row = None
        if type(row) is not tuple:
            row = row.message if type(row) is Event else current_source()
        if row is not None and values is not None and value is not None and not self.use_partitioner:
            partition = row[PARTITION]
            if partition < self._partitions and partition not in self._revoked:
                values[key] = value
                self._partition_of[key] = partition
                queued = self._queued.get(partition)
                if queued is not None and row[TOPIC] == queued.topic:
                    queued.keys.append(key)
                    queued.values.append(value)
                    queued.offsets.append(row[OFFSET])
                else:
                    self.changelog.put(key, value, partition, row)
                return
        self._set(key, value, row)

    def _set(self, key: Any, value: Any, row: Row | None) -> None:
        """Store and log a change made while processing ``row``'s event (the current one)."""
        if value is None:
            raise TableError(
                f"table {self.name!r}: cannot store None for key {key!r}: None marks a deletion in the "
                "changelog; use `del table[key]`"
            )
        if self.use_partitioner:
            partition = partition_for(key, self._partitions)
            self._store.set(key, value, partition)
            self.changelog.put(key, value, partition)
            return
        if row is None or row[PARTITION] >= self._partitions:
            self._write_partition(key)  # raises the error that says why there is no partition
            return
        partition = row[PARTITION]
        if partition in self._revoked:
            self.fenced_writes += 1
            return
        self._store.set(key, value, partition)
        if self._written is not None:
            self._written[partition, row[TOPIC]] = row[OFFSET]
        self.changelog.put(key, value, partition, row)

    def __delitem__(self, key: Any) -> None:
        if self._store.get(key) is MISSING:
            raise KeyError(key)
        self.delete_in(key, self._write_partition(key))

    def __contains__(self, key: object) -> bool:
        return self._store.get(key) is not MISSING

    def __iter__(self) -> Iterator[Any]:
        return (key for key, _ in self._store.items())

    def __len__(self) -> int:
        return len(self._store)

    @property
    def windowed(self) -> bool:
        """Whether the table was given windows (`tumbling`, `hopping`, `sliding`, `session`)."""
        return self._windowing is not None

    @property
    def late_count(self) -> int:
        """Events that arrived after their window closed (0 for a table that is not windowed)."""
        return self._windowing.late if self._windowing is not None else 0

    @property
    def late_by_partition(self) -> dict[int, int]:
        """Events that arrived after their window closed, per source partition."""
        return dict(self._windowing.late_by_partition) if self._windowing is not None else {}

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``; if missing, the table's ``default()`` if it has one, else ``default``."""
        value = self._store.get(key)
        if value is not MISSING:
            return value
        return self.default() if self.default is not None else default

    def as_dict(self) -> dict[Any, Any]:
        """A plain dict copy of what this worker holds."""
        return dict(self._store.items())

    def as_ansitable(self, title: str = "{table.name}", **options: Any) -> str:
        """What this worker holds as a text table (``key=``, ``value=`` headers, ``sort=``, ``sortkey=``)."""
        return ansitable(self._store.items(), title=title.format(table=self), **options)

    def _write_partition(self, key: Any) -> int:
        """The partition a change of ``key`` belongs to: the current event's, or the key's hash."""
        if self.use_partitioner:
            return partition_for(key, self._partitions)
        row = current_source()
        if row is None:
            try:
                current_event()
            except RuntimeError:
                raise TableError(
                    f"table {self.name!r}: cannot change key {key!r} outside of a stream iteration: a change "
                    "is written to the changelog partition of the event being processed. Change the table "
                    "inside an agent's `async for`, or create it with use_partitioner=True to pick the "
                    "partition by key"
                ) from None
            raise TableError(
                f"table {self.name!r}: cannot change key {key!r}: the current event has no message (a "
                "stream of plain values), so it has no partition; use use_partitioner=True"
            )
        partition: int = row[PARTITION]
        if partition >= self._partitions:
            raise TableError(
                f"table {self.name!r}: key {key!r} comes from topic {row[TOPIC]!r} partition "
                f"{partition} but the table has {self._partitions} partitions; declare the table with the "
                "partition count of its source topic (partitions=...)"
            )
        return partition

    def _source(self, headers: dict[str, str] | None) -> Row | dict[str, str] | None:
        """What a change names as its source: the record of the event being processed (none for
        ``use_partitioner`` tables), as the change's own header when it has ``headers``."""
        row = None if self.use_partitioner else current_source()
        if row is None:
            return headers
        if self._written is not None:
            self._written[row[PARTITION], row[TOPIC]] = row[OFFSET]
        return row if not headers else {**headers, **stamp(row)}

    def set_in(self, key: Any, value: Any, partition: int, headers: dict[str, str] | None = None) -> None:
        """Store and log a change in a given partition (windows use this for their own bookkeeping).

        The change carries the source of the event being processed, if any (see `provenance`).
        """
        if partition in self._revoked and not self.use_partitioner:
            self.fenced_writes += 1
            return
        self._store.set(key, value, partition)
        self.changelog.put(key, value, partition, self._source(headers))

    def delete_in(self, key: Any, partition: int, headers: dict[str, str] | None = None) -> None:
        """Delete and log a deletion in a given partition (with the current event's source, if any)."""
        if partition in self._revoked and not self.use_partitioner:
            self.fenced_writes += 1
            return
        self._store.delete(key, partition)
        self.changelog.put(key, None, partition, self._source(headers))

    # ------------------------------------------------------------ windows

    def tumbling(
        self,
        size: Duration,
        expires: Duration | None = None,
        *,
        grace: Duration = 0.0,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        late_events: Any = None,
        key_index: bool = True,
    ) -> WindowedTable:
        """A windowed view over fixed ``size``-second windows; ``wt[key] += 1`` counts per window."""
        from .windows import TumblingWindow

        return self._windowed(
            partial(TumblingWindow, size, expires=expires), grace, on_window_close, late_events, None
        )

    def hopping(
        self,
        size: Duration,
        step: Duration,
        expires: Duration | None = None,
        *,
        grace: Duration = 0.0,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        late_events: Any = None,
        key_index: bool = True,
    ) -> WindowedTable:
        """A windowed view over ``size``-second windows starting every ``step`` seconds (they overlap)."""
        from .windows import HoppingWindow

        return self._windowed(
            partial(HoppingWindow, size, step, expires=expires), grace, on_window_close, late_events, None
        )

    def sliding(
        self,
        before: Duration,
        after: Duration,
        expires: Duration | None = None,
        *,
        grace: Duration = 0.0,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        late_events: Any = None,
        merge: Callable[[Any, Any], Any] | None = None,
        key_index: bool = True,
    ) -> WindowedTable:
        """A windowed view where the window of an event at ``t`` is ``[t - before, t + after)``.

        Values are kept per event time and folded with ``merge`` (default ``+``) when a window is read.
        """
        from .windows import SlidingWindow

        return self._windowed(
            partial(SlidingWindow, before, after, expires=expires), grace, on_window_close, late_events, merge
        )

    def session(
        self,
        gap: Duration,
        expires: Duration | None = None,
        *,
        grace: Duration = 0.0,
        on_window_close: Callable[[Any, Any], Any] | None = None,
        late_events: Any = None,
        merge: Callable[[Any, Any], Any] | None = None,
        key_index: bool = True,
    ) -> WindowedTable:
        """A windowed view over sessions: a key's events less than ``gap`` seconds apart share a window."""
        from .windows import SessionWindow

        return self._windowed(
            partial(SessionWindow, gap, expires=expires), grace, on_window_close, late_events, merge
        )

    def _windowed(
        self,
        make_window: Callable[[], Any],
        grace: Duration,
        on_window_close: Callable[[Any, Any], Any] | None,
        late_events: Any,
        merge: Callable[[Any, Any], Any] | None,
    ) -> WindowedTable:
        from .windowed import WindowedTable, _Windowing

        if self._windowing is not None:
            raise ConfigurationError(
                f"table {self.name!r} is already windowed ({self._windowing.window!r}); declare another "
                "table for another window"
            )
        callback = on_window_close if on_window_close is not None else self.on_window_close
        try:
            self._windowing = _Windowing(self, make_window(), grace, callback, late_events, merge)
        except ConfigurationError:
            self._forget()  # so the declaration can be retried under the same name
            raise
        return WindowedTable(self, self._windowing)

    def _forget(self) -> None:
        """Undo this table's registration with its app (and its changelog topic's)."""
        app = self.app
        if app.tables.get(self.name) is self:
            del app.tables[self.name]
            if app.topics.get(self.changelog.name) is self.changelog:
                del app.topics[self.changelog.name]

    # ------------------------------------------------------------ changelog decoding

    def _decode_key(self, key: Any) -> Any:
        """A changelog key as the table uses it (JSON lists back to tuples, validated by key_type)."""
        key = hashable(key)
        if self._windowing is not None:
            inner, where = key
            return (self._coerce_key(inner), self._windowing.decode_where(where))
        return self._coerce_key(key)

    def _coerce_key(self, key: Any) -> Any:
        if self._key_decoder is None:
            return key
        try:
            return self._key_decoder(key)
        except Exception as exc:
            raise DecodeError(
                f"table {self.name!r}: changelog key {key!r} is not a {self.key_type!r}: {exc}"
            ) from exc

    def _decode_value(self, value: Any) -> Any:
        """A changelog value as the table stores it (validated by value_type)."""
        if value is None or self._value_decoder is None:
            return value
        try:
            return self._value_decoder(value)
        except Exception as exc:
            raise DecodeError(
                f"table {self.name!r}: changelog value {value!r} is not a {self.value_type!r}: {exc}"
            ) from exc

    def record_of(self, message: Row) -> tuple[Any, Any]:
        key, value = message[KEY], message[VALUE]
        if isinstance(key, (bytes, bytearray)):
            key = decode_value(bytes(key), self.changelog.key_serializer)
        if isinstance(value, (bytes, bytearray)):
            value = decode_value(bytes(value), self.changelog.value_serializer)
        return self._decode_key(key), self._decode_value(value)

    def records_of(self, partition: int, messages: Sequence[Row]) -> list[tuple[Any, Any]]:
        """Decoded (key, value) records of changelog messages; a DecodeError names the first message."""
        try:
            return [self.record_of(m) for m in messages]
        except DecodeError as exc:
            first = messages[0]
            raise DecodeError(
                exc.reason, topic=first[TOPIC], partition=partition, offset=first[OFFSET]
            ) from exc

    def _apply_changelog(
        self,
        partition: int,
        messages: Sequence[Row],
        committed: Committed | None = None,
        trail: SourceTrail | None = None,
    ) -> None:
        """Apply recovered changelog messages of one partition (with ``committed``, only those that apply)."""
        next_offset = messages[-1][OFFSET] + 1
        if committed is not None and trail is not None:
            sources = trail.sources(partition, messages)
            if committed.offsets:
                messages = committed.keep(messages, sources)
            # a persistent store resumes where its batch's header can be read again
            next_offset = trail.resume_at(partition, next_offset)
        self._store.apply_changelog(partition, self.records_of(partition, messages), next_offset)
        if self._windowing is not None and messages:
            self._windowing.recovered_headers(partition, messages)

    # ------------------------------------------------------------ lifecycle (called by the TableManager)

    async def open(self) -> None:
        """Open the store (forgetting state held from a previous run) and learn the changelog's partitions."""
        self._store.revoke(self._store.partitions())
        self._revoked.clear()
        self._store.open()
        self._partitions = await self.app.transport.partitions_for(self.changelog.name)

    async def recover(
        self, partitions: set[int], committed: Mapping[TopicPartition, int] | None = None
    ) -> RecoveryStats | None:
        """Take over ``partitions``: replay their changelog (from what the store persisted) into the store.

        ``committed`` holds the consumer group's committed offsets of the source partitions: a change made by
        an event at or past them is not applied, since that event is processed again (see `provenance`).
        """
        self._revoked.difference_update(partitions)
        new = sorted(p for p in partitions if p < self._partitions and p not in self._store.partitions())
        if not new:
            return None
        rule = Committed(committed or {})
        trail = SourceTrail()
        if self._written:
            self._written = {k: o for k, o in self._written.items() if k[0] not in new}
        self._store.assign(new)
        starts = {p: self._resume_from(p, rule) for p in new}
        if self.standby is not None:
            starts.update(self.standby.hand_over(new, self._store, rule, trail))
        reader = ChangelogReader(
            self.app.transport,
            self.changelog.name,
            partial(self._apply_changelog, committed=rule, trail=trail),
            label=f"table {self.name!r}",
            progress=self.app.monitor.recovery(self.name),
            group_prefix=f"{self.app.id}-{self.name}-recovery",
        )
        stats = await reader.catch_up(starts)
        if rule.skipped:
            stats = stats._replace(skipped=rule.skipped)
            self.skipped_records += rule.skipped
            logger.info(
                "table %r: %d changelog records of partitions %s not applied: changes by events after the "
                "committed offsets %s, which are processed again",
                self.name,
                rule.skipped,
                new,
                {f"{tp.topic}[{tp.partition}]": o for tp, o in sorted(rule.offsets.items())},
            )
        self.last_recovery = stats
        self.recovered_records += stats.records
        if self._windowing is not None:
            self._windowing.rebuild(new)
        return stats

    async def revoke(self, partitions: set[int]) -> None:
        """Stop serving ``partitions`` (they moved to another worker)."""
        self._revoked.update(partitions)
        gone = [p for p in partitions if p in self._store.partitions()]
        if not gone:
            return
        # the new owner replays the changelog once every revocation returned: what is queued or in flight
        # must be stored first (the app's flush also checkpoints persistent stores)
        await self.app.flush()
        if self.standby is not None:
            await self.standby.adopt(gone, self._store)
        self._store.revoke(gone)
        if self._windowing is not None:
            self._windowing.forget(gone)
        logger.info("table %r: dropped the state of revoked partitions %s", self.name, sorted(gone))

    def _resume_from(self, partition: int, committed: Committed) -> int:
        """Where recovery of ``partition`` starts: the store's checkpoint, if it holds only committed changes.

        A checkpoint taken while events past the committed offsets had changed the partition (a crash
        before their commit) is dropped, and the whole changelog is replayed under the commit rule.
        """
        store = self._store
        offset = store.persisted_offset(partition)
        if offset is None:
            return 0
        written = store.persisted_sources(partition) or {}
        ahead = {
            topic: last
            for topic, last in written.items()
            if last >= committed.offsets.get(TopicPartition(topic, partition), last + 1)
        }
        if not ahead:
            return offset
        logger.info(
            "table %r: the store's checkpoint of partition %d holds changes by uncommitted events %s: "
            "replaying its changelog from the start",
            self.name,
            partition,
            ahead,
        )
        store.reset([partition])
        return 0

    async def checkpoint(self) -> None:
        """Persist what a persistent store holds with the changelog offsets it reflects (after a flush)."""
        store = self._store
        if not store.persistent or not store.partitions():
            return
        await self.changelog.flush()
        ends = await self.app.transport.end_offsets(self.changelog.name)
        sources: dict[int, dict[str, int]] = {}
        for (partition, topic), offset in (self._written or {}).items():
            sources.setdefault(partition, {})[topic] = offset
        store.checkpoint(
            {p: ends[TopicPartition(self.changelog.name, p)] for p in store.partitions()},
            {p: sources.get(p, {}) for p in store.partitions()},
        )

    async def close(self) -> None:
        """Checkpoint and close the store (a memory table keeps its values readable after the app stops)."""
        try:
            await self.checkpoint()
        finally:
            if self._store.persistent:
                self._store.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} store={self.store_url} keys={len(self._store)}>"

    def _repr_html_(self) -> str:
        from ..display import table_html

        return table_html(self.name, self._store.items(), len(self._store))


def _changelog_of(
    app: App, table: str, topic: Topic[Any, Any] | str | None, partitions: int | None
) -> tuple[str, int | None]:
    """The changelog's name and partitions: ``{app_id}-{table}-changelog``, or the ``changelog_topic=`` given.

    A Topic given becomes the table's changelog: the app declares it as such (compacted) instead.
    """
    if topic is None:
        return f"{app.id}-{table}-changelog", partitions
    if isinstance(topic, str):
        return topic, partitions
    name, given = getattr(topic, "name", None), getattr(topic, "partitions", None)
    if not isinstance(name, str):
        raise ConfigurationError(f"table {table!r}: changelog_topic= takes a Topic or a name, got {topic!r}")
    if given is not None and partitions is not None and given != partitions:
        raise ConfigurationError(
            f"table {table!r}: partitions={partitions}, but its changelog_topic {name!r} has {given}"
        )
    if getattr(topic, "compacting", False) is None:
        topic.compacting = True
    if app.topics.get(name) is topic:
        del app.topics[name]
    return name, partitions if partitions is not None else given


class GlobalTable(Table):
    """A table every worker holds whole: all partitions are recovered on start and a background reader
    applies every worker's changes as they reach the changelog (eventually consistent; a worker's own writes
    are visible to it at once)."""

    kind = "global"

    def __init__(self, app: App, name: str, **kwargs: Any) -> None:
        super().__init__(app, name, **kwargs)
        self._reader: ChangelogReader | None = None
        self._follower: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await super().open()
        partitions = list(range(self._partitions))
        self._store.assign(partitions)
        starts = {p: self._store.persisted_offset(p) or 0 for p in partitions}
        reader = self._reader = ChangelogReader(
            self.app.transport,
            self.changelog.name,
            self._apply_changelog,
            label=f"global table {self.name!r}",
            progress=self.app.monitor.recovery(self.name),
            group_prefix=f"{self.app.id}-{self.name}-global-{id(self):x}",
        )
        stats = await reader.catch_up(starts, follow=True)
        self.last_recovery = stats
        self.recovered_records += stats.records
        self._follower = asyncio.get_running_loop().create_task(
            reader.follow(), name=f"changelog reader of global table {self.name}"
        )
        self._follower.add_done_callback(self._follower_done)

    def _follower_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.error("global table %r: its changelog reader failed: %r", self.name, error)
            assert error is not None
            self.app.crash(error)

    async def recover(
        self, partitions: set[int], committed: Mapping[TopicPartition, int] | None = None
    ) -> RecoveryStats | None:
        return None  # a global table holds every partition from the start

    async def revoke(self, partitions: set[int]) -> None:
        return None

    async def close(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()
        await super().close()


class SetTable(Table):
    """A table whose values are sets: ``table[key].add(x)``, ``.discard(x)``, ``|=``, ``-=``.

    Each change stores (and logs) the key's whole new set; a key whose set becomes empty is deleted.
    """

    kind = "set"

    def __init__(self, app: App, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("default", frozenset)
        super().__init__(app, name, **kwargs)

    def __getitem__(self, key: Any) -> _ManagedSet:
        value = self._store.get(key)
        return _ManagedSet(self, key, frozenset() if value is MISSING else value)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, _ManagedSet):
            return  # the result of an in-place operator, already stored
        members = frozenset(value)
        if not members:
            if key in self:
                del self[key]
            return
        super().__setitem__(key, members)

    def _decode_value(self, value: Any) -> Any:
        value = super()._decode_value(value)
        return frozenset(hashable(v) for v in value) if value is not None else None


class _ManagedSet(MutableSet[Any]):
    """The set of one key of a SetTable: reading it is free, changing it writes the key's new set."""

    __slots__ = ("_items", "key", "table")

    def __init__(self, table: SetTable, key: Any, items: frozenset[Any]) -> None:
        self.table = table
        self.key = key
        self._items = items

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _store(self, items: frozenset[Any]) -> None:
        if items == self._items:
            return
        self._items = items
        SetTable.__setitem__(self.table, self.key, items)

    def add(self, value: Any) -> None:
        """Add ``value`` to the key's set."""
        self._store(self._items | {value})

    def discard(self, value: Any) -> None:
        """Remove ``value`` from the key's set if present."""
        self._store(self._items - {value})

    def __ior__(self, other: Any) -> _ManagedSet:  # type: ignore[misc]
        self._store(self._items | frozenset(other))
        return self

    def __isub__(self, other: Any) -> _ManagedSet:  # type: ignore[misc]
        self._store(self._items - frozenset(other))
        return self

    def __repr__(self) -> str:
        return f"{self.table.name}[{self.key!r}]={set(self._items)!r}"
