"""Tables on the real Kafka broker: a stopped worker's partitions and table state move to the survivor."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import rxstream
from rxstream import App
from tests.test_app import eventually

PARTITIONS = 4
WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi"]


def worker(bootstrap: str, app_id: str, **settings: Any) -> tuple[App, Any, Any, list[str]]:
    """One worker of a word-count app on Kafka (the words topic is keyed by the word)."""
    app = App(app_id, broker=f"kafka://{bootstrap}", commit_interval=0.2, **settings)
    words = app.topic(f"{app_id}-words", partitions=PARTITIONS)
    counts = app.Table("counts", default=int, partitions=PARTITIONS)
    seen: list[str] = []

    @app.agent(words)
    async def count(stream: rxstream.Stream[str]) -> None:
        async for word in stream:
            counts[word] += 1
            seen.append(word)

    return app, words, counts, seen


async def test_a_stopped_workers_partitions_and_table_state_move_to_the_survivor(
    kafka_bootstrap: str,
) -> None:
    app_id = f"wc-{uuid.uuid4().hex[:10]}"
    a, words, counts_a, seen_a = worker(kafka_bootstrap, app_id)
    b, _, counts_b, seen_b = worker(kafka_bootstrap, app_id)
    first = [WORDS[i % len(WORDS)] for i in range(200)]
    second = [WORDS[(i * 3) % len(WORDS)] for i in range(80)]
    async with asyncio.timeout(110):
        await a.start()
        try:
            await b.start()
            await eventually(
                lambda: (
                    len(counts_a.store.partitions()) == len(counts_b.store.partitions()) == PARTITIONS // 2
                ),
                timeout=60,
            )
            for word in first:
                await words.send(key=word, value=word)
            # a rebalance during processing redelivers uncommitted events: wait for the counts, not the events
            try:
                await eventually(
                    lambda: counts_a.as_dict() | counts_b.as_dict() == Counter(first), timeout=30
                )
            except TimeoutError:
                raise AssertionError(
                    f"a={counts_a.as_dict()} {sorted(counts_a.store.partitions())} b={counts_b.as_dict()} "
                    f"{sorted(counts_b.store.partitions())} seen={len(seen_a)}+{len(seen_b)}"
                ) from None
            assert seen_a and seen_b  # both workers processed a share
            await b.stop()  # the survivor recovers b's partitions from the changelog
            await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)), timeout=60)
            await eventually(lambda: counts_a.as_dict() == Counter(first), timeout=30)  # recovery runs
            for word in second:
                await words.send(key=word, value=word)
            await eventually(lambda: counts_a.as_dict() == Counter(first) + Counter(second), timeout=30)
        finally:
            await a.stop()
            await b.stop()
