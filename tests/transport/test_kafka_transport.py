"""The Kafka transport against the real broker the test session starts (tests/kafka_broker.py)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin.config_resource import (  # type: ignore[import-untyped,unused-ignore]
    ConfigResource,
    ConfigResourceType,
)
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped,unused-ignore]

from rxstream.auth import SASLCredentials
from rxstream.errors import ConfigurationError, EncodeError, TransportError
from rxstream.events import Message
from rxstream.transport.base import Consumer, RebalanceListener, TopicPartition, TopicSpec, Transport
from rxstream.transport.kafka import KafkaConsumer, KafkaTransport
from rxstream.transport.partitioner import partition_for
from tests import kafka_broker

Rebalances = list[tuple[list[TopicPartition], list[TopicPartition]]]


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def transport(kafka_bootstrap: str) -> AsyncIterator[KafkaTransport]:
    t = KafkaTransport(f"kafka://{kafka_bootstrap}", connect_timeout=10)
    await t.start()
    yield t
    await asyncio.wait_for(t.stop(), 20)


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


def _recorder() -> tuple[Rebalances, RebalanceListener]:
    """A rebalance listener that records its calls."""
    calls: Rebalances = []

    async def listener(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        calls.append((list(revoked), list(assigned)))

    return calls, listener


async def _member(
    stack: AsyncExitStack,
    transport: KafkaTransport,
    group: str,
    topic: str,
    listener: RebalanceListener | None = None,
) -> KafkaConsumer:
    """A started consumer, stopped (bounded) when the test ends."""
    consumer = transport.consumer(group, [topic], listener or _recorder()[1])
    await asyncio.wait_for(consumer.start(), 40)
    stack.push_async_callback(lambda: asyncio.wait_for(consumer.stop(), 20))
    return consumer


async def _take(consumer: KafkaConsumer, count: int, timeout: float = 20.0) -> list[Message]:
    """Exactly ``count`` messages through getmany, within ``timeout`` s (fewer fail the test)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"got {len(got)} of {count} messages within {timeout}s")
        for messages in (await asyncio.wait_for(consumer.getmany(0.5, count - len(got)), 10)).values():
            got.extend(map(Message.of, messages))
    assert len(got) == count
    return got


async def _nothing_more(consumer: KafkaConsumer, seconds: float = 1.0) -> None:
    """No message arrives within ``seconds``."""
    extra = await asyncio.wait_for(consumer.getmany(seconds, 100), seconds + 10)
    assert not extra, f"unexpected messages: {extra}"


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait (bounded) until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)


def _tps(topic: str, *partitions: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in partitions]


