"""A module-level app used in one event loop, stopped, then used again in another (as pytest-asyncio does)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import rxstream
from rxstream import App

app = App("loops", broker=f"memory://loops-{uuid.uuid4().hex[:8]}")
numbers = app.topic("numbers", value_type=int)


@app.agent(numbers)
async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
    async for n in stream:
        yield n * 2


async def use_once(n: int) -> int:
    await app.start()
    try:
        return int(await double.ask(n, timeout=5))
    finally:
        await app.stop()


def test_two_consecutive_event_loops() -> None:
    assert asyncio.run(use_once(1)) == 2
    assert asyncio.run(use_once(2)) == 4


async def test_first_of_a_pair_with_its_own_loop() -> None:
    assert await use_once(3) == 6


async def test_second_of_a_pair_with_its_own_loop() -> None:
    assert await use_once(4) == 8
