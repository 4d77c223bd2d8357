"""Rebalances on memory://: revoked partitions are fenced, retained ones keep their state and queue."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream._core.fence import LIVE, PAUSED, REVOKED, Lease, Run, cut, in_flight, lease_of
from rxstream.errors import ConfigurationError
from rxstream.transport.partitioner import partition_for
from tests.test_app import eventually, memory_url, read_all

KEYS = [f"key-{i}" for i in range(40)]


def counting_app(url: str, partitions: int, delay: float) -> tuple[App, Any, Any, list[tuple[int, int]]]:
    """A worker counting keys in a table, ``delay`` seconds per event; it records what it processed."""
    app = App("rebalance", broker=url, commit_interval=0.05, topic_partitions=partitions)
    topic = app.topic("keys", partitions=partitions)
    counts = app.Table("counts", default=int, partitions=partitions)
    seen: list[tuple[int, int]] = []

    @app.agent(topic)
    async def count(stream: rxstream.Stream[str]) -> None:
        async for key in stream:
            counts[key] += 1
            event = rxstream.current_event()
            assert event.message is not None
            seen.append((event.message.partition, event.message.offset))
            await asyncio.sleep(delay)

    return app, topic, counts, seen


def changelog_never_decreases(records: list[Any]) -> int:
    """How many changelog records lowered a key's count (read in offset order per partition)."""
    last: dict[Any, int] = {}
    lowered = 0
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            continue
        if record.value < last.get(record.key, 0):
            lowered += 1
        last[record.key] = record.value
    return lowered


async def test_a_worker_joining_mid_run_takes_a_partition_the_old_owner_no_longer_processes() -> None:
    url = memory_url()
    a, topic, counts_a, seen_a = counting_app(url, partitions=2, delay=0.0005)
    b, _topic_b, counts_b, seen_b = counting_app(url, partitions=2, delay=0.0005)
    sent = [KEYS[i % len(KEYS)] for i in range(2000)]
    await a.start()
    try:
        for key in sent:
            await topic.send(key=key, value=key)
        await eventually(lambda: len(seen_a) >= 300)
        await b.start()  # the rebalance completed: b owns what moved
        moved = {tp.partition for tp in b._main_conductor().consumer.assignment()}  # type: ignore[union-attr]
        processed_before = len(seen_a)
        assert moved and moved != {0, 1}
        truth = Counter(sent)

        def done() -> bool:
            owner = {p: (counts_b if p in moved else counts_a) for p in (0, 1)}
            return all(owner[partition_for(k, 2)].get(k, 0) >= truth[k] for k in truth)

        await eventually(done, timeout=30)
        late = [(p, o) for p, o in seen_a[processed_before:] if p in moved]
        assert late == [], f"{len(late)} events of moved partitions processed by the old owner"
        changelog = await read_all(a, counts_a.changelog_topic)
        assert changelog_never_decreases(changelog) == 0
        assert counts_a.fenced_writes == 0
        for key, n in truth.items():
            owner = counts_b if partition_for(key, 2) in moved else counts_a
            assert owner[key] >= n
        assert len(seen_a) + len(seen_b) >= len(sent)
    finally:
        await b.stop()
        await a.stop()


async def test_partitions_that_stay_keep_their_table_state_and_queued_events() -> None:
    url = memory_url()
    a, topic, counts_a, seen_a = counting_app(url, partitions=4, delay=0.0005)
    b, _topic_b, counts_b, _seen_b = counting_app(url, partitions=4, delay=0.0)
    first = [KEYS[i % len(KEYS)] for i in range(400)]
    backlog = [KEYS[i % len(KEYS)] for i in range(1200)]
    await a.start()
    try:
        for key in first:
            await topic.send(key=key, value=key)
        await eventually(lambda: len(seen_a) == len(first))
        replayed_a = counts_a.recovered_records
        for key in backlog:
            await topic.send(key=key, value=key)
        await eventually(lambda: len(seen_a) >= len(first) + 100)
        await b.start()
        kept = set(counts_a.store.partitions())
        moved = set(counts_b.store.partitions())
        assert len(kept) == len(moved) == 2 and not kept & moved
        assert counts_a.recovered_records == replayed_a  # nothing replayed for what stayed
        changelog = await read_all(a, counts_a.changelog_topic)
        assert counts_b.recovered_records <= sum(1 for r in changelog if r.partition in moved)
        assert counts_b.recovered_records > 0
        truth = Counter(first + backlog)

        def done() -> bool:
            owner = {p: (counts_a if p in kept else counts_b) for p in range(4)}
            return all(owner[partition_for(k, 4)].get(k, 0) >= n for k, n in truth.items())

        await eventually(done, timeout=30)
        # the kept partitions' queued events were processed once each, by a, in order
        kept_seen = [(p, o) for p, o in seen_a if p in kept]
        expected = sum(n for k, n in truth.items() if partition_for(k, 4) in kept)
        assert len(kept_seen) == len(set(kept_seen)) == expected
        for key in truth:
            if partition_for(key, 4) in kept:
                assert counts_a[key] == truth[key]
    finally:
        await b.stop()
        await a.stop()


