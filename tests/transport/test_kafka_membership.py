"""Group timings and static membership: App settings reach the Kafka consumer, and a static member
restarted within the session timeout takes its partitions back without the other member rebalancing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.errors import ConfigurationError
from rxstream.transport.kafka import KafkaTransport
from rxstream.transport.kafka_settings import CONSUMER_DEFAULTS, group_timings
from tests.test_app import eventually

PARTITIONS = 4


def test_group_timings_become_the_kafka_consumers_settings() -> None:
    app = App(
        "timed",
        broker="kafka://127.0.0.1:9092",
        session_timeout=timedelta(seconds=6),
        heartbeat_interval=0.5,
        max_poll_interval=60,
        group_instance_id="worker-1",
    )
    transport = app.transport
    assert isinstance(transport, KafkaTransport)
    assert transport.consumer_config["session_timeout_ms"] == 6000
    assert transport.consumer_config["heartbeat_interval_ms"] == 500
    assert transport.consumer_config["max_poll_interval_ms"] == 60_000
    assert transport.group_instance_ids == {"timed": "worker-1"}


def test_default_group_timings_are_the_transports_defaults() -> None:
    app = App("plain", broker="kafka://127.0.0.1:9092")
    transport = app.transport
    assert isinstance(transport, KafkaTransport)
    for name, value in CONSUMER_DEFAULTS.items():
        assert transport.consumer_config[name] == value
    assert transport.group_instance_ids == {}


def test_group_timings_are_ignored_on_memory() -> None:
    app = App("mem", session_timeout=3, group_instance_id="w1")
    assert app.transport.__class__.__name__ == "MemoryTransport"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"session_timeout": 0}, "session_timeout must be a positive number"),
        ({"heartbeat_interval": "1"}, "heartbeat_interval must be a positive number"),
        ({"max_poll_interval": -1}, "max_poll_interval must be a positive number"),
        ({"session_timeout": 2, "heartbeat_interval": 2}, "heartbeat_interval .* must be shorter"),
        ({"group_instance_id": ""}, "group_instance_id must be a non-empty string"),
        ({"table_standby_replicas": -1}, "table_standby_replicas must be an integer >= 0"),
        ({"table_standby_replicas": True}, "table_standby_replicas must be an integer >= 0"),
    ],
)
def test_bad_group_settings_are_refused_naming_the_setting(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        App("bad", **options)


def test_group_timings_refuse_unknown_names() -> None:
    with pytest.raises(ConfigurationError, match="unknown group timing 'rebalance'"):
        group_timings("x", {"rebalance": 1.0})


def test_group_instance_id_is_not_a_consumer_config_setting() -> None:
    with pytest.raises(ConfigurationError, match="consumer_config may not set group_instance_id"):
        KafkaTransport("kafka://h:1", consumer_config={"group_instance_id": "w"})


def _worker(bootstrap: str, app_id: str, instance: str) -> App:
    app = App(
        app_id,
        broker=f"kafka://{bootstrap}",
        commit_interval=0.2,
        session_timeout=30,
        heartbeat_interval=1,
        group_instance_id=instance,
    )
    numbers = app.topic(f"{app_id}-numbers", partitions=PARTITIONS)

    @app.agent(numbers)
    async def read(stream: rxstream.Stream[Any]) -> None:
        async for _ in stream:
            pass

    return app


def _owned(app: App) -> frozenset[int]:
    consumer = app.conductors()[0].consumer
    return frozenset(tp.partition for tp in consumer.assignment()) if consumer is not None else frozenset()


async def test_a_restarted_static_member_takes_its_partitions_back_without_a_rebalance(
    kafka_bootstrap: str,
) -> None:
    app_id = f"static-{uuid.uuid4().hex[:10]}"
    a = _worker(kafka_bootstrap, app_id, "a")
    b = _worker(kafka_bootstrap, app_id, "b")
    async with asyncio.timeout(100):
        await a.start()
        try:
            await b.start()
            await eventually(lambda: len(_owned(a)) == len(_owned(b)) == PARTITIONS // 2, timeout=40)
            before = _owned(b)
            rebalances = a.monitor.rebalance_count
            await b.stop()
            b = _worker(kafka_bootstrap, app_id, "b")
            await b.start()  # within session_timeout: the broker hands member "b" its assignment back
            assert _owned(b) == before
            await asyncio.sleep(3)  # a rebalance would reach "a" at its next heartbeats
            assert a.monitor.rebalance_count == rebalances
            assert _owned(a) | _owned(b) == frozenset(range(PARTITIONS))
        finally:
            await b.stop()
            await a.stop()
