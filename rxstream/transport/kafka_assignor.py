"""The Kafka consumer group's assignor: partition p of every topic to one member, sticky, balanced.

Tables follow the partition numbers of the topics an app reads, so aiokafka's own assignors (which deal
topic partitions one by one) would split a table partition between workers. Each member tells the others,
in its subscription's user data, the partition numbers it holds; every member computes the same
`rxstream._core.assignment.assign_numbers` from them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.coordinator.assignors.abstract import (  # type: ignore[import-untyped,unused-ignore]
    AbstractPartitionAssignor,
)
from aiokafka.coordinator.protocol import (  # type: ignore[import-untyped,unused-ignore]
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from .._core.assignment import assign_numbers

__all__ = ["CopartitionedAssignor"]


class CopartitionedAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Deals partition numbers, not topic partitions; a consumer uses a class of its own (`for_member`)."""

    name = "rxstream-copartitioned"
    version = 0
    held: frozenset[int] = frozenset()
    """The partition numbers this consumer was assigned last (sent with its subscription)."""

    @classmethod
    def for_member(cls) -> type[CopartitionedAssignor]:
        """An assignor class of one consumer's own, remembering what that consumer holds."""
        return type(cls.__name__, (cls,), {"held": frozenset()})

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> Any:
        held = json.dumps(sorted(cls.held)).encode()
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), held)

    @classmethod
    def assign(cls, cluster: Any, members: Mapping[str, Any]) -> dict[str, Any]:
        ids = sorted(members)
        topics = sorted({topic for m in ids for topic in members[m].subscription})
        every = [(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
        numbers = assign_numbers({m: _held(members[m].user_data) for m in ids}, (p for _, p in every))
        dealt: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in ids}
        for topic, partition in every:
            takers = [m for m in ids if topic in members[m].subscription]
            owner = next((m for m in takers if partition in numbers[m]), None)
            if owner is None and takers:  # a member not subscribed to this topic got the number
                owner = min(takers, key=lambda m: sum(map(len, dealt[m].values())))
            if owner is not None:
                dealt[owner][topic].append(partition)
        return {
            m: ConsumerProtocolMemberAssignment(cls.version, sorted(dealt[m].items()), b"") for m in ids
        }

    @classmethod
    def on_assignment(cls, assignment: Any) -> None:
        cls.held = frozenset(partition for _, partitions in assignment.assignment for partition in partitions)


def _held(user_data: bytes | None) -> list[int]:
    """The partition numbers a member says it holds (none when it says nothing readable)."""
    try:
        numbers = json.loads(user_data or b"[]")
    except ValueError:
        return []
    return [n for n in numbers if isinstance(n, int)] if isinstance(numbers, list) else []
