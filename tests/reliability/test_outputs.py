"""Outputs that can never be stored (over the message size limit, not encodable) go to the error policy of
the input that made them, at once: dead-lettered with the send error, skipped with a log, or a crash. The
other outputs are stored once, in order, and the commit passes the handled input."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rxstream
from rxstream import App, KeyValue
from rxstream.errors import EncodeError
from rxstream.transport import TopicPartition
from rxstream.transport.memory import MemoryTransport
from rxstream.transport.validation import MAX_MESSAGE_BYTES

BIG = "x" * (MAX_MESSAGE_BYTES + 1)


def _app(on_error: str) -> tuple[App, rxstream.Topic[Any, Any], rxstream.Topic[Any, Any]]:
    """An app on a fresh memory:// log with the given input policy, its source topic and its sink topic."""
    url = f"memory://outputs-{uuid.uuid4().hex[:8]}"
    app = App("outputs", broker=url, commit_interval=0.05, on_error=on_error)
    return app, app.topic("source", partitions=1), app.topic("sink", partitions=1)


def _rows(app: App, topic: str) -> list[tuple[Any, ...]]:
    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    found = transport.broker.topics.get(topic)
    return [row for part in found.partitions for row in part.log] if found is not None else []


async def _until(check: Any, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def _committed(app: App, topic: str) -> int:
    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    return transport.broker.group(app.id).committed.get(TopicPartition(topic, 0), 0)


@pytest.mark.parametrize("keyed", [False, True])
async def test_an_output_over_the_size_limit_dead_letters_its_input_the_rest_is_stored(keyed: bool) -> None:
    app, source, sink = _app("dead_letter")

    @app.agent(source, sink=[sink])
    async def process(stream: rxstream.Stream[str]) -> AsyncIterator[Any]:
        async for value in stream:
            out = BIG if value == "big" else value.upper()
            yield KeyValue(value, out) if keyed else out

    values = ["a", "b", "big", "c", "d"]
    async with app:
        for value in values:
            await source.send(key="k", value=value)
        await _until(lambda: _committed(app, source.name) == len(values), "the commit past every input")
    assert [row[5] for row in _rows(app, sink.name)] == ["A", "B", "C", "D"]
    dead = _rows(app, f"{source.name}-dead-letter")
    assert [(row[4], row[5]) for row in dead] == [("k", "big")]
    headers = dead[0][6]
    assert headers["rxstream-offset"] == "2" and headers["rxstream-topic"] == source.name
    assert "sink" in headers["rxstream-reason"] and "max_message_bytes" in headers["rxstream-error"]
    assert process.restarts == 0  # handled at once: no agent failure, no redelivery


async def test_an_unencodable_output_is_skipped_with_an_error_log(caplog: pytest.LogCaptureFixture) -> None:
    app, source, sink = _app("skip")

    @app.agent(source, sink=[sink])
    async def process(stream: rxstream.Stream[int]) -> AsyncIterator[Any]:
        async for value in stream:
            yield KeyValue(object(), value) if value == 2 else value  # the raw key codec cannot send it

    with caplog.at_level(logging.ERROR):
        async with app:
            for value in range(5):
                await source.send(value=value)
            await _until(lambda: _committed(app, source.name) == 5, "the commit past every input")
    assert [row[5] for row in _rows(app, sink.name)] == [0, 1, 3, 4]
    assert not _rows(app, f"{source.name}-dead-letter")
    logged = [r.getMessage() for r in caplog.records if "skipped as configured" in r.getMessage()]
    assert len(logged) == 1 and "offset 2" in logged[0] and repr(sink.name) in logged[0]


async def test_crash_stops_the_app_before_committing_the_input() -> None:
    app, source, sink = _app("crash")

    @app.agent(source, sink=[sink])
    async def process(stream: rxstream.Stream[str]) -> AsyncIterator[str]:
        async for value in stream:
            yield BIG if value == "big" else value

    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    await _until(lambda: app._started, "the app to start")
    for value in ("a", "big", "c"):
        await source.send(value=value)
    assert await asyncio.wait_for(runner, 10) == 1
    assert isinstance(app.crashed, EncodeError) and sink.name in str(app.crashed)
    assert _committed(app, source.name) <= 1


async def _kafka_records(bootstrap: str, topic: str) -> list[tuple[Any, Any, dict[str, bytes]]]:
    """Every (key, value, headers) of partition 0 of ``topic``, from the start, read with plain aiokafka."""
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
    from aiokafka import TopicPartition as KafkaTP

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 20)
    try:
        tp = KafkaTP(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[Any] = []
        async with asyncio.timeout(30):
            while len(records) < end:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await asyncio.wait_for(consumer.stop(), 20)
    return [(r.key, r.value, dict(r.headers)) for r in records]


async def _kafka_committed(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offset per partition of its (one) source topic."""
    from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 20)
    try:
        offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), 15)
    finally:
        await asyncio.wait_for(admin.close(), 20)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def test_on_kafka_an_output_over_the_message_limit_dead_letters_its_input(kafka_bootstrap: str) -> None:
    s = uuid.uuid4().hex[:8]

    def worker() -> tuple[App, rxstream.Topic[Any, Any]]:
        app = App(f"outputs-{s}", broker=f"kafka://{kafka_bootstrap}", commit_interval=0.2)
        source = app.topic(f"outputs-src-{s}", partitions=1)
        sink = app.topic(f"outputs-sink-{s}", partitions=1)

        @app.agent(source, sink=[sink])
        async def process(stream: rxstream.Stream[str]) -> AsyncIterator[str]:
            async for value in stream:  # over the broker's message.max.bytes (1 MiB by default)
                yield "x" * (MAX_MESSAGE_BYTES + 1000) if value == "big" else value.upper()

        return app, source

    sent = 0
    for values in (["a", "b", "big", "c", "d"], ["e", "f"]):  # two runs of the worker
        app, source = worker()
        async with app:
            for value in values:
                await source.send(key=f"k-{value}", value=value)
            sent += len(values)
            async with asyncio.timeout(60):
                while (await _kafka_committed(kafka_bootstrap, app.id)).get(0, 0) < sent:
                    await asyncio.sleep(0.2)
    outputs = await _kafka_records(kafka_bootstrap, f"outputs-sink-{s}")
    assert [json.loads(value) for _, value, _ in outputs] == ["A", "B", "C", "D", "E", "F"]
    dead = await _kafka_records(kafka_bootstrap, f"outputs-src-{s}-dead-letter")
    assert [(key, json.loads(value)) for key, value, _ in dead] == [(b"k-big", "big")]
    headers = dead[0][2]
    assert headers["rxstream-offset"] == b"2" and headers["rxstream-partition"] == b"0"
    assert f"outputs-sink-{s}".encode() in headers["rxstream-reason"]
    assert b"max_message_bytes" in headers["rxstream-error"]
    assert await _kafka_committed(kafka_bootstrap, f"outputs-{s}") == {0: 7}
