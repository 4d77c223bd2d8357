"""Bounded consumption: stop_after on virtual time, to_list/run/to_dataframe with a timeout, wait_until."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from reactivex.testing import ReactiveTest, TestScheduler

from rxstream import App, Stream
from rxstream.errors import ConfigurationError
from rxstream.waiting import wait_until

on_next = ReactiveTest.on_next


def test_stop_after_ends_the_stream_on_its_schedulers_clock() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(10, "a"), on_next(40, "b"), on_next(60, "c"))
    got: list[tuple[float, Any]] = []
    ended: list[float] = []
    stream = Stream.from_observable(xs, scheduler=scheduler).stop_after(50)
    stream.subscribe(
        lambda v: got.append((scheduler.clock, v)), on_completed=lambda: ended.append(scheduler.clock)
    )
    scheduler.advance_to(1000)
    assert got == [(10, "a"), (40, "b")]
    assert ended == [50]


async def test_bounded_collects_return_what_arrived_and_stop_after_ends_an_async_for_quietly() -> None:
    app = App("bounded", broker=f"memory://test-{uuid.uuid4().hex[:8]}")
    topic = app.topic("numbers", partitions=1)
    await topic.send_many([1, 2, 3])
    async with app:
        began = time.monotonic()
        assert await app.stream(topic).to_list(timeout=0.3) == [1, 2, 3]
        assert 0.25 <= time.monotonic() - began < 5
        await topic.send_many([4, 5, 6])
        assert await app.stream(topic).run(count=2, timeout=5) == [4, 5]  # a reader of its own from here
        await topic.send_many([7])
        seen = [value async for value in app.stream(topic).stop_after(0.3)]
        assert seen == [7]
        assert await app.stream(topic).run(timeout=0.05) == []
    with pytest.raises(ConfigurationError, match="count"):
        await Stream.from_iterable([1]).run(count=0)


async def test_to_dataframe_with_a_timeout() -> None:
    pytest.importorskip("pandas")
    app = App("bounded", broker=f"memory://test-{uuid.uuid4().hex[:8]}")
    topic = app.topic("numbers", partitions=1)
    await topic.send_many([1, 2])
    async with app:
        frame = await app.stream(topic).to_dataframe(5, timeout=0.2)
    assert frame["value"].tolist() == [1, 2]


async def test_wait_until_returns_the_checks_value_or_names_it_in_a_timeout() -> None:
    box: list[int] = []
    asyncio.get_running_loop().call_later(0.05, box.append, 1)

    async def filled() -> list[int]:
        return box

    assert await wait_until(filled, timeout=5) == [1]

    def never() -> bool:
        return False

    with pytest.raises(TimeoutError, match=r"never did not hold within 0\.05 s"):
        await wait_until(never, timeout=0.05)
    with pytest.raises(ConfigurationError, match="timeout"):
        await wait_until(never, timeout=0)
