"""Keys flow to sinks: a yielded value keeps its event's key unless it is yielded as a KeyValue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import rxstream
from rxstream import App, KeyValue, current_event
from tests.test_app import eventually, memory_url, read_all


def new_app() -> App:
    return App("keys", broker=f"memory://keys-{uuid.uuid4().hex[:8]}")


async def through_sink(yielder: Any, n: int) -> list[tuple[Any, Any]]:
    """Run ``yielder`` as an agent with a sink topic on ``n`` values (keyless when odd): (key, value) sunk."""
    app = new_app()
    source = app.topic("source", key_type=str, value_type=int, partitions=3)
    sink = app.topic("sink", key_type=str, value_type=int, partitions=3)
    app.agent(source, sink=[sink])(yielder)
    got: list[tuple[Any, Any]] = []

    @app.agent(sink)
    async def record(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            got.append((current_event().key, value))

    async with app:
        for i in range(n):
            await source.send(key=None if i % 2 else f"key{i}", value=i)
        async with asyncio.timeout(5):
            while len(got) < n:
                await asyncio.sleep(0.005)
    return sorted(got, key=lambda pair: pair[1])


async def test_a_yielded_value_keeps_the_key_of_its_event() -> None:
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    got = await through_sink(double, 6)
    assert got == [("key0", 0), (None, 2), ("key2", 4), (None, 6), ("key4", 8), (None, 10)]


async def test_a_key_value_sets_another_key() -> None:
    async def rekey(stream: rxstream.Stream[int]) -> AsyncIterator[Any]:
        async for n in stream:
            yield KeyValue(f"new{n}", n) if n < 4 else KeyValue(None, n) if n == 4 else n

    got = await through_sink(rekey, 6)
    assert got == [("new0", 0), ("new1", 1), ("new2", 2), ("new3", 3), (None, 4), (None, 5)]


async def test_keys_reach_channel_and_agent_sinks_and_a_callable_gets_the_value() -> None:
    app = new_app()
    source = app.topic("source", key_type=str, value_type=int)
    channel = app.channel()
    seen: list[tuple[Any, Any]] = []
    called: list[Any] = []

    @app.agent(channel)
    async def on_channel(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            seen.append((current_event().key, value))

    @app.agent(source, sink=[channel, called.append])
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[Any]:
        async for n in stream:
            yield n * 2 if n else KeyValue("zero", 0)

    async with app:
        await source.send(key="a", value=0)
        await source.send(key="b", value=1)
        async with asyncio.timeout(5):
            while len(seen) < 2:
                await asyncio.sleep(0.005)
    assert sorted(seen) == [("b", 2), ("zero", 0)]
    assert sorted(called) == [0, 2]


async def test_an_inherited_key_the_sink_cannot_encode_is_refused_on_memory_as_on_kafka() -> None:
    app = App("keys-refused", broker=memory_url())
    source = app.topic("numbers", partitions=1, key_type=int, key_serializer="json", on_error="skip")
    sink = app.topic("copies", partitions=1)  # raw keys: bytes or str only, as on Kafka
    seen: list[int] = []

    @app.agent(source, sink=[sink])
    async def copy(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            seen.append(n)
            yield n

    async with app:
        await source.send(key=7, value=1)
        await eventually(lambda: len(seen) >= 1 and copy.processed_failures >= 1)
        assert await read_all(app, "copies") == []
