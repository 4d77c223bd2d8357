"""What the App offers its collaborators, timers on virtual time, the agent test context, stream errors."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from reactivex.testing import TestScheduler

import rxstream
from rxstream import App, Stream
from rxstream.errors import AgentError
from rxstream.types import AppServices


def memory_url() -> str:
    return f"memory://test-{uuid.uuid4().hex[:8]}"


async def settle(check: Callable[[], bool] = lambda: False, turns: int = 200) -> None:
    """Let the loop run ready callbacks (no clock time passes) until ``check()`` holds or ``turns`` ran."""
    for _ in range(turns):
        if check():
            return
        await asyncio.sleep(0)


async def test_an_app_offers_its_collaborators_the_app_services() -> None:
    app = App("services", broker=memory_url())
    services: AppServices = app
    assert services.existing_transport is None and not services.started
    async with app:
        assert services.started and services.existing_transport is app.transport
        task = services.spawn(asyncio.sleep(0), "a nap")
        await task
        assert task.done()
    assert not services.started


async def test_a_timer_waits_on_the_apps_scheduler() -> None:
    scheduler = TestScheduler()
    app = App("virtual-clock", broker=memory_url(), scheduler=scheduler)
    ticks: list[float] = []

    @app.timer(60.0)
    async def tick() -> None:
        ticks.append(scheduler.clock)

    async with app:
        await settle()
        scheduler.advance_by(59.0)
        await settle()
        assert ticks == []
        for minute in (1, 2, 3):
            scheduler.advance_to(60.0 * minute)
            await settle(lambda n=minute: len(ticks) == n)
        assert ticks == [60.0, 120.0, 180.0]


async def test_an_unhandled_stream_error_is_logged_not_printed(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[float] = []
    Stream.from_iterable([1, 0, 2]).map(lambda n: 1 / n).subscribe(seen.append)
    await settle(lambda: bool(caplog.records))
    assert seen == [1.0]
    [record] = [r for r in caplog.records if "unhandled stream error" in r.getMessage()]
    assert record.levelno == logging.ERROR and "ZeroDivisionError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert capsys.readouterr() == ("", "")


async def test_test_context_put_returns_once_a_value_is_acknowledged_without_a_result() -> None:
    app = App("unit-filter", broker=memory_url())

    @app.agent()
    async def odd(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream.filter(lambda n: n % 2):
            yield n

    async with odd.test_context(timeout=5) as agent:
        skipped = await agent.put(2)
        kept = await agent.put(3)
    assert skipped.offset not in agent.results
    assert agent.results == {kept.offset: 3}


async def test_test_context_runs_an_agent_that_yields_nothing() -> None:
    app = App("unit-plain", broker=memory_url())
    seen: list[int] = []

    @app.agent()
    async def collect(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async with collect.test_context(timeout=5) as agent:
        for n in range(3):
            await agent.put(n)
            assert seen == list(range(n + 1))


async def test_test_context_put_raises_what_the_agent_raised_and_times_out_with_the_offset() -> None:
    app = App("unit-fail", broker=memory_url())
    never = asyncio.Event()

    @app.agent()
    async def fails(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            if n < 0:
                raise ValueError(f"negative {n}")
            yield n

    @app.agent()
    async def hangs(stream: rxstream.Stream[int]) -> None:
        async for _ in stream:
            await never.wait()

    async with fails.test_context(timeout=5) as agent:
        with pytest.raises(ValueError, match="negative -1"):
            await agent.put(-1)
    async with hangs.test_context(timeout=0.05) as agent:
        with pytest.raises(TimeoutError, match="did not process offset 0 in time"):
            await agent.put(1)


async def test_test_context_put_fails_when_the_agent_returns_early() -> None:
    app = App("unit-early", broker=memory_url())

    @app.agent()
    async def quits(stream: rxstream.Stream[int]) -> None:
        return None

    async with quits.test_context(timeout=5) as agent:
        with pytest.raises(AgentError, match="stopped before processing offset 0"):
            await agent.put(1)


def test_agent_test_context_is_importable_from_agents_and_testing() -> None:
    from rxstream.agents import AgentTestContext as from_agents
    from rxstream.testing import AgentTestContext

    assert from_agents is AgentTestContext


async def test_a_stream_tells_where_its_consumer_is() -> None:
    app = App("positions", broker=memory_url())
    channel = app.channel()
    await channel.send(value="a")
    await channel.send(value="b")
    stream = channel.stream()
    derived = stream.map(str.upper)
    assert stream.consumer_position() is None and stream.current_refs() == []
    iterator = aiter(derived)
    assert await anext(iterator) == "A"
    position = stream.consumer_position()
    assert position is not None and position.index == 0
    assert [ref.offset for ref in map(rxstream.Message.of, stream.current_refs())] == [0]
    assert await anext(iterator) == "B"
    assert position.index == 1
    await derived.aclose()
