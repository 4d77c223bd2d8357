"""app.monitor: counters per partition and agent, commits, rebalances, recovery progress and worker state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from prometheus_client.parser import text_string_to_metric_families

import rxstream
from rxstream import App
from rxstream.transport import TopicPartition
from rxstream.web import metrics_text
from tests.tables.test_tables import WORDS, send_words, word_count_app
from tests.test_app import eventually, memory_url


def test_a_new_app_has_an_empty_monitor_that_is_starting() -> None:
    app = App("quiet", broker=memory_url())
    assert app.monitor.state == "starting"
    assert app.monitor.snapshot()["partitions"] == []


async def test_counts_per_partition_agent_topic_commit_and_rebalance() -> None:
    app = App("counted", broker=memory_url(), commit_interval=0.05)
    numbers = app.topic("numbers", partitions=2)
    doubled = app.topic("doubled", partitions=2)

    @app.agent(numbers, sink=[doubled])
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    monitor = app.monitor
    async with app:
        assert monitor.state == "running" and monitor.joined and monitor.rebalance_count == 1
        await numbers.send_many(list(range(300)))
        await eventually(lambda: monitor.sent.get("doubled") == 300)
        await app.commit()
        await monitor.refresh()
        received = {tp: s.received for tp, s in monitor.partitions.items()}
        assert received == {TopicPartition("numbers", 0): 150, TopicPartition("numbers", 1): 150}
        assert all(s.committed == 150 and s.lag == 0 for s in monitor.partitions.values())
        assert sum(monitor.acknowledged().values()) == 300
        assert monitor.commits >= 1 and monitor.commit_latency.count == monitor.commits
        stats = monitor.agents[double.name]
        assert stats.batches >= 1 and stats.processing.count == stats.batches
        await numbers.send_many(list(range(10)))
        await eventually(lambda: monitor.sent.get("doubled") == 310)
        await monitor.refresh()
        assert sum(s.lag or 0 for s in monitor.partitions.values()) == 10  # not committed yet
    assert monitor.state == "stopping"
    assert len(monitor.rebalances) == 2 and monitor.rebalances[-1].assigned == ()


async def test_errors_redeliveries_and_dead_letters_are_counted_per_partition() -> None:
    app = App("failing", broker=memory_url())
    inbox = app.topic("inbox", partitions=1, max_redeliveries=2)
    crashes = app.topic("crashes", partitions=1, max_redeliveries=0)

    @app.agent(inbox)
    async def picky(stream: rxstream.Stream[str]) -> None:
        async for event in stream.noack().events():
            if event.value == "bad":
                event.reject()
            else:
                event.ack()

    @app.agent(crashes)
    async def fragile(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            if n == 3:
                raise ValueError(n)

    monitor = app.monitor
    async with app:
        for value in ("a", "bad", "b"):
            await inbox.send(value=value)
        await crashes.send_many([1, 2, 3, 4])
        inbox0, crashes0 = TopicPartition("inbox", 0), TopicPartition("crashes", 0)
        await eventually(
            lambda: inbox0 in monitor.partitions and monitor.partitions[inbox0].dead_lettered == 1
        )
        await eventually(lambda: crashes0 in monitor.partitions and monitor.partitions[crashes0].errors == 1)
        await eventually(lambda: monitor.partitions[crashes0].dead_lettered == 1)
        assert monitor.redeliveries() == {inbox0: 2}
        assert monitor.agents[fragile.name].errors == 1
        snapshot = {(p["topic"], p["partition"]): p for p in monitor.snapshot()["partitions"]}
        assert snapshot["inbox", 0]["redelivered"] == 2 and snapshot["crashes", 0]["errors"] == 1
        text = metrics_text(monitor).decode()
    assert 'rxstream_redeliveries_total{messaging_consumer_group_name="failing"' in text
    assert "rxstream_dead_letters_total" in text and "rxstream_agent_errors_total" in text


async def test_recovery_progress_per_table_partition_and_the_recovering_state() -> None:
    url = memory_url()
    words = [WORDS[i % 7] for i in range(200)]
    app, topic, _counts, seen = word_count_app(url)
    async with app:
        await send_words(topic, words)
        await eventually(lambda: len(seen) == len(words))
    again, _topic, _counts, _seen = word_count_app(url)
    async with again:
        progress = again.monitor.recoveries["counts"].as_dict()
        assert sum(p["done"] for p in progress.values()) == len(words)
        assert all(p["finished"] and p["done"] == p["total"] and p["eta"] == 0.0 for p in progress.values())
        assert again.monitor.state == "running"
        tables = again.monitor.snapshot()["tables"]
        assert tables == {"counts": {"keys": 7, "late_events": 0, "late_by_partition": {}}}
        again.monitor.recovery("other").begin({0: 10})  # a replay under way keeps the worker unready
        assert again.monitor.state == "recovering"
        again.monitor.recovery("other").advance(0, 4)
        assert again.monitor.recovery("other").as_dict()["0"]["done"] == 4
        again.monitor.recovery("other").end()
        assert again.monitor.state == "running"


async def test_a_disabled_monitor_counts_nothing() -> None:
    app = App("uncounted", broker=memory_url())
    numbers = app.topic("numbers", partitions=1)
    seen: list[int] = []

    @app.agent(numbers)
    async def take(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            seen.append(n)
            yield n

    app.monitor.enabled = False
    async with app:
        await numbers.send_many(list(range(50)))
        await eventually(lambda: len(seen) == 50)
        await app.commit()
    assert app.monitor.partitions == {} and app.monitor.commits == 0 and app.monitor.sent == {}
    assert app.monitor.agents[take.name].events == 0


async def test_an_agent_that_never_yields_is_counted_per_batch() -> None:
    app = App("silent", broker=memory_url())
    numbers = app.topic("numbers", partitions=1)
    seen: list[int] = []

    @app.agent(numbers)
    async def swallow(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            seen.append(n)

    async with app:
        await numbers.send_many(list(range(120)))
        await eventually(lambda: app.monitor.agents[swallow.name].events == 120)
    stats = app.monitor.agents[swallow.name]
    assert len(seen) == 120 and stats.yielded == 0
    assert stats.batches >= 1 and stats.processing.count == stats.batches
    assert app.monitor.snapshot()["agents"][swallow.name]["events"] == 120


async def test_values_yielded_are_counted_per_agent_and_scraped() -> None:
    app = App("yielding", broker=memory_url())
    numbers = app.topic("numbers", partitions=1)

    @app.agent(numbers)
    async def twice(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n
            yield -n

    async with app:
        await numbers.send_many(list(range(40)))
        await eventually(lambda: app.monitor.agents[twice.name].events == 40)
        await eventually(lambda: app.monitor.agents[twice.name].yielded == 80)
        text = metrics_text(app.monitor).decode()
    samples = {
        sample.labels["rxstream_agent"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rxstream_agent_yielded_values_total"
    }
    assert samples == {twice.name: 80.0}


async def test_processing_time_is_the_time_spent_on_batches_not_the_wait_between_them() -> None:
    app = App("paced", broker=memory_url())
    jobs = app.topic("jobs", partitions=1)
    done: list[int] = []

    @app.agent(jobs)
    async def work(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            await asyncio.sleep(0.02)
            done.append(n)

    async with app:
        for i in range(3):
            await jobs.send(value=i)
            await eventually(lambda i=i: len(done) == i + 1)
            await asyncio.sleep(0.2)  # idle between batches: not processing time
        await eventually(lambda: app.monitor.agents[work.name].batches == 3)
    histogram = app.monitor.agents[work.name].processing
    assert histogram.count == 3
    assert 0.06 <= histogram.sum < 0.3
