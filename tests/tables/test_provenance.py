"""Changelog records name the source record whose event made them; recovery and standby take-over apply none
whose event the consumer group has not committed (that event is processed again)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rxstream import App, Event, Message, Stream
from rxstream.events import HEADERS, Row
from rxstream.tables.provenance import (
    MAX_ENTRIES,
    SOURCE_HEADER,
    SOURCES_HEADER,
    Committed,
    SourceTrail,
    source_of,
    stamp,
)
from rxstream.tables.standby import Standby
from rxstream.transport import TopicPartition
from rxstream.transport.partitioner import partition_for
from tests.tables.test_tables import rocksdb_available, send_words, word_count_app
from tests.test_app import eventually, memory_url

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi"]
PARTITIONS = 4


def _row(topic: str, partition: int, offset: int, headers: Any = None) -> Row:
    return (topic, partition, offset, 0.0, "k", 1, headers, None, None)


def test_a_stamp_names_the_source_record_and_reads_back_from_text_or_bytes() -> None:
    headers = stamp(_row("words", 3, 1234))
    assert headers == {SOURCE_HEADER: "words/3/1234"}
    assert source_of(headers) == (TopicPartition("words", 3), 1234)
    assert source_of({SOURCE_HEADER: b"my.topic-1/0/7"}) == (TopicPartition("my.topic-1", 0), 7)
    assert source_of(None) is None and source_of({"other": "x"}) is None


def test_only_changes_of_committed_events_and_unsourced_changes_apply() -> None:
    rule = Committed({TopicPartition("words", 0): 10})
    rows = [
        _row("c", 0, 0, stamp(_row("words", 0, 9))),  # committed: applies
        _row("c", 0, 1, stamp(_row("words", 0, 10))),  # at the committed offset: processed again
        _row("c", 0, 2, None),  # no source (use_partitioner): applies
        _row("c", 0, 3, stamp(_row("other", 0, 99))),  # a topic the app does not consume: applies
        _row("c", 0, 4, stamp(_row("words", 0, 11))),
    ]
    sources = SourceTrail().sources(0, rows)
    assert [r[2] for r in rule.keep(rows, sources)] == [0, 2, 3]
    assert rule.skipped == 2
    assert Committed({}).keep(rows, sources) is rows  # no consumer (nothing to go by): everything applies


BATCHES: list[tuple[str, list[tuple[int, Any]]]] = [
    ("one change per event", [(0, ("words", 0, o)) for o in range(100, 140)]),
    ("several changes per event", [(0, ("words", 0, o // 3)) for o in range(300, 330)]),
    ("events that change nothing in between", [(0, ("words", 0, o)) for o in (5, 6, 9, 9, 12, 13, 14, 20)]),
    ("partitions interleaved", [(o % 3, ("words", o % 3, o)) for o in range(60)]),
    ("two source topics", [(1, ("words" if o % 4 else "clicks", 1, o)) for o in range(40)]),
    ("changes without a source", [(2, None if o % 5 == 0 else ("words", 2, o)) for o in range(30)]),
    ("own headers", [(0, {"w": "1"} if o % 7 == 0 else ("words", 0, o)) for o in range(30)]),
    ("a source of another partition", [(0, ("words", 1 if o == 3 else 0, o)) for o in range(8)]),
    ("consecutive, then gaps", [(0, ("words", 0, o)) for o in [*range(10), 15, 20, 21, 22, 22, 30]]),
    ("offsets going back", [(0, ("words", 0, o)) for o in (10, 5, 11, 6, 6, 12)]),
    ("more than one header holds", [(0, ("words", 0, 2 * o)) for o in range(MAX_ENTRIES * 2 + 5)]),
    ("nothing sourced", [(0, None), (1, {"w": "1"}), (0, None)]),
    ("a run, then a change without a source", [(0, None if o == 20 else ("words", 0, o)) for o in range(40)]),
    ("a run, then another topic", [(0, ("clicks" if o >= 25 else "words", 0, o)) for o in range(40)]),
    ("a run, then own headers", [(0, {"w": "1"} if o == 39 else ("words", 0, o)) for o in range(40)]),
]


@pytest.mark.parametrize(("case", "changes"), BATCHES, ids=[case for case, _ in BATCHES])
async def test_each_changes_source_reads_back_from_the_batch_headers(case: str, changes: list[Any]) -> None:
    app = App("provenance", broker=memory_url())
    table = app.Table("counts", partitions=3)
    expected: dict[int, list[Any]] = {}
    async with app:
        for i, (partition, source) in enumerate(changes):
            if isinstance(source, tuple):
                expected.setdefault(partition, []).append((f"{source[0]}/{source[1]}", source[2]))
                source = _row(*source)
            else:
                expected.setdefault(partition, []).append(None)
            table.changelog.put(f"k{i}", i, partition, source)
            if i == len(changes) // 2:
                await table.changelog.flush()  # two send batches
        await app.flush()
        log = app.transport.broker.existing_topic(table.changelog.name)  # type: ignore[attr-defined]
        rows = {part.tp.partition: list(part.log) for part in log.partitions if part.log}
    assert {p: [(r[4], r[5]) for r in part] for p, part in rows.items()} == {
        p: [(f"k{i}", i) for i, (q, _) in enumerate(changes) if q == p] for p in expected
    }
    trail = SourceTrail()
    for partition, log_rows in rows.items():
        got = trail.sources(partition, log_rows[:7]) + trail.sources(
            partition, log_rows[7:]
        )  # across fetches
        assert got == expected[partition]
        for row in log_rows:
            named = row[HEADERS].get(SOURCES_HEADER) if row[HEADERS] else None
            assert named is None or named.count(",") + named.count(".") < MAX_ENTRIES
    headed = sum(bool(r[HEADERS] and SOURCES_HEADER in r[HEADERS]) for part in rows.values() for r in part)
    assert headed <= 2 * len(rows) + len(changes) // (MAX_ENTRIES - 1)  # about one per partition and batch


async def test_a_reader_starting_after_a_batch_header_reads_its_records_as_unsourced() -> None:
    app = App("provenance", broker=memory_url())
    table = app.Table("counts", partitions=1)
    async with app:
        for o in range(10):
            table.changelog.put(f"k{o}", o, 0, _row("words", 0, o))
        await app.flush()
        log = list(app.transport.broker.existing_topic(table.changelog.name).partitions[0].log)  # type: ignore[attr-defined]
    assert SourceTrail().sources(0, log[4:]) == [None] * 6
    assert SourceTrail().sources(0, log)[4:] == [("words/0", o) for o in range(4, 10)]


async def test_every_change_made_by_an_event_names_that_events_record() -> None:
    app, words, counts, seen = word_count_app(memory_url())
    async with app:
        await send_words(words, ["apple", "fig", "apple"])
        await eventually(lambda: len(seen) == 3)
        await app.flush()
        log = app.transport.broker.existing_topic(counts.changelog.name)  # type: ignore[attr-defined]
        source = app.transport.broker.existing_topic("words")  # type: ignore[attr-defined]
        rows = {part.tp.partition: list(part.log) for part in log.partitions}
        events = {(row[1], row[2]): row[5] for part in source.partitions for row in part.log}
    assert sorted((row[4], row[5]) for part in rows.values() for row in part) == [
        ("apple", 1),
        ("apple", 2),
        ("fig", 1),
    ]
    trail = SourceTrail()
    for partition, changes in rows.items():
        for row, named in zip(changes, trail.sources(partition, changes), strict=True):
            assert named is not None and named[0] == f"words/{partition}"
            assert events[partition, named[1]] == row[4]  # the event with that word made the change


async def test_a_table_counting_a_stream_of_events_names_each_events_message() -> None:
    app = App("provenance", broker=memory_url())
    table = app.Table("counts", default=int, partitions=2)
    offsets = [0, 0]
    events = []
    for i in range(50):
        word, partition = WORDS[i % 3], i % 2 if i < 40 else 1  # then a run of partition 1 alone
        message = Message("words", partition, offsets[partition], 0.0, word, word)
        events.append(Event(word, word, message=message))
        offsets[partition] += 1 + (i == 45)  # a gap: an event filtered out upstream
    async with app:
        async for word in Stream.from_iterable(events):
            table[word] += 1
        await app.flush()
        log = app.transport.broker.existing_topic(table.changelog.name)  # type: ignore[attr-defined]
        rows = {part.tp.partition: list(part.log) for part in log.partitions}
    for partition, changes in rows.items():
        named = SourceTrail().sources(partition, changes)
        made = [(e.message.topic, e.message.offset) for e in events if e.message.partition == partition]
        assert named == [(f"words/{partition}", offset) for _, offset in made]
        assert [row[4] for row in changes] == [e.key for e in events if e.message.partition == partition]


async def test_a_standby_taking_over_leaves_out_changes_of_events_not_committed() -> None:
    url = memory_url()
    a, words, counts_a, seen_a = word_count_app(url, table_standby_replicas=1)
    b, _, counts_b, seen_b = word_count_app(url, table_standby_replicas=1)
    batch = [WORDS[i % len(WORDS)] for i in range(200)]
    async with a:
        await b.start()
        owned_b = sorted(counts_b.store.partitions())
        await send_words(words, batch)
        await eventually(lambda: len(seen_a) + len(seen_b) == len(batch))
        await eventually(lambda: dict(counts_a.standby.store.items()) == counts_b.as_dict())
        transport = await b.producer()
        ends = await transport.end_offsets("words")
        # b's changes of events it has not committed (offsets at or past its commit), as if it died now
        tail = [
            (word, counts_b[word] + 100, p, stamp(_row("words", p, ends[TopicPartition("words", p)])))
            for word in WORDS
            if (p := partition_for(word, PARTITIONS)) in owned_b
        ]
        committed = b.conductors()[0]._committed  # what b committed so far
        await eventually(
            lambda: all(
                committed.get(tp) == end for tp, end in ends.items() if end and tp.partition in owned_b
            )
        )
        await transport.send_many(counts_b.changelog.name, tail)
        await eventually(lambda: bool(counts_a.standby.pending))  # read by the standby, not applied
        assert dict(counts_a.standby.store.items()) == counts_b.as_dict()
        await b.stop()  # its partitions move to a, whose standby holds their committed state
        await eventually(lambda: counts_a.store.partitions() == frozenset(range(PARTITIONS)))
        assert counts_a.as_dict() == Counter(batch)
        assert not counts_a.standby.pending


async def _uncommitted_batch(app: App, table: Any) -> list[Row]:
    """A crashed owner's uncommitted tail: ten changes by events words/0/0..9, sent as one batch."""
    for offset in range(10):
        table.changelog.put(f"k{offset}", offset, 0, _row("words", 0, offset))
    await app.flush()
    log = app.transport.broker.existing_topic(table.changelog.name)  # type: ignore[attr-defined]
    return list(log.partitions[0].log)


