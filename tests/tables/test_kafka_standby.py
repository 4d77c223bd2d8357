"""Standby replicas on the real Kafka broker: a worker's standby follows the other worker's partitions, and
taking them over (Kafka's eager rebalance revokes and reassigns everything) replays nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from rxstream import App
from tests.tables.test_kafka_tables import PARTITIONS, WORDS
from tests.tables.test_kafka_tables import worker as word_count_worker
from tests.test_app import eventually


def worker(bootstrap: str, app_id: str) -> tuple[App, Any, Any, list[str]]:
    """One worker of a word-count app on Kafka keeping standby replicas."""
    return word_count_worker(bootstrap, app_id, table_standby_replicas=1)


async def test_a_survivor_takes_partitions_over_from_its_standby_replaying_nothing(
    kafka_bootstrap: str,
) -> None:
    app_id = f"standby-{uuid.uuid4().hex[:10]}"
    a, words, counts_a, _ = worker(kafka_bootstrap, app_id)
    b, _, counts_b, _ = worker(kafka_bootstrap, app_id)
    batch = [WORDS[i % len(WORDS)] for i in range(200)]
    async with asyncio.timeout(100):
        await a.start()
        try:
            await b.start()
            await eventually(
                lambda: (
                    len(counts_a.store.partitions()) == len(counts_b.store.partitions()) == PARTITIONS // 2
                ),
                timeout=40,
            )
            for word in batch:
                await words.send(key=word, value=word)
            await eventually(lambda: counts_a.as_dict() | counts_b.as_dict() == Counter(batch), timeout=30)
            await eventually(lambda: dict(counts_a.standby.store.items()) == counts_b.as_dict(), timeout=30)
            before = counts_a.recovered_records
            await b.stop()
            await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)), timeout=40)
            assert counts_a.recovered_records == before
            assert counts_a.as_dict() == Counter(batch)
        finally:
            await b.stop()
            await a.stop()
