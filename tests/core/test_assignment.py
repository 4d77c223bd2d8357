"""assign_numbers: balanced, sticky, and dealing partition numbers (every topic's partition p together)."""

from __future__ import annotations

import pytest

from rxstream._core.assignment import assign_numbers


@pytest.mark.parametrize(
    ("held", "numbers", "expected"),
    [
        ({"a": []}, range(4), {"a": {0, 1, 2, 3}}),
        ({"a": [0, 1, 2, 3], "b": []}, range(4), {"a": {0, 1}, "b": {2, 3}}),  # a keeps half, b gets the rest
        ({"a": [0, 1], "b": [2, 3], "c": []}, range(4), {"a": {0, 1}, "b": {2}, "c": {3}}),
        ({"a": [0, 1, 2, 3, 4, 5], "b": []}, range(6), {"a": {0, 1, 2}, "b": {3, 4, 5}}),
        ({"a": [1, 3], "b": [0, 2]}, range(4), {"a": {1, 3}, "b": {0, 2}}),  # nothing moves when balanced
        ({"a": [0, 1, 2], "b": [3]}, range(4), {"a": {0, 1}, "b": {2, 3}}),  # the larger holder gives one up
        ({"a": [0, 1], "b": [0, 1]}, range(4), {"a": {0, 1}, "b": {2, 3}}),  # a number is held once
        ({"a": [7], "b": []}, range(2), {"a": {0}, "b": {1}}),  # numbers that are gone are dropped
        ({}, range(3), {}),
    ],
)
def test_numbers_are_dealt_balanced_and_sticky(
    held: dict[str, list[int]], numbers: range, expected: dict[str, set[int]]
) -> None:
    assert assign_numbers(held, numbers) == expected


def test_every_number_goes_to_exactly_one_member_whatever_was_held() -> None:
    held = {"a": [0, 5, 9], "b": [1, 2], "c": [], "d": [3, 4, 6, 7, 8]}
    out = assign_numbers(held, range(10))
    assert sorted(n for numbers in out.values() for n in numbers) == list(range(10))
    assert sorted(len(numbers) for numbers in out.values()) == [2, 2, 3, 3]


def test_the_kafka_assignor_deals_partition_numbers_stickily_from_what_members_say_they_hold() -> None:
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

    from rxstream.transport.kafka_assignor import CopartitionedAssignor

    class Cluster:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(4))

    old, new = CopartitionedAssignor.for_member(), CopartitionedAssignor.for_member()
    old.held = frozenset({0, 1, 2, 3})
    members = {
        "m-old": old.metadata(["clicks", "views"]),
        "m-new": new.metadata(["clicks", "views"]),
    }
    assert isinstance(members["m-old"], ConsumerProtocolMemberMetadata)
    out = old.assign(Cluster(), members)
    for member in members:
        by_topic = dict(out[member].assignment)
        assert by_topic["clicks"] == by_topic["views"]  # partition p of both topics together
    assert dict(out["m-old"].assignment)["clicks"] == [0, 1]  # it keeps half of what it held
    new.on_assignment(out["m-new"])
    assert new.held == {2, 3} and old.held == {0, 1, 2, 3}  # each consumer's class remembers its own
