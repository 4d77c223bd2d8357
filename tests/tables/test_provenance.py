"""Changelog records name the source record whose event made them; recovery and standby take-over apply none
whose event the consumer group has not committed (that event is processed again)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rxstream.events import HEADERS, Row
from rxstream.tables.provenance import SOURCE_HEADER, Committed, source_of, stamp
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
        _row("c", 0, 2, None),  # no source (use_partitioner, windows' bookkeeping): applies
        _row("c", 0, 3, stamp(_row("other", 0, 99))),  # a topic the app does not consume: applies
        _row("c", 0, 4, stamp(_row("words", 0, 11))),
    ]
    assert [r[2] for r in rule.keep(rows)] == [0, 2, 3]
    assert rule.skipped == 2
    assert Committed({}).keep(rows) is rows  # no consumer (nothing to go by): everything applies


async def test_every_change_made_by_an_event_carries_that_events_record() -> None:
    app, words, counts, seen = word_count_app(memory_url())
    async with app:
        await send_words(words, ["apple", "fig", "apple"])
        await eventually(lambda: len(seen) == 3)
        await app.flush()
        log = app.transport.broker.existing_topic(counts.changelog.name)  # type: ignore[attr-defined]
        rows = [row for part in log.partitions for row in part.log]
    assert sorted((row[4], row[5]) for row in rows) == [("apple", 1), ("apple", 2), ("fig", 1)]
    for row in rows:
        source = source_of(row[HEADERS])
        assert source is not None and source[0] == TopicPartition("words", row[1])


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
