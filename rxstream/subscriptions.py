"""Subscriptions: one reader's queue of delivered messages, with the timers and tasks of its error policy.

A subscription is fed batches of messages (by the app's consumer for topics, by `send` for channels),
hands them to the streams that read it, and hears every acknowledgment. Which offsets are done and which
messages are held back is the bookkeeping of `rxstream._core.acks`; how often a message failed and what its
next failure leads to, that of `rxstream._core.redelivery`. The subscription puts back what a reader held
when it went away (in order), redelivers after a back-off and runs the error policy; the owner passes in
how to dead-letter a message and how to crash.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

from . import _rx
from ._core.acks import Acknowledgments
from ._core.fence import LIVE, PAUSED, REVOKED, Lease, Settling
from ._core.redelivery import ErrorPolicy, OnError, Redeliveries
from ._rx import Batch, Context, Flow, Observable
from .events import OFFSET, PARTITION, TOPIC, Message, Row, place_of, value_of
from .offsets import OffsetTracker
from .streams import Stream, batch_stream

__all__ = ["ErrorPolicy", "Subscription"]

logger = logging.getLogger(__name__)

MAX_BATCH = 1024
"""The most fetched messages queued as one batch: per-batch work is what larger batches save.

Readers acknowledge a batch in runs as they go (`_rx.ACK_EVERY`), so its size does not hold commits back.
"""

CHANNEL_BATCH = MAX_BATCH
"""The most channel sends queued as one batch (a channel's ``maxsize`` counts in these): as many as a fetched
batch, so a burst of sends pays the per-batch work (operators, acknowledgments, task switches) as seldom."""

_partition_of = operator.itemgetter(TOPIC, PARTITION)


def _rows(batch: Batch) -> list[Row]:
    """The messages of a queued batch (a subscription's batches always carry them)."""
    rows = batch.refs
    assert rows is not None
    return cast("list[Row]", rows)


class _PartitionAcks(Lease):
    """The acknowledger of batches whose messages all come from one partition: no per-message sorting.

    It is the partition's lease too: once revoked, acknowledgments and rejections through it change nothing.
    """

    __slots__ = ("book", "partition", "subscription", "topic")

    def __init__(self, subscription: Subscription, book: Acknowledgments, topic: str, partition: int) -> None:
        super().__init__()
        self.subscription = subscription
        self.book = book
        self.topic = topic
        self.partition = partition

    def ack(self, refs: Sequence[Any]) -> None:
        """Mark messages of this partition processed (messages held back stay unacknowledged)."""
        if self.state == REVOKED:
            return
        self.book.ack_partition(self.topic, self.partition, refs)

    def reject(self, ref: Any) -> None:
        """Redeliver this message, or hand it to the error policy."""
        if self.state != REVOKED:
            self.subscription.reject(ref)

    def refuse(self, ref: Any, exc: BaseException, what: str) -> None:
        """Hand this message to the error policy now, without redeliveries (its failure is permanent)."""
        if self.state != REVOKED:
            self.subscription.undecodable(ref, exc, what)


class _Slice(Batch):
    """A reader's share of a split batch (not split again)."""

    __slots__ = ()


class _Reader:
    """One consumption of a subscription: the batches it was handed and has not finished."""

    __slots__ = ("closed", "flow", "outstanding")

    def __init__(self, flow: Flow) -> None:
        self.outstanding: deque[list[Row]] = deque()
        self.closed = False
        self.flow = flow
        """The consumption's flow control: its consumer, waiting for a batch, may take one itself."""


Handler = Callable[[Message, BaseException, str], Awaitable[None]]


class Subscription:
    """The messages one reader (an agent's instances, or an app stream) gets, with their acknowledgments."""

    def __init__(
        self,
        name: str,
        policy_for: Callable[[str], ErrorPolicy],
        *,
        dead_letter: Handler,
        crash: Callable[[BaseException], None],
        maxsize: int = 8,
        batch: int = MAX_BATCH,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.label = label or name
        self._policy_for = policy_for
        self._dead_letter = dead_letter
        self._crash = crash
        self.maxsize = maxsize
        """How many batches may wait for a reader before senders (or the fetcher) wait."""
        self.batch = batch
        """The most delivered messages queued as one batch."""
        self.share = 1
        """How many readers take batches at once (an agent's concurrency): each takes its slice of a batch."""
        self._queue: deque[Batch] = deque()
        """Batches ready for a reader: values with their messages and this partition's acknowledger."""
        self._redeliveries = Redeliveries()
        self._book = Acknowledgments(self._redeliveries)
        self._readers: set[_Reader] = set()
        self.redelivered: dict[tuple[str, int], int] = {}
        """Messages redelivered after a reject, per (topic, partition)."""
        self._acks: dict[tuple[str, int], _PartitionAcks] = {}
        self._paused: set[Lease] = set()
        """Leases of partitions a rebalance is deciding on: their queued batches wait."""
        self._timers: dict[int, tuple[Row, asyncio.TimerHandle]] = {}
        """Redeliveries due, by the identity of the message they redeliver."""
        self._data = asyncio.Event()
        self._last: Batch | None = None
        """The batch the last `offer` queued while later sends may join it: until a reader takes it or it is
        full. Its values and delivered offsets are recorded then, in one step (see `_seal`)."""
        self.joinable: list[Row] | None = None
        """The messages of that batch while no sender waits for room: a channel send below `batch` messages
        appends its message here directly."""
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self._stopping = False

    # ------------------------------------------------------------ feeding

    def deliver(
        self,
        topic: str,
        partition: int,
        messages: Sequence[Row],
        first: int,
        last: int,
        fetched: Sequence[Row] | None = None,
        values: list[Any] | None = None,
    ) -> None:
        """Queue ``messages`` read from one partition; ``first..last`` is the offset range they came from.

        ``values`` are the messages' values when the caller already has them. Offsets in the range that no
        fetched message has (compacted away) count as acknowledged.
        """
        self._book.delivered(topic, partition, first, last, messages if fetched is None else fetched)
        if messages:
            if values is None:
                values = list(map(value_of, messages))
            acks = self._acker(topic, partition)
            size = self.batch
            if len(messages) <= size:
                self._queue.append(Batch(values, messages, acks))
            else:
                self._queue.extend(
                    Batch(values[i : i + size], messages[i : i + size], acks)
                    for i in range(0, len(messages), size)
                )
            self._arrived()

    def _acker(self, topic: str, partition: int) -> _PartitionAcks:
        """The acknowledger of this partition's batches."""
        acks = self._acks.get((topic, partition))
        if acks is None:
            acks = self._acks[topic, partition] = _PartitionAcks(self, self._book, topic, partition)
        return acks

    def _batch_of(self, rows: list[Row]) -> Batch:
        """A queueable batch of one partition's messages."""
        return Batch(list(map(value_of, rows)), rows, self._acker(*_partition_of(rows[0])))

    def offer(self, message: Row, *, wait_free: bool = True) -> bool:
        """Queue one message (a channel send), joining the last queued batch while no reader took it.

        False, and nothing queued, when the queue is full or a sender waits for room (see `wait_for_room`);
        ``wait_free=False`` queues it all the same (a sender whose turn came).
        """
        waiting = self._room_waiters
        if wait_free and waiting and not self.closed:
            return False
        last = self._last
        if last is not None:
            rows = cast("list[Row]", last.refs)
            if len(rows) < self.batch:
                rows.append(message)
                self.joinable = None if waiting else rows
                return True  # readers wait only on an empty queue: this one was not
            self._seal(last)
        queue = self._queue
        if wait_free and len(queue) >= self.maxsize and not self.closed:
            return False
        rows = [message]
        batch = Batch([], rows, self._acker(message[TOPIC], message[PARTITION]))
        queue.append(batch)
        self._last = batch
        self.joinable = None if waiting else rows
        self._arrived()
        return True

    def _seal(self, batch: Batch) -> None:
        """The last offered batch takes no more messages: its values and delivered offsets are recorded."""
        rows = _rows(batch)
        batch.values = list(map(value_of, rows))
        first, last = rows[0][OFFSET], rows[-1][OFFSET]
        self._book.tracker(rows[0][TOPIC], rows[0][PARTITION], first).delivered(first, last)
        self._last = self.joinable = None

    def _arrived(self) -> None:
        """Batches were queued: a reader's consumer waiting for one takes it in its own task, with no hop
        through the reader's fetch; the fetches are woken for the other readers."""
        readers = self._readers
        if not readers or not all([reader.flow.wake_puller() for reader in readers]):
            self._data.set()

    def tracker(self, topic: str, partition: int, start: int | None = None) -> OffsetTracker:
        """The offset bookkeeping of one partition, created at ``start`` when first needed."""
        return self._book.tracker(topic, partition, start)

    def trackers(self) -> dict[tuple[str, int], OffsetTracker]:
        """Every partition's bookkeeping."""
        return self._book.trackers()

    def pause(self, partitions: Sequence[tuple[str, int]], settled: Settling) -> set[Lease]:
        """Stop readers from processing these partitions' batches until `resume` or `forget`; their leases.

        Whoever pauses resolves ``settled`` once it resumed or forgot them: readers waiting wake up then.
        """
        leases: set[Lease] = set()
        for where in partitions:
            acks = self._acks.get(where)
            if acks is not None:
                acks.state = PAUSED
                acks.settled = settled
                leases.add(acks)
        self._paused |= leases
        return leases

    def resume(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Let readers process these partitions' batches again (they stayed with this worker)."""
        for where in partitions:
            acks = self._acks.get(where)
            if acks is not None and acks.state == PAUSED:
                acks.state = LIVE
                acks.settled = None
                self._paused.discard(acks)
        self._data.set()  # their queued batches may be read again

    def forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Drop the state of partitions that moved to another worker: queued messages, what readers hold
        unacknowledged, redeliveries due.

        Batches of them already handed to readers are neither processed nor acknowledged any more.
        """
        gone = set(partitions)
        self._book.forget(gone)
        for topic, partition in gone:
            acks = self._acks.pop((topic, partition), None)
            if acks is not None:
                acks.state = REVOKED
                acks.settled = None
                self._paused.discard(acks)
        if self._last is not None and _partition_of(_rows(self._last)[0]) in gone:
            self._last = self.joinable = None
        queue = self._queue  # filtered in place: readers hold this very deque
        kept = [batch for batch in queue if _partition_of(_rows(batch)[0]) not in gone]
        queue.clear()
        queue.extend(kept)
        for reader in self._readers:
            outstanding = reader.outstanding
            held = [rows for rows in outstanding if _partition_of(rows[0]) not in gone]
            if len(held) < len(outstanding):
                outstanding.clear()
                outstanding.extend(held)
        for key, (message, timer) in list(self._timers.items()):
            if _partition_of(message) in gone:
                timer.cancel()
                del self._timers[key]
        self._update_room()

    @property
    def queued(self) -> int:
        """How many batches wait for a reader."""
        return len(self._queue)

    async def wait_for_room(self) -> None:
        """Wait until the queue is below its limit; waiting senders go in turn (first come, first served)."""
        queue = self._queue
        waiters = self._room_waiters
        if (len(queue) < self.maxsize and not waiters) or self.closed:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiters.append(waiter)
        self.joinable = None  # later sends queue behind this one
        while True:
            await waiter
            if len(queue) < self.maxsize or self.closed:
                break
            waiter = loop.create_future()
            waiters.appendleft(waiter)  # still full: keep this sender's place at the front
        self._update_room()  # pass the turn on while there is room

    def _update_room(self) -> None:
        """Wake the next waiting sender if the queue has room."""
        waiters = self._room_waiters
        while waiters and (len(self._queue) < self.maxsize or self.closed):
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not self.closed:
                    return

    def reopen(self) -> None:
        """Accept readers again after `close` (an agent or app started after a stop, maybe in a new loop)."""
        self.closed = False
        self._stopping = False
        stale, self._data = self._data, asyncio.Event()  # an event is bound to the loop that first waited
        stale.set()  # readers of this loop waiting on the old event look again

    def close(self, *, drain: bool = True) -> None:
        """End every reader's stream: once the queue is drained, or (``drain=False``) at the next pull.

        Redeliveries not due yet are cancelled: their messages stay unacknowledged, so the partition's
        commit stays before them and the next start reads them again.
        """
        self.closed = True
        self._stopping = not drain
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._data.set()
        self._update_room()

    # ------------------------------------------------------------ reading

    def stream(self) -> Stream[Any]:
        """A new stream over this subscription (each consumption is one reader)."""

        def build(ctx: Context) -> Observable[Batch]:
            if self.share > 1:
                ctx.flow.high = 1  # one slice in hand at a time: the rest is for the other readers
            reader = _Reader(ctx.flow)
            self._readers.add(reader)
            return _rx.pump(
                lambda: self._feed(reader),
                ctx,
                on_dispose=lambda: self._release(reader),
                take=lambda: self._pull(reader),
            )

        return batch_stream(build, self.label)

    async def _feed(self, reader: _Reader) -> AsyncIterator[Batch]:
        while True:
            batch = self._take(reader)
            if batch is None:
                if self.closed or reader.closed or self._stopping:
                    return
                self._data.clear()
                await self._data.wait()
                continue
            yield batch

    def _take(self, reader: _Reader) -> Batch | None:
        """The next batch for ``reader``, handed over now; None when none is ready or the reader must stop."""
        if reader.closed or self._stopping:
            return None
        batch = self._next()
        if batch is None:
            return None
        if self.share > 1 and len(batch.values) > 1 and type(batch) is Batch:
            batch = self._split(batch)
        self._update_room()
        self._prune(reader)
        reader.outstanding.append(_rows(batch))
        return batch

    def _pull(self, reader: _Reader) -> Batch | None:
        """The next batch for a consumer that takes it itself while it waits for one (see `_arrived`)."""
        if reader.flow.blocked():
            self._data.set()  # work in flight holds the consumer back: the fetch hands the batch over
            return None
        return self._take(reader)

    def _next(self) -> Batch | None:
        """Take the first queued batch of a partition no rebalance is deciding on (the others wait)."""
        queue = self._queue
        if not queue:
            return None
        paused = self._paused
        if not paused:
            batch = queue.popleft()
        else:
            for i, batch in enumerate(queue):
                if cast("_PartitionAcks", batch.acker) not in paused:
                    del queue[i]
                    break
            else:
                return None
        if batch is self._last:
            self._seal(batch)
        return batch

    def _split(self, batch: Batch) -> Batch:
        """Cut a batch into one slice per reader: take the first, queue the others first for other readers.

        A burst thus keeps every reader busy; the acknowledgment book still commits each partition in order.
        """
        values, rows, acker = batch.values, _rows(batch), batch.acker
        size = -(-len(values) // self.share)
        self._queue.extendleft(
            _Slice(values[i : i + size], rows[i : i + size], acker)
            for i in reversed(range(size, len(values), size))
        )
        return _Slice(values[:size], rows[:size], acker)

    def _prune(self, reader: _Reader) -> None:
        """Forget outstanding batches that are fully acknowledged."""
        outstanding = reader.outstanding
        settle = self._book.settle
        while outstanding and settle(outstanding[0]):
            outstanding.popleft()

    def _release(self, reader: _Reader) -> None:
        """A reader went away: put what it held and did not finish back at the front, in order."""
        if reader.closed:
            return
        reader.closed = True
        self._readers.discard(reader)
        back = [left for left in map(self._book.take_back, reader.outstanding) if left]
        reader.outstanding.clear()
        if back:
            self._queue.extendleft(map(self._batch_of, reversed(back)))
            self._arrived()

    # ------------------------------------------------------------ acknowledging

    def ack(self, refs: Sequence[Any]) -> None:
        """Mark messages processed (one step per run of consecutive offsets of a partition).

        Messages waiting for redelivery, replaced by a redelivered copy, or in the hands of the error policy
        are not acknowledged here: only the copy, or the policy once it is done, may complete them.
        """
        self._book.ack(refs)

    @property
    def _superseded(self) -> int:
        """How many originals replaced by a redelivered copy are held back (none once the copies are done)."""
        return self._book.superseded

    def reject(self, ref: Any) -> None:
        """Redeliver a message after a back-off, or apply the error policy once redeliveries ran out."""
        message: Row = ref
        if self._book.reject(message):
            self._failed(message, None, "rejected")

    def failed(self, message: Row, exc: BaseException) -> None:
        """A reader raised while processing ``message``: count it; apply the policy past the limit."""
        if not self._book.with_policy(message):
            self._failed(message, exc, "raised")

    def _failed(self, message: Row, exc: BaseException | None, how: str) -> None:
        policy = self._policy_for(message[TOPIC])
        decision = self._redeliveries.failed(message, policy, rejected=how == "rejected")
        action = decision.action
        if action == "redeliver":
            if self.closed:
                return  # stopping: it stays unacknowledged, and is read again from the commit
            lease = self._acks.get((message[TOPIC], message[PARTITION]))
            timer = asyncio.get_running_loop().call_later(decision.delay, self._redeliver, message, lease)
            self._timers[id(message)] = (message, timer)
            return
        if action == "retry":
            return
        self._book.to_policy(message)
        attempts = decision.attempts
        reason = exc if exc is not None else RuntimeError(f"rejected {attempts} times")
        where = place_of(message)
        self._spawn(self._apply_policy(message, reason, action, f"{how} {attempts} times at {where}"))

    def _redeliver(self, message: Row, lease: _PartitionAcks | None) -> None:
        self._timers.pop(id(message), None)
        where = (message[TOPIC], message[PARTITION])
        if lease is None or self._acks.get(where) is not lease:
            return  # its partition moved away since (and maybe back): it is delivered again from the commit
        self._book.redelivered(message)
        self.redelivered[where] = self.redelivered.get(where, 0) + 1
        copy = Message._make(Message.of(message))  # a new object: told apart from the original by identity
        self._queue.appendleft(self._batch_of([copy]))
        self._arrived()

    def undecodable(self, message: Row, exc: BaseException, what: str = "could not be decoded") -> None:
        """A delivered offset whose message could not be decoded goes straight to the error policy."""
        self._book.to_policy(message)
        action = self._policy_for(message[TOPIC]).on_error
        self._spawn(self._apply_policy(message, exc, action, what))

    async def _apply_policy(self, message: Row, exc: BaseException, action: OnError, what: str) -> None:
        topic, partition, offset = message[TOPIC], message[PARTITION], message[OFFSET]
        where = f"topic {topic!r} partition {partition} offset {offset}"
        try:
            if action == "crash":
                logger.error("%s: message at %s %s: %r; crashing as configured", self.label, where, what, exc)
                self._crash(exc)
                return
            if action == "dead_letter":
                await self._dead_letter(Message.of(message), exc, what)
                logger.warning(
                    "%s: message at %s %s (%r); sent to the dead-letter topic", self.label, where, what, exc
                )
            else:
                logger.error("%s: message at %s %s: %r; skipped as configured", self.label, where, what, exc)
        except Exception as failure:  # the policy itself failed: the message stays unacknowledged
            logger.exception("%s: the error policy for %s failed", self.label, where)
            self._crash(failure)
            return
        self._book.policy_done(message)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for error-policy work (dead-letter sends) still in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def __repr__(self) -> str:
        return f"<Subscription {self.label} queued={len(self._queue)} readers={len(self._readers)}>"
