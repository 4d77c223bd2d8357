"""The app's consumer: fetches batches from the transport, feeds subscriptions, commits offsets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from .transport.base import Consumer, TopicPartition, Transport

if TYPE_CHECKING:
    from .channels import Topic
    from .events import Message
    from .subscriptions import Subscription

__all__ = ["Conductor"]

logger = logging.getLogger(__name__)


class Conductor:
    """One consumer-group member per app: routes every fetched batch to the subscriptions of its topic.

    Offsets are committed per partition up to the lowest offset any subscription has not acknowledged,
    every ``commit_interval`` seconds, before partitions are revoked, and on stop. Producers are flushed
    before every commit so that nothing derived from a committed event can be lost.
    """

    def __init__(
        self,
        transport: Transport,
        group_id: str,
        *,
        commit_interval: float,
        flush: Callable[[], Awaitable[None]],
        max_records: int = 2048,
        commit_every: int = 100_000,
        on_assigned: Callable[[Sequence[TopicPartition]], Awaitable[None]] | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.transport = transport
        self.group_id = group_id
        self.commit_interval = commit_interval
        self._flush = flush
        self.max_records = max_records
        self.commit_every = commit_every
        self._on_assigned = on_assigned
        self._on_crash = on_crash
        self.topics: dict[str, Topic[object, object]] = {}
        self.readers: dict[str, list[Subscription]] = {}
        self._consumer: Consumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._committed: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()
        self._running = False
        self.rebalances = 0
        self.fetched = 0

    def add(self, topic: Topic[object, object], subscription: Subscription) -> None:
        """Route the messages of ``topic`` to ``subscription`` (before start)."""
        for name in topic.topic_names:
            self.topics[name] = topic
            readers = self.readers.setdefault(name, [])
            if subscription not in readers:
                readers.append(subscription)

    @property
    def consumer(self) -> Consumer | None:
        """The transport consumer, once started."""
        return self._consumer

    async def start(self) -> None:
        """Join the consumer group and start fetching and committing."""
        if not self.readers or self._running:
            return
        self._running = True
        self._consumer = self.transport.consumer(self.group_id, sorted(self.readers), self._on_rebalance)
        await self._consumer.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._fetch_loop(), name=f"rxstream fetch {self.group_id}"),
            loop.create_task(self._commit_loop(), name=f"rxstream commit {self.group_id}"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("consumer %s failed: %r", self.group_id, exc)
            if self._on_crash is not None:
                self._on_crash(exc)

    async def pause(self) -> None:
        """Stop fetching new messages (shutdown begins); commits go on."""
        fetch = self._tasks[0] if self._tasks else None
        if fetch is not None and not fetch.done():
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)

    async def stop(self) -> None:
        """Stop fetching, commit what was acknowledged, leave the group."""
        if not self._running:
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for subscriptions in self.readers.values():
            for subscription in subscriptions:
                await subscription.drain()
        try:
            await self.commit()
        finally:
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await consumer.stop()

    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        subscriptions = [s for subs in self.readers.values() for s in subs]
        since_commit = 0
        while self._running:
            for subscription in subscriptions:
                await subscription.wait_for_room()
            records = await consumer.getmany(timeout=0.1, max_records=self.max_records)
            for tp, messages in records.items():
                if messages:
                    self._dispatch(tp, messages)
                    since_commit += len(messages)
            if since_commit >= self.commit_every:
                # a fast consumer commits early too, so a transport bounded by committed offsets never stalls
                since_commit = 0
                await self.commit()

    def _dispatch(self, tp: TopicPartition, messages: list[Message]) -> None:
        topic = self.topics.get(tp.topic)
        readers = self.readers.get(tp.topic)
        if topic is None or not readers:
            return
        self.fetched += len(messages)
        first, last = messages[0].offset, messages[-1].offset
        good, bad = topic.decode_batch(messages)
        for subscription in readers:
            subscription.deliver(tp.topic, tp.partition, good, first, last, fetched=messages)
            for message, exc in bad:
                subscription.undecodable(message, exc)

    async def _commit_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.commit_interval)
            await self.commit()

    def committable(self) -> dict[TopicPartition, int]:
        """Per partition, the offset every subscription has acknowledged up to (what a commit would store)."""
        lowest: dict[TopicPartition, int] = {}
        for name, subscriptions in self.readers.items():
            for subscription in subscriptions:
                for (topic, partition), tracker in subscription.trackers().items():
                    if topic != name:
                        continue
                    tp = TopicPartition(topic, partition)
                    offset = tracker.committable
                    if tp not in lowest or offset < lowest[tp]:
                        lowest[tp] = offset
        return lowest

    async def commit(self, only: Sequence[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Flush producers, then commit every partition whose acknowledged offset moved on."""
        consumer = self._consumer
        if consumer is None:
            return {}
        async with self._commit_lock:
            owned = consumer.assignment()
            offsets = {
                tp: offset
                for tp, offset in self.committable().items()
                if tp in owned and (only is None or tp in only) and offset > self._committed.get(tp, -1)
            }
            if not offsets:
                return {}
            await self._flush()
            await consumer.commit(offsets)
            self._committed.update(offsets)
            for subscriptions in self.readers.values():
                for subscription in subscriptions:
                    for tp, offset in offsets.items():
                        tracker = subscription.trackers().get((tp.topic, tp.partition))
                        if tracker is not None:
                            tracker.mark_committed(offset)
            return offsets

    async def _on_rebalance(
        self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]
    ) -> None:
        self.rebalances += 1
        if revoked:
            try:
                await self.commit(only=revoked)
            except Exception:
                logger.exception(
                    "consumer %s: commit on revocation of %s failed", self.group_id, list(revoked)
                )
            gone = [(tp.topic, tp.partition) for tp in revoked]
            for tp in revoked:
                self._committed.pop(tp, None)
            for subscriptions in self.readers.values():
                for subscription in subscriptions:
                    subscription.forget(gone)
            logger.info("consumer %s: partitions revoked: %s", self.group_id, sorted(revoked))
        if assigned:
            logger.info("consumer %s: partitions assigned: %s", self.group_id, sorted(assigned))
            if self._on_assigned is not None:
                await self._on_assigned(assigned)
