"""Standby replicas: warm copies of the table partitions this worker does not own.

With ``App(table_standby_replicas=N)`` (N >= 1) every worker tails the changelogs of the partitions it does
not own into a store of their own, so taking one over replays only the changelog's tail from the standby's
position. A worker keeps a standby of every partition it does not own (with few workers, the simple
choice that holds N copies); a group of W workers thus holds W - 1 standbys of each partition. A
partition the worker gives up stays in its standby as it was, so it is never replayed from the start: at
the changelog offset read when the partition was fenced (its events done and its writes stored, while this
worker was still its only writer), from where the standby follows what the new owner writes.
A standby applies a change only once the consumer group committed the event that made it, so taking a
partition over never counts an event that is processed again.
Standbys are kept for tables with a memory store (a RocksDB store already replays only what came after
its checkpoint) and not for windowed or global tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import TransportError
from ..events import OFFSET, Row
from ..transport.base import TopicPartition
from .changelog import ChangelogReader
from .provenance import Committed, Source, SourceTrail
from .stores import Store
from .stores.memory import MemoryStore

if TYPE_CHECKING:
    from ..app import App
    from .table import Table

__all__ = ["Standby", "Standbys"]

logger = logging.getLogger(__name__)


Committing = Callable[[Iterable[int]], Awaitable[Mapping[TopicPartition, int]]]
"""The consumer group's committed offsets of some partitions of every consumed topic."""


