"""The memory transport's partitioned log on its own: routing, offsets, room for senders and trimming."""

from __future__ import annotations

from typing import Any

import pytest

from rxstream.errors import ConfigurationError
from rxstream.transport.base import TopicPartition
from rxstream.transport.memory_log import PartitionLog, Record, TopicLog
from rxstream.transport.partitioner import partition_for


@pytest.mark.parametrize(
    ("records", "buckets"),
    [
        ([(None, "a", None, None), (None, "b", None, None), (None, "c", None, None)], [["a"], ["b"], ["c"]]),
        ([(None, "a", 2, None), (None, "b", 2, None)], [[], [], ["a", "b"]]),
        ([("k", "a", None, None), ("k", "b", None, None)], "by-key"),
        ([(None, "a", 1, None), (None, "b", None, None)], [["b"], ["a"], []]),
    ],
    ids=["round-robin", "explicit", "keyed", "mixed"],
)
def test_records_go_to_their_partition_explicit_then_by_key_then_round_robin(
    records: list[Record], buckets: list[list[Any]] | str
) -> None:
    topic = TopicLog("orders", 3, compacting=False)
    routed, _ = topic.route(records)
    if buckets == "by-key":
        buckets = [["a", "b"] if i == partition_for("k", 3) else [] for i in range(3)]
    assert [[value for _, value, _, _ in bucket] for bucket in routed] == buckets


def test_a_record_for_a_missing_partition_routes_nothing() -> None:
    topic = TopicLog("orders", 2, compacting=False)
    with pytest.raises(ConfigurationError, match="there is no partition 5"):
        topic.route([(None, "a", None, None), (None, "b", 5, None)])
    assert topic.next_rr == 0


@pytest.mark.parametrize(
    ("floors", "appended", "room", "base"),
    [
        ({}, 10, None, 0),
        ({"g": 0}, 10, 90, 0),
        ({"g": 4}, 10, 94, 4),
        ({"h": 2, "g": 4}, 10, 92, 2),
    ],
    ids=["no-group", "from-start", "committed", "slowest-group"],
)
def test_room_counts_from_the_slowest_group_and_what_all_groups_passed_is_trimmed(
    floors: dict[str, int], appended: int, room: int | None, base: int
) -> None:
    part = PartitionLog(TopicPartition("orders", 0))
    part.extend_values(list(range(appended)), 0.0)
    for group, offset in floors.items():
        part.set_floor(group, offset)
    assert part.end == appended and part.base == base
    assert [row[2] for row in part.log] == list(range(base, appended))
    if room is None:
        assert part.room(100) > 10**9
    else:
        assert part.room(100) == room
