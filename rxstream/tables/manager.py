"""The app's tables: opened before agents start, recovered on assignment, dropped on revocation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..errors import ConfigurationError
from ..transport.base import TopicPartition
from .standby import Standbys
from .table import Table

if TYPE_CHECKING:
    from ..app import App

__all__ = ["TableManager"]

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=Table)


class TableManager:
    """Connects tables to the app's lifecycle and to its consumer's rebalances.

    A table is sharded like the topics the app consumes: owning partition ``p`` of any consumed topic means
    owning partition ``p`` of every table (so source topics must be co-partitioned with the tables, as in
    Faust). The consumer awaits `on_assigned` before fetching new partitions, so agents see no event of a
    partition before its table state was recovered.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.standbys = Standbys(app, self.committed)

    def add(self, table: T) -> T:
        """Register a declared table and its changelog topic."""
        tables = self.app.tables
        if table.name in tables:
            raise ConfigurationError(f"app {self.app.id!r} already has a table named {table.name!r}")
        changelog = table.changelog
        if changelog.name in self.app.topics:
            raise ConfigurationError(
                f"table {table.name!r}: its changelog topic {changelog.name!r} is already declared as a topic"
            )
        tables[table.name] = table
        self.app.topics[changelog.name] = changelog
        return table

    async def start(self, *, consuming: bool) -> None:
        """Open stores and recover global tables; with no consumer, this worker owns every partition."""
        tables = list(self.app.tables.values())
        for table in tables:
            await table.open()
        self.standbys.attach()
        if not consuming:
            for table in tables:
                await table.recover(set(range(table.partitions)))

    async def on_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Recover every table's state of the newly assigned partitions (before they are fetched)."""
        partitions = {tp.partition for tp in assigned}
        tables = list(self.app.tables.values())
        if tables and partitions:
            committed = await self.committed(partitions)
            await asyncio.gather(*(table.recover(partitions, committed) for table in tables))
        self.standbys.update(assigned=partitions)

    async def committed(self, partitions: Iterable[int]) -> dict[TopicPartition, int]:
        """The app's committed offsets of ``partitions`` of every topic it consumes (0: nothing committed).

        Recovery applies no table change made by an event at or past them: that event is processed again.
        """
        wanted = [
            (consumer, TopicPartition(topic, partition))
            for conductor in self.app.conductors()
            if (consumer := conductor.consumer) is not None
            for topic in conductor.readers
            for partition in sorted(set(partitions))
        ]
        found = await asyncio.gather(*(consumer.committed(tp) for consumer, tp in wanted))
        return {tp: offset or 0 for (_, tp), offset in zip(wanted, found, strict=True)}

    async def on_revoked(self, revoked: Sequence[TopicPartition], owned: frozenset[TopicPartition]) -> None:
        """Drop table state of partition numbers no longer owned through any topic (kept when stopping)."""
        if not self.app.started:
            return  # a clean stop: keep the state readable; the next start recovers afresh
        gone = set(revoked)
        still = {tp.partition for tp in owned if tp not in gone}
        partitions = {tp.partition for tp in revoked} - still
        if partitions:
            for table in list(self.app.tables.values()):
                await table.revoke(partitions)
            self.standbys.update(revoked=partitions)

    async def on_fenced(self, revoked: Sequence[TopicPartition]) -> None:
        """Partitions being revoked are fenced and their writes stored: standbys note where they stand
        (none: the rebalance decided, and what they noted no longer holds)."""
        await self.standbys.fenced({tp.partition for tp in revoked})

    async def checkpoint(self) -> None:
        """Persist persistent stores with their changelog offsets (the app does this before commits)."""
        for table in list(self.app.tables.values()):
            await table.checkpoint()

    async def stop(self) -> None:
        """Checkpoint and close every table's store; stop global tables' and standbys' readers."""
        await self.standbys.stop()
        for table in list(self.app.tables.values()):
            try:
                await table.close()
            except Exception:
                logger.exception("app %s: stopping table %s failed", self.app.id, table.name)
