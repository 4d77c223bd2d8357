"""Peeking at a topic: its first values read with a throwaway consumer group that never commits.

`Stream.peek` and `App.peek` must not take a stream's single consumption, commit offsets or disturb the
agents reading a topic, so a peek never touches the app's consumer. It goes through the transport protocol
only: it notes the topic's end offsets, joins a consumer group of its own (a fresh name per peek) reading
from the earliest retained offset, fetches no further than those end offsets (so it never waits for new
messages), decodes with the topic's `decode`, never commits, and leaves the group when done. On
``memory://`` the group is also deleted, so it does not hold back the log's trimming or its senders.

Order: a round reads up to ``n`` messages of every partition and emits them merged by timestamp, so
``peek(n)`` shows the oldest ``n`` retained messages of the whole topic; further rounds (when the chain
filtered values out) read more. A peek sees what the log still retains: ``memory://`` trims what every
consumer group has committed, Kafka what its retention dropped.

The transport protocol has no "beginning offsets", so a partition whose retained log is empty (trimmed up to
its end) never delivers anything: a fetch that stays empty for ``timeout`` seconds ends the peek.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from . import _rx
from ._rx import Batch, Context, Observable
from .errors import ConfigurationError, StreamError
from .events import OFFSET, PARTITION, TIMESTAMP, Row
from .streams import Stream, batch_stream
from .transport.base import Consumer, TopicPartition, Transport

if TYPE_CHECKING:
    from .channels import Topic

__all__ = ["DEFAULT_TIMEOUT", "peek_only_stream", "tap_stream", "topic_source"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 0.25
"""Seconds a fetch may stay empty before the retained log counts as read (raise it for a remote Kafka)."""

_LATER_ROUND = 256
"""Messages per partition in the rounds after the first (when the chain needs more than ``n``)."""


@asynccontextmanager
async def topic_source(
    topic: Topic[Any, Any], ctx: Context, n: int, timeout: float | None = None, latest: bool = False
) -> AsyncIterator[Observable[Batch]]:
    """A source of the topic's retained messages (oldest first; ``latest``: its last ``n``) for one peek.

    It leaves its group on exit.
    """
    wait = DEFAULT_TIMEOUT if timeout is None else timeout
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait <= 0:
        raise ConfigurationError(
            f"peek of topic {topic.name!r}: timeout must be a positive number of seconds, got {wait!r}"
        )
    snapshot = _Snapshot(topic, n, wait, latest=latest)
    await snapshot.open()
    try:
        yield _rx.pump(snapshot.batches, ctx)
    finally:
        await snapshot.close()


def peek_only_stream(topic: Topic[Any, Any]) -> Stream[Any]:
    """A stream of ``topic`` that can only peek (App.peek: no subscription, nothing joins the app's group)."""

    def build(ctx: Context) -> Observable[Batch]:
        raise StreamError(f"the stream App.peek made for topic {topic.name!r} only peeks; use app.stream()")

    return batch_stream(build, f"peek({topic.name})", peek=functools.partial(topic_source, topic))


def tap_stream(topic: Topic[Any, Any], *, from_start: bool = False) -> Stream[Any]:
    """A stream watching ``topic`` through a throwaway group (App.tap): nothing it reads is acknowledged."""
    reset = "earliest" if from_start else "latest"

    def build(ctx: Context) -> Observable[Batch]:
        return _rx.pump(functools.partial(_tapped, topic, reset), ctx)

    return batch_stream(build, f"tap({topic.name})", peek=functools.partial(topic_source, topic))


async def _tapped(topic: Topic[Any, Any], reset: str) -> AsyncIterator[Batch]:
    """The batches a throwaway group member fetches, until the consumption ends; it leaves the group then.

    It commits its own group's positions (never the app's), so on ``memory://`` it holds no backlog back.
    """
    app = topic.app
    transport = await app.producer()
    if app.topics.get(topic.name) is topic:
        await transport.create_topics(topic.specs(app.topic_partitions))
    group_id = f"{app.id}-tap-{uuid.uuid4().hex[:12]}"
    consumer = transport.consumer(group_id, list(topic.topic_names), _noop_rebalance, auto_offset_reset=reset)
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout=0.1, max_records=_rx.BATCH_SIZE)
            for messages in fetched.values():
                if not messages:
                    continue
                good, values, bad = topic.decode_batch(messages)
                for _, exc in bad:
                    logger.warning("tap of topic %r skips an undecodable message: %s", topic.name, exc)
                if good:
                    yield Batch(values, good, None)
            if fetched:
                await consumer.commit(
                    {tp: messages[-1][OFFSET] + 1 for tp, messages in fetched.items() if messages}
                )
    finally:
        await consumer.stop()
        delete_group = getattr(transport, "delete_group", None)
        if delete_group is not None:
            delete_group(group_id)


