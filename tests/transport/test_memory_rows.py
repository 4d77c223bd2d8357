"""memory:// hands fetches over as columns: an agent's pipeline builds rows only for what reads them, and
every message still arrives with its own metadata, however its fetch mixes keys, headers and send times."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rxstream import App, Stream, current_event
from rxstream._core.rows import Columns


def new_app(name: str) -> App:
    return App(name, broker=f"memory://{name}-{uuid.uuid4().hex[:8]}", commit_interval=0.05)


async def test_a_filtering_agent_with_a_sink_builds_a_few_rows_per_fetch_not_one_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []
    row = Columns.row

    def counted(columns: Columns, j: int) -> Any:
        built.append(j)
        return row(columns, j)

    monkeypatch.setattr(Columns, "row", counted)
    app = new_app("rows")
    source = app.topic("source", partitions=2)
    sink = app.topic("sink", partitions=2)

    @app.agent(source, sink=[sink])
    async def thirds(stream: Stream[int]) -> AsyncIterator[int]:
        async for value in stream.map(lambda x: x * 2).filter(lambda x: x % 3 == 0):
            yield value

    n = 20_000
    await source.send_many(range(n))
    async with app:
        async with asyncio.timeout(10):
            while sum((await app.transport.end_offsets("sink")).values()) < len(range(0, 2 * n, 6)):
                await asyncio.sleep(0.01)
        await app.commit()
        assert sum(app.committed_offsets().values()) == n  # every message acknowledged
    assert len(built) < n // 250, f"{len(built)} rows read for {n} messages"  # ~10 fetches of 2,048


async def test_each_message_of_a_mixed_fetch_arrives_with_its_own_key_headers_offset_and_time() -> None:
    app = new_app("mixed")
    source = app.topic("source", partitions=1)
    seen: list[tuple[Any, ...]] = []
    pairs: list[tuple[Any, Any]] = []

    @app.agent(source)
    async def record(stream: Stream[Any]) -> None:
        async for value in stream:
            event = current_event()
            seen.append((event.message.offset, event.key, value, dict(event.headers or {}), event.timestamp))

    @app.agent(source)
    async def keyed(stream: Stream[Any]) -> None:
        async for key, value in stream.items():
            pairs.append((key, value))

    await source.send_many(["a", "b"])  # keyless, before the log has a key or headers column
    await source.send(key="k", value="c", headers={"h": "1"})
    await source.send_many(["d"])
    await source.send(key="m", value="e")
    async with app:
        async with asyncio.timeout(5):
            while len(seen) < 5 or len(pairs) < 5:
                await asyncio.sleep(0.005)
    assert [entry[:4] for entry in seen] == [
        (0, None, "a", {}),
        (1, None, "b", {}),
        (2, "k", "c", {"h": "1"}),
        (3, None, "d", {}),
        (4, "m", "e", {}),
    ]
    assert pairs == [(None, "a"), (None, "b"), ("k", "c"), (None, "d"), ("m", "e")]
    stamps = [entry[4] for entry in seen]
    assert stamps[0] == stamps[1] and stamps == sorted(stamps) and len(set(stamps)) >= 3
