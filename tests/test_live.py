"""The live view: a stream or a table watched for a bounded time, as text outside Jupyter."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from rxstream import App, Stream
from rxstream.errors import ConfigurationError
from rxstream.live import watch


async def test_watching_a_stream_counts_per_key_and_ends_when_the_stream_does() -> None:
    async def arriving() -> AsyncIterator[int]:
        for i in range(6):
            yield i
            await asyncio.sleep(0.01)

    out = io.StringIO()
    began = time.monotonic()
    view = await watch(Stream.from_async_iterable(arriving()), 5, every=0.02, latest=3, out=out)
    assert time.monotonic() - began < 4  # the stream ended first
    assert view.total == 6 and [value for _, value in view.latest] == [3, 4, 5]
    assert "6 values" in out.getvalue() and out.getvalue().count("---") >= 1
    assert "per key" in view._repr_html_()


async def test_watching_a_topic_through_a_tap_and_a_table_for_a_while() -> None:
    app = App("live", broker=f"memory://test-{uuid.uuid4().hex[:8]}", topic_partitions=1)
    topic = app.topic("clicks")
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream: Stream[str]) -> None:
        async for page in stream:
            counts[page] += 1

    async with app:
        watching = asyncio.create_task(watch(app.tap(topic), 0.5, every=0.1, out=io.StringIO()))
        await asyncio.sleep(0.1)
        for page in ["home", "cart", "home"]:
            await topic.send(key=page, value=page)
        view = await watching
        assert view.counts == {"home": 2, "cart": 1}
        table_view = await watch(counts, 0.2, every=0.1, out=io.StringIO())
        assert dict(table_view.latest) == {"home": 2, "cart": 1}
    with pytest.raises(ConfigurationError, match="Stream or a table"):
        await watch(42, 1)
