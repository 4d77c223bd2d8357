"""The ``memory://`` transport: the conformance suite plus what only the in-memory log promises."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped,unused-ignore]

from rxstream.errors import ConfigurationError, TransportError
from rxstream.events import Message
from rxstream.testing import TransportConformance, fresh_name
from rxstream.transport import TopicPartition, TopicSpec, get_transport
from rxstream.transport.memory import MemoryBroker, MemoryConsumer, MemoryTransport
from rxstream.transport.partitioner import key_bytes, partition_for

TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test starts and ends with no in-memory logs."""
    MemoryTransport.reset_all()
    yield
    MemoryTransport.reset_all()


class TestMemoryConformance(TransportConformance):
    @pytest.fixture
    def transport_url(self) -> str:
        return "memory://conformance"


async def _ignore(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
    """A rebalance listener that does nothing."""


@pytest.fixture
async def transport() -> AsyncIterator[MemoryTransport]:
    transport = MemoryTransport("memory://tests", default_partitions=1, max_partition_backlog=10)
    await transport.start()
    yield transport
    await transport.stop()


async def _started(consumer: MemoryConsumer) -> MemoryConsumer:
    await consumer.start()
    return consumer


async def _drain(consumer: MemoryConsumer, count: int) -> list[object]:
    """Exactly ``count`` values from ``consumer``, within TIMEOUT."""
    values: list[object] = []
    async with asyncio.timeout(TIMEOUT):
        while len(values) < count:
            for messages in (await consumer.getmany(0.1, count - len(values))).values():
                values.extend(Message.of(m).value for m in messages)
    return values


async def test_send_waits_while_a_group_lags_and_drops_nothing(transport: MemoryTransport) -> None:
    tp = TopicPartition("orders", 0)
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    await transport.send_many("orders", [(None, i, None, None) for i in range(10)])
    blocked = asyncio.create_task(transport.send("orders", None, 10))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not blocked.done(), "the 11th message must wait for the group to commit"
    assert await _drain(consumer, 10) == list(range(10))
    assert not blocked.done(), "fetching is not committing"
    await consumer.commit({tp: 3})
    meta = await asyncio.wait_for(blocked, TIMEOUT)
    assert (meta.partition, meta.offset) == (0, 10)
    assert await _drain(consumer, 1) == [10]
    assert transport.watermarks(tp) == (3, 11)


async def test_send_many_waits_partway_and_resumes_after_commit(transport: MemoryTransport) -> None:
    tp = TopicPartition("orders", 0)
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    sending = asyncio.create_task(transport.send_many("orders", [(None, i, None, None) for i in range(25)]))
    received: list[object] = []
    async with asyncio.timeout(TIMEOUT):
        while len(received) < 25:
            batch = await consumer.getmany(0.1, 7)
            for messages in batch.values():
                received.extend(Message.of(m).value for m in messages)
                await consumer.commit({tp: Message.of(messages[-1]).offset + 1})
    await asyncio.wait_for(sending, TIMEOUT)
    assert received == list(range(25))


async def test_a_group_without_members_still_holds_senders_until_deleted(transport: MemoryTransport) -> None:
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    await consumer.stop()
    await transport.send_many("orders", [(None, i, None, None) for i in range(10)])
    blocked = asyncio.create_task(transport.send("orders", None, 10))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    transport.delete_group("g")
    await asyncio.wait_for(blocked, TIMEOUT)


async def test_messages_every_group_committed_past_are_trimmed(transport: MemoryTransport) -> None:
    tp = TopicPartition("orders", 0)
    one = await _started(transport.consumer("one", ["orders"], _ignore))
    two = await _started(transport.consumer("two", ["orders"], _ignore))
    await transport.send_many("orders", [(None, i, None, None) for i in range(8)])
    await one.commit({tp: 6})
    assert transport.watermarks(tp) == (0, 8), "group two still needs everything"
    await two.commit({tp: 4})
    assert transport.watermarks(tp) == (4, 8)
    await two.commit({tp: 8})
    assert transport.watermarks(tp) == (6, 8)
    third = await _started(transport.consumer("three", ["orders"], _ignore))
    assert await _drain(third, 2) == [6, 7], "a new group starts at the earliest retained offset"


async def test_retention_keeps_the_newest_backlog_when_no_group_is_known(transport: MemoryTransport) -> None:
    tp = TopicPartition("orders", 0)
    await transport.send_many("orders", [(None, i, None, None) for i in range(12)])
    await transport.send("orders", None, 12)
    assert transport.watermarks(tp) == (3, 13)
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    assert await _drain(consumer, 10) == list(range(3, 13))


async def test_seek_to_a_trimmed_offset_resets_to_earliest(transport: MemoryTransport) -> None:
    tp = TopicPartition("orders", 0)
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    await transport.send_many("orders", [(None, i, None, None) for i in range(6)])
    assert await _drain(consumer, 6) == list(range(6))
    await consumer.commit({tp: 4})
    consumer.seek(tp, 1)
    assert await _drain(consumer, 2) == [4, 5]


async def test_transports_on_one_url_share_the_log_and_others_do_not() -> None:
    producer = MemoryTransport("memory://shared")
    worker = MemoryTransport("memory://shared/")
    other = MemoryTransport("memory://elsewhere")
    await producer.create_topics([TopicSpec("orders", 3)])
    assert await worker.partitions_for("orders") == 3
    assert await other.partitions_for("orders") == 8
    await producer.send("orders", "k1", "v1")
    consumer = await _started(worker.consumer("g", ["orders"], _ignore))
    assert await _drain(consumer, 1) == ["v1"]
    tp = TopicPartition("orders", partition_for("k1", 3))
    await consumer.commit({tp: 1})
    assert await producer.consumer("g", ["orders"], _ignore).committed(tp) == 1, "groups are shared too"
    assert MemoryBroker.for_url("memory://shared") is producer.broker is worker.broker
    assert MemoryTransport("memory://").broker is MemoryTransport("memory:///").broker
    await worker.stop()


async def test_objects_round_trip_as_themselves(transport: MemoryTransport) -> None:
    @dataclasses.dataclass
    class Order:
        id: str
        amount: float

    order = Order("o1", 9.5)
    key = ("customer", 7)
    meta = await transport.send("orders", key, order, headers={"kind": "order"})
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    batch = await consumer.getmany(TIMEOUT, 10)
    [row] = batch[TopicPartition("orders", meta.partition)]
    message = Message.of(row)
    assert message.key is key and message.value is order
    assert dict(message.headers) == {"kind": "order"}
    assert message.raw_key is None and message.raw_value is None
    assert not transport.needs_bytes


async def test_bad_partition_is_a_configuration_error_naming_topic_and_partition(
    transport: MemoryTransport,
) -> None:
    await transport.create_topics([TopicSpec("orders", 2)])
    with pytest.raises(ConfigurationError, match=r"'orders'.*partition 5"):
        await transport.send("orders", None, 1, partition=5)
    with pytest.raises(ConfigurationError, match=r"'orders'.*partition -1"):
        await transport.send_many("orders", [(None, 1, 0, None), (None, 2, -1, None)])
    assert transport.watermarks(TopicPartition("orders", 0)) == (0, 0), "a bad batch appends nothing"


def test_unknown_scheme_is_a_configuration_error_naming_url_and_schemes() -> None:
    with pytest.raises(ConfigurationError, match=r"'redis://x'.*memory://.*kafka://"):
        get_transport("redis://x")
    with pytest.raises(ConfigurationError, match=r"'localhost:9092'"):
        get_transport("localhost:9092")
    assert isinstance(get_transport("memory://x"), MemoryTransport)
    with pytest.raises(ConfigurationError, match="memory"):
        MemoryTransport("kafka://localhost")


async def test_commit_of_a_partition_not_owned_is_a_transport_error(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("orders", 2)])
    first = await _started(transport.consumer("g", ["orders"], _ignore))
    second = await _started(transport.consumer("g", ["orders"], _ignore))
    theirs = next(iter(second.assignment()))
    with pytest.raises(TransportError, match=rf"'orders' partition {theirs.partition}.*'g'"):
        await first.commit({theirs: 0})
    await second.stop()
    with pytest.raises(TransportError, match="not assigned"):
        await second.commit({theirs: 0})


