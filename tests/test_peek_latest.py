"""Peek never hangs on chains that send (through, group_by), reads the latest n, and shows as a table."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from rxstream import App, Event, Stream


def memory_url() -> str:
    return f"memory://test-{uuid.uuid4().hex[:8]}"


async def test_peeking_a_chain_through_a_topic_sends_nothing_and_ends_before_the_app_starts() -> None:
    app = App("peek", broker=memory_url())
    source = app.topic("source", partitions=1)
    middle = app.topic("middle", partitions=1)
    await source.send_many([{"user": "ada", "n": i} for i in range(2)])
    async with asyncio.timeout(5):
        through = await app.stream(source).through(middle).map(lambda v: v["n"]).peek(3)
        grouped = await app.stream(source).group_by(lambda v: v["user"], name="by-user").peek(3)
    assert through == [0, 1]
    assert [key for key, _ in grouped] == ["ada"]
    transport: Any = app.transport
    assert "middle" not in transport.broker.topics  # nothing was sent through it
    await app.stop()


async def test_peek_latest_reads_the_tail_of_a_topic_and_of_a_list() -> None:
    app = App("peek", broker=memory_url())
    topic = app.topic("numbers", partitions=1)
    await topic.send_many(list(range(20)))
    async with asyncio.timeout(5):
        assert await app.peek(topic, 3, latest=True) == [17, 18, 19]
        assert await app.stream(topic).map(lambda v: v * 10).peek(2, latest=True) == [180, 190]
        assert await Stream.from_iterable(range(10)).peek(2, latest=True) == [8, 9]
    await app.stop()


async def test_what_a_peek_read_shows_as_a_table() -> None:
    app = App("peek", broker=memory_url())
    topic = app.topic("numbers", partitions=1)
    await topic.send(key="k<1>", value=5)
    async with asyncio.timeout(5):
        peeked = await app.stream(topic).peek(1, events=True)
    assert isinstance(peeked[0], Event)
    html = peeked._repr_html_()
    assert "1 values" in html and "k&lt;1&gt;" in html and "offset" in html
    pytest.importorskip("pandas")
    assert peeked.to_dataframe()["value"].tolist() == [5]
    await app.stop()


async def test_peeking_a_chain_with_taps_calls_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    app = App("peek", broker=memory_url())
    source = app.topic("source", partitions=1)
    copies = app.topic("copies", partitions=1)
    await source.send_many(list(range(3)))
    called: list[Any] = []
    async with asyncio.timeout(5):
        peeked = await app.stream(source).tee(called.append).echo(copies).echo().map(str).peek(3)
    assert peeked == ["0", "1", "2"]
    assert called == [] and capsys.readouterr().out == ""
    transport: Any = app.transport
    assert "copies" not in transport.broker.topics
    await app.stop()
