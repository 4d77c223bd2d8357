"""The app's consumer: fetches batches from the transport, feeds subscriptions, commits offsets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from ._core.fence import Lease, cut, in_flight
from .errors import ConfigurationError, EncodeError, TransportError
from .events import OFFSET
from .exactly_once import EARLY_COMMIT_RECORDS
from .transport.base import Consumer, OutputRecord, TopicPartition, Transactional, Transport

if TYPE_CHECKING:
    from .channels import Topic
    from .events import Row
    from .exactly_once import Outbox
    from .monitor import Monitor
    from .subscriptions import Subscription

__all__ = ["EARLY_COMMIT_RECORDS", "Conductor"]

logger = logging.getLogger(__name__)

MEMORY_COMMIT_EVERY = 2048
"""On memory://, fetched messages after which a commit starts early, trimming what the group is done with.

Freed this soon, the rows' tuples are reused by CPython for the rows of the outputs (it keeps up to 2,000
freed tuples of a size): those allocations then never add up to a garbage collection, which otherwise
walked every young row (bench_agents.py: 7-9% faster than committing every 10,000).
"""


class Conductor:
    """One consumer-group member per app: routes every fetched batch to the subscriptions of its topic.

    Offsets are committed per partition up to the lowest offset any subscription has not acknowledged,
    every ``commit_interval`` seconds, before partitions are revoked, and on stop. Producers are flushed
    before every commit so that nothing derived from a committed event can be lost. With an ``outbox``
    (exactly-once) what each partition's events produced is committed with its offset in one transaction
    (`rxstream.exactly_once`); a partition whose transaction fails is read again from its last commit.
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
        on_revoked: Callable[[Sequence[TopicPartition]], Awaitable[None]] | None = None,
        on_fenced: Callable[[Sequence[TopicPartition]], Awaitable[None]] | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
        monitor: Monitor | None = None,
        revocation_timeout: float = 10.0,
        outbox: Outbox | None = None,
    ) -> None:
        self.transport = transport
        self.group_id = group_id
        self.commit_interval = commit_interval
        self._flush = flush
        self.max_records = max_records
        unread = getattr(transport, "max_partition_unread", None)  # only memory:// has this bound
        self.commit_every = commit_every if unread is None else min(commit_every, unread, MEMORY_COMMIT_EVERY)
        """Fetched messages after which a commit starts early; on memory:// what it trims bounds memory."""
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_fenced = on_fenced
        """Told of the revoked partitions fenced cleanly (events done, writes stored, offsets committed, this
        worker still their only writer), then of none once the rebalance decided on them."""
        self._on_crash = on_crash
        self.monitor = monitor
        self.revocation_timeout = revocation_timeout
        self._outbox = outbox
        self._aborted: set[TopicPartition] = set()
        """Partitions whose transaction failed: what they processed since their last commit is dropped."""
        self._refused: set[TopicPartition] = set()
        """Partitions whose transaction held a record the broker refuses: never committed, the app crashes."""
        self._rewinding: set[TopicPartition] = set()
        """Partitions being read again from their last commit: what is fetched meanwhile is not delivered."""
        self.topics: dict[str, Topic[object, object]] = {}
        self.readers: dict[str, list[Subscription]] = {}
        self._consumer: Consumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._committed: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._parked: set[TopicPartition] = set()
        """Partitions revoked by a rebalance that has not assigned yet: fenced, their state kept meanwhile."""
        self._settled: asyncio.Future[None] | None = None
        """Resolved once the rebalance under way resumed or forgot the partitions it paused."""
        self._fetched_end: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()
        self._early: asyncio.Event | None = None
        """With an outbox, set when it holds enough records for an early commit."""
        self._running = False
        self.rebalances = 0
        self.fetched = 0

    def add(self, topic: Topic[object, object], subscription: Subscription) -> None:
        """Route the messages of ``topic`` to ``subscription`` (before start)."""
        if self._outbox is not None:
            self._outbox.read(topic.topic_names)
        for name in topic.topic_names:
            self.topics[name] = topic
            readers = self.readers.setdefault(name, [])
            if subscription not in readers:
                readers.append(subscription)

    def remove(self, subscription: Subscription) -> None:
        """Stop routing messages to ``subscription``; its acknowledgments no longer hold commits back."""
        for readers in self.readers.values():
            if subscription in readers:
                readers.remove(subscription)

    @property
    def running(self) -> bool:
        """Whether start() began: the subscribed topics are fixed from then on."""
        return self._running

    @property
    def consumer(self) -> Consumer | None:
        """The transport consumer, once started."""
        return self._consumer

    async def start(self) -> None:
        """Join the consumer group and start fetching and committing."""
        if not self.readers or self._running:
            return
        self._running = True
        self._commit_lock = asyncio.Lock()  # bound to the loop it first waits in: a restart may be in another
        if self._outbox is None:
            self._consumer = self.transport.consumer(self.group_id, sorted(self.readers), self._on_rebalance)
        else:
            self._consumer = self.transport.consumer(
                self.group_id, sorted(self.readers), self._on_rebalance, transactional=True
            )
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
        try:  # a commit under way ends first: cancelled, what it took from the outbox is read again
            async with asyncio.timeout(self.revocation_timeout):
                await self._commit_lock.acquire()
        except TimeoutError:
            locked = False
            logger.warning(
                "consumer %s: a commit still in progress after %.1fs (revocation_timeout) is cancelled",
                self.group_id,
                self.revocation_timeout,
            )
        else:
            locked = True
        try:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            if locked:
                self._commit_lock.release()
        self._tasks = []
        if self._early is not None and self._outbox is not None:  # a restart may run in another loop
            self._outbox.forget(self._early)
            self._early = None
        for subscriptions in self.readers.values():
            for subscription in subscriptions:
                await subscription.drain()
        try:
            await self.commit()
        except TransportError as exc:
            logger.error(
                "consumer %s: the commit on stop failed, its events are processed again: %s",
                self.group_id,
                exc,
            )
        finally:
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await consumer.stop()
            if self._parked:  # a restart begins afresh
                await self._drop(sorted(self._parked))

    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        since_commit = 0
        failures = 0
        # one fetch brings no more than the smallest topic reads ahead (its maxsize)
        max_records = min([self.max_records, *(topic.maxsize for topic in self.topics.values())])
        while self._running:
            if self._flow_control(consumer):
                await self._wait_for_any_room()
                continue
            try:
                records = await consumer.getmany(timeout=0.1, max_records=max_records)
            except TransportError as exc:  # the broker went away: the client reconnects, we back off
                failures += 1
                delay = _backoff(failures)
                logger.warning(
                    "consumer %s: fetch failed (%d in a row), retrying in %.1fs: %s",
                    self.group_id,
                    failures,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            for tp, messages in records.items():
                if messages:
                    self._dispatch(tp, messages)
                    since_commit += len(messages)
            if since_commit >= self.commit_every:
                # a fast consumer commits early too, so a transport bounded by committed offsets never stalls;
                # not awaited here: the commit's flush may wait for sends that wait for this loop to fetch
                since_commit = 0
                self._commit_early()

    def _commit_early(self) -> None:
        """Start a commit beside the fetch loop, unless one started so is still running."""
        if len(self._tasks) > 2 and not self._tasks[-1].done():
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._commit_once(), name=f"rxstream early commit {self.group_id}")
        task.add_done_callback(self._task_done)
        self._tasks = [*self._tasks[:2], task]

    async def _commit_once(self) -> None:
        await self._try_commit()

    def _flow_control(self, consumer: Consumer) -> bool:
        """Pause the partitions of topics whose readers are full, resume the others (per-topic backpressure).

        Pauses are applied again on every fetch: a Kafka rebalance lifts them. Returns whether every owned
        partition is paused (then the fetcher waits for room instead of polling).
        """
        full = {
            name
            for name, subscriptions in self.readers.items()
            if any(s.queued >= s.maxsize for s in subscriptions)
        }
        if not full and not self._paused:
            return False
        owned = consumer.assignment()
        paused = {tp for tp in owned if tp.topic in full}
        if paused:
            consumer.pause(sorted(paused))
        kept = paused | self._rewinding  # a partition read again is resumed once seeked
        resumed = [tp for tp in self._paused if tp not in kept and tp in owned]
        if resumed:
            consumer.resume(resumed)
        self._paused = paused
        return bool(owned) and paused == owned

    async def _wait_for_any_room(self) -> None:
        """Wait until some full reader has room again."""
        full = [s for subscriptions in self.readers.values() for s in subscriptions if s.queued >= s.maxsize]
        if not full:
            return
        waits = [asyncio.ensure_future(s.wait_for_room()) for s in full]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _dispatch(self, tp: TopicPartition, messages: Sequence[Row]) -> None:
        topic = self.topics.get(tp.topic)
        readers = self.readers.get(tp.topic)
        if topic is None or not readers or tp in self._rewinding:
            return
        self.fetched += len(messages)
        if self.monitor is not None:
            self.monitor.received(tp, messages)
        first, last = messages[0][OFFSET], messages[-1][OFFSET]
        self._fetched_end[tp] = last + 1
        good, values, bad = topic.decode_batch(messages)
        for subscription in readers:
            subscription.deliver(tp.topic, tp.partition, good, first, last, fetched=messages, values=values)
            for message, exc in bad:
                subscription.undecodable(message, exc)

    async def _commit_loop(self) -> None:
        failures = 0
        while self._running:
            interval = self.commit_interval
            if failures:
                await asyncio.sleep(min(interval, _backoff(failures)))
            elif self._outbox is None:
                await asyncio.sleep(interval)
            elif self._outbox.size < EARLY_COMMIT_RECORDS:  # held records are sent at commit: when many
                early = self._early  # wait, commit early, so sending keeps up
                if early is None:
                    early = self._early = self._outbox.waker()
                early.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(early.wait(), interval)
            failures = 0 if await self._try_commit() else failures + 1

    async def _try_commit(self) -> bool:
        """Commit; a failure (a rebalance under way, the broker away) is logged and left to the next try.

        Nothing is lost: what was not committed stays acknowledged, and the next commit covers it.
        """
        if self._aborted:  # a transaction failed in a commit made elsewhere (`App.commit`)
            await self._rewind()
        try:
            await self.commit()
        except TransportError as exc:
            logger.warning("consumer %s: commit failed, retrying: %s", self.group_id, exc)
            if self.monitor is not None:
                self.monitor.commit_failed()
            if self._aborted:
                await self._rewind()
            return False
        return True

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
            if self._outbox is not None:  # what an event sent after its acknowledgment was committed
                for tp, offset in self._committed.items():
                    if tp not in offsets and tp in owned and (only is None or tp in only):
                        if self._outbox.count(tp, before=offset):
                            offsets[tp] = offset
            if self._aborted or self._refused:  # their acknowledgments count for nothing until dropped
                void = self._aborted | self._refused
                offsets = {tp: offset for tp, offset in offsets.items() if tp not in void}
            if not offsets:
                return {}
            await self._flush()
            began = time.perf_counter()
            failure: TransportError | None = None
            if self._outbox is None:
                await consumer.commit(offsets)
            else:
                offsets, failure = await self._commit_transactions(consumer, offsets)
            if self.monitor is not None:
                self.monitor.committed(offsets, time.perf_counter() - began)
            logger.debug("consumer %s: committed %s", self.group_id, offsets)
            self._committed.update(offsets)
            for subscriptions in self.readers.values():
                for subscription in subscriptions:
                    trackers = subscription.trackers()
                    for tp, offset in offsets.items():
                        tracker = trackers.get((tp.topic, tp.partition))
                        if tracker is not None:
                            tracker.mark_committed(offset)
            if failure is not None:
                raise failure
            return offsets

    async def _commit_transactions(
        self, consumer: Consumer, offsets: dict[TopicPartition, int]
    ) -> tuple[dict[TopicPartition, int], TransportError | None]:
        """Commit each partition's held records with its offset, one transaction per partition, concurrently.

        A partition with nothing held commits its offset as usual. Returns the offsets committed and the
        error of the partitions that were not (those whose transaction failed join ``_aborted``).
        """
        outbox = self._outbox
        assert outbox is not None
        if not isinstance(consumer, Transactional) and any(outbox.count(tp) for tp in offsets):
            raise TransportError(
                f"consumer {self.group_id}: exactly-once processing needs a transport whose consumers "
                f"commit transactions; {self.transport.url} does not"
            )
        held: list[tuple[TopicPartition, dict[str, list[OutputRecord]], int]] = []
        plain: dict[TopicPartition, int] = {}
        for tp, offset in offsets.items():
            records = outbox.take(tp, offset)
            if records:
                held.append((tp, records, offset))
            else:
                plain[tp] = offset
        committed: dict[TopicPartition, int] = {}
        failed: list[tuple[TopicPartition, BaseException]] = []
        if held:
            assert isinstance(consumer, Transactional)
            try:
                results = await asyncio.gather(
                    *(consumer.commit_transaction(tp, records, offset) for tp, records, offset in held),
                    return_exceptions=True,
                )
                interrupt = next((r for r in results if not isinstance(r, Exception | None)), None)
                if interrupt is not None:
                    raise interrupt
            except BaseException:  # cancelled mid-way: what was taken is lost unless read again
                self._aborted.update(tp for tp, _, _ in held)
                raise
            for (tp, _, offset), result in zip(held, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append((tp, result))
                    if isinstance(result, TransportError):
                        self._aborted.add(tp)
                        continue
                    self._refused.add(tp)  # never committed: the app crashes
                    if not isinstance(result, EncodeError | ConfigurationError):
                        crash = TransportError(
                            f"consumer {self.group_id}: the transaction of {tp} (offset {offset}) failed "
                            f"unexpectedly: {result!r}"
                        )
                        crash.__cause__ = result
                        logger.error("%s", crash, exc_info=result)
                        result = crash
                    # else a record that can never be stored: reading it again would fail again
                    if self._on_crash is not None:
                        self._on_crash(result)
                else:
                    committed[tp] = offset
        failure: TransportError | None = None
        if failed:
            tp, exc = failed[0]
            failure = TransportError(
                f"consumer {self.group_id}: the transactions of {sorted(tp for tp, _ in failed)} failed and "
                f"were aborted; they are read again from their last commit (first: {tp}: {exc})"
            )
            failure.__cause__ = exc
        if plain:
            try:
                await consumer.commit(plain)
            except TransportError as exc:
                failure = failure or exc
            else:
                committed.update(plain)
        return committed, failure

    async def _on_rebalance(
        self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]
    ) -> None:
        """A rebalance's revocation (fence, finish, commit) or its assignment (drop, keep, recover).

        On revocation nothing more of the revoked partitions is processed: a reader in the middle of one of
        their events finishes it (up to ``revocation_timeout``), sends and table writes are flushed and the
        partitions committed; their queued events and table state wait for the assignment, as the
        cooperative protocol would. The assignment drops what went to other workers, resumes what came back
        (from where it was fetched) and recovers only partitions new to this worker.
        """
        self.rebalances += 1
        began = time.perf_counter()
        if revoked:
            await self._fence(revoked)
        if assigned or not revoked:
            await self._assign(assigned)
        if self.monitor is not None:
            self.monitor.rebalanced(revoked, assigned, time.perf_counter() - began)

    async def _fence(self, revoked: Sequence[TopicPartition]) -> None:
        """Stop processing ``revoked``, let the events in flight finish, flush and commit them."""
        if self._parked:  # revoked by an earlier rebalance whose assignment never came: gone for good
            await self._drop(sorted(self._parked))
        settled = self._settled
        if settled is None:
            settled = self._settled = asyncio.get_running_loop().create_future()
        await self._stop_processing(
            revoked, settled, "revoked partitions", "their partitions are revoked under them"
        )
        try:
            await self._flush()  # what the finished events changed is stored before the new owner reads it
            await self.commit(only=revoked)
            if self._on_fenced is not None:  # still their only writer: table standbys note where they stand
                void = {tp.partition for tp in self._aborted | self._refused}  # their state is dropped
                clean = [tp for tp in revoked if tp.partition not in void]
                await self._hook(self._on_fenced, clean, "fenced")
        except TransportError as exc:  # e.g. the group already moved on: the new owners replay them
            logger.warning(
                "consumer %s: commit on revocation of %s failed: %s", self.group_id, list(revoked), exc
            )
        except Exception:
            logger.exception("consumer %s: commit on revocation of %s failed", self.group_id, list(revoked))
        self._parked.update(revoked)
        await self._abandon_aborted()
        logger.info("consumer %s: partitions revoked: %s", self.group_id, sorted(revoked))

    async def _stop_processing(
        self, tps: Sequence[TopicPartition], settled: asyncio.Future[None], which: str, then: str
    ) -> None:
        """Pause ``tps`` in every reader until ``settled``, end the runs of their batches after the value in
        hand, and wait up to ``revocation_timeout`` for those values to finish."""
        where = [(tp.topic, tp.partition) for tp in tps]
        leases: set[Lease] = set()
        for subscriptions in self.readers.values():
            for subscription in subscriptions:
                leases |= subscription.pause(where, settled)
        cut(leases)
        deadline = time.monotonic() + self.revocation_timeout
        while in_flight(leases):
            if time.monotonic() >= deadline:
                logger.warning(
                    "consumer %s: events of %s %s still in progress after %.1fs (revocation_timeout); %s",
                    self.group_id,
                    which,
                    sorted(tps),
                    self.revocation_timeout,
                    then,
                )
                break
            await asyncio.sleep(0.005)

    async def _assign(self, assigned: Sequence[TopicPartition]) -> None:
        """Drop parked partitions that moved away, resume those that came back, recover the new ones."""
        parked, self._parked = self._parked, set()
        back = [tp for tp in assigned if tp in parked]
        gone = sorted(parked.difference(assigned))
        if back:
            where = [(tp.topic, tp.partition) for tp in back]
            for subscriptions in self.readers.values():
                for subscription in subscriptions:
                    subscription.resume(where)
            self._seek_past_fetched(back)
        if gone:
            await self._drop(gone)
        self._settle()
        if self._on_fenced is not None:  # decided: what the revocation noted no longer holds
            await self._hook(self._on_fenced, [], "fenced")
        new = [tp for tp in assigned if tp not in parked]
        self._rewinding.difference_update(new)  # read from their committed offset by the assignment
        if new:
            logger.info("consumer %s: partitions assigned: %s", self.group_id, sorted(new))
            if self._on_assigned is not None:
                await self._hook(self._on_assigned, new, "assigned")

    async def _drop(self, gone: Sequence[TopicPartition]) -> None:
        """Forget partitions that moved to other workers: queued events, acknowledgments, table state."""
        self._parked.difference_update(gone)
        where = [(tp.topic, tp.partition) for tp in gone]
        for tp in gone:
            self._committed.pop(tp, None)
            self._fetched_end.pop(tp, None)
        if self._outbox is not None:
            self._outbox.drop(gone)
            self._aborted.difference_update(gone)
            self._refused.difference_update(gone)
        for subscriptions in self.readers.values():
            for subscription in subscriptions:
                subscription.forget(where)
        if not self._parked:
            self._settle()
        logger.info("consumer %s: partitions moved away: %s", self.group_id, list(gone))
        if self._on_revoked is not None:
            await self._hook(self._on_revoked, gone, "revoked")

    async def _abandon_aborted(self) -> None:
        """Drop parked partitions whose transaction failed (and those of the same number): nothing of them
        is kept, so if they come back they are recovered from their last commit."""
        numbers = {tp.partition for tp in self._aborted}
        lost = sorted(tp for tp in self._parked if tp.partition in numbers)
        if lost:
            await self._drop(lost)

    async def _rewind(self) -> None:
        """Read the partitions whose transaction failed again from their last commit, state recovered first.

        What every partition of the same number processed since its last commit is dropped (events in
        flight and queued, held records, the tables' state), as its table partitions share that state. The
        group's committed offset is read from the transport, which settles a transaction in doubt first (one
        that timed out may have committed). A partition that cannot be seeked stays aborted and paused, and
        is read again at the next try.
        """
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            owned = consumer.assignment()
            self._aborted.intersection_update(owned | self._parked)  # what moved away was dropped already
            numbers = {tp.partition for tp in self._aborted}
            tps = sorted(tp for tp in owned if tp.partition in numbers and tp not in self._parked)
            if not tps:
                return
            self._aborted.update(tps)  # no commit passes them until they are seeked
            logger.warning("consumer %s: reading %s again from their last commit", self.group_id, tps)
            self._rewinding.update(tps)
            consumer.pause(tps)
            settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            seeked: list[TopicPartition] = []
            try:
                await self._stop_processing(
                    tps, settled, "partitions to read again", "they are read again under them"
                )
                if self._outbox is not None:
                    self._outbox.drop(tps)
                await self._drop(tps)
                self._aborted.update(tps)
                settled.set_result(None)  # readers waiting on them go on: they were forgotten
                if self._on_assigned is not None:
                    await self._hook(self._on_assigned, tps, "assigned")
                for tp in tps:
                    try:
                        offset = await consumer.committed(tp)
                        if offset is None:
                            offset = (await self.transport.first_offsets(tp.topic))[tp]
                        consumer.seek(tp, offset)
                    except TransportError as exc:  # e.g. moved away meanwhile: the rebalance sorts it out
                        logger.warning("consumer %s: reading %s again failed: %s", self.group_id, tp, exc)
                    else:
                        seeked.append(tp)
            finally:
                if not settled.done():
                    settled.set_result(None)
                self._aborted.difference_update(seeked)
                self._rewinding.difference_update(seeked)
                consumer.resume(seeked)

    def _settle(self) -> None:
        """The rebalance decided on every paused partition: wake the readers waiting for it."""
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)

    def _seek_past_fetched(self, back: Sequence[TopicPartition]) -> None:
        """Fetch partitions that came back from where this worker got to (what it queued is kept)."""
        consumer = self._consumer
        if consumer is None:
            return
        for tp in back:
            end = self._fetched_end.get(tp)
            if end is None:
                continue
            try:
                consumer.seek(tp, end)
            except TransportError as exc:  # not assigned after all: the next rebalance sorts it out
                logger.warning("consumer %s: cannot resume %s at offset %d: %s", self.group_id, tp, end, exc)

    async def _hook(
        self,
        hook: Callable[[Sequence[TopicPartition]], Awaitable[None]],
        partitions: Sequence[TopicPartition],
        what: str,
    ) -> None:
        """Run a rebalance hook; its failure crashes the app (the transport would only log it)."""
        try:
            await hook(partitions)
        except Exception as exc:
            logger.exception("consumer %s: handling %s partitions %s failed", self.group_id, what, partitions)
            if self._on_crash is None:
                raise
            self._on_crash(exc)


def _backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0.1 s doubling up to 5 s."""
    return float(min(0.1 * 2 ** max(failures - 1, 0), 5.0))
