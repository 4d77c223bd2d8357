"""Send batches grouped by partition as columns: a plain sequence of records to any reader, appended whole
per partition by memory://."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rxstream.errors import ConfigurationError
from rxstream.transport.base import TopicPartition
from rxstream.transport.memory import MemoryTransport
from rxstream.transport.memory_log import PartitionLog, TopicLog
from rxstream.transport.routed import PartitionRecords, Routed
from tests.test_app import memory_url


def _part(partition: int, n: int, headers: dict[int, dict[str, str]] | None = None) -> PartitionRecords:
    return PartitionRecords(partition, [f"k{i}" for i in range(n)], list(range(n)), headers or {})


def test_a_grouped_batch_reads_as_its_records_partition_after_partition() -> None:
    first, second = _part(2, 3, {0: {"h": "a"}, 2: {"h": "c"}}), _part(0, 2)
    batch = Routed([first, _part(1, 0), second])
    expected = [
        ("k0", 0, 2, {"h": "a"}),
        ("k1", 1, 2, None),
        ("k2", 2, 2, {"h": "c"}),
        ("k0", 0, 0, None),
        ("k1", 1, 0, None),
    ]
    assert list(batch) == expected and len(batch) == 5 and batch[3] == expected[3]
    assert batch.parts == [first, second]  # a partition without records is left out
    assert first[-1] == expected[2] and first[1:] == expected[1:3] and list(second) == expected[3:]
    with pytest.raises(IndexError):
        first[3]


def test_a_partition_of_a_grouped_batch_is_appended_whole_with_the_headers_at_their_records() -> None:
    part = PartitionLog(TopicPartition("log", 0))
    part.extend_values(["before"], 1.0)
    part.extend(_part(0, 5, {1: {"h": "b"}, 3: {}, 4: {"h": "e"}}), 2.0)
    part.extend(_part(0, 2), 3.0)
    assert [(r[2], r[3], r[4], r[5], r[6]) for r in part.log] == [
        (0, 1.0, None, "before", None),
        (1, 2.0, "k0", 0, None),
        (2, 2.0, "k1", 1, {"h": "b"}),
        (3, 2.0, "k2", 2, None),  # empty headers are none
        (4, 2.0, "k3", 3, None),
        (5, 2.0, "k4", 4, {"h": "e"}),
        (6, 3.0, "k0", 0, None),
        (7, 3.0, "k1", 1, None),
    ]
    assert all(r[:2] == ("log", 0) and r[7:] == (None, None) for r in part.log)


def test_a_grouped_batch_for_a_missing_partition_routes_nothing() -> None:
    topic = TopicLog("log", 2, compacting=True)
    with pytest.raises(ConfigurationError, match="there is no partition 2"):
        topic.route(Routed([_part(1, 1), _part(2, 1)]))
    buckets, last = topic.route(Routed([_part(1, 2), _part(0, 1)]))
    assert [list(bucket) for bucket in buckets] == [
        [("k0", 0, 0, None)],
        [("k0", 0, 1, None), ("k1", 1, 1, None)],
    ]
    assert last == 0


async def _ignore(revoked: Sequence[TopicPartition], assigned: Sequence[TopicPartition]) -> None:
    """A rebalance listener that does nothing."""


async def test_memory_appends_a_grouped_batch_in_order_when_a_partition_has_room_for_part_of_it() -> None:
    transport = MemoryTransport(memory_url(), default_partitions=2, max_partition_backlog=3)
    await transport.start()
    try:
        consumer = transport.consumer("g", ["log"], _ignore)
        await consumer.start()
        batch = Routed([_part(0, 5, {0: {"h": "a"}, 4: {"h": "e"}}), _part(1, 2)])
        sending = asyncio.create_task(transport.send_many("log", batch))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not sending.done(), "partition 0 holds 3 of its 5 records until the group commits"
        await consumer.commit({TopicPartition("log", 0): 3})
        await asyncio.wait_for(sending, 5.0)
        log = transport.broker.existing_topic("log")
        assert [(r[2], r[4], r[6]) for r in log.partitions[0].log] == [(3, "k3", None), (4, "k4", {"h": "e"})]
        assert [(r[2], r[4], r[6]) for r in log.partitions[1].log] == [(0, "k0", None), (1, "k1", None)]
        assert transport.watermarks(TopicPartition("log", 0)) == (3, 5)
    finally:
        await transport.stop()
