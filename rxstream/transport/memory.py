"""The embedded ``memory://`` transport: an in-process partitioned log with offsets, groups and commits.

Every transport opened on the same URL shares one `MemoryBroker` (``memory://`` is the default log,
``memory://name`` a separate one), so two workers of an app in one process share topics, committed offsets
and consumer groups, and split partitions as Kafka members would. Keys and values are stored as the Python
objects that were sent (``needs_bytes`` is false). The log (`rxstream.transport.memory_log`) keeps them
in columns, a few list places per message; a consumer receives a fetch as `Rows` over slices of those
columns, whose `Message`-ordered tuples (headers None when there are none) are built only when read.

Memory is bounded per partition, twice; a send beyond either bound waits, it never drops:

- at most ``max_partition_unread`` messages (`MAX_PARTITION_UNREAD`, App's ``max_partition_unread``) that
  a consumer reading the partition has not fetched yet. This is the bound that makes a fast sender wait for
  a slow agent. It is counted against fetches, not commits, so a pipeline of agents in one app never waits
  for itself: an agent's sink send waits for the next agent to fetch, which needs no commit (a commit waits
  for that send).
- at most ``max_partition_backlog`` messages (`MAX_PARTITION_BACKLOG`, App's ``max_partition_backlog``)
  that some known consumer group (one that ever joined or committed for the topic) has not committed past.
  A group stays known after its last member leaves, as in Kafka, so its lag keeps holding senders back until
  `MemoryTransport.delete_group` forgets it. Keep it above what an app holds uncommitted between two
  commits: an agent's sink send waiting for room in a topic the same app reads would wait for its own
  commit.

What every known group has committed past is trimmed; a topic no group ever joined keeps only its newest
``max_partition_backlog`` messages (like retention).

Transactions (exactly-once): a consumer created with ``transactional=True`` takes, on assignment, the
transactional id of each partition it gets (`Transactions`: a new epoch, which fences the partition's
previous owner), and `MemoryConsumer.commit_transaction` appends a source partition's outputs and commits
its offset in one step. Records reach the log only when their transaction commits, so every reader reads
committed records only and an aborted transaction leaves nothing.

Everything runs on the asyncio loop of its callers: no threads, no per-message tasks, futures or locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from .._core.assignment import assign_numbers
from ..errors import ConfigurationError, TransactionFencedError, TransportError
from ..events import Headers, Row
from .base import RebalanceListener, RecordMetadata, TopicPartition, TopicSpec, transactional_id
from .memory_log import PartitionLog, Record, TopicLog, Transactions, resolve
from .validation import MAX_MESSAGE_BYTES, check_max_message_bytes, check_records, check_topic_name

__all__ = [
    "MAX_PARTITION_BACKLOG",
    "MAX_PARTITION_UNREAD",
    "MemoryBroker",
    "MemoryConsumer",
    "MemoryTransport",
]

logger = logging.getLogger(__name__)

SCHEME = "memory://"
OFFSET_RESETS = ("earliest", "latest")
MAX_PARTITION_BACKLOG = 1_000_000
"""Messages a partition holds beyond the slowest known group's commit before a send waits."""
MAX_PARTITION_UNREAD = 10_000
"""Messages of a partition its slowest reader has not fetched before a send waits (tens of MiB in all)."""


def _broker_name(url: str) -> str:
    """The registry key of a ``memory://`` URL: the part after the scheme, without slashes."""
    if not url.lower().startswith(SCHEME):
        raise ConfigurationError(
            f"not a memory transport URL: {url!r} (expected 'memory://' or 'memory://name')"
        )
    return url[len(SCHEME) :].strip("/")


def _describe(tp: TopicPartition) -> str:
    """How errors and logs name a partition."""
    return f"topic {tp.topic!r} partition {tp.partition}"


