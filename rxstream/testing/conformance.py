"""Helpers for tests: the transport conformance suite every transport (memory, Kafka, yours) must pass.

Subclass `TransportConformance` in a test module and provide a ``transport_url`` fixture; pytest collects the
inherited tests::

    class TestMemoryConformance(TransportConformance):
        @pytest.fixture
        def transport_url(self) -> str:
            return "memory://conformance"

The suite uses bytes keys and values (what ``needs_bytes`` transports require) and polls with deadlines
instead of assuming instant group joins, so it runs unchanged against a real Kafka broker.

Its exactly-once cases (``test_transaction_*``) need a transport whose consumers can be created with
``transactional=True`` (`rxstream.transport.base.Transactional`) and whose readers read committed records
only: override `make_committed_transport` where that takes an option (Kafka's ``isolation_level``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import pytest

from ..errors import ConfigurationError, DecodeError, EncodeError, TransactionFencedError, TransportError
from ..events import Message, Row
from ..records import Record
from ..transport import Consumer, TopicPartition, TopicSpec, Transport, get_transport
from ..transport.base import OutputRecord, Transactional
from ..transport.partitioner import partition_for
from ..transport.validation import MAX_MESSAGE_BYTES

__all__ = [
    "ConsumerProbe",
    "RebalanceRecorder",
    "TransportConformance",
    "fresh_name",
    "poll_until",
]


PHASE_TIMEOUT = 30.0
"""Seconds one phase of a test (a group join, draining a batch) may take; Kafka joins take a few seconds."""
POLL_STEP = 0.2
"""Seconds each getmany of a polling loop waits."""
QUIET_PERIOD = 1.0
"""Seconds a test polls to show that nothing (more) arrives."""


def fresh_name(prefix: str = "rxs-conformance") -> str:
    """A topic or group name no earlier test used (tests may share one broker)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class RebalanceRecorder:
    """A rebalance listener that records its calls and the partitions they add up to."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[TopicPartition], list[TopicPartition]]] = []
        self.owned: set[TopicPartition] = set()

    async def __call__(self, revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        """Record one call: revoked partitions leave ``owned``, assigned ones join it."""
        self.calls.append((list(revoked), list(assigned)))
        self.owned.difference_update(revoked)
        self.owned.update(assigned)


class ConsumerProbe:
    """A consumer under test with everything it fetched and what its rebalance listener heard."""

    def __init__(self, consumer: Consumer, recorder: RebalanceRecorder) -> None:
        self.consumer = consumer
        self.recorder = recorder
        self.messages: list[Message] = []
        self.stopped = False

    async def poll(self, timeout: float = POLL_STEP, max_records: int = 500) -> None:
        """One getmany; what it returns is appended to ``messages``."""
        batch = await self.consumer.getmany(timeout, max_records)
        for messages in batch.values():
            self.messages.extend(map(Message.of, messages))

    async def stop(self) -> None:
        """Stop the consumer once (the suite's cleanup calls this again)."""
        if not self.stopped:
            self.stopped = True
            await asyncio.wait_for(self.consumer.stop(), PHASE_TIMEOUT)

    def partitions(self) -> set[int]:
        """The partitions the fetched messages came from."""
        return {message.partition for message in self.messages}

    def values(self) -> list[bytes]:
        """The values fetched, in fetch order."""
        return [message.value for message in self.messages]


async def poll_until(
    probes: Iterable[ConsumerProbe], done: Callable[[], bool], what: str, timeout: float = PHASE_TIMEOUT
) -> None:
    """Poll every running probe until ``done()``; an AssertionError saying ``what`` after ``timeout`` s."""
    running = [probe for probe in probes if not probe.stopped]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with asyncio.timeout(timeout + PHASE_TIMEOUT):
        while not done():
            if loop.time() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.gather(*(probe.poll() for probe in running))


@contextlib.asynccontextmanager
async def _started(transport: Transport) -> AsyncIterator[Transport]:
    """``transport`` started, and stopped on leaving (each bounded by PHASE_TIMEOUT)."""
    await asyncio.wait_for(transport.start(), PHASE_TIMEOUT)
    try:
        yield transport
    finally:
        await asyncio.wait_for(transport.stop(), PHASE_TIMEOUT)


def _by_partition(messages: Iterable[Message]) -> dict[int, list[Message]]:
    """Messages grouped by partition, in the order they were fetched."""
    grouped: dict[int, list[Message]] = {}
    for message in messages:
        grouped.setdefault(message.partition, []).append(message)
    return grouped


class TransportConformance:
    """Tests every transport must pass; subclasses provide the ``transport_url`` fixture.

    Override `make_transport` to build the transport with options; override ``PARTITIONS`` to test with
    another partition count (at least 4).
    """

    PARTITIONS = 4

    def make_transport(self, url: str) -> Transport:
        """The transport under test (default: what `get_transport` returns for the URL)."""
        return get_transport(url)

    @pytest.fixture
    async def transport(self, transport_url: str) -> AsyncIterator[Transport]:
        """A started transport, stopped after the test."""
        async with _started(self.make_transport(transport_url)) as transport:
            yield transport

    def make_committed_transport(self, url: str) -> Transport:
        """The transport for the exactly-once cases: its readers see committed records only."""
        return self.make_transport(url)

    @pytest.fixture
    async def committed_transport(self, transport_url: str) -> AsyncIterator[Transport]:
        """A started transport of `make_committed_transport`, stopped after the test."""
        async with _started(self.make_committed_transport(transport_url)) as transport:
            yield transport

    @pytest.fixture
    async def cleanup(self, transport: Transport) -> AsyncIterator[contextlib.AsyncExitStack]:
        """Stops the test's consumers before the transport stops."""
        async with contextlib.AsyncExitStack() as stack:
            yield stack

    @pytest.fixture
    def topic(self) -> str:
        """A fresh topic name."""
        return fresh_name()

    async def create(self, transport: Transport, topic: str, partitions: int | None = None) -> int:
        """Create ``topic`` with ``partitions`` (default ``PARTITIONS``) and return the count."""
        count = self.PARTITIONS if partitions is None else partitions
        await asyncio.wait_for(transport.create_topics([TopicSpec(topic, count)]), PHASE_TIMEOUT)
        return count

    async def member(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, group: str, *topics: str
    ) -> ConsumerProbe:
        """A started consumer of ``group``, stopped at the end of the test."""
        recorder = RebalanceRecorder()
        probe = ConsumerProbe(transport.consumer(group, topics, recorder), recorder)
        cleanup.push_async_callback(probe.stop)
        await asyncio.wait_for(probe.consumer.start(), PHASE_TIMEOUT)
        return probe

    async def test_transport_implements_the_protocol(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        await self.create(transport, topic)
        assert isinstance(transport, Transport)
        assert isinstance(transport.needs_bytes, bool)
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        assert isinstance(probe.consumer, Consumer)

    async def test_create_topics_makes_partitions_and_keeps_existing(
        self, transport: Transport, topic: str
    ) -> None:
        await self.create(transport, topic)
        assert await transport.partitions_for(topic) == self.PARTITIONS
        await self.create(transport, topic, self.PARTITIONS + 2)
        assert await transport.partitions_for(topic) == self.PARTITIONS

    async def test_first_offsets_and_group_members(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        await asyncio.wait_for(transport.send(topic, b"k", b"v", partition=0), PHASE_TIMEOUT)
        firsts = await asyncio.wait_for(transport.first_offsets(topic), PHASE_TIMEOUT)
        assert firsts == {TopicPartition(topic, p): 0 for p in range(count)}
        group = fresh_name("group")
        assert await asyncio.wait_for(transport.group_members(group), PHASE_TIMEOUT) == 0
        probe = await self.member(transport, cleanup, group, topic)
        await poll_until([probe], lambda: len(probe.messages) == 1, "the one message")
        assert await asyncio.wait_for(transport.group_members(group), PHASE_TIMEOUT) == 1

    async def test_keyed_sends_land_on_the_key_partition(self, transport: Transport, topic: str) -> None:
        count = await self.create(transport, topic)
        async with asyncio.timeout(PHASE_TIMEOUT):
            first = [await transport.send(topic, b"k1", b"v%d" % i) for i in range(10)]
            assert {meta.partition for meta in first} == {partition_for(b"k1", count)}
            assert [meta.offset for meta in first] == list(range(first[0].offset, first[0].offset + 10))
            for i in range(2, 30):
                key = b"k%d" % i
                meta = await transport.send(topic, key, b"v")
                assert (meta.topic, meta.partition) == (topic, partition_for(key, count)), key

    async def test_explicit_partition_wins_over_the_key(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        target = (partition_for(b"k1", count) + 1) % count
        meta = await asyncio.wait_for(transport.send(topic, b"k1", b"v1", partition=target), PHASE_TIMEOUT)
        assert (meta.partition, meta.offset) == (target, 0)
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: len(probe.messages) == 1, "the message sent to one partition")
        [message] = probe.messages
        assert (message.topic, message.partition, message.offset) == (topic, target, 0)
        assert (message.key, message.value) == (b"k1", b"v1")

    async def test_partition_keeps_the_order_of_1000_messages(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        records = [(b"k%d" % (i % 10), b"%d" % i, None, None) for i in range(1000)]
        await asyncio.wait_for(transport.send_many(topic, records), PHASE_TIMEOUT)
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: len(probe.messages) >= 1000, "1000 messages")
        assert sorted(int(value) for value in probe.values()) == list(range(1000))
        for partition, messages in _by_partition(probe.messages).items():
            assert [m.offset for m in messages] == list(range(len(messages))), partition
            values = [int(m.value) for m in messages]
            assert values == sorted(values), f"partition {partition} is out of order"
            assert all(partition_for(m.key, count) == partition for m in messages)

    async def test_headers_and_timestamps_round_trip(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        await self.create(transport, topic)
        stamp = float(int(time.time()) - 60) + 0.25
        headers = {"trace": b"abc", "n": b"1"}
        meta = await asyncio.wait_for(
            transport.send(topic, b"k1", b"v1", partition=0, timestamp=stamp, headers=headers), PHASE_TIMEOUT
        )
        assert meta.timestamp == pytest.approx(stamp, abs=1e-3)
        before = time.time()
        await asyncio.wait_for(transport.send(topic, b"k2", b"v2", partition=0), PHASE_TIMEOUT)
        after = time.time()
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: len(probe.messages) == 2, "2 messages")
        stamped, unstamped = probe.messages
        assert dict(stamped.headers) == headers
        assert stamped.timestamp == pytest.approx(stamp, abs=1e-3)
        assert dict(unstamped.headers) == {}
        assert before - 5 <= unstamped.timestamp <= after + 5

    async def test_group_members_split_the_partitions(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        group = fresh_name("group")
        first = await self.member(transport, cleanup, group, topic)
        second = await self.member(transport, cleanup, group, topic)
        everything = {TopicPartition(topic, p) for p in range(count)}

        def split() -> bool:
            mine, theirs = first.consumer.assignment(), second.consumer.assignment()
            heard = first.recorder.owned == mine and second.recorder.owned == theirs
            return heard and bool(mine) and bool(theirs) and not mine & theirs and mine | theirs == everything

        await poll_until([first, second], split, "two members to split the partitions, and to hear of it")
        records = [(b"k%d" % i, b"%d" % i, i % count, None) for i in range(10 * count)]
        await asyncio.wait_for(transport.send_many(topic, records), PHASE_TIMEOUT)
        total = len(records)
        await poll_until(
            [first, second], lambda: len(first.messages) + len(second.messages) >= total, f"{total} messages"
        )
        for probe in (first, second):
            assert probe.messages, "each member gets a share"
            assert probe.partitions() <= {tp.partition for tp in probe.consumer.assignment()}
            assert probe.recorder.owned == set(probe.consumer.assignment())
            assert probe.recorder.calls, "the rebalance listener heard of the assignment"
        assert not first.partitions() & second.partitions()
        assert sorted(first.values() + second.values()) == sorted(value for _, value, _, _ in records)

    async def test_new_member_resumes_from_the_committed_offset(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        await self.create(transport, topic, 1)
        tp = TopicPartition(topic, 0)
        group = fresh_name("group")
        records = [(b"k1", b"v%d" % i, 0, None) for i in range(10)]
        await asyncio.wait_for(transport.send_many(topic, records), PHASE_TIMEOUT)
        first = await self.member(transport, cleanup, group, topic)
        await poll_until([first], lambda: len(first.messages) == 10, "10 messages")
        await asyncio.wait_for(first.consumer.commit({tp: 6}), PHASE_TIMEOUT)
        assert await asyncio.wait_for(first.consumer.committed(tp), PHASE_TIMEOUT) == 6
        await first.stop()
        second = await self.member(transport, cleanup, group, topic)
        await poll_until([second], lambda: len(second.messages) == 4, "the 4 uncommitted messages")
        assert [m.offset for m in second.messages] == [6, 7, 8, 9]
        assert second.values() == [b"v6", b"v7", b"v8", b"v9"]
        assert await asyncio.wait_for(second.consumer.committed(tp), PHASE_TIMEOUT) == 6
        await self._assert_quiet(second, 4)

    async def test_pause_stops_a_partition_and_resume_restores_it(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        await self.create(transport, topic, 2)
        held, flowing = TopicPartition(topic, 0), TopicPartition(topic, 1)
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: probe.consumer.assignment() == {held, flowing}, "the assignment")
        probe.consumer.pause([held])
        records = [(b"k", b"v%d" % i, i % 2, None) for i in range(10)]
        await asyncio.wait_for(transport.send_many(topic, records), PHASE_TIMEOUT)
        await poll_until([probe], lambda: len(probe.messages) >= 5, "the unpaused partition's messages")
        await self._assert_quiet(probe, 5)
        assert probe.partitions() == {flowing.partition}
        probe.consumer.resume([held])
        await poll_until([probe], lambda: len(probe.messages) >= 10, "the resumed partition's messages")
        assert sorted(probe.values()) == sorted(value for _, value, _, _ in records)

    async def test_seek_reads_again(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        await self.create(transport, topic, 1)
        tp = TopicPartition(topic, 0)
        await asyncio.wait_for(
            transport.send_many(topic, [(b"k", b"v%d" % i, 0, None) for i in range(5)]), PHASE_TIMEOUT
        )
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: len(probe.messages) == 5, "5 messages")
        probe.consumer.seek(tp, 2)
        await poll_until([probe], lambda: len(probe.messages) == 8, "the 3 messages after the seek")
        assert [m.offset for m in probe.messages[5:]] == [2, 3, 4]
        assert probe.values()[5:] == [b"v2", b"v3", b"v4"]

    async def test_send_many_appends_records_in_order(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        records = [
            (b"k1", b"a", None, None),
            (b"k2", b"b", 2, {"h": b"1"}),
            (b"k1", b"c", None, {"h": b"2"}),
            (b"k3", b"d", 2, None),
            (None, b"e", 1, None),
        ]
        await asyncio.wait_for(transport.send_many(topic, records), PHASE_TIMEOUT)
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: len(probe.messages) == len(records), f"{len(records)} messages")
        got = {m.value: m for m in probe.messages}
        home = partition_for(b"k1", count)
        assert (got[b"a"].partition, got[b"c"].partition) == (home, home)
        assert got[b"a"].offset < got[b"c"].offset
        assert (got[b"b"].partition, got[b"d"].partition, got[b"e"].partition) == (2, 2, 1)
        assert got[b"b"].offset < got[b"d"].offset
        assert dict(got[b"b"].headers) == {"h": b"1"}
        assert dict(got[b"c"].headers) == {"h": b"2"}
        assert (got[b"e"].key, got[b"d"].key) == (None, b"k3")

    async def test_send_values_spreads_keyless_values_in_order(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        values = [b"%d" % i for i in range(40)]
        await asyncio.wait_for(transport.send_values(topic, values[:25]), PHASE_TIMEOUT)
        await asyncio.wait_for(transport.send_values(topic, values[25:]), PHASE_TIMEOUT)
        probe = await self.member(transport, cleanup, fresh_name("group"), topic)
        await poll_until([probe], lambda: len(probe.messages) == len(values), f"{len(values)} messages")
        assert sorted(probe.values(), key=int) == values
        by_partition = _by_partition(probe.messages)
        assert len(by_partition) == count, "keyless values go round-robin over every partition"
        for partition, messages in by_partition.items():
            assert [m.offset for m in messages] == list(range(len(messages))), partition
            numbers = [int(m.value) for m in messages]
            assert numbers == sorted(numbers), f"partition {partition} is out of order"
            assert all(m.key is None and not m.headers for m in messages)

    async def test_stopped_member_hands_its_partitions_over(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        count = await self.create(transport, topic)
        group = fresh_name("group")
        staying = await self.member(transport, cleanup, group, topic)
        leaving = await self.member(transport, cleanup, group, topic)
        everything = frozenset(TopicPartition(topic, p) for p in range(count))
        await poll_until(
            [staying, leaving],
            lambda: bool(staying.consumer.assignment()) and bool(leaving.consumer.assignment()),
            "two members to share the partitions",
        )
        await leaving.stop()
        await poll_until(
            [staying],
            lambda: staying.consumer.assignment() == everything == staying.recorder.owned,
            "the hand-over (assignment and rebalance listener)",
        )
        records = [(b"k", b"%d" % i, i % count, None) for i in range(2 * count)]
        await asyncio.wait_for(transport.send_many(topic, records), PHASE_TIMEOUT)
        await poll_until([staying], lambda: len(staying.messages) >= len(records), "every message")
        assert staying.partitions() == set(range(count))

    async def transactional_member(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, group: str, *topics: str
    ) -> tuple[ConsumerProbe, Transactional]:
        """A started transactional consumer of ``group``, stopped at the end of the test."""
        recorder = RebalanceRecorder()
        consumer = transport.consumer(group, topics, recorder, transactional=True)
        probe = ConsumerProbe(consumer, recorder)
        cleanup.push_async_callback(probe.stop)
        await asyncio.wait_for(consumer.start(), PHASE_TIMEOUT)
        assert isinstance(consumer, Transactional)
        return probe, consumer

    async def committed_values(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str, expected: int
    ) -> list[bytes]:
        """The values of ``topic`` a new reader sees (``expected`` of them, then nothing more), in order."""
        reader = await self.member(transport, cleanup, fresh_name("reader"), topic)
        await poll_until([reader], lambda: len(reader.messages) >= expected, f"{expected} committed records")
        await self._assert_quiet(reader, expected)
        await reader.stop()
        return sorted(reader.values())

    async def _transaction_inputs(
        self, transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str, group: str, inputs: int
    ) -> tuple[str, str, ConsumerProbe, Transactional]:
        """Two output topics, ``inputs`` messages in partition 0 of ``topic``, and a transactional member of
        ``group`` that fetched them: (output a, output b, its probe, the member)."""
        out_a, out_b = fresh_name(), fresh_name()
        await self.create(transport, topic, 1)
        await self.create(transport, out_a)
        await self.create(transport, out_b)
        messages = [(b"k", b"in%d" % i, 0, None) for i in range(inputs)]
        await asyncio.wait_for(transport.send_many(topic, messages), PHASE_TIMEOUT)
        probe, member = await self.transactional_member(transport, cleanup, group, topic)
        await poll_until([probe], lambda: len(probe.messages) == inputs, f"{inputs} input messages")
        return out_a, out_b, probe, member

    async def test_transaction_makes_its_records_and_offset_visible_together(
        self, committed_transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        transport = committed_transport
        group = fresh_name("group")
        out_a, out_b, probe, member = await self._transaction_inputs(transport, cleanup, topic, group, 3)
        tp = TopicPartition(topic, 0)
        records: dict[str, list[OutputRecord]] = {
            out_a: [(b"k%d" % i, b"a%d" % i, None, None) for i in range(3)],
            out_b: [(None, b"b0", 1, {"h": b"v"})],
        }
        await asyncio.wait_for(member.commit_transaction(tp, records, 3), PHASE_TIMEOUT)
        await _committed_becomes(probe.consumer, tp, 3)
        assert await self.committed_values(transport, cleanup, out_a, 3) == [b"a0", b"a1", b"a2"]
        assert await self.committed_values(transport, cleanup, out_b, 1) == [b"b0"]
        await probe.stop()
        again, _ = await self.transactional_member(transport, cleanup, group, topic)
        await self._assert_quiet(again, 0)  # the inputs of the committed transaction are not read again

    async def test_transaction_that_fails_is_aborted_leaving_nothing_visible(
        self, committed_transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        transport = committed_transport
        out_a, out_b, probe, member = await self._transaction_inputs(
            transport, cleanup, topic, fresh_name("group"), 2
        )
        tp = TopicPartition(topic, 0)
        refused = {out_a: [(b"k", b"aborted", 0, None)], out_b: [(b"k", b"refused", 99, None)]}
        with pytest.raises((TransportError, ConfigurationError), match="partition"):
            await asyncio.wait_for(member.commit_transaction(tp, refused, 1), PHASE_TIMEOUT)
        assert await asyncio.wait_for(probe.consumer.committed(tp), PHASE_TIMEOUT) is None
        await asyncio.wait_for(
            member.commit_transaction(tp, {out_a: [(b"k", b"committed", 0, None)]}, 2), PHASE_TIMEOUT
        )
        await _committed_becomes(probe.consumer, tp, 2)
        assert await self.committed_values(transport, cleanup, out_a, 1) == [b"committed"]
        assert (await transport.end_offsets(out_b))[TopicPartition(out_b, 0)] == 0

    async def test_transaction_of_a_partition_that_moved_is_fenced(
        self, committed_transport: Transport, cleanup: contextlib.AsyncExitStack, topic: str
    ) -> None:
        transport = committed_transport
        out = fresh_name()
        await self.create(transport, topic, 2)
        await self.create(transport, out)
        group = fresh_name("group")
        old, zombie = await self.transactional_member(transport, cleanup, group, topic)
        new, owner = await self.transactional_member(transport, cleanup, group, topic)
        await poll_until(
            [old, new],
            lambda: len(old.consumer.assignment()) == len(new.consumer.assignment()) == 1,
            "two members to share the partitions",
        )
        (moved,) = new.consumer.assignment()
        with pytest.raises(TransactionFencedError, match=r"no longer assigned|not assigned|fenced"):
            await asyncio.wait_for(
                zombie.commit_transaction(moved, {out: [(b"k", b"zombie", 0, None)]}, 0), PHASE_TIMEOUT
            )
        await asyncio.wait_for(
            owner.commit_transaction(moved, {out: [(b"k", b"owner", 0, None)]}, 0), PHASE_TIMEOUT
        )
        assert await self.committed_values(transport, cleanup, out, 1) == [b"owner"]
        await _committed_becomes(new.consumer, moved, 0)

    async def _assert_quiet(self, probe: ConsumerProbe, expected: int) -> None:
        """Poll for ``QUIET_PERIOD`` seconds and check the probe still has exactly ``expected`` messages."""
        loop = asyncio.get_running_loop()
        end = loop.time() + QUIET_PERIOD
        async with asyncio.timeout(QUIET_PERIOD + PHASE_TIMEOUT):
            while loop.time() < end:
                await probe.poll(timeout=max(0.0, min(POLL_STEP, end - loop.time())))
        assert len(probe.messages) == expected, probe.messages[expected:]

    async def test_sends_a_broker_refuses_are_refused_naming_the_argument(
        self, transport: Transport, topic: str
    ) -> None:
        await self.create(transport, topic)
        refusals: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"value": b"x" * (MAX_MESSAGE_BYTES + 1)}, EncodeError, "max_message_bytes"),
            ({"headers": {"n": 1}}, EncodeError, "header 'n'"),
            ({"headers": {"n": None}}, EncodeError, "header 'n'"),
            ({"headers": {"n": {"a": 1}}}, EncodeError, "header 'n'"),
            ({"headers": {b"n": b"v"}}, EncodeError, "header name b'n'"),
            ({"headers": {"n\ud800": b"v"}}, EncodeError, "header name"),
            ({"key": "k\ud800"}, EncodeError, "key"),
            ({"partition": "1"}, ConfigurationError, "partition"),
            ({"partition": True}, ConfigurationError, "partition"),
        ]
        async with asyncio.timeout(PHASE_TIMEOUT):
            for options, error, named in refusals:
                send = {"key": b"k", "value": b"v", **options}
                key, value = send.pop("key"), send.pop("value")
                with pytest.raises(error, match=re.escape(named)):
                    await transport.send(topic, key, value, **send)
                with pytest.raises(error, match=re.escape(named)):
                    record = (key, value, send.get("partition"), send.get("headers"))
                    await transport.send_many(topic, [record])
            for name in ("bad topic!", ".", "..", "t" * 250):
                with pytest.raises(ConfigurationError, match="topic name"):
                    await transport.send(name, b"k", b"v")
                with pytest.raises(ConfigurationError, match="topic name"):
                    await transport.send_values(name, [b"v"])
            assert (await transport.end_offsets(topic)) == {
                TopicPartition(topic, p): 0 for p in range(self.PARTITIONS)
            }

    async def test_a_message_of_max_message_bytes_is_sent(self, transport: Transport, topic: str) -> None:
        await self.create(transport, topic)
        value = b"x" * (200 * 1024)
        meta = await asyncio.wait_for(transport.send(topic, None, value, partition=0), PHASE_TIMEOUT)
        assert (meta.partition, meta.offset) == (0, 0)

    def test_records_are_accepted_and_refused_as_a_byte_transport_would(self, transport_url: str) -> None:
        from ..app import App

        app = App(fresh_name("conformance-app"), broker=transport_url)
        topic = app.topic(fresh_name(), value_type=_Reading)
        sent: Any = _Reading(at="2024-01-02T03:04:05", level=2)  # type: ignore[arg-type]
        good = topic.decode(_row(topic.name, *topic.encode("k", sent)))
        value = good[5]
        assert value == _Reading(at=datetime.datetime(2024, 1, 2, 3, 4, 5), level=2.0)
        assert type(value.level) is float
        for bad in (_Reading(at=5, level=1.0), _Reading(at=None, level=1.0)):  # type: ignore[arg-type]
            with pytest.raises(DecodeError, match=r"_Reading\.at"):
                topic.decode(_row(topic.name, *topic.encode("k", bad)))
        with pytest.raises(EncodeError, match="key"):
            topic.encode(7, _Reading(at=datetime.datetime(2024, 1, 2), level=1.0))


class _Reading(Record):
    """A record whose fields a byte transport checks on the way in."""

    at: datetime.datetime
    level: float


def _row(topic: str, key: Any, value: Any) -> Row:
    """A fetched row carrying ``key`` and ``value`` as the transport stored them."""
    return (topic, 0, 0, time.time(), key, value, None, None, None)


async def _committed_becomes(consumer: Consumer, tp: TopicPartition, offset: int) -> None:
    """Wait until the group's committed offset of ``tp`` reads ``offset``: a broker may apply the offset of a
    committed transaction a moment after the commit returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PHASE_TIMEOUT
    while (found := await asyncio.wait_for(consumer.committed(tp), PHASE_TIMEOUT)) != offset:
        assert loop.time() < deadline, f"the committed offset of {tp} is {found}, not {offset}"
        await asyncio.sleep(POLL_STEP)
