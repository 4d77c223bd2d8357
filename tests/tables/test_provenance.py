"""Changelog records name the source record whose event made them; recovery and standby take-over apply none
whose event the consumer group has not committed (that event is processed again)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from rxstream.events import HEADERS, Row
from rxstream.tables.provenance import (
    MAX_RUNS,
    SOURCE_HEADER,
    SOURCES_HEADER,
    Committed,
    SourceTrail,
    source_of,
    stamp,
    stamp_batch,
)
from rxstream.transport import TopicPartition
from rxstream.transport.partitioner import partition_for
from tests.tables.test_tables import send_words, word_count_app
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


def _laid_out(records: list[Any], starts: dict[int, int]) -> dict[int, list[Row]]:
    """Sent records as each partition's log stores them: in order, from the partition's next offset."""
    logs: dict[int, list[Row]] = {}
    for key, value, partition, headers in records:
        log = logs.setdefault(partition, [])
        offset = starts.get(partition, 0) + len(log)
        log.append(("words-changelog", partition, offset, 0.0, key, value, headers, None, None))
    return logs


BATCHES: list[tuple[str, list[tuple[int, Any]]]] = [
    ("one change per event", [(0, ("words", 0, o)) for o in range(100, 140)]),
    ("several changes per event", [(0, ("words", 0, o // 3)) for o in range(300, 330)]),
    ("events that change nothing in between", [(0, ("words", 0, o)) for o in (5, 6, 9, 9, 12, 13, 14, 20)]),
    ("partitions interleaved", [(o % 3, ("words", o % 3, o)) for o in range(60)]),
    ("two source topics", [(1, ("words" if o % 4 else "clicks", 1, o)) for o in range(40)]),
    ("changes without a source", [(2, None if o % 5 == 0 else ("words", 2, o)) for o in range(30)]),
    (
        "changes with headers of their own",
        [(0, {"w": "1"} if o % 7 == 0 else ("words", 0, o)) for o in range(30)],
    ),
    ("a source of another partition", [(0, ("words", 1 if o == 3 else 0, o)) for o in range(8)]),
    ("more runs than one header holds", [(0, ("words", 0, 2 * o)) for o in range(MAX_RUNS * 2 + 5)]),
    ("nothing sourced", [(0, None), (1, {"w": "1"})]),
]


@pytest.mark.parametrize(("case", "changes"), BATCHES, ids=[case for case, _ in BATCHES])
def test_a_batch_names_each_changes_source_once_per_partition(case: str, changes: list[Any]) -> None:
    records = []
    for i, (partition, source) in enumerate(changes):
        if isinstance(source, tuple):
            source = _row(source[0], source[1], source[2])
        records.append((f"k{i}", i, partition, source))
    sent = stamp_batch(records)
    assert [(k, v, p) for k, v, p, _ in sent] == [(k, v, p) for k, v, p, _ in records]
    headed = [h for *_, h in sent if h and SOURCES_HEADER in h]
    runs = sum(len(h[SOURCES_HEADER].split(";")[1].split(",")) for h in headed)
    assert runs <= len(records) and all(h[SOURCES_HEADER].count(",") < MAX_RUNS for h in headed)
    assert not any(isinstance(h, tuple) for *_, h in sent)
    starts = {0: 17, 1: 0, 2: 5}
    trail = SourceTrail()
    for partition, log in _laid_out(sent, starts).items():
        expected: list[Any] = []
        for _, _, p, source in records:
            if p != partition:
                continue
            if isinstance(source, tuple):
                expected.append((f"{source[0]}/{source[1]}", source[2]))
            else:
                expected.append(None)
        got = trail.sources(partition, log[:7]) + trail.sources(partition, log[7:])  # across fetches
        assert got == expected
        for message in log:
            if message[HEADERS] and SOURCE_HEADER in message[HEADERS]:  # the other partition's source
                assert source_of(message[HEADERS]) is not None


def test_a_batch_with_nothing_sourced_is_sent_as_it_was() -> None:
    records: list[Any] = [("a", 1, 0, None), ("b", 2, 1, {"w": "1"})]
    assert stamp_batch(records) is records


def test_a_reader_starting_after_a_batch_header_reads_its_records_as_unsourced() -> None:
    records = [(f"k{o}", o, 0, _row("words", 0, o)) for o in range(10)]
    log = _laid_out(stamp_batch(records), {0: 40})[0]
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
