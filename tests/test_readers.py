"""Several readers of one topic: every reader gets every message; a tap only looks."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from rxstream import App
from rxstream.transport.base import TopicPartition


def memory_url() -> str:
    return f"memory://test-{uuid.uuid4().hex[:8]}"


async def test_a_stream_beside_an_agent_gets_every_message_and_the_agent_too() -> None:
    app = App("fan", broker=memory_url())
    topic = app.topic("orders", partitions=2)
    seen: list[Any] = []

    @app.agent(topic)
    async def process(stream: Any) -> None:
        async for value in stream:
            seen.append(value)

    async with app:
        reader = asyncio.create_task(app.stream(topic).take(200, within=5).first())
        await asyncio.sleep(0.05)
        await topic.send_many(range(200))
        async with asyncio.timeout(10):
            taken = await reader
            while len(seen) < 200:
                await asyncio.sleep(0.01)
        assert sorted(taken) == list(range(200))
        assert sorted(seen) == list(range(200))


async def test_an_offset_is_committed_only_once_every_reader_acknowledged_it() -> None:
    app = App("fan", broker=memory_url())
    topic = app.topic("orders", partitions=1)
    release = asyncio.Event()

    @app.agent(topic)
    async def process(stream: Any) -> None:
        async for _ in stream:
            pass

    async with app:
        taken: list[Any] = []
        stream = app.stream(topic)

        async def slow() -> None:
            async for value in stream:
                taken.append(value)
                await release.wait()

        reader = asyncio.create_task(slow())
        await asyncio.sleep(0.05)
        await topic.send_many(range(10))
        async with asyncio.timeout(5):
            while not taken:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert app.committed_offsets().get(TopicPartition("orders", 0), 0) == 0
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await stream.aclose()
        # the reader left: its acknowledgments no longer hold the agent's commits back
        async with asyncio.timeout(5):
            while app.committed_offsets().get(TopicPartition("orders", 0)) != 10:
                await asyncio.sleep(0.01)


async def test_a_tap_sees_what_arrives_and_acknowledges_nothing() -> None:
    app = App("tap", broker=memory_url())
    topic = app.topic("orders", partitions=2)

    @app.agent(topic)
    async def process(stream: Any) -> None:
        async for _ in stream.noack():
            pass  # acknowledges nothing: only a reader that acknowledges moves the commit

    async with app:
        watching = asyncio.create_task(app.tap(topic).take(50, within=5).first())
        await asyncio.sleep(0.1)
        await topic.send_many(range(50))
        async with asyncio.timeout(10):
            watched = await watching
        assert sorted(watched) == list(range(50))
        assert all(offset == 0 for offset in app.committed_offsets().values())


async def test_a_tap_from_start_reads_what_is_retained_and_leaves_no_group_behind() -> None:
    app = App("tap", broker=memory_url())
    topic = app.topic("orders", partitions=1)
    await topic.send_many(["a", "b", "c"])
    async with asyncio.timeout(10):
        assert await app.tap(topic, from_start=True).take(3, within=5).first() == ["a", "b", "c"]
    transport: Any = app.transport
    async with asyncio.timeout(5):  # the tap leaves its group as its consumption winds down
        while [group for group in transport.broker.groups if "-tap-" in group]:
            await asyncio.sleep(0.01)
    await app.stop()
