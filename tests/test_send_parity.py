"""memory:// accepts and refuses what kafka:// does: records that would not decode, sends a broker refuses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

import rxstream
from rxstream import App, Message, Record
from rxstream.errors import ConfigurationError, EncodeError
from rxstream.transport import MemoryTransport
from rxstream.transport.validation import MAX_MESSAGE_BYTES


class Reading(Record):
    at: datetime
    level: float


def memory_url() -> str:
    return f"memory://parity-{uuid.uuid4().hex[:8]}"


async def read_all(app: App, topic: str, expected: int) -> list[Message]:
    """The first ``expected`` messages of a topic, read by a consumer group of its own."""

    async def on_rebalance(revoked: Any, assigned: Any) -> None:
        return None

    consumer = app.transport.consumer(f"reader-{uuid.uuid4().hex}", [topic], on_rebalance)
    await consumer.start()
    seen: list[Message] = []
    try:
        async with asyncio.timeout(5.0):
            while len(seen) < expected:
                batch = await consumer.getmany(timeout=0.05, max_records=100)
                for rows in batch.values():
                    seen.extend(map(Message.of, rows))
    finally:
        await consumer.stop()
    return seen


async def test_a_record_kafka_would_dead_letter_is_dead_lettered_on_memory_too() -> None:
    app = App("parity", broker=memory_url())
    topic = app.topic("readings", value_type=Reading, partitions=1)
    good: list[Reading] = []

    @app.agent(topic)
    async def process(stream: rxstream.Stream[Reading]) -> None:
        async for reading in stream:
            good.append(reading)

    async with app:
        await topic.send(value=Reading(at=5, level=1.0))  # type: ignore[arg-type]
        await topic.send(value=Reading(at=None, level=1.0))  # type: ignore[arg-type]
        await topic.send(value=Reading(at=datetime(2024, 1, 2), level=2))  # type: ignore[arg-type]
        dead = await read_all(app, "readings-dead-letter", 2)
        async with asyncio.timeout(5.0):
            while not good:
                await asyncio.sleep(0.01)
    assert good == [Reading(at=datetime(2024, 1, 2), level=2.0)]
    assert type(good[0].level) is float  # coerced, as decoding the JSON Kafka carries would
    errors = [message.headers["rxstream-error"] for message in dead]
    assert all("Reading.at" in error for error in errors), errors


async def test_topic_send_refuses_what_kafka_refuses_naming_the_argument() -> None:
    app = App("parity", broker=memory_url())
    words = app.topic("words", key_type=str, partitions=2)
    async with app:
        with pytest.raises(EncodeError, match="key for topic 'words'"):
            await words.send(key=7, value="x")
        with pytest.raises(EncodeError, match="key for topic 'words'"):
            await words.send(key="k\ud800", value="x")
        with pytest.raises(EncodeError, match="max_message_bytes=1048576"):
            await words.send(key="k", value="x" * (2 * 1024 * 1024))
        with pytest.raises(EncodeError, match="header 'n'"):
            await words.send(key="k", value="x", headers={"n": 1})
        with pytest.raises(EncodeError, match="header name b'n'"):
            await words.send(key="k", value="x", headers={b"n": b"1"})  # type: ignore[dict-item]
        for partition in ("1", True):
            with pytest.raises(ConfigurationError, match="partition for topic 'words'"):
                await words.send(key="k", value="x", partition=partition)  # type: ignore[arg-type]
        for name in ("bad topic!", "..", "t" * 300):
            with pytest.raises(ConfigurationError, match="invalid topic name"):
                await app.topic(name).send(value="x")
        await words.send(key="k", value="x" * 1000, headers={"n": "1", "m": b"2"}, partition=1)
        assert [m.value for m in await read_all(app, "words", 1)] == ["x" * 1000]


async def test_max_message_bytes_is_a_transport_setting_with_kafkas_default() -> None:
    assert MemoryTransport().max_message_bytes == MAX_MESSAGE_BYTES == 1024 * 1024
    transport = MemoryTransport(memory_url(), max_message_bytes=10)
    await transport.start()
    await transport.send("small", None, b"0123456789")
    with pytest.raises(EncodeError, match="max_message_bytes=10"):
        await transport.send("small", None, b"0123456789x")
    with pytest.raises(ConfigurationError, match="max_message_bytes"):
        MemoryTransport(memory_url(), max_message_bytes=0)


def test_kafka_transport_gives_max_message_bytes_to_its_producer() -> None:
    from rxstream.transport.kafka import KafkaTransport

    assert KafkaTransport("kafka://localhost:9092").producer_config["max_request_size"] == MAX_MESSAGE_BYTES
    transport = KafkaTransport("kafka://localhost:9092", max_message_bytes=2_000_000)
    assert transport.producer_config["max_request_size"] == transport.max_message_bytes == 2_000_000