# ---- configuration (no broker) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("kafka://a:1;b:2", ["a:1", "b:2"]),
        ("kafka://a:1,b:2/", ["a:1", "b:2"]),
        ("kafka://broker", ["broker:9092"]),
        ("kafka://[::1]:9093", ["[::1]:9093"]),
        ("kafka://[::1]", ["[::1]:9092"]),
    ],
)
def test_url_lists_bootstrap_servers(url: str, servers: list[str]) -> None:
    assert KafkaTransport(url).bootstrap_servers == servers


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "127.0.0.1:9092",
        "kafka://",
        "kafka://host:port",
        "kafka://h:1;;h2:2",
        "kafka://h:0",
        "kafka://h:",
        "kafka://h:1/path",
        "kafka://[::1",
        "kafka://[::1]x",
    ],
)
def test_malformed_url_is_a_configuration_error_naming_it(url: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid Kafka URL") as info:
        KafkaTransport(url)
    assert repr(url) in str(info.value)


def test_settings_the_transport_owns_are_refused_in_extra_config() -> None:
    with pytest.raises(ConfigurationError, match="consumer_config may not set enable_auto_commit"):
        KafkaTransport("kafka://h:1", consumer_config={"enable_auto_commit": True})
    with pytest.raises(ConfigurationError, match="producer_config may not set bootstrap_servers"):
        KafkaTransport("kafka://h:1", producer_config={"bootstrap_servers": "other:1"})
    transport = KafkaTransport("kafka://h:1", producer_config={"linger_ms": 50, "acks": 1})
    assert transport.producer_config["linger_ms"] == 50
    assert transport.producer_config["acks"] == 1
    assert transport.producer_config["enable_idempotence"] is False


def test_transport_and_consumer_implement_the_protocols() -> None:
    transport = KafkaTransport("kafka://127.0.0.1:9092")
    assert isinstance(transport, Transport)
    assert transport.needs_bytes is True
    assert isinstance(transport.consumer("g", ["t"], _recorder()[1]), Consumer)


async def test_credentials_reach_every_aiokafka_client() -> None:
    creds = SASLCredentials("app", "s3cret", mechanism="SCRAM-SHA-256")
    transport = KafkaTransport("kafka://a:1;b:2", credentials=creds, client_id="shop")
    kwargs = transport.client_kwargs()
    assert kwargs == {
        "bootstrap_servers": ["a:1", "b:2"],
        "client_id": "shop",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "app",
        "sasl_plain_password": "s3cret",
    }
    # aiokafka accepts them (constructed, never started: the test broker has no SASL listener)
    producer = AIOKafkaProducer(**kwargs, **transport.producer_config)
    consumer = AIOKafkaConsumer(**kwargs, **transport.consumer_config)
    admin = AIOKafkaAdminClient(**kwargs)
    for client in (producer.client, consumer._client, admin._client):
        assert client._security_protocol == "SASL_PLAINTEXT"
        assert client._sasl_mechanism == "SCRAM-SHA-256"
        assert client._sasl_plain_username == "app"
    await asyncio.wait_for(asyncio.gather(producer.stop(), consumer.stop(), admin.close()), 10)


# ---- connecting ------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_broker_fails_start_within_the_timeout_naming_the_url() -> None:
    url = f"kafka://127.0.0.1:{_closed_port()}"
    transport = KafkaTransport(url, connect_timeout=3)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        await asyncio.wait_for(transport.start(), 10)
    assert time.monotonic() - started < 3.5
    assert url in str(info.value)
    await transport.stop()


async def test_silent_broker_fails_start_after_connect_timeout_instead_of_hanging() -> None:
    with socket.socket() as server:  # accepts TCP connections (the kernel's backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"kafka://127.0.0.1:{server.getsockname()[1]}"
        transport = KafkaTransport(url, connect_timeout=1.5)
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"no answer within 1\.5s") as info:
            await asyncio.wait_for(transport.start(), 10)
        assert 1.4 < time.monotonic() - started < 3
        assert url in str(info.value)


async def test_send_before_start_is_a_clear_error() -> None:
    transport = KafkaTransport("kafka://127.0.0.1:9092")
    with pytest.raises(TransportError, match="not started"):
        await transport.send("t", b"k", b"v")


# ---- topics ----------------------------------------------------------------------------------------


async def _topic_config(bootstrap: str, topic: str, *names: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 15)
    try:
        (response,) = await asyncio.wait_for(
            admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(names))]),
            15,
        )
    finally:
        await admin.close()
    (resource,) = response.to_object()["resources"]
    return {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}


async def test_create_topics_sets_partitions_retention_and_compaction(
    transport: KafkaTransport, kafka_bootstrap: str, kafka_topic_name: str
) -> None:
    changelog, events = f"{kafka_topic_name}-changelog", f"{kafka_topic_name}-events"
    await transport.create_topics(
        [
            TopicSpec(changelog, partitions=3, compacting=True, config={"min.cleanable.dirty.ratio": "0.2"}),
            TopicSpec(events, partitions=2, retention=3600.0),
        ]
    )
    assert await transport.partitions_for(changelog) == 3
    assert await transport.partitions_for(events) == 2
    names = ("cleanup.policy", "retention.ms", "min.cleanable.dirty.ratio")
    config = await _topic_config(kafka_bootstrap, changelog, *names)
    assert config["cleanup.policy"] == "compact"
    assert config["min.cleanable.dirty.ratio"] == "0.2"
    config = await _topic_config(kafka_bootstrap, events, *names)
    assert config["cleanup.policy"] == "delete"
    assert config["retention.ms"] == "3600000"

    # creating again leaves the existing topic as it is
    await transport.create_topics([TopicSpec(events, partitions=5)])
    fresh = KafkaTransport(transport.url)
    try:
        assert await fresh.partitions_for(events) == 2
    finally:
        await fresh.stop()