class _Group:
    """A consumer group: its members in join order, its committed offsets and its rebalance lock."""

    __slots__ = ("_lock", "_lock_loop", "committed", "id", "members", "tasks")

    def __init__(self, group_id: str) -> None:
        self.id = group_id
        self.members: list[MemoryConsumer] = []
        self.committed: dict[TopicPartition, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def lock(self) -> asyncio.Lock:
        """The lock that serializes this group's rebalances (one per event loop, as locks bind to one)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock


class MemoryBroker:
    """The state behind one ``memory://`` URL, shared by every transport opened on it in this process."""

    _registry: ClassVar[dict[str, MemoryBroker]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        self.topics: dict[str, TopicLog] = {}
        self.groups: dict[str, _Group] = {}
        self.transactions = Transactions()

    @classmethod
    def for_url(cls, url: str) -> MemoryBroker:
        """The broker of ``url``, created on first use."""
        name = _broker_name(url)
        broker = cls._registry.get(name)
        if broker is None:
            broker = cls._registry[name] = cls(name)
        return broker

    @classmethod
    def forget(cls, url: str) -> None:
        """Drop the log of ``url`` (tests); transports already holding it keep their reference."""
        cls._registry.pop(_broker_name(url), None)

    @classmethod
    def forget_all(cls) -> None:
        """Drop every in-memory log of this process (between tests, when nothing runs)."""
        cls._registry.clear()

    def topic(self, name: str, partitions: int, *, compacting: bool = False) -> TopicLog:
        """Topic ``name``, created with ``partitions`` partitions when missing."""
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = TopicLog(name, partitions, compacting)
        return topic

    def existing_topic(self, name: str) -> TopicLog:
        """Topic ``name``; a TransportError naming it when it does not exist."""
        topic = self.topics.get(name)
        if topic is None:
            raise TransportError(f"topic {name!r} does not exist on memory://{self.name}")
        return topic

    def group(self, group_id: str) -> _Group:
        """Consumer group ``group_id``, created on first use."""
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = _Group(group_id)
        return group

    def delete_group(self, group_id: str) -> None:
        """Forget a group without members: its commits and its hold on the topics' backlogs."""
        group = self.groups.get(group_id)
        if group is None:
            return
        if group.members:
            raise TransportError(
                f"cannot delete consumer group {group_id!r} on memory://{self.name}: "
                f"it has {len(group.members)} active member(s); stop them first"
            )
        del self.groups[group_id]
        for topic in self.topics.values():
            for part in topic.partitions:
                part.drop_floor(group_id)

    async def rebalance(
        self, group: _Group, *, joining: MemoryConsumer | None = None, leaving: MemoryConsumer | None = None
    ) -> None:
        """Add or remove a member and reassign the group's partitions; runs to the end even if cancelled."""
        task = asyncio.ensure_future(self._rebalance(group, joining, leaving))
        group.tasks.add(task)
        task.add_done_callback(group.tasks.discard)
        await asyncio.shield(task)

    async def _rebalance(
        self, group: _Group, joining: MemoryConsumer | None, leaving: MemoryConsumer | None
    ) -> None:
        """A rebalance in two phases, moving only what must move, with Kafka's listener order.

        Phase 1 stops fetching of every partition that moves and awaits its old owner's listener
        ``(revoked, [])``, so the owner can still commit. Phase 2 sets each new partition's position from the
        group's commits and calls every member's listener ``([], assigned)`` (possibly empty); a member
        fetches its new partitions only after its listener returned.
        """
        async with group.lock():
            if joining is not None and joining not in group.members:
                group.members.append(joining)
            if leaving is not None and leaving in group.members:
                group.members.remove(leaving)
            members = group.members
            target = self._assign(members)
            losing = [*members, leaving] if leaving is not None else members
            revocations: list[tuple[MemoryConsumer, list[TopicPartition]]] = []
            for member in losing:
                revoked = sorted(member.owned_partitions() - target.get(member, set()))
                if revoked:
                    member._begin_revoke(revoked)
                    revocations.append((member, revoked))
            await asyncio.gather(*(member._notify(revoked, ()) for member, revoked in revocations))
            for member, revoked in revocations:
                member._finish_revoke(revoked)
            assignments: list[tuple[MemoryConsumer, list[TopicPartition]]] = []
            for member in members:
                added = sorted(target[member] - member.owned_partitions())
                member._begin_assign(added, group)
                assignments.append((member, added))
            await asyncio.gather(*(member._notify((), added) for member, added in assignments))
            for member, added in assignments:
                member._finish_assign(added)

    def _assign(self, members: Sequence[MemoryConsumer]) -> dict[MemoryConsumer, set[TopicPartition]]:
        """A sticky, co-partitioned assignment (`rxstream._core.assignment`): partition p of every topic goes
        to one member, which keeps what it held up to its share."""
        target: dict[MemoryConsumer, set[TopicPartition]] = {member: set() for member in members}
        names = sorted({name for member in members for name in member.topics})
        every = [part.tp for name in names for part in self.topics[name].partitions]
        held = {member: {tp.partition for tp in member.owned_partitions()} for member in members}
        numbers = assign_numbers(held, (tp.partition for tp in every))
        for tp in every:
            takers = [m for m in members if tp.topic in m.topics]
            owner = next((m for m in takers if tp.partition in numbers[m]), None)
            if owner is None and takers:  # a member not subscribed to this topic got the number
                owner = min(takers, key=lambda m: len(target[m]))
            if owner is not None:
                target[owner].add(tp)
        return target


class MemoryConsumer:
    """One member of a consumer group of a `MemoryTransport`; see `rxstream.transport.base.Consumer`."""

    def __init__(
        self,
        transport: MemoryTransport,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        auto_offset_reset: str,
        transactional: bool = False,
    ) -> None:
        if auto_offset_reset not in OFFSET_RESETS:
            raise ConfigurationError(
                f"auto_offset_reset must be one of {OFFSET_RESETS}, got {auto_offset_reset!r} "
                f"(consumer group {group_id!r})"
            )
        if not topics:
            raise ConfigurationError(f"a consumer of group {group_id!r} needs at least one topic")
        self.transport = transport
        self.group_id = group_id
        self.topics = frozenset(topics)
        self.auto_offset_reset = auto_offset_reset
        self.transactional = transactional
        self._on_rebalance = on_rebalance
        self._broker = transport.broker
        self._epochs: dict[TopicPartition, int] = {}
        """Per owned partition, the epoch of its transactional id this member holds (transactional only)."""
        self._group = self._broker.group(group_id)
        self._owned: dict[TopicPartition, PartitionLog] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._blocked: set[TopicPartition] = set()
        """Partitions being revoked, or assigned but whose listener has not returned: owned, not fetched."""
        self._fetchable: list[tuple[TopicPartition, PartitionLog]] = []
        self._next = 0
        self._waiter: asyncio.Future[None] | None = None
        self._listener_error: BaseException | None = None
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<MemoryConsumer group={self.group_id!r} topics={sorted(self.topics)} {self.transport.url}>"

    async def start(self) -> None:
        """Join the group (creating missing topics); returns once the first assignment was heard."""
        if self._stopped:
            raise TransportError(f"consumer of group {self.group_id!r} was stopped; create a new one")
        if self._started:
            return
        self.transport._check_open()
        for name in sorted(self.topics):
            self._broker.topic(name, self.transport.default_partitions)
        self._started = True
        await self._broker.rebalance(self._group, joining=self)

    async def stop(self) -> None:
        """Leave the group: our revocation listener runs, then the other members share our partitions."""
        if self._stopped:
            return
        self._stopped = True
        self._wake()
        if self._started:
            await self._broker.rebalance(self._group, leaving=self)
        self.transport._forget(self)

    async def getmany(self, timeout: float, max_records: int) -> dict[TopicPartition, Sequence[Row]]:
        """Up to ``max_records`` messages of assigned, unpaused partitions, waiting up to ``timeout`` s."""
        if max_records < 1:
            raise ConfigurationError(f"max_records must be at least 1, got {max_records}")
        self._raise_listener_error()
        if self._stopped:
            return {}
        if not self._started:
            raise TransportError(f"consumer of group {self.group_id!r} is not started: await start() first")
        batch = self._fetch(max_records)
        if batch or self._stopped or timeout <= 0:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter = self._waiter = loop.create_future()
            timer = loop.call_at(deadline, resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            self._raise_listener_error()
            batch = self._fetch(max_records)
            if batch or self._stopped or loop.time() >= deadline:
                return batch

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the group's next-to-read offsets; a partition this member does not own is an error."""
        parts: list[tuple[TopicPartition, PartitionLog, int]] = []
        for tp, offset in offsets.items():
            part = self._owned.get(tp)
            if part is None:
                raise TransportError(
                    f"cannot commit offset {offset} of {_describe(tp)} for consumer group {self.group_id!r}: "
                    "the partition is not assigned to this member (a rebalance moved it, or the consumer "
                    "is stopped)"
                )
            if not 0 <= offset <= part.end:
                raise ConfigurationError(
                    f"cannot commit offset {offset} of {_describe(tp)} for consumer group {self.group_id!r}: "
                    f"offsets run from 0 to the end offset {part.end}"
                )
            parts.append((tp, part, offset))
        committed = self._group.committed
        for tp, part, offset in parts:
            committed[tp] = offset
            part.set_floor(self.group_id, offset)

    async def commit_transaction(
        self, source: TopicPartition, records: Mapping[str, Sequence[Record]], offset: int
    ) -> None:
        """Append what ``source``'s events produced and commit ``offset`` in one step, with no await between.

        Every record is checked and routed before any is appended. It waits first while a partition it
        appends to is full; the transaction then goes in whole, past ``max_partition_backlog`` if need be
        (waiting for room inside it could wait for this very commit). A member whose hold on ``source``
        was taken over raises TransactionFencedError.
        """
        transport = self.transport
        for topic, batch in records.items():
            check_records(topic, batch, transport.max_message_bytes)
        while True:
            transport._check_open()
            part = self._transaction_partition(source, offset)
            routed: list[tuple[TopicLog, list[tuple[PartitionLog, list[Record]]]]] = []
            for topic, batch in records.items():
                state = self._broker.topic(topic, transport.default_partitions)
                buckets, _ = state.route(batch)
                routed.append((state, [(p, b) for p, b in zip(state.partitions, buckets, strict=True) if b]))
            full = next(
                (p for _, parts in routed for p, _ in parts if p.room(transport.max_partition_backlog) <= 0),
                None,
            )
            if full is None:
                break
            await transport._wait_for_room(full)
        stamp = time.time()
        for state, parts in routed:
            for target, bucket in parts:
                target.extend(bucket, stamp)
            transport._appended(state, (target for target, _ in parts))
        self._group.committed[source] = offset
        part.set_floor(self.group_id, offset)

    def _transaction_partition(self, source: TopicPartition, offset: int) -> PartitionLog:
        """The log of ``source`` if this member may commit a transaction of it at ``offset``."""
        part = self._owned.get(source)
        epoch = self._epochs.get(source)
        if part is None or epoch is None:
            if not self.transactional:
                raise TransportError(
                    f"consumer group {self.group_id!r}: a transaction needs a consumer created with "
                    "transactional=True"
                )
            raise TransactionFencedError(
                f"cannot commit a transaction of {_describe(source)} for consumer group {self.group_id!r}: "
                "the partition is no longer assigned to this member"
            )
        self._broker.transactions.check(transactional_id(self.group_id, source), epoch)
        if not 0 <= offset <= part.end:
            raise ConfigurationError(
                f"cannot commit offset {offset} of {_describe(source)} for consumer group {self.group_id!r}: "
                f"offsets run from 0 to the end offset {part.end}"
            )
        return part

    async def committed(self, tp: TopicPartition) -> int | None:
        """The offset this group last committed for ``tp``, or None."""
        return self._group.committed.get(tp)

    def position_of(self, tp: TopicPartition, default: int) -> int:
        """The offset this member fetches ``tp`` from next (``default`` if it does not own it)."""
        return self._positions.get(tp, default)

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member owns now."""
        return frozenset(self._owned)

    def owned_partitions(self) -> set[TopicPartition]:
        """The partitions this member owns now, as a fresh set (the rebalance computes with it)."""
        return set(self._owned)

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        """Stop fetching these partitions until resumed; partitions not assigned here are ignored."""
        self._paused.update(tp for tp in tps if tp in self._owned)
        self._refresh()

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        """Fetch these partitions again."""
        self._paused.difference_update(tps)
        self._refresh()
        self._wake()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Fetch ``tp`` from ``offset`` next; a trimmed offset resets as ``auto_offset_reset`` says."""
        if tp not in self._owned:
            raise TransportError(
                f"cannot seek {_describe(tp)} for consumer group {self.group_id!r}: "
                "the partition is not assigned to this member"
            )
        if offset < 0:
            raise ConfigurationError(f"cannot seek {_describe(tp)} to negative offset {offset}")
        self._positions[tp] = offset
        self._owned[tp].wake_senders()
        self._wake()

    def _fetch(self, max_records: int) -> dict[TopicPartition, Sequence[Row]]:
        """Slice fetchable partitions' logs from their positions, starting where the last call stopped."""
        fetchable = self._fetchable
        count = len(fetchable)
        batch: dict[TopicPartition, Sequence[Row]] = {}
        if not count:
            return batch
        positions = self._positions
        remaining = max_records
        start = self._next
        for step in range(count):
            tp, part = fetchable[(start + step) % count]
            base = part.base
            position = positions[tp]
            if position < part.first:
                position = self._reset_trimmed(tp, part, position)
            if position >= base + len(part.values):
                continue
            rows = batch[tp] = part.read(position, remaining)
            positions[tp] = position + len(rows)
            if part.space_waiters:
                part.wake_senders()
            remaining -= len(rows)
            if not remaining:
                self._next = (start + step + 1) % count
                return batch
        self._next = (start + 1) % count
        return batch

    def _reset_trimmed(self, tp: TopicPartition, part: PartitionLog, position: int) -> int:
        """Move a position that points at trimmed messages to ``auto_offset_reset`` (earliest or end)."""
        reset = part.first if self.auto_offset_reset == "earliest" else part.end
        logger.warning(
            "%s: offset %d of consumer group %r was already trimmed (earliest is %d); resetting to %d",
            _describe(tp),
            position,
            self.group_id,
            part.first,
            reset,
        )
        self._positions[tp] = reset
        return reset

    def _refresh(self) -> None:
        """Recompute the partitions a fetch reads: owned, not paused, not mid-rebalance."""
        skip = self._paused | self._blocked
        self._fetchable = [(tp, part) for tp, part in sorted(self._owned.items()) if tp not in skip]

    def _wake(self) -> None:
        """Wake a getmany waiting in this consumer (new messages, resume, seek, stop, rebalance)."""
        waiter = self._waiter
        if waiter is not None:
            resolve(waiter)

    def _raise_listener_error(self) -> None:
        """Hand a failure of our rebalance listener to the code that fetches (its owner)."""
        error, self._listener_error = self._listener_error, None
        if error is not None:
            raise TransportError(
                f"the rebalance listener of consumer group {self.group_id!r} failed: {error!r}"
            ) from error

    async def _notify(self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        """Call our rebalance listener; a failure is logged and raised by our next getmany."""
        try:
            await self._on_rebalance(revoked, assigned)
        except Exception as exc:
            logger.exception(
                "rebalance listener of consumer group %r failed (revoked=%s, assigned=%s)",
                self.group_id,
                list(revoked),
                list(assigned),
            )
            if self._listener_error is None:
                self._listener_error = exc
            self._wake()

    def _begin_revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Stop fetching partitions that move away; they stay committable until our listener returned."""
        self._blocked.update(tps)
        self._refresh()

    def _finish_revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Give up partitions whose revocation listener returned."""
        for tp in tps:
            part = self._owned.pop(tp)
            part.readers.discard(self)
            part.wake_senders()
            self._epochs.pop(tp, None)
            self._positions.pop(tp, None)
            self._paused.discard(tp)
            self._blocked.discard(tp)
        self._refresh()

    def _begin_assign(self, tps: Iterable[TopicPartition], group: _Group) -> None:
        """Own new partitions from the group's commit (else ``auto_offset_reset``), not fetched yet."""
        for tp in tps:
            part = self._broker.topics[tp.topic].partitions[tp.partition]
            position = group.committed.get(tp)
            if position is None:
                position = part.first if self.auto_offset_reset == "earliest" else part.end
            if group.id not in part.floors:
                part.set_floor(group.id, position)
            self._owned[tp] = part
            self._positions[tp] = position
            if self.transactional:
                self._epochs[tp] = self._broker.transactions.init(transactional_id(group.id, tp))
            self._blocked.add(tp)
            part.readers.add(self)
        self._refresh()

    def _finish_assign(self, tps: Iterable[TopicPartition]) -> None:
        """Start fetching partitions whose assignment listener returned."""
        self._blocked.difference_update(tps)
        self._refresh()
        self._wake()


class MemoryTransport:
    """The in-process partitioned log behind ``memory://`` URLs (the embedded default broker).

    Example::

        transport = MemoryTransport("memory://")
        await transport.send("orders", key="k1", value={"amount": 3})

    Sends are refused as a Kafka broker refuses them (see `rxstream.transport.validation`), messages over
    ``max_message_bytes`` (Kafka's default, 1 MiB) included.
    """

    needs_bytes: bool = False

    def __init__(
        self,
        url: str = SCHEME,
        *,
        default_partitions: int = 8,
        max_partition_backlog: int = MAX_PARTITION_BACKLOG,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_partition_unread: int = MAX_PARTITION_UNREAD,
    ) -> None:
        if default_partitions < 1:
            raise ConfigurationError(
                f"default_partitions must be at least 1, got {default_partitions} ({url})"
            )
        for name, limit in (
            ("max_partition_backlog", max_partition_backlog),
            ("max_partition_unread", max_partition_unread),
        ):
            if limit < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {limit} ({url})")
        self.url = url
        self.broker = MemoryBroker.for_url(url)
        self.default_partitions = default_partitions
        self.max_partition_backlog = max_partition_backlog
        self.max_partition_unread = max_partition_unread
        self.max_message_bytes = check_max_message_bytes(max_message_bytes)
        self._consumers: list[MemoryConsumer] = []
        self._blocked_sends: dict[asyncio.Future[None], TopicPartition] = {}
        self._stopped = False

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.url}>"

    @classmethod
    def reset_all(cls) -> None:
        """Forget every in-memory log of this process (call between tests, when nothing runs)."""
        MemoryBroker.forget_all()

    async def start(self) -> None:
        """Open the transport (nothing to connect to)."""
        self._stopped = False

    async def stop(self) -> None:
        """Stop our consumers and fail sends still waiting for room; the log itself stays for other users."""
        self._stopped = True
        for consumer in list(self._consumers):
            await consumer.stop()
        blocked, self._blocked_sends = self._blocked_sends, {}
        for fut, tp in blocked.items():
            if not fut.done() and not fut.get_loop().is_closed():
                fut.set_exception(
                    TransportError(f"{self.url} stopped while a send to {_describe(tp)} waited for room")
                )

    async def create_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics with their partition counts; existing ones are left as they are."""
        for spec in specs:
            existing = self.broker.topics.get(spec.name)
            if existing is None:
                self.broker.topic(spec.name, spec.partitions, compacting=spec.compacting)
            elif len(existing.partitions) != spec.partitions:
                logger.info(
                    "topic %r on %s already exists with %d partitions; %d were asked for, keeping %d",
                    spec.name,
                    self.url,
                    len(existing.partitions),
                    spec.partitions,
                    len(existing.partitions),
                )

    async def partitions_for(self, topic: str) -> int:
        """How many partitions ``topic`` has (creating it with ``default_partitions`` if missing)."""
        return len(self.broker.topic(topic, self.default_partitions).partitions)

    async def send(
        self,
        topic: str,
        key: Any,
        value: Any,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers | None = None,
    ) -> RecordMetadata:
        """Append one message; waits while the partition is full (see the module's bounds)."""
        check_records(topic, ((key, value, partition, headers),), self.max_message_bytes)
        return await self._append(topic, ((key, value, partition, headers),), timestamp)

    async def send_many(self, topic: str, records: Sequence[Record]) -> None:
        """Append (key, value, partition, headers) records in order, waking each partition's readers once."""
        check_records(topic, records, self.max_message_bytes)
        if records:
            await self._append(topic, records, None)

    async def send_values(self, topic: str, values: Sequence[Any]) -> None:
        """Append values without key or headers in order (round-robin over partitions), batched."""
        check_topic_name(topic)
        if values:
            await self._append(topic, values, None, values=True)

    def consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        on_rebalance: RebalanceListener,
        *,
        auto_offset_reset: str = "earliest",
        transactional: bool = False,
    ) -> MemoryConsumer:
        """A member of consumer group ``group_id`` subscribed to ``topics`` (not started)."""
        consumer = MemoryConsumer(self, group_id, topics, on_rebalance, auto_offset_reset, transactional)
        self._consumers.append(consumer)
        return consumer

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition of ``topic``, the offset the next message will get."""
        found = self.broker.existing_topic(topic)
        return {part.tp: part.end for part in found.partitions}

    async def first_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition of ``topic``, the first offset retained (what every group's commits trimmed)."""
        return {tp: self.watermarks(tp)[0] for tp in await self.end_offsets(topic)}

    async def group_members(self, group_id: str) -> int:
        """How many members consumer group ``group_id`` has now (in this process's log)."""
        found = self.broker.groups.get(group_id)
        return len(found.members) if found is not None else 0

    def watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        """(earliest retained offset, end offset) of a partition: what trimming left and what comes next."""
        part = self.broker.existing_topic(tp.topic).partition(tp.partition)
        return part.first, part.end

    def delete_group(self, group_id: str) -> None:
        """Forget a consumer group without members, releasing the backlog its lag was holding."""
        self.broker.delete_group(group_id)

    async def _append(
        self, topic: str, records: Sequence[Any], timestamp: float | None, *, values: bool = False
    ) -> RecordMetadata:
        """Append records (with ``values``: bare values) per partition in order; returns where the last went.

        Each round appends what fits in every partition and wakes its readers once; then, if some partition
        is full, waits for its consumers to fetch or commit and goes again. A cancelled call may have
        appended a prefix of each partition's records.
        """
        self._check_open()
        state = self.broker.topic(topic, self.default_partitions)
        buckets, last = state.round_robin(records) if values else state.route(records)
        extend = PartitionLog.extend_values if values else PartitionLog.extend
        stamp = time.time() if timestamp is None else timestamp
        max_backlog, max_unread = self.max_partition_backlog, self.max_partition_unread
        pending = [(part, bucket) for part, bucket in zip(state.partitions, buckets, strict=True) if bucket]
        offset = 0
        while True:
            waiting: list[tuple[PartitionLog, list[Any]]] = []
            touched: list[PartitionLog] = []
            for part, bucket in pending:
                room = part.room(max_backlog, max_unread)
                if room >= len(bucket):
                    extend(part, bucket, stamp)
                    if part.tp.partition == last:
                        offset = part.end - 1
                elif room > 0:
                    extend(part, bucket[:room], stamp)
                    waiting.append((part, bucket[room:]))
                else:
                    waiting.append((part, bucket))
                    continue
                touched.append(part)
            self._appended(state, touched)
            if not waiting:
                return RecordMetadata(topic, last, offset, stamp)
            await self._wait_for_room(waiting[0][0])
            pending = waiting

    def _appended(self, topic: TopicLog, touched: Iterable[PartitionLog]) -> None:
        """After appending: apply retention where no group is known, then wake readers once per partition."""
        max_backlog = self.max_partition_backlog
        for part in touched:
            if part.low is None and not topic.compacting and part.end - part.first > max_backlog:
                dropped = part.end - part.first - max_backlog
                part.trim_to(part.end - max_backlog)
                logger.warning(
                    "%s: no consumer group reads %s yet; retention dropped its %d oldest messages "
                    "(keeps max_partition_backlog=%d)",
                    self.url,
                    _describe(part.tp),
                    dropped,
                    max_backlog,
                )
            for reader in part.readers:
                reader._wake()

    async def _wait_for_room(self, part: PartitionLog) -> None:
        """Wait until consumers fetched or committed enough of ``part`` to append one more message."""
        loop = asyncio.get_running_loop()
        while part.room(self.max_partition_backlog, self.max_partition_unread) <= 0:
            fut: asyncio.Future[None] = loop.create_future()
            part.space_waiters.add(fut)
            self._blocked_sends[fut] = part.tp
            try:
                await fut
            finally:
                part.space_waiters.discard(fut)
                self._blocked_sends.pop(fut, None)
            self._check_open()

    def _check_open(self) -> None:
        """Refuse work after stop()."""
        if self._stopped:
            raise TransportError(f"transport {self.url} is stopped")

    def _forget(self, consumer: MemoryConsumer) -> None:
        """Drop a stopped consumer from the ones stop() must stop."""
        if consumer in self._consumers:
            self._consumers.remove(consumer)