async def test_revoked_owner_commits_before_the_new_owner_reads(transport: MemoryTransport) -> None:
    await transport.create_topics([TopicSpec("orders", 2)])
    await transport.send_many("orders", [(None, i, i % 2, None) for i in range(10)])
    events: list[str] = []
    old: list[MemoryConsumer] = []

    async def old_listener(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        if revoked:
            await asyncio.sleep(0.01)  # the new owner must not start meanwhile
            await old[0].commit({tp: 3 for tp in revoked})
            events.append(f"revoked {sorted(tp.partition for tp in revoked)}")

    async def new_listener(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        for tp in assigned:
            events.append(f"assigned {tp.partition} at {await newcomer.committed(tp)}")

    old.append(await _started(transport.consumer("g", ["orders"], old_listener)))
    newcomer = transport.consumer("g", ["orders"], new_listener)
    await newcomer.start()
    assert events == ["revoked [1]", "assigned 1 at 3"]
    assert old[0].assignment() == {TopicPartition("orders", 0)}
    assert await _drain(newcomer, 2) == [7, 9]


async def test_rebalance_listener_failure_is_raised_by_the_owner_getmany(transport: MemoryTransport) -> None:
    async def broken(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        raise RuntimeError("boom")

    consumer = await _started(transport.consumer("g", ["orders"], broken))
    with pytest.raises(TransportError, match=r"'g'.*boom"):
        await consumer.getmany(0, 10)
    assert await consumer.getmany(0, 10) == {}


async def test_getmany_returns_promptly_when_stopped(transport: MemoryTransport) -> None:
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    waiting = asyncio.create_task(consumer.getmany(60, 10))
    await asyncio.sleep(0.01)
    await transport.stop()
    assert await asyncio.wait_for(waiting, TIMEOUT) == {}
    assert consumer.assignment() == frozenset()


async def test_waiting_getmany_gets_a_whole_send_many_batch(transport: MemoryTransport) -> None:
    consumer = await _started(transport.consumer("g", ["orders"], _ignore))
    waiting = asyncio.create_task(consumer.getmany(TIMEOUT, 100))
    await asyncio.sleep(0.01)
    await transport.send_many("orders", [(None, i, None, None) for i in range(5)])
    batch = await asyncio.wait_for(waiting, TIMEOUT)
    assert [Message.of(m).value for m in batch[TopicPartition("orders", 0)]] == [0, 1, 2, 3, 4]


async def test_getmany_limits_records_and_rotates_partitions() -> None:
    transport = MemoryTransport("memory://rotate", default_partitions=3)
    await transport.send_many("t", [(None, i, i % 3, None) for i in range(30)])
    consumer = await _started(transport.consumer("g", ["t"], _ignore))
    seen: list[int] = []
    for _ in range(3):
        batch = await consumer.getmany(0, 4)
        assert sum(len(messages) for messages in batch.values()) == 4
        seen.extend(tp.partition for tp in batch)
    assert set(seen) == {0, 1, 2}, "a partition with a backlog must not starve the others"
    await transport.stop()


def test_key_partitioning_matches_kafka_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for count in (1, 3, 4, 8, 12):
        for i in range(200):
            key = f"key-{i}".encode()
            assert partition_for(key, count) == partitioner(key, list(range(count)), list(range(count)))
    assert partition_for("key-1", 8) == partition_for(b"key-1", 8)
    assert key_bytes({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'
    assert key_bytes(7) == b"7"
    with pytest.raises(ConfigurationError, match="round-robin"):
        partition_for(None, 4)


async def test_keyless_messages_go_round_robin() -> None:
    transport = MemoryTransport("memory://rr", default_partitions=4)
    topic = fresh_name()
    partitions = [(await transport.send(topic, None, i)).partition for i in range(8)]
    assert partitions == [0, 1, 2, 3, 0, 1, 2, 3]


async def test_batched_keyless_messages_continue_the_round_robin_and_keyed_ones_hash() -> None:
    transport = MemoryTransport("memory://rr-many", default_partitions=4)
    topic = fresh_name()
    assert (await transport.send(topic, None, "a")).partition == 0
    await transport.send_many(topic, [(None, f"b{i}", None, None) for i in range(6)])
    mixed = [(None, "c0", None, None), ("k", "c1", None, None), (None, "c2", None, None)]
    await transport.send_many(topic, mixed)
    assert (await transport.send(topic, None, "d")).partition == 1
    consumer = await _started(transport.consumer("g", [topic], _ignore))
    by_partition: dict[int, list[object]] = {p: [] for p in range(4)}
    async with asyncio.timeout(TIMEOUT):
        while sum(map(len, by_partition.values())) < 11:
            for tp, messages in (await consumer.getmany(0.1, 20)).items():
                by_partition[tp.partition].extend(Message.of(m).value for m in messages)
    keyed = partition_for("k", 4)
    expected: dict[int, list[object]] = {0: ["a", "b3"], 1: ["b0", "b4"], 2: ["b1", "b5"], 3: ["b2", "c0"]}
    expected[keyed].append("c1")
    expected[0].append("c2")
    expected[1].append("d")
    assert by_partition == expected
    await transport.stop()


async def test_send_many_takes_any_sequence_of_records() -> None:
    from collections import deque

    transport = MemoryTransport("memory://any-sequence", default_partitions=2)
    topic = fresh_name()
    await transport.send_many(topic, deque((None, i, None, None) for i in range(4)))
    assert sum((await transport.end_offsets(topic)).values()) == 4
    await transport.stop()
