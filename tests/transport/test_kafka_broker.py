"""Smoke test of the ``kafka_bootstrap`` fixture: aiokafka directly against the real broker.

This tests the broker the session starts (tests/kafka_broker.py), not rxstream's Kafka transport.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]

pytestmark = pytest.mark.kafka

PARTITIONS = 4
MESSAGES = 100
FIRST_BATCH = 60  # consumed and committed by the first consumer; the rest by the second


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await asyncio.wait_for(admin.start(), 15)
    try:
        await asyncio.wait_for(
            admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)]), 15
        )
        # wait (bounded) until the topic's metadata shows every partition
        for _ in range(100):
            described = await asyncio.wait_for(admin.describe_topics([topic]), 10)
            if described and len(described[0].get("partitions", [])) == partitions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic} not visible with {partitions} partitions")
    finally:
        await admin.close()


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )


async def _take(consumer: AIOKafkaConsumer, count: int, timeout: float) -> list[Any]:
    """Exactly `count` records (fewer raise), fetched with getmany in a bounded loop."""
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(records) < count:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"got {len(records)} of {count} records within {timeout}s")
        batches = await consumer.getmany(timeout_ms=500, max_records=count - len(records))
        for recs in batches.values():
            records.extend(recs)
    return records


async def test_broker_produce_consume_commit_resume(kafka_bootstrap: str, kafka_topic_name: str) -> None:
    topic = kafka_topic_name
    group = f"g-{uuid.uuid4().hex[:12]}"
    await _create_topic(kafka_bootstrap, topic, PARTITIONS)

    # produce 100 keyed messages with headers
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", request_timeout_ms=10_000)
    await asyncio.wait_for(producer.start(), 15)
    try:
        sent = []
        for i in range(MESSAGES):
            fut = await producer.send(
                topic,
                key=f"key-{i % 10}".encode(),
                value=f"value-{i}".encode(),
                headers=[("seq", str(i).encode()), ("origin", b"smoke")],
            )
            sent.append(fut)
        metas = await asyncio.wait_for(asyncio.gather(*sent), 30)
    finally:
        await producer.stop()
    used_partitions = {m.partition for m in metas}
    assert used_partitions <= set(range(PARTITIONS))
    assert len(used_partitions) > 1, "10 distinct keys should spread over several partitions"
    # the same key always lands on the same partition
    key_partition: dict[int, int] = {}
    for i, m in enumerate(metas):
        assert key_partition.setdefault(i % 10, m.partition) == m.partition

    # consume a first part with a consumer group and commit what was consumed
    c1 = _consumer(kafka_bootstrap, topic, group)
    await asyncio.wait_for(c1.start(), 30)
    try:
        first = await asyncio.wait_for(_take(c1, FIRST_BATCH, 45), 50)
        assert {tp.partition for tp in c1.assignment()} == set(range(PARTITIONS))
        committed: dict[TopicPartition, int] = {}
        for r in first:
            tp = TopicPartition(r.topic, r.partition)
            committed[tp] = max(committed.get(tp, 0), r.offset + 1)
        await asyncio.wait_for(c1.commit(committed), 15)
        for tp, offset in committed.items():
            assert await asyncio.wait_for(c1.committed(tp), 10) == offset
    finally:
        await c1.stop()

    for r in first:
        headers = dict(r.headers)
        assert headers["origin"] == b"smoke"
        i = int(headers["seq"])
        assert r.key == f"key-{i % 10}".encode()
        assert r.value == f"value-{i}".encode()
        assert r.partition == key_partition[i % 10]

    # a new consumer in the same group resumes from the committed offsets: it gets exactly the rest
    c2 = _consumer(kafka_bootstrap, topic, group)
    await asyncio.wait_for(c2.start(), 30)
    try:
        rest = await asyncio.wait_for(_take(c2, MESSAGES - FIRST_BATCH, 45), 50)
        # nothing more arrives (no redelivery of committed records)
        extra = await c2.getmany(timeout_ms=1_000)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        for tp, offset in committed.items():
            assert all(r.offset >= offset for r in rest if r.partition == tp.partition)
    finally:
        await c2.stop()

    seqs = sorted(int(dict(r.headers)["seq"]) for r in [*first, *rest])
    assert seqs == list(range(MESSAGES))