class Standby:
    """One table's standby partitions: a changelog reader following them into a memory store.

    The store holds only changes whose source events the consumer group committed: the others wait in
    ``pending`` (in changelog order) until a look at the committed offsets, every commit interval, lets them
    in; taking a partition over applies those of its pending changes that the final commit covers.
    """

    def __init__(self, table: Table, committed: Committing | None = None) -> None:
        self.table = table
        self.store = MemoryStore()
        self.offsets: dict[int, int] = {}
        """Per standby partition, the next changelog offset to read."""
        self._fenced_at: dict[int, int] = {}
        """Per owned partition being revoked, the changelog's end while this worker was its only writer."""
        self.pending: dict[int, list[tuple[Row, Source | None]]] = {}
        """Per standby partition, changes read but not applied (with their sources): their events were not
        known committed."""
        self._trail = SourceTrail()
        self._committed = committed
        self._known = Committed({})
        self._following: frozenset[int] = frozenset()
        self._reader: ChangelogReader | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions this standby follows."""
        return self._following

    def _apply(self, partition: int, messages: Sequence[Row]) -> None:
        if partition not in self._following:
            return  # handed over while a fetched batch was on its way
        self.offsets[partition] = messages[-1][OFFSET] + 1
        sources = self._trail.sources(partition, messages)
        waiting = self.pending.get(partition)
        if waiting:
            waiting.extend(zip(messages, sources, strict=True))
            self._release(partition)
            return
        applies = self._known.applies
        for i, source in enumerate(sources):
            if not applies(source):
                self.pending[partition] = list(zip(messages[i:], sources[i:], strict=True))
                messages = messages[:i]
                break
        if messages:
            self.store.apply_changelog(partition, self.table.records_of(partition, messages), 0)

    def _release(self, partition: int) -> None:
        """Apply the pending changes of ``partition`` up to the first one not known committed."""
        waiting = self.pending.get(partition)
        if not waiting:
            return
        applies = self._known.applies
        n = 0
        while n < len(waiting) and applies(waiting[n][1]):
            n += 1
        if n:
            ready = [message for message, _ in waiting[:n]]
            self.store.apply_changelog(partition, self.table.records_of(partition, ready), 0)
            del waiting[:n]
        if not waiting:
            del self.pending[partition]

    async def _refresh(self) -> None:
        """Every commit interval, learn the committed offsets and apply the pending changes they cover."""
        committed = self._committed
        if committed is None:
            return
        while True:
            await asyncio.sleep(self.table.app.commit_interval)
            if not self.pending:
                continue
            try:
                self._known = Committed(await committed(self._following))
            except TransportError as exc:  # the changes wait for the next look
                logger.warning("standby of table %r: reading committed offsets: %s", self.table.name, exc)
                continue
            for partition in list(self.pending):
                self._release(partition)

    async def fenced(self, partitions: Iterable[int]) -> None:
        """Note where the changelog of ``partitions`` ends now: they are being revoked, their events are done
        and their writes stored, and nobody else writes to them before the rebalance assigns them.

        What the table holds of them is then exactly the changelog up to there, whoever writes next, until
        the rebalance decided (a partition that stays is written again): each call replaces what the one
        before noted, and one with no partitions forgets it.
        """
        self._fenced_at.clear()
        owned = self.table.store.partitions()
        taken = [p for p in partitions if p in owned]
        if self.table.use_partitioner or not taken:
            return
        topic = self.table.changelog.name
        try:
            ends = await self.table.app.transport.end_offsets(topic)
        except TransportError as exc:  # the partitions are then followed from the start if they go
            logger.warning("standby of table %r: cannot read the end of %r: %s", self.table.name, topic, exc)
            return
        for partition in taken:
            self._fenced_at[partition] = ends.get(TopicPartition(topic, partition), 0)

    async def adopt(self, partitions: Iterable[int], store: Store) -> None:
        """Keep the state of ``partitions`` the table gives up, at the changelog offset noted when they were
        fenced (`fenced`), and follow on from there.

        A table without ``use_partitioner`` is the only writer of the partitions it owns, so its values are
        the changelog's up to that offset: the standby follows on from there instead of replaying the
        partitions from the start (what the new owner wrote since, even before this call, included), and a
        partition that comes back is handed over with only the tail the standby has not applied to replay.
        A partition never noted is left to be followed from the start.
        """
        if self.table.use_partitioner:
            return  # other workers' writes to these partitions were never applied here
        for partition in sorted(partitions):
            start = self._fenced_at.pop(partition, None)
            if start is None:
                continue
            self.store.revoke([partition])
            self.store.assign([partition])
            self.store.apply_changelog(partition, store.items([partition]), start)
            self.offsets[partition] = start

    def hand_over(
        self,
        partitions: Iterable[int],
        store: Store,
        committed: Committed | None = None,
        trail: SourceTrail | None = None,
    ) -> dict[int, int]:
        """Move what the standby holds of ``partitions`` into ``store``; the offsets to replay them from.

        Pending changes apply if ``committed`` (the group's offsets now) covers their events; ``trail``,
        the replay's, gets what the standby read of the sources of the batch it stopped in.
        """
        taken = frozenset(partitions) & (self._following | self.offsets.keys())
        if not taken:
            return {}
        self._following -= taken
        starts: dict[int, int] = {}
        for partition in sorted(taken):
            waiting = self.pending.pop(partition, [])
            if waiting:
                rule = committed or Committed({})
                kept = rule.keep([message for message, _ in waiting], [source for _, source in waiting])
                if kept:
                    self.store.apply_changelog(partition, self.table.records_of(partition, kept), 0)
            start = self.offsets.pop(partition, 0)
            if trail is not None:
                self._trail.hand_over(partition, trail)
            self._trail.forget([partition])
            if start:
                store.apply_changelog(partition, self.store.items([partition]), start)
                starts[partition] = start
        self.store.revoke(taken)
        logger.info(
            "table %r: took over partitions %s from its standby at changelog offsets %s",
            self.table.name,
            sorted(taken),
            starts,
        )
        return starts

    def follow(self, partitions: frozenset[int]) -> None:
        """Follow exactly ``partitions`` from now on; never waits (a rebalance listener calls it).

        When the set changed, the current reader is cancelled and a new one starts, in the background, where
        the standby's offsets left off.
        """
        if partitions == self._following and self._task is not None:
            return
        previous, old_reader = self._task, self._reader
        self._task = self._reader = None
        if previous is not None:
            previous.cancel()  # applies nothing more from here on
        dropped = (self._following | self.offsets.keys()) - partitions
        if dropped:
            self.store.revoke(dropped)
            for partition in dropped:
                self.offsets.pop(partition, None)
                self.pending.pop(partition, None)
            self._trail.forget(dropped)
        self._following = partitions
        if not partitions:
            if previous is not None:
                self._task = asyncio.get_running_loop().create_task(self._retire(previous, old_reader))
            return
        self.store.assign(p for p in partitions if p not in self.offsets)
        app = self.table.app
        reader = self._reader = ChangelogReader(
            app.transport,
            self.table.changelog.name,
            self._apply,
            label=f"standby of table {self.table.name!r}",
            group_prefix=f"{app.id}-{self.table.name}-standby",
        )
        self._task = asyncio.get_running_loop().create_task(
            self._run(previous, old_reader, reader), name=f"standby of table {self.table.name}"
        )

    @staticmethod
    async def _retire(task: asyncio.Task[None] | None, reader: ChangelogReader | None) -> None:
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if reader is not None:
            await reader.close()

    async def _run(
        self, previous: asyncio.Task[None] | None, old_reader: ChangelogReader | None, reader: ChangelogReader
    ) -> None:
        try:
            await self._retire(previous, old_reader)
            if self._committed is not None:
                self._known = Committed(await self._committed(self._following))
            await reader.catch_up({p: self.offsets.get(p, 0) for p in self._following}, follow=True)
            await asyncio.gather(reader.follow(), self._refresh())
        except asyncio.CancelledError:
            await reader.close()
            raise
        except Exception:
            # a standby is an optimisation: taking a partition over still replays what it lacks
            logger.exception("standby of table %r: following the changelog failed", self.table.name)
            await reader.close()

    async def stop(self) -> None:
        """Stop following and forget what the standby holds."""
        await self.close()
        self.store.revoke(self.store.partitions())
        self.offsets.clear()
        self._fenced_at.clear()
        self.pending.clear()
        self._trail = SourceTrail()
        self._following = frozenset()

    async def close(self) -> None:
        """Stop following (what the store holds stays, for a later `follow`)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()


class Standbys:
    """The app's standby replicas: which partitions this worker owns, and a `Standby` per table."""

    def __init__(self, app: App, committed: Committing | None = None) -> None:
        self.app = app
        self.committed = committed
        self.owned: set[int] = set()
        """Partition numbers this worker owns (through any consumed topic)."""

    def _tables(self) -> list[Table]:
        if self.app.conf.table_standby_replicas < 1:
            return []
        return [
            t
            for t in self.app.tables.values()
            if t.kind != "global" and not t.windowed and not t.store.persistent
        ]

    def attach(self) -> None:
        """Give each table that keeps standbys its `Standby` (before the first assignment)."""
        for table in self._tables():
            if table.standby is None:
                table.standby = Standby(table, self.committed)

    async def fenced(self, partitions: Iterable[int]) -> None:
        """Partitions are being revoked: every standby notes where their changelogs end now."""
        numbers = set(partitions)
        for table in self._tables():
            if table.standby is not None:
                await table.standby.fenced(numbers)

    def update(self, assigned: Iterable[int] = (), revoked: Iterable[int] = ()) -> None:
        """Follow, for every table, the partitions this worker does not own after a rebalance."""
        self.owned |= set(assigned)
        self.owned -= set(revoked)
        for table in self._tables():
            if table.standby is not None:
                table.standby.follow(frozenset(range(table.partitions)) - self.owned)

    async def stop(self) -> None:
        """Stop every standby reader (the next start follows afresh)."""
        self.owned = set()
        for table in self.app.tables.values():
            standby = table.standby
            if standby is not None:
                await standby.stop()
