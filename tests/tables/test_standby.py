"""Standby replicas on the memory transport: warm copies of partitions another worker owns, handed over
on take-over so that only the changelog's tail is replayed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import rxstream
from rxstream import App
from rxstream.transport.partitioner import partition_for
from tests.tables.test_tables import send_words
from tests.tables.test_tables import word_count_app as counting_app
from tests.test_app import eventually, memory_url

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi"]
PARTITIONS = 4


def word_count_app(url: str, *, standbys: int = 1) -> tuple[App, Any, Any, list[str]]:
    """An app counting words (keyed by the word) in a table, keeping ``standbys`` standby replicas."""
    return counting_app(url, table_standby_replicas=standbys)


def standby_counts(table: Any) -> dict[str, int]:
    return dict(table.standby.store.items())


async def test_a_worker_keeps_standbys_of_the_partitions_it_does_not_own() -> None:
    url = memory_url()
    a, words, counts_a, seen_a = word_count_app(url)
    b, _, counts_b, seen_b = word_count_app(url)
    batch = [WORDS[i % len(WORDS)] for i in range(160)]
    async with a:
        await b.start()
        try:
            owned_a, owned_b = counts_a.store.partitions(), counts_b.store.partitions()
            assert owned_a and owned_b and not owned_a & owned_b
            assert counts_a.standby.partitions == owned_b and counts_b.standby.partitions == owned_a
            await send_words(words, batch)
            await eventually(lambda: len(seen_a) + len(seen_b) == len(batch))
            # each worker's standby holds exactly the other worker's state
            await eventually(lambda: standby_counts(counts_a) == counts_b.as_dict())
            await eventually(lambda: standby_counts(counts_b) == counts_a.as_dict())
            assert counts_a.as_dict() | counts_b.as_dict() == Counter(batch)
        finally:
            await b.stop()


async def test_taking_a_partition_over_replays_only_the_tail_after_the_standby() -> None:
    url = memory_url()
    a, words, counts_a, seen_a = word_count_app(url)
    b, _, counts_b, seen_b = word_count_app(url)
    batch = [WORDS[i % len(WORDS)] for i in range(400)]
    async with a:
        await b.start()
        owned_b = counts_b.store.partitions()
        await send_words(words, batch)
        await eventually(lambda: len(seen_a) + len(seen_b) == len(batch))
        await eventually(lambda: standby_counts(counts_a) == counts_b.as_dict())
        before = counts_a.recovered_records
        await b.stop()  # its partitions move to a, whose standby already holds their state
        await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)))
        assert counts_a.recovered_records == before  # nothing was written after the standby caught up
        assert counts_a.standby.partitions == frozenset()
        assert counts_a.as_dict() == Counter(batch)
        more = [WORDS[(i * 3) % len(WORDS)] for i in range(40)]
        await send_words(words, more)
        await eventually(lambda: len(seen_a) + len(seen_b) == len(batch) + len(more))
        assert counts_a.as_dict() == Counter(batch) + Counter(more)
        assert {partition_for(w, PARTITIONS) for w in WORDS} & owned_b


async def test_without_standbys_taking_over_replays_the_whole_changelog() -> None:
    url = memory_url()
    a, words, counts_a, seen_a = word_count_app(url, standbys=0)
    b, _, counts_b, seen_b = word_count_app(url, standbys=0)
    batch = [WORDS[i % len(WORDS)] for i in range(400)]
    async with a:
        await b.start()
        assert counts_a.standby is None and counts_b.standby is None
        await send_words(words, batch)
        await eventually(lambda: len(seen_a) + len(seen_b) == len(batch))
        b_writes = len(seen_b)
        before = counts_a.recovered_records
        await b.stop()
        await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)))
        assert counts_a.recovered_records - before == b_writes
        assert counts_a.as_dict() == Counter(batch)


async def test_a_partition_given_away_stays_in_the_standby_and_comes_back_with_nothing_to_replay() -> None:
    url = memory_url()
    a, words, counts_a, seen_a = word_count_app(url)
    b, _, counts_b, _seen_b = word_count_app(url)
    batch = [WORDS[i % len(WORDS)] for i in range(200)]
    async with a:
        await send_words(words, batch)
        await eventually(lambda: len(seen_a) == len(batch))
        assert counts_a.standby.partitions == frozenset()
        await b.start()  # a gives half its partitions away and keeps their state as its standby
        try:
            owned_b = counts_b.store.partitions()
            assert counts_a.standby.partitions == owned_b
            expected = {w: n for w, n in Counter(batch).items() if partition_for(w, PARTITIONS) in owned_b}
            assert standby_counts(counts_a) == expected == counts_b.as_dict()
            before = counts_a.recovered_records
        finally:
            await b.stop()
        await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)))
        assert counts_a.recovered_records == before
        assert counts_a.as_dict() == Counter(batch)


async def test_a_change_landing_between_the_revocation_and_the_hand_over_is_replayed_on_take_over() -> None:
    """The standby adopts a partition as of its revocation, so what its next owner writes from then on (here
    one change landing while the old owner is still dropping the partition) is applied before take-over."""
    url = memory_url()
    a, words, counts_a, seen_a = word_count_app(url)
    b, _, counts_b, _seen_b = word_count_app(url)
    batch = [WORDS[i % len(WORDS)] for i in range(200)]
    revoke = counts_a.revoke

    async def revoke_after_a_late_change(partitions: set[int]) -> None:
        for partition in partitions:  # as if the new owner wrote it before the old one was done dropping
            counts_a.changelog.put(f"late-{partition}", 1000 + partition, partition)
        await counts_a.changelog.flush()
        await revoke(partitions)

    counts_a.revoke = revoke_after_a_late_change  # type: ignore[method-assign]
    async with a:
        await send_words(words, batch)
        await eventually(lambda: len(seen_a) == len(batch))
        await b.start()
        moved = counts_b.store.partitions()
        assert moved and counts_a.standby.partitions == moved
        await b.stop()  # the partitions come back to a, from its standby
        await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)))
        for partition in moved:
            assert counts_a[f"late-{partition}"] == 1000 + partition
        assert {w: counts_a[w] for w in WORDS} == Counter(batch)


async def test_what_a_revocation_noted_holds_only_until_its_rebalance_decided() -> None:
    """A partition that stayed is written again: dropped later (outside a rebalance), it is not adopted."""
    a, words, counts_a, seen_a = word_count_app(memory_url())
    async with a:
        await send_words(words, WORDS)
        await eventually(lambda: len(seen_a) == len(WORDS))
        standby = counts_a.standby
        partition = partition_for(WORDS[0], PARTITIONS)
        await standby.fenced({partition})
        await standby.fenced(set())  # the rebalance gave it back
        await standby.adopt({partition}, counts_a.store)
        assert partition not in standby.offsets
        await standby.fenced({partition})
        await standby.adopt({partition}, counts_a.store)
        assert standby.offsets[partition] > 0 and dict(standby.store.items())[WORDS[0]] >= 1


async def test_windowed_and_global_tables_keep_no_standbys() -> None:
    app = App("plain", broker=memory_url(), table_standby_replicas=1)
    words = app.topic("words", partitions=2)
    windowed = app.Table("per-minute", default=int, partitions=2).tumbling(60)
    everywhere = app.GlobalTable("everywhere", partitions=2)

    @app.agent(words)
    async def count(stream: rxstream.Stream[str]) -> None:
        async for _ in stream:
            pass

    async with app:
        assert windowed.table.standby is None
        assert everywhere.standby is None
