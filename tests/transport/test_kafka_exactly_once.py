"""Exactly-once processing on the real Kafka broker: workers SIGKILLed mid-run, and transactions that fail,
leave no duplicate and no double count behind.

The worker processes run this module's app (``python -m rxstream.cli worker -A
tests.transport.test_kafka_exactly_once:app``, configured by ``RXSTREAM_TEST_*`` variables as
``kafka_worker_app`` is, with ``RXSTREAM_TEST_EOS=1``): with ``processing_guarantee="exactly_once"`` it counts
keys in a table and records every event it processes as ``{"p": partition, "o": offset}`` in a results topic.
``RXSTREAM_TEST_GUARANTEE=at_least_once`` runs the same workers without transactions, to see what the test
catches (one run: 652 duplicate outputs, 47 of 100 keys off their true count).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport
from tests.transport import test_kafka_app as kafka_app
from tests.transport.test_kafka_app import Workers, admin, producer, workers
from tests.transport.test_kafka_rebalance import _read_topic, _send_keys, _wait_joined

__all__ = ["admin", "producer", "workers"]  # fixtures shared with the other Kafka app tests

PARTITIONS = 4
KEYS = [f"key-{i}" for i in range(100)]


def _worker_app() -> App:
    """The app the worker processes run: RXSTREAM_TEST_* variables as in kafka_worker_app."""
    worker = App(
        os.environ["RXSTREAM_TEST_APP"],
        commit_interval=0.3,
        processing_guarantee=os.environ.get("RXSTREAM_TEST_GUARANTEE", "exactly_once"),
        session_timeout=6.0,
        group_instance_id=os.environ.get("RXSTREAM_TEST_INSTANCE"),
    )
    source = worker.topic(os.environ["RXSTREAM_TEST_SOURCE"], key_type=str, partitions=PARTITIONS)
    results = worker.topic(os.environ["RXSTREAM_TEST_RESULTS"], partitions=1)
    counts = worker.Table("counts", default=int, partitions=PARTITIONS)

    @worker.agent(source, sink=[results])
    async def count(stream: rxstream.Stream[Any]) -> AsyncIterator[dict[str, Any]]:
        async for event in stream.events():
            message = event.message
            assert message is not None
            counts[event.key] += 1
            await asyncio.sleep(0.001)
            yield {"p": message.partition, "o": message.offset}

    return worker


app = _worker_app() if os.environ.get("RXSTREAM_TEST_EOS") else None


@pytest.fixture
def eos_workers(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> Workers:
    """Worker processes running this module's exactly-once app."""
    monkeypatch.setattr(kafka_app, "WORKER_APP", "tests.transport.test_kafka_exactly_once:app")
    return workers


async def _read_committed(bootstrap: str, topic: str, partitions: int, quiet: float = 1.0) -> list[Any]:
    """Every committed record of ``topic`` (aiokafka records), read until ``quiet`` s bring nothing."""
    return await _read_topic(bootstrap, topic, partitions, quiet, isolation_level="read_committed")