async def test_partitions_for_creates_a_missing_topic_with_the_default_count(
    kafka_bootstrap: str, kafka_topic_name: str
) -> None:
    # the broker's own auto-creation would give it 1 partition (num.partitions=1)
    transport = KafkaTransport(f"kafka://{kafka_bootstrap}", default_partitions=5)
    await transport.start()
    try:
        assert await transport.partitions_for(kafka_topic_name) == 5
        meta = await transport.send(f"{kafka_topic_name}-2", b"k", b"v")
        assert await transport.partitions_for(f"{kafka_topic_name}-2") == 5
        assert meta.partition == partition_for(b"k", 5)
    finally:
        await asyncio.wait_for(transport.stop(), 20)


async def test_create_topics_reports_a_refused_topic(transport: KafkaTransport) -> None:
    with pytest.raises(TransportError, match=r"cannot create topic 'bad\?name'") as info:
        await transport.create_topics([TopicSpec("bad?name", partitions=1)])
    assert transport.url in str(info.value)


# ---- producing and consuming -----------------------------------------------------------------------


async def test_round_trip_keeps_keys_values_headers_and_timestamps(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic = kafka_topic_name
    await transport.create_topics([TopicSpec(topic, partitions=4)])
    base = 1_700_000_000.0
    sent = {}
    for i in range(20):
        key = f"user-{i % 7}".encode()
        meta = await transport.send(
            topic,
            key,
            f"value-{i}".encode(),
            timestamp=base + i + 0.125,
            headers={"seq": str(i), "raw": b"\x00\xff"},
        )
        assert meta.topic == topic
        assert meta.timestamp == base + i + 0.125
        # the memory transport's partitioner and Kafka's default one (murmur2) pick the same partition
        assert meta.partition == partition_for(key, 4) == DefaultPartitioner()(key, [0, 1, 2, 3], [])
        sent[i] = meta
    unstamped = await transport.send(topic, b"user-0", b"now")
    assert abs(unstamped.timestamp - time.time()) < 5

    consumer = await _member(exit_stack, transport, _group(), topic)
    messages = await _take(consumer, 21)
    for m in messages:
        if m.value == b"now":
            assert m.timestamp == unstamped.timestamp
            assert (m.partition, m.offset) == (unstamped.partition, unstamped.offset)
            continue
        i = int(m.headers["seq"])
        assert m.headers == {"seq": str(i).encode(), "raw": b"\x00\xff"}
        assert (m.topic, m.partition, m.offset) == (topic, sent[i].partition, sent[i].offset)
        assert m.timestamp == base + i + 0.125
        assert m.key == m.raw_key == f"user-{i % 7}".encode()
        assert m.value == m.raw_value == f"value-{i}".encode()
    by_partition: dict[int, list[int]] = {}
    for m in messages:
        by_partition.setdefault(m.partition, []).append(m.offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())


async def test_send_many_keeps_order_and_handles_tombstones_and_empty_records(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic = kafka_topic_name
    await transport.create_topics([TopicSpec(topic, partitions=3)])
    records: list[tuple[Any, Any, int | None, Any]] = [(b"k", str(i).encode(), 1, None) for i in range(50)]
    records += [(b"gone", None, 2, {"why": "tombstone"}), (None, None, 2, None), (None, b"keyless", 2, None)]
    await transport.send_many(topic, records)
    # keyless messages without a partition go round-robin
    await transport.send_many(topic, [(None, b"rr", None, None)] * 6)

    consumer = await _member(exit_stack, transport, _group(), topic)
    messages = await _take(consumer, 59)
    p1 = [m for m in messages if m.partition == 1 and m.value != b"rr"]
    assert [m.value for m in p1] == [str(i).encode() for i in range(50)]
    assert [m.offset for m in p1] == list(range(50))  # all before the round-robin ones
    p2 = [(m.key, m.value, dict(m.headers)) for m in messages if m.partition == 2 and m.value != b"rr"]
    assert p2 == [(b"gone", None, {"why": b"tombstone"}), (None, None, {}), (None, b"keyless", {})]
    rr = [m.partition for m in messages if m.value == b"rr"]
    assert sorted(rr) == [0, 0, 1, 1, 2, 2]


async def test_send_values_refuses_a_bad_batch_whole_and_continues_the_round_robin(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic = kafka_topic_name
    await transport.create_topics([TopicSpec(topic, partitions=3)])
    await transport.send_many(topic, [(None, b"first", None, None)] * 2)  # turns 0 and 1
    with pytest.raises(EncodeError, match=f"value for topic {topic!r} is a str"):
        await transport.send_values(topic, [b"ok", "text"])
    with pytest.raises(EncodeError, match=f"topic {topic!r}"):
        await transport.send_values(topic, [b"ok", b"x" * (transport.max_message_bytes + 1)])
    await transport.send_values(topic, [b"%d" % i for i in range(7)])  # from turn 2 on
    await transport.send_many(topic, [(None, b"last", None, None)])  # turn 9

    consumer = await _member(exit_stack, transport, _group(), topic)
    messages = await _take(consumer, 10)
    await _nothing_more(consumer)  # neither refused batch sent anything
    partitions = {m.value: m.partition for m in messages}
    assert [partitions[b"%d" % i] for i in range(7)] == [2, 0, 1, 2, 0, 1, 2]
    assert partitions[b"last"] == 0
    assert all(m.key is None and not m.headers for m in messages)


async def test_send_rejects_non_bytes_and_missing_partitions(
    transport: KafkaTransport, kafka_topic_name: str
) -> None:
    await transport.create_topics([TopicSpec(kafka_topic_name, partitions=2)])
    with pytest.raises(EncodeError, match="bytes"):
        await transport.send(kafka_topic_name, "text key", b"v")
    with pytest.raises(EncodeError, match="header 'n'"):
        await transport.send(kafka_topic_name, b"k", b"v", headers={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(TransportError, match=r"partition 7 of topic") as info:
        await transport.send(kafka_topic_name, b"k", b"v", partition=7)
    assert transport.url in str(info.value)


# ---- consumer groups -------------------------------------------------------------------------------


async def test_two_consumers_of_a_group_split_four_partitions(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic, group = kafka_topic_name, _group()
    await transport.create_topics([TopicSpec(topic, partitions=4)])
    calls1, listener1 = _recorder()
    c1 = await _member(exit_stack, transport, group, topic, listener1)
    assert c1.assignment() == frozenset(_tps(topic, 0, 1, 2, 3))
    assert calls1 == [([], _tps(topic, 0, 1, 2, 3))]  # the first join revokes nothing: one call

    calls2, listener2 = _recorder()
    c2 = await _member(exit_stack, transport, group, topic, listener2)
    await _until(lambda: len(c1.assignment()) == 2 and len(c2.assignment()) == 2, "a 2 + 2 split")
    # a member owns its partitions just before its listener hears of them
    await _until(lambda: len(calls1) == 3 and len(calls2) == 1, "both listeners hearing of the split")
    assert c1.assignment() | c2.assignment() == frozenset(_tps(topic, 0, 1, 2, 3))
    # eager rebalance: c1 hears everything revoked, then its new half
    assert calls1[1] == (_tps(topic, 0, 1, 2, 3), [])
    assert calls1[2] == ([], sorted(c1.assignment()))
    assert calls2 == [([], sorted(c2.assignment()))]

    await transport.send_many(topic, [(f"k{i}".encode(), str(i).encode(), None, None) for i in range(40)])
    got1, got2 = await asyncio.gather(_take_some(c1), _take_some(c2))
    assert {m.partition for m in got1} <= {tp.partition for tp in c1.assignment()}
    assert {m.partition for m in got2} <= {tp.partition for tp in c2.assignment()}
    assert sorted(int(m.value) for m in [*got1, *got2]) == list(range(40))

    # a member leaving hears its partitions revoked (its last chance to commit), then hands them over
    owned2 = sorted(c2.assignment())
    await asyncio.wait_for(c2.stop(), 20)
    assert calls2[-1] == (owned2, [])
    await _until(lambda: len(c1.assignment()) == 4, "c1 owning all four partitions again")
    await _until(lambda: calls1[-1] == ([], _tps(topic, 0, 1, 2, 3)), "c1 hearing of it")
    assert await c2.getmany(0.1, 10) == {}  # a stopped member fetches nothing
    with pytest.raises(TransportError, match="stopped"):
        await c2.start()


async def _take_some(consumer: KafkaConsumer, quiet: float = 1.5, timeout: float = 20.0) -> list[Message]:
    """Everything that arrives until ``quiet`` s pass with nothing new (bounded by ``timeout``)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() < deadline:
        batch = await asyncio.wait_for(consumer.getmany(0.3, 1000), 10)
        if batch:
            last = time.monotonic()
            for messages in batch.values():
                got.extend(map(Message.of, messages))
    return got


async def test_commit_then_a_new_member_resumes_from_the_committed_offsets(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic, group = kafka_topic_name, _group()
    await transport.create_topics([TopicSpec(topic, partitions=2)])
    await transport.send_many(
        topic, [(None, f"{p}-{i}".encode(), p, None) for p in (0, 1) for i in range(10)]
    )
    tp0, tp1 = _tps(topic, 0, 1)

    first = transport.consumer(group, [topic], _recorder()[1])
    await asyncio.wait_for(first.start(), 40)
    try:
        assert await first.committed(tp0) is None
        messages = await _take(first, 20)
        assert len(messages) == 20
        await first.commit({tp0: 6, tp1: 10})
        assert await first.committed(tp0) == 6
        assert await first.committed(tp1) == 10
    finally:
        await asyncio.wait_for(first.stop(), 20)

    second = await _member(exit_stack, transport, group, topic)
    rest = await _take(second, 4)
    assert [(m.partition, m.offset, m.value) for m in rest] == [
        (0, i, f"0-{i}".encode()) for i in range(6, 10)
    ]
    await _nothing_more(second)
    assert await second.committed(tp0) == 6


async def test_commit_of_a_partition_not_assigned_is_a_transport_error(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    await transport.create_topics([TopicSpec(kafka_topic_name, partitions=1)])
    consumer = await _member(exit_stack, transport, _group(), kafka_topic_name)
    with pytest.raises(TransportError, match="committing") as info:
        await consumer.commit({TopicPartition("other-topic", 0): 1})
    assert transport.url in str(info.value)
    with pytest.raises(TransportError, match="not assigned to this member"):
        consumer.seek(TopicPartition("other-topic", 0), 0)
    consumer.pause([TopicPartition("other-topic", 0)])  # ignored, as a rebalance may have moved it
    consumer.resume([TopicPartition("other-topic", 0)])


async def test_pause_holds_a_partition_back_until_resumed_and_seek_rereads(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic = kafka_topic_name
    await transport.create_topics([TopicSpec(topic, partitions=2)])
    await transport.send_many(topic, [(None, f"{p}-{i}".encode(), p, None) for p in (0, 1) for i in range(5)])
    tp0, tp1 = _tps(topic, 0, 1)
    consumer = await _member(exit_stack, transport, _group(), topic)

    consumer.pause([tp0])
    got = await _take(consumer, 5)
    assert {m.partition for m in got} == {1}
    await _nothing_more(consumer)

    consumer.resume([tp0])
    got = await _take(consumer, 5)
    assert [m.value for m in got] == [f"0-{i}".encode() for i in range(5)]

    consumer.seek(tp0, 3)
    got = await _take(consumer, 2)
    assert [(m.partition, m.offset) for m in got] == [(0, 3), (0, 4)]
    await _nothing_more(consumer, 0.5)
    with pytest.raises(ConfigurationError):
        consumer.seek(tp1, -1)


async def test_a_failing_rebalance_listener_fails_the_next_getmany(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    await transport.create_topics([TopicSpec(kafka_topic_name, partitions=1)])

    async def broken(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        raise RuntimeError("listener broke")

    consumer = await _member(exit_stack, transport, _group(), kafka_topic_name, broken)
    with pytest.raises(TransportError, match="rebalance listener of consumer group") as info:
        await consumer.getmany(0.1, 10)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert await consumer.getmany(0.1, 10) == {}  # raised once


async def test_getmany_before_start_is_a_clear_error(transport: KafkaTransport) -> None:
    consumer = transport.consumer("g", ["t"], _recorder()[1])
    with pytest.raises(TransportError, match="not started"):
        await consumer.getmany(0.1, 10)
    assert consumer.assignment() == frozenset()


# ---- broker outage ---------------------------------------------------------------------------------


async def _run(fun: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fun, *args)


async def test_send_fails_with_a_transport_error_naming_the_url_when_the_broker_is_gone(
    kafka_bootstrap: str, kafka_topic_name: str, tmp_path: Path
) -> None:
    # a private broker (this test stops it); the session broker only stands for "Kafka is installed"
    bootstrap, pid = await asyncio.wait_for(_run(kafka_broker._start_once, tmp_path / "broker"), 100)
    transport = KafkaTransport(
        f"kafka://{bootstrap}", connect_timeout=5, producer_config={"request_timeout_ms": 3000}
    )
    try:
        await transport.start()
        await transport.send(kafka_topic_name, b"k", b"before")
        await _run(kafka_broker._stop, pid)
        started = time.monotonic()
        with pytest.raises(TransportError, match=f"kafka://{bootstrap}: sending"):
            await asyncio.wait_for(transport.send(kafka_topic_name, b"k", b"after"), 30)
        with pytest.raises(TransportError, match="sending 1 of 1 batches"):
            await asyncio.wait_for(transport.send_many(kafka_topic_name, [(b"k", b"x", None, None)] * 3), 30)
        assert time.monotonic() - started < 20
    finally:
        await _run(kafka_broker._stop, pid)
        await asyncio.wait_for(transport.stop(), 20)


async def test_a_member_can_commit_from_its_revocation_listener(
    transport: KafkaTransport, exit_stack: AsyncExitStack, kafka_topic_name: str
) -> None:
    topic, group = kafka_topic_name, _group()
    await transport.create_topics([TopicSpec(topic, partitions=2)])
    await transport.send_many(topic, [(None, b"v", p, None) for p in (0, 1) for _ in range(3)])
    consumed: dict[TopicPartition, int] = {}
    committed_on_revoke: list[dict[TopicPartition, int]] = []
    first: KafkaConsumer | None = None

    async def commit_on_revoke(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
        if revoked and first is not None:
            offsets = {tp: consumed[tp] for tp in revoked if tp in consumed}
            await first.commit(offsets)
            committed_on_revoke.append(offsets)

    first = await _member(exit_stack, transport, group, topic, commit_on_revoke)
    for m in await _take(first, 6):
        consumed[TopicPartition(m.topic, m.partition)] = m.offset + 1
    second = await _member(exit_stack, transport, group, topic)  # the rebalance revokes first's partitions
    assert committed_on_revoke == [{tp: 3 for tp in _tps(topic, 0, 1)}]
    await _nothing_more(second)  # it starts from the offsets committed during the rebalance
    for tp in _tps(topic, 0, 1):
        assert await second.committed(tp) == 3


async def test_end_offsets_are_the_next_offsets_per_partition(
    transport: KafkaTransport, kafka_bootstrap: str, kafka_topic_name: str
) -> None:
    topic = kafka_topic_name
    await transport.create_topics([TopicSpec(topic, partitions=3)])
    assert await transport.end_offsets(topic) == dict.fromkeys(_tps(topic, 0, 1, 2), 0)
    await transport.send_many(topic, [(None, b"v", p, None) for p in (0, 0, 0, 2)])
    assert await transport.end_offsets(topic) == dict(zip(_tps(topic, 0, 1, 2), (3, 0, 1), strict=True))
    # a topic this transport never touched: read, not created
    other = KafkaTransport(transport.url)
    try:
        assert (await other.end_offsets(topic))[TopicPartition(topic, 0)] == 3
        with pytest.raises(TransportError, match=r"topic '.*-missing' does not exist"):
            await other.end_offsets(f"{topic}-missing")
    finally:
        await asyncio.wait_for(other.stop(), 20)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 15)
    try:
        assert f"{topic}-missing" not in await asyncio.wait_for(admin.list_topics(), 15)
    finally:
        await admin.close()
