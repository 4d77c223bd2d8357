"""Rebalances on the real Kafka broker: revoked partitions are fenced, retained ones keep state and queue.

The worker processes run this module's app (``python -m rxstream.cli worker -A
tests.transport.test_kafka_rebalance:app``, configured by ``RXSTREAM_TEST_*`` variables as
``kafka_worker_app`` is, with ``RXSTREAM_TEST_REBALANCE=1``): it counts keys in a table, one slow event at a
time, and records every event it processes as ``{"w": worker, "p": partition, "o": offset}`` in a results
topic.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped,unused-ignore]
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError  # type: ignore[import-untyped,unused-ignore]

import rxstream
from rxstream import App
from rxstream.transport import TopicSpec
from rxstream.transport.kafka import KafkaTransport
from rxstream.transport.partitioner import partition_for
from tests.test_app import eventually
from tests.transport import test_kafka_app as kafka_app
from tests.transport.test_kafka_app import Workers, _wait_split, admin, producer, workers

__all__ = ["admin", "producer", "workers"]  # fixtures shared with the other Kafka app tests

PARTITIONS = 6
KEYS = [f"key-{i}" for i in range(200)]


def _worker_app() -> App:
    """The app the worker processes run: RXSTREAM_TEST_* variables as in kafka_worker_app."""
    label = os.environ.get("RXSTREAM_TEST_WORKER", str(os.getpid()))
    delay = float(os.environ.get("RXSTREAM_TEST_DELAY", "0.002"))
    worker = App(os.environ["RXSTREAM_TEST_APP"], commit_interval=0.5)
    source = worker.topic(os.environ["RXSTREAM_TEST_SOURCE"], key_type=str, partitions=PARTITIONS)
    results = worker.topic(os.environ["RXSTREAM_TEST_RESULTS"], partitions=1)
    counts = worker.Table("counts", default=int, partitions=PARTITIONS)

    @worker.agent(source, sink=[results])
    async def count(stream: rxstream.Stream[Any]) -> AsyncIterator[dict[str, Any]]:
        async for event in stream.events():
            message = event.message
            assert message is not None
            counts[event.key] += 1
            await asyncio.sleep(delay)
            yield {"w": label, "p": message.partition, "o": message.offset}

    return worker


app = _worker_app() if os.environ.get("RXSTREAM_TEST_REBALANCE") else None


@pytest.fixture
def counting_workers(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> Workers:
    """Worker processes running this module's counting app."""
    monkeypatch.setattr(kafka_app, "WORKER_APP", "tests.transport.test_kafka_rebalance:app")
    return workers


