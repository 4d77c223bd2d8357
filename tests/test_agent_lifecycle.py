"""Agents in a notebook: a re-run cell replaces its agent, an agent declared while the app runs starts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from rxstream import App
from rxstream.display import app_html
from rxstream.errors import ConfigurationError
from rxstream.waiting import wait_until


def memory_url() -> str:
    return f"memory://test-{uuid.uuid4().hex[:8]}"


def define_counter(app: App, topic: Any, into: list[Any]) -> Any:
    """The same agent function, defined anew on each call (as a re-run notebook cell does)."""

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for value in stream:
            into.append(value)

    return count


async def test_defining_an_agent_again_replaces_it_and_only_the_new_one_gets_messages() -> None:
    app = App("cells", broker=memory_url())
    topic = app.topic("numbers", partitions=1)
    first: list[Any] = []
    second: list[Any] = []
    old = define_counter(app, topic, first)
    async with app:
        await topic.send(value=1)
        await wait_until(lambda: first == [1], timeout=5)
        new = define_counter(app, topic, second)
        assert app.agents[new.name] is new and not old.running
        await wait_until(lambda: new.running, timeout=5)
        await topic.send(value=2)
        await wait_until(lambda: second == [2], timeout=5)
        await asyncio.sleep(0.05)
        assert first == [1]


async def test_another_function_under_a_taken_name_is_refused() -> None:
    app = App("cells", broker=memory_url())
    define_counter(app, app.topic("numbers"), [])

    async def other(stream: Any) -> None:
        async for _ in stream:
            pass

    with pytest.raises(ConfigurationError, match="already has an agent named"):
        app.agent(app.topic("numbers"), name=next(iter(app.agents)))(other)


async def test_an_agent_declared_while_the_app_runs_starts_and_shows_without_main() -> None:
    app = App("cells", broker=memory_url())
    topic = app.topic("numbers", partitions=1)
    seen: list[Any] = []
    async with app:
        agent = define_counter(app, topic, seen)
        await wait_until(lambda: agent.running, timeout=5)
        await topic.send(value=7)
        await wait_until(lambda: seen == [7], timeout=5)
    agent.name = "__main__.count"
    assert "__main__" not in app_html(app)


async def test_a_failing_agent_logs_its_error_once_with_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("cells", broker=memory_url())
    topic = app.topic("numbers", partitions=1, on_error="skip", max_redeliveries=3)
    calls: list[Any] = []

    @app.agent(topic)
    async def fails(stream: Any) -> None:
        async for value in stream:
            calls.append(value)
            raise ValueError("bad value")

    async with app:
        await topic.send(value=1)
        await wait_until(lambda: len(calls) >= 3, timeout=10)
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "raised ValueError" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "last error ValueError" in app._repr_html_()
