"""A long memory:// partition frees trimmed messages at once and drops their places in slices."""

from __future__ import annotations

import uuid

import pytest

from rxstream.transport import memory_log
from rxstream.transport.base import TopicPartition
from rxstream.transport.memory import MemoryTransport
from rxstream.transport.memory_log import PartitionLog


def test_a_long_log_empties_trimmed_places_and_cuts_them_once_as_many_as_remain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_log, "LONG_LOG", 4)
    part = PartitionLog(TopicPartition("orders", 0))
    part.extend_values(list(range(100, 110)), 1.0)
    assert (part.keys, part.headers, part.stamp_starts) == (None, None, [0])  # no key, no headers yet
    part.extend([(f"k{i}", 100 + i, None, {"h": "v"} if i == 19 else None) for i in range(10, 20)], 2.0)
    assert part.keys == [None] * 10 + [f"k{i}" for i in range(10, 20)]
    assert part.headers == [None] * 19 + [{"h": "v"}] and part.stamp_starts == [0, 10]
    part.set_floor("g", 5)
    assert (part.first, part.base, len(part.values), part.end) == (5, 0, 20, 20)
    assert part.values[:6] == [None] * 5 + [105]  # the trimmed messages are freed already
    assert [row[2] for row in part.log] == list(range(5, 20))
    part.set_floor("g", 9)
    assert (part.first, part.base, len(part.values)) == (9, 0, 20)
    assert part.values[:10] == [None] * 9 + [109]
    part.set_floor("g", 10)  # as many trimmed as remain: their places are cut in one slice
    assert (part.first, part.base, part.values) == (10, 10, list(range(110, 120)))
    assert [row[2] for row in part.log] == list(range(10, 20)) and part.stamp_starts == [10]
    part.set_floor("g", 17)  # few remain: cut at once
    assert (part.first, part.base, part.values) == (17, 17, [117, 118, 119])
    assert part.log == [
        ("orders", 0, 17, 2.0, "k17", 117, None, None, None),
        ("orders", 0, 18, 2.0, "k18", 118, None, None, None),
        ("orders", 0, 19, 2.0, "k19", 119, {"h": "v"}, None, None),
    ]
    assert part.room(100) == 100 - 3


async def test_watermarks_and_fetches_start_at_the_first_retained_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_log, "LONG_LOG", 4)
    transport = MemoryTransport(f"memory://trim-{uuid.uuid4().hex[:8]}")
    await transport.start()
    try:

        async def ignore(*_: object) -> None:
            pass

        tp = TopicPartition("orders", 0)
        await transport.send_many("orders", [(None, i, 0, None) for i in range(20)])
        transport.broker.existing_topic("orders").partition(0).set_floor("other", 6)
        assert transport.watermarks(tp) == (6, 20)
        consumer = transport.consumer("g", ["orders"], ignore, auto_offset_reset="earliest")
        await consumer.start()
        fetched = await consumer.getmany(0, 100)
        assert [row[2] for row in fetched[tp]] == list(range(6, 20))
        await consumer.stop()
    finally:
        await transport.stop()
