"""Reliability settings of App: broker availability, memory backlog, and credentials kept out of URLs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

import rxstream
from rxstream import App
from rxstream.errors import ConfigurationError
from rxstream.transport import TopicPartition, get_transport
from rxstream.transport.memory import MemoryTransport
from rxstream.urls import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("kafka://user:s3cret@host:9092", "kafka://user:***@host:9092"),
        ("kafka://tok3n@h1:1;h2:2", "kafka://***@h1:1;h2:2"),
        ("kafka://u:p@ss@host", "kafka://u:***@host"),
        ("kafka://host:9092", "kafka://host:9092"),
        ("memory://", "memory://"),
        ("user:pw@host", "user:***@host"),
    ],
)
def test_redact_masks_what_precedes_the_last_at(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_credentials_in_a_kafka_url_are_refused_without_echoing_the_password() -> None:
    with pytest.raises(ConfigurationError) as refused:
        App("creds", broker="kafka://alice:s3cret@127.0.0.1:9092")
    message = str(refused.value)
    assert "s3cret" not in message and "alice:***@" in message and "broker_credentials" in message
    with pytest.raises(ConfigurationError) as again:
        get_transport("kafka://alice:s3cret@127.0.0.1:9092")
    assert "s3cret" not in str(again.value)
    app = App("creds", broker="memory://")
    app.broker = "kafka://alice:s3cret@127.0.0.1:9092"  # as `rxstream worker --broker` sets it
    assert "s3cret" not in repr(app)
    with pytest.raises(ConfigurationError) as late:
        app.transport  # noqa: B018
    assert "s3cret" not in str(late.value)


def test_a_malformed_broker_url_is_shown_redacted() -> None:
    with pytest.raises(ConfigurationError) as refused:
        App("creds", broker="alice:s3cret@127.0.0.1")
    assert "s3cret" not in str(refused.value)


def test_broker_availability_timeout_takes_seconds_or_a_timedelta_and_sets_the_send_timeout() -> None:
    assert App("a", broker_availability_timeout=timedelta(minutes=2)).broker_availability_timeout == 120
    app = App("a", broker="kafka://127.0.0.1:9092", broker_availability_timeout=7.5)
    assert app.transport.producer_config["request_timeout_ms"] == 7500  # type: ignore[attr-defined]
    assert App("a").broker_availability_timeout == 60
    for bad in (0, -1, "soon"):
        with pytest.raises(ConfigurationError, match="broker_availability_timeout"):
            App("a", broker_availability_timeout=bad)  # type: ignore[arg-type]


def test_max_partition_backlog_reaches_the_memory_transport() -> None:
    transport = App("a", max_partition_backlog=500).transport
    assert isinstance(transport, MemoryTransport) and transport.max_partition_backlog == 500
    with pytest.raises(ConfigurationError, match="max_partition_backlog"):
        App("a", max_partition_backlog=0).transport  # noqa: B018


async def test_a_slow_consumer_makes_senders_wait_at_the_backlog_limit() -> None:
    app = App(
        "slow",
        broker=f"memory://slow-{uuid.uuid4().hex[:8]}",
        max_partition_backlog=100,
        commit_interval=0.05,
    )
    inbox = app.topic("inbox", partitions=1)
    release = asyncio.Event()
    seen: list[int] = []

    @app.agent(inbox)
    async def slow(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            await release.wait()
            seen.append(value)

    async with app:
        sender = asyncio.get_running_loop().create_task(inbox.send_many(range(1000)))
        await asyncio.sleep(0.2)
        transport = app.transport
        assert isinstance(transport, MemoryTransport)
        first, end = transport.watermarks(TopicPartition(inbox.name, 0))
        assert not sender.done() and end - first <= 100  # the sender waits: memory holds at most the backlog
        release.set()
        await asyncio.wait_for(sender, 30)  # commits make room and the sender goes on
        async with asyncio.timeout(30):
            while len(seen) < 1000:
                await asyncio.sleep(0.01)
    assert seen == list(range(1000))