async def test_a_standby_that_read_part_of_a_batch_hands_its_sources_to_the_replay() -> None:
    app = App("provenance", broker=memory_url())
    table = app.Table("counts", partitions=1)
    nothing_committed = {TopicPartition("words", 0): 0}
    async with app:
        log = await _uncommitted_batch(app, table)
        standby = table.standby = Standby(table)
        standby._following = frozenset({0})
        standby._known = Committed(nothing_committed)
        standby.store.assign([0])
        standby._apply(0, log[:5])  # its fetch ended in the middle of the batch
        assert standby.offsets == {0: 5} and len(standby.pending[0]) == 5
        table.store.revoke([0])
        stats = await table.recover({0}, nothing_committed)
    assert dict(table.store.items()) == {}  # the replay from offset 5 knew those records' sources too
    assert stats is not None and stats.skipped == 10


@pytest.mark.skipif(
    not rocksdb_available(), reason="rocksdict is not installed (pip install 'rxstream[rocksdb]')"
)
async def test_a_rocksdb_recovery_cut_in_the_middle_of_a_batch_resumes_where_its_sources_are_named(
    tmp_path: Path,
) -> None:
    app = App("provenance", broker=memory_url())
    table = app.Table("counts", partitions=1, store=f"rocksdb://{tmp_path}")
    nothing_committed = {TopicPartition("words", 0): 0}
    async with app:
        log = await _uncommitted_batch(app, table)
        table.store.revoke([0])
        table.store.reset([0])
        table.store.assign([0])
        table._apply_changelog(0, log[:5], Committed(nothing_committed), SourceTrail())  # then interrupted
        assert table.store.persisted_offset(0) == 0  # the batch's header, not offset 5
        table.store.revoke([0])
        stats = await table.recover({0}, nothing_committed)
        assert dict(table.store.items()) == {}
    assert stats is not None and stats.skipped == 10