async def test_an_event_running_past_revocation_timeout_does_not_hold_the_rebalance_back() -> None:
    url = memory_url()
    a = App("stuck", broker=url, commit_interval=0.05, revocation_timeout=0.2)
    topic = a.topic("keys", partitions=2)
    b = App("stuck", broker=url, commit_interval=0.05)
    topic_b = b.topic("keys", partitions=2)
    release = asyncio.Event()
    started = asyncio.Event()

    @a.agent(topic)
    async def hang(stream: rxstream.Stream[str]) -> None:
        async for _key in stream:
            started.set()
            await release.wait()

    @b.agent(topic_b)
    async def idle(stream: rxstream.Stream[str]) -> None:
        async for _key in stream:
            pass

    await a.start()
    try:
        for key in KEYS:
            await topic.send(key=key, value=key)
        await asyncio.wait_for(started.wait(), 5)
        began = asyncio.get_running_loop().time()
        await asyncio.wait_for(b.start(), 5)
        assert asyncio.get_running_loop().time() - began < 2
    finally:
        release.set()
        await b.stop()
        await a.stop()


def test_revocation_timeout_must_not_be_negative() -> None:
    with pytest.raises(ConfigurationError, match="revocation_timeout"):
        App("bad", revocation_timeout=-1)


def test_a_cut_run_ends_after_the_value_in_hand_and_only_its_lease_is_in_flight() -> None:
    kept, revoked = Lease(), Lease()
    mine, other = Run(), Run()
    mine.enter([1, 2, 3], (revoked,))
    other.enter([4, 5], (kept,))
    assert in_flight({revoked}) == 1
    cut({revoked})
    assert mine.values == [] and other.values == [4, 5]
    mine.leave()  # the consumer asked for its next value
    assert in_flight({revoked}) == 0 and in_flight({kept}) == 1


def test_a_batch_lease_is_found_through_wrapping_acknowledgers() -> None:
    lease = Lease()

    class Wrapper:
        def __init__(self, acker: Any) -> None:
            self.acker = acker

    assert lease_of(Wrapper(Wrapper(lease))) is lease
    assert lease_of(object()) is None and lease_of(None) is None
    assert (LIVE, PAUSED, REVOKED) == (0, 1, 2) and lease.state == LIVE


async def test_memory_groups_assign_stickily() -> None:
    url = memory_url()
    workers = [counting_app(url, partitions=6, delay=0.0) for _ in range(3)]

    def owned(app: App) -> set[int]:
        consumer = app._main_conductor().consumer
        assert consumer is not None
        return {tp.partition for tp in consumer.assignment()}

    try:
        await workers[0][0].start()
        assert owned(workers[0][0]) == set(range(6))
        await workers[1][0].start()
        one, two = owned(workers[0][0]), owned(workers[1][0])
        assert len(one) == len(two) == 3 and not one & two
        await workers[2][0].start()
        after = [owned(app) for app, *_ in workers]
        assert [len(p) for p in after] == [2, 2, 2]
        assert after[0] <= one and after[1] <= two  # each gave one up; nothing moved between them
        await workers[2][0].stop()
        assert owned(workers[0][0]) | owned(workers[1][0]) == set(range(6))
        assert owned(workers[0][0]) >= after[0] and owned(workers[1][0]) >= after[1]
    finally:
        for app, *_ in reversed(workers):
            await app.stop()


async def test_memory_groups_keep_every_topics_partition_p_on_one_member() -> None:
    """A table's partition p follows partition p of every topic its app reads (source and repartition)."""
    url = memory_url()
    apps = []
    for _ in range(3):
        app = App("copartitioned", broker=url)
        clicks, views = app.topic("clicks", partitions=4), app.topic("views", partitions=4)

        @app.agent(clicks)
        async def on_clicks(stream: rxstream.Stream[Any]) -> None:
            async for _ in stream:
                pass

        @app.agent(views)
        async def on_views(stream: rxstream.Stream[Any]) -> None:
            async for _ in stream:
                pass

        apps.append(app)

    def by_topic(app: App) -> dict[str, set[int]]:
        consumer = app._main_conductor().consumer
        assert consumer is not None
        out: dict[str, set[int]] = {"clicks": set(), "views": set()}
        for tp in consumer.assignment():
            out[tp.topic].add(tp.partition)
        return out

    try:
        for started in range(3):
            await apps[started].start()
            split = [by_topic(app) for app in apps[: started + 1]]
            assert all(parts["clicks"] == parts["views"] for parts in split), split
            assert sorted(p for parts in split for p in parts["clicks"]) == [0, 1, 2, 3]
    finally:
        for app in reversed(apps):
            await app.stop()


async def test_a_table_drops_changes_from_events_of_partitions_that_moved_away() -> None:
    app = App("fenced", broker=memory_url())
    counts = app.Table("counts", default=int, partitions=2)
    anywhere = app.Table("anywhere", default=int, partitions=2, use_partitioner=True)
    async with app:
        await counts.recover({0, 1})
        await counts.revoke({1})
        counts.set_in("moved", 5, 1)
        counts.set_in("stayed", 5, 0)
        assert counts.as_dict() == {"stayed": 5} and counts.fenced_writes == 1
        await counts.recover({1})  # assigned again: changes count once more
        counts.set_in("back", 1, 1)
        assert counts["back"] == 1 and counts.fenced_writes == 1
        await anywhere.revoke({0, 1})  # a table picking partitions by key is not fenced
        anywhere["key"] = 1
        assert anywhere["key"] == 1 and anywhere.fenced_writes == 0