async def _noop_rebalance(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
    """A peek owns no state to commit or restore when partitions move."""


class _Snapshot:
    """One peek's reader: a throwaway group member, the end offsets it stops at, what it fetched."""

    def __init__(self, topic: Topic[Any, Any], n: int, timeout: float, *, latest: bool = False) -> None:
        self.topic = topic
        self.latest = latest
        self.quota = n
        self.timeout = timeout
        self.group_id = f"{topic.app.id}-peek-{uuid.uuid4().hex[:12]}"
        self.ends: dict[TopicPartition, int] = {}
        self.held: dict[TopicPartition, list[Row]] = {}
        self.exhausted: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.transport: Transport | None = None
        self.consumer: Consumer | None = None
        self.joining: Consumer | None = None
        """The consumer from before its start (its first assignment is heard during start)."""
        self.closed = False

    async def open(self) -> None:
        """Create a declared topic if missing (as start would), note its end offsets, join a fresh group."""
        topic = self.topic
        app = topic.app
        transport = self.transport = await app.producer()
        if app.topics.get(topic.name) is topic:
            names = topic.topic_names
            await transport.create_topics([s for s in topic.specs(app.topic_partitions) if s.name in names])
        for name in topic.topic_names:
            self.ends.update(await transport.end_offsets(name))
        self.held = {tp: [] for tp in self.ends}
        self.exhausted = {tp for tp, end in self.ends.items() if end == 0}
        if len(self.exhausted) == len(self.ends):
            return  # nothing was ever written: no group to join
        consumer = transport.consumer(
            self.group_id,
            list(topic.topic_names),
            self._from_the_tail if self.latest else _noop_rebalance,
            auto_offset_reset="earliest",
        )
        self.joining = consumer
        await consumer.start()
        self.consumer = consumer

    async def _from_the_tail(
        self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]
    ) -> None:
        """Start every assigned partition ``quota`` messages before its end (a peek of the latest)."""
        consumer = self.joining
        for tp in assigned:
            end = self.ends.get(tp)
            if consumer is not None and end:
                consumer.seek(tp, max(0, end - self.quota))

    async def close(self) -> None:
        """Leave the group without committing; on memory:// forget the group so it holds nothing back."""
        self.closed = True
        consumer, self.consumer = self.consumer, None
        if consumer is None:
            return
        await consumer.stop()
        # not in the protocol: Kafka forgets an empty group that never committed by itself
        delete_group = getattr(self.transport, "delete_group", None)
        if delete_group is not None:
            delete_group(self.group_id)

    async def batches(self) -> AsyncIterator[Batch]:
        """Rounds of up to ``quota`` messages per partition, each round merged by timestamp."""
        quota = self.quota
        while not self.closed:
            await self._fill(quota)
            taken: list[Row] = []
            for held in self.held.values():
                taken.extend(held[:quota])
                del held[:quota]
            if not taken:
                return
            taken.sort(key=itemgetter(TIMESTAMP, PARTITION, OFFSET))
            if self.latest:  # one round: the newest ``quota`` of the partitions' tails
                taken = taken[-quota:]
                self.closed = True
            good, values, bad = self.topic.decode_batch(taken)
            for _, exc in bad:
                logger.warning("peek of topic %r skips an undecodable message: %s", self.topic.name, exc)
            for start in range(0, len(good), _rx.BATCH_SIZE):
                stop = start + _rx.BATCH_SIZE
                yield Batch(values[start:stop], good[start:stop], None)
            quota = max(quota, _LATER_ROUND)

    async def _fill(self, quota: int) -> None:
        """Fetch until every partition holds ``quota`` messages or has no more below its end offset."""
        consumer = self.consumer
        while consumer is not None and not self.closed:
            wanting = [tp for tp in self.ends if tp not in self.exhausted and len(self.held[tp]) < quota]
            self._fetch_only(wanting)
            if not wanting:
                return
            fetched = await consumer.getmany(timeout=self.timeout, max_records=quota * len(wanting))
            if not fetched:
                self.exhausted.update(wanting)  # nothing retained below their ends
                return
            for tp, messages in fetched.items():
                end = self.ends.get(tp)
                if end is None:
                    continue
                self.held[tp].extend(m for m in messages if m[OFFSET] < end)
                if messages[-1][OFFSET] >= end - 1:
                    self.exhausted.add(tp)

    def _fetch_only(self, tps: list[TopicPartition]) -> None:
        """Pause every partition but ``tps`` (so full and exhausted ones are not read past)."""
        consumer = self.consumer
        assert consumer is not None
        wanted = set(tps)
        pause = [tp for tp in self.ends if tp not in wanted and tp not in self.paused]
        resume = [tp for tp in self.paused if tp in wanted]
        if pause:
            consumer.pause(pause)
            self.paused.update(pause)
        if resume:
            consumer.resume(resume)
            self.paused.difference_update(resume)