async def test_two_workers_one_killed_three_times_leave_every_output_once_and_exact_counts(
    kafka_bootstrap: str, producer: KafkaTransport, admin: Any, eos_workers: Workers
) -> None:
    workers = eos_workers
    s = uuid.uuid4().hex[:10]
    names = {"app": f"eos-{s}", "source": f"eos-src-{s}", "results": f"eos-res-{s}"}
    await producer.create_topics([TopicSpec(names["source"], PARTITIONS), TopicSpec(names["results"], 1)])
    sent = [KEYS[i % len(KEYS)] for i in range(3000)]
    await _send_keys(producer, names["source"], sent[:1500])
    workers.start("a1", eos="1", instance="a", **names)
    workers.start("b1", eos="1", instance="b", **names)
    await _wait_joined(admin, names["app"], 2)
    began = time.monotonic()
    rng = random.Random(13)
    victim = "a1"
    for n in (2, 3, 4):  # SIGKILL mid-run, restart at once (a static member takes its partitions back)
        await asyncio.sleep(rng.uniform(0.8, 1.6))
        workers.procs[victim].send_signal(signal.SIGKILL)
        assert await workers.exit_code(victim, 10) == -signal.SIGKILL
        if n == 3:
            await _send_keys(producer, names["source"], sent[1500:])
        victim = f"a{n}"
        workers.start(victim, eos="1", instance="a", **names)
    rows: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while len(set(rows)) < len(sent):
        assert time.monotonic() < deadline, f"only {len(set(rows))} of {len(sent)} processed"
        await asyncio.sleep(0.5)
        results = await _read_committed(kafka_bootstrap, names["results"], 1, quiet=0.3)
        rows = [(r["p"], r["o"]) for r in (json.loads(x.value) for x in results)]
    took = time.monotonic() - began
    for label in (victim, "b1"):
        assert await workers.stop(label) == 0, workers.log(label)
    results = await _read_committed(kafka_bootstrap, names["results"], 1)
    seen = Counter((r["p"], r["o"]) for r in (json.loads(x.value) for x in results))
    changelog = await _read_committed(kafka_bootstrap, f"{names['app']}-counts-changelog", PARTITIONS)
    final: dict[str, int] = {}
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        final[json.loads(record.key)] = json.loads(record.value)
    truth = Counter(sent)
    wrong = {k: (final.get(k), n) for k, n in truth.items() if final.get(k) != n}
    duplicates = sum(n - 1 for n in seen.values())
    print(
        f"{len(sent)} events through 2 exactly-once workers, one SIGKILLed 3 times, in {took:.1f}s: "
        f"{duplicates} duplicate outputs, {len(wrong)} of {len(truth)} keys off their true count"
    )
    assert len(seen) == len(sent)
    assert duplicates == 0
    assert wrong == {}


async def test_a_failed_transaction_is_aborted_and_read_again_on_kafka(
    kafka_bootstrap: str, producer: KafkaTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = uuid.uuid4().hex[:10]
    source, results = f"eos-abort-src-{s}", f"eos-abort-res-{s}"
    await producer.create_topics([TopicSpec(source, PARTITIONS), TopicSpec(results, 1)])
    sent = [KEYS[i % len(KEYS)] for i in range(2000)]
    await _send_keys(producer, source, sent)
    calls = [0]
    send_batches = KafkaTransport.send_batches

    async def failing(self: KafkaTransport, client: Any, topic: str, records: Any) -> None:
        if client is not self._started_producer():  # a transaction's send
            calls[0] += 1
            if calls[0] in (3, 8):
                raise self._error(f"sending to topic {topic!r} (injected)")
        await send_batches(self, client, topic, records)

    monkeypatch.setattr(KafkaTransport, "send_batches", failing)
    worker = App(
        f"eos-abort-{s}",
        broker=f"kafka://{kafka_bootstrap}",
        commit_interval=0.1,
        processing_guarantee="exactly_once",
    )
    topic = worker.topic(source, key_type=str, partitions=PARTITIONS)
    counts = worker.Table("counts", default=int, partitions=PARTITIONS)
    processed: list[tuple[int, int]] = []

    @worker.agent(topic, sink=[worker.topic(results, partitions=1)])
    async def count(stream: rxstream.Stream[Any]) -> AsyncIterator[dict[str, Any]]:
        async for event in stream.events():
            message = event.message
            assert message is not None
            counts[event.key] += 1
            processed.append((message.partition, message.offset))
            await asyncio.sleep(0.0005)
            yield {"p": message.partition, "o": message.offset}

    async with worker:
        deadline = time.monotonic() + 60
        while len(set(processed)) < len(sent) or calls[0] < 8:
            assert time.monotonic() < deadline, f"{len(set(processed))} processed, {calls[0]} sends"
            await asyncio.sleep(0.1)
        await worker.commit()
    assert len(processed) > len(sent)  # the aborted transactions' events were processed again
    records = await _read_committed(kafka_bootstrap, results, 1)
    seen = Counter((r["p"], r["o"]) for r in (json.loads(x.value) for x in records))
    assert len(seen) == len(sent) and set(seen.values()) == {1}
    changelog = await _read_committed(kafka_bootstrap, f"{worker.id}-counts-changelog", PARTITIONS)
    final = {json.loads(r.key): json.loads(r.value) for r in sorted(changelog, key=lambda r: r.offset)}
    assert final == dict(Counter(sent))