async def _wait_joined(admin: Any, group: str, members: int, timeout: float = 40.0) -> None:
    """Wait until the group is split over ``members`` members (its coordinator may not exist yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await _wait_split(admin, group, members, timeout=max(deadline - time.monotonic(), 0.1))
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _read_topic(
    bootstrap: str, topic: str, partitions: int, quiet: float = 1.0, isolation_level: str = "read_uncommitted"
) -> list[Any]:
    """Every record of ``topic`` (aiokafka ConsumerRecords), read until ``quiet`` seconds bring nothing."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation_level
    )
    await asyncio.wait_for(consumer.start(), 20)
    records: list[Any] = []
    try:
        tps = [KafkaTP(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
                last = time.monotonic()
    finally:
        await asyncio.wait_for(consumer.stop(), 20)
    return records


async def _send_keys(producer: KafkaTransport, topic: str, keys: list[str]) -> None:
    records = [(k.encode(), json.dumps(k).encode(), None, None) for k in keys]
    for start in range(0, len(records), 2000):
        await producer.send_many(topic, records[start : start + 2000])


def _lowered(changelog: list[Any]) -> int:
    """How many changelog records lowered a key's count (in offset order per partition)."""
    last: dict[bytes, int] = {}
    lowered = 0
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            continue
        value = json.loads(record.value)
        if value < last.get(record.key, 0):
            lowered += 1
        last[record.key] = value
    return lowered


def _final(changelog: list[Any]) -> dict[str, int]:
    """Each key's last count in the changelog."""
    final: dict[str, int] = {}
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        if record.value is not None:
            final[json.loads(record.key)] = json.loads(record.value)
    return final


async def test_three_workers_under_sigterm_restarts_never_process_a_revoked_partition(
    kafka_bootstrap: str, producer: KafkaTransport, admin: Any, counting_workers: Workers
) -> None:
    workers = counting_workers
    s = uuid.uuid4().hex[:10]
    names = {"app": f"fence-{s}", "source": f"fence-src-{s}", "results": f"fence-res-{s}"}
    await producer.create_topics([TopicSpec(names["source"], PARTITIONS), TopicSpec(names["results"], 1)])
    sent = [KEYS[i % len(KEYS)] for i in range(3000)]
    await _send_keys(producer, names["source"], sent)
    for label in ("a1", "b1", "c1"):
        workers.start(label, rebalance="1", **names)
    await _wait_joined(admin, names["app"], 3)
    began = time.monotonic()
    for old, new in (("a1", "a2"), ("b1", "b2"), ("c1", "c2")):  # a restart every second, under load
        await asyncio.sleep(1.0)
        assert await workers.stop(old) == 0, workers.log(old)
        workers.start(new, rebalance="1", **names)
    rows: list[tuple[str, int, int]] = []
    deadline = time.monotonic() + 45
    while len({(p, o) for _, p, o in rows}) < len(sent):
        done = len({(p, o) for _, p, o in rows})
        assert time.monotonic() < deadline, f"only {done} of {len(sent)} processed"
        await asyncio.sleep(0.5)
        results = await _read_topic(kafka_bootstrap, names["results"], 1, quiet=0.3)
        rows = [(r["w"], r["p"], r["o"]) for r in (json.loads(x.value) for x in results)]
    took = time.monotonic() - began
    for label in ("a2", "b2", "c2"):
        assert await workers.stop(label) == 0, workers.log(label)
    # a worker processing a partition again behind a later owner's progress processed it after its revocation
    current: dict[int, str] = {}
    owners: dict[int, set[str]] = {}
    furthest: dict[int, int] = {}
    late = 0
    for worker, partition, offset in rows:
        before = owners.setdefault(partition, set())
        if current.get(partition, worker) != worker and worker in before and offset <= furthest[partition]:
            late += 1
            continue
        current[partition] = worker
        before.add(worker)
        furthest[partition] = max(furthest.get(partition, -1), offset)
    seen = Counter((p, o) for _, p, o in rows)
    duplicates = sum(n - 1 for n in seen.values())
    changelog = await _read_topic(kafka_bootstrap, f"{names['app']}-counts-changelog", PARTITIONS)
    final = _final(changelog)
    truth = Counter(sent)
    below = [k for k, n in truth.items() if final.get(k, 0) < n]
    print(
        f"{len(sent)} events through 3 workers and 3 SIGTERM restarts in {took:.1f}s: {late} processed "
        f"after their partition was revoked, {duplicates} duplicate outputs, {_lowered(changelog)} changelog "
        f"writes that lowered a count, {len(below)} of {len(truth)} keys below the truth"
    )
    assert late == 0
    assert max(seen.values()) <= 2
    assert _lowered(changelog) == 0
    assert below == []


async def test_a_worker_joining_moves_some_partitions_and_the_others_keep_state_and_queue(
    kafka_bootstrap: str, producer: KafkaTransport
) -> None:
    s = uuid.uuid4().hex[:10]
    broker = f"kafka://{kafka_bootstrap}"
    source = f"stay-src-{s}"
    await producer.create_topics([TopicSpec(source, PARTITIONS)])

    def worker() -> tuple[App, Any, list[tuple[int, int]]]:
        one = App(f"stay-{s}", broker=broker, commit_interval=0.2)
        topic = one.topic(source, key_type=str, partitions=PARTITIONS)
        counts = one.Table("counts", default=int, partitions=PARTITIONS)
        seen: list[tuple[int, int]] = []

        @one.agent(topic)
        async def count(stream: rxstream.Stream[Any]) -> None:
            async for event in stream.events():
                counts[event.key] += 1
                assert event.message is not None
                seen.append((event.message.partition, event.message.offset))
                await asyncio.sleep(0.0005)

        return one, counts, seen

    a, counts_a, seen_a = worker()
    b, counts_b, seen_b = worker()
    first = [KEYS[i % len(KEYS)] for i in range(600)]
    backlog = [KEYS[i % len(KEYS)] for i in range(3000)]
    await a.start()
    try:
        await _send_keys(producer, source, first)
        await eventually(lambda: len(seen_a) == len(first), timeout=30)
        replayed_a = counts_a.recovered_records
        await _send_keys(producer, source, backlog)
        await eventually(lambda: len(seen_a) >= len(first) + 100, timeout=30)
        await b.start()
        kept = set(counts_a.store.partitions())
        moved = set(counts_b.store.partitions())
        assert kept and moved and not kept & moved and len(kept | moved) == PARTITIONS
        assert counts_a.recovered_records == replayed_a  # nothing replayed for what stayed
        assert 0 < counts_b.recovered_records
        truth = Counter(first + backlog)

        def key_partition(key: str) -> int:
            return partition_for(key.encode(), PARTITIONS)

        def done() -> bool:
            return all(
                (counts_a if key_partition(k) in kept else counts_b).get(k, 0) >= n for k, n in truth.items()
            )

        await eventually(done, timeout=40)
        kept_seen = [(p, o) for p, o in seen_a if p in kept]
        expected = sum(n for k, n in truth.items() if key_partition(k) in kept)
        print(
            f"a kept partitions {sorted(kept)} and replayed nothing for them; b recovered "
            f"{counts_b.recovered_records} changelog records of {sorted(moved)}; a processed the kept "
            f"partitions' {expected} events {len(kept_seen)} times"
        )
        assert len(kept_seen) == len(set(kept_seen)) == expected  # queued events kept, nothing fetched twice
        assert len(seen_b) > 0
    finally:
        await b.stop()
        await a.stop()
