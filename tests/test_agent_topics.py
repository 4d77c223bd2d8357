"""Agents' own topic names are valid for Kafka; topic names are checked when declared; timedelta durations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

import rxstream
from rxstream import App
from rxstream.agents import own_topic_name
from rxstream.errors import ConfigurationError
from rxstream.transport.base import TopicSpec
from rxstream.transport.validation import check_topic_name


def new_app() -> App:
    return App("names", broker=f"memory://names-{uuid.uuid4().hex[:8]}")


def test_a_nested_agent_gets_a_readable_valid_topic_name() -> None:
    app = new_app()

    @app.agent()
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    name = double.channel.name  # type: ignore[attr-defined]
    assert name == f"names-{__name__}.test_a_nested_agent_gets_a_readable_valid_topic_name.locals.double"
    check_topic_name(name)


def test_own_topic_names_are_valid_and_stable() -> None:
    assert own_topic_name("my app", "m.f<x>") == "my_app-m.f_x_"
    long = own_topic_name("app", "a" * 400)
    assert len(long) == 249 and long.startswith("app-aaa") and long == own_topic_name("app", "a" * 400)
    assert long != own_topic_name("app", "a" * 401)
    for name in (long, own_topic_name("", "."), own_topic_name("x", "<lambda>")):
        check_topic_name(name)


@pytest.mark.parametrize("name", ["bad topic!", "..", ".", "x" * 250, ""])
def test_a_topic_name_kafka_refuses_is_refused_when_declared(name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"invalid topic name.*a-z A-Z 0-9"):
        new_app().topic(name)


async def test_ask_and_test_context_take_a_timedelta() -> None:
    app = new_app()

    @app.agent()
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    async with double.test_context(timeout=timedelta(seconds=5)) as context:
        assert context.timeout == 5.0
    async with app:
        assert await double.ask(4, timeout=timedelta(seconds=5)) == 8
    agent = rxstream.Agent(
        double.fun,
        app=app,
        name="other",
        shutdown_timeout=timedelta(seconds=2),
        restart_window=timedelta(minutes=1),
    )
    assert (agent.shutdown_timeout, agent.restart_window) == (2.0, 60.0)


async def test_start_creates_the_declared_topics_once_and_their_first_sends_do_not_ask_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = new_app()
    orders = app.topic("orders", partitions=2)
    created: list[list[str]] = []
    async with app:
        transport = await app.producer()
        create_topics = transport.create_topics

        async def counted(specs: list[TopicSpec]) -> None:
            created.append([spec.name for spec in specs])
            await create_topics(specs)

        monkeypatch.setattr(transport, "create_topics", counted)
        await orders.send(value=1)
        orders.buffer_nowait(2)
        await orders.batching.flush()
        late = app.topic("late", partitions=1)  # declared after start: created by its first send
        await late.send(value=3)
        await late.send(value=4)
        ends = await transport.end_offsets("orders")
    assert created == [["late", "late-dead-letter"]]
    assert sum(ends.values()) == 2
