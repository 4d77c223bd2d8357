"""Which member of a consumer group reads which partition numbers: balanced, sticky, and co-partitioned.

A table's partition p follows partition p of the topics its agents read (and of their repartition topics), so
every topic's partition p must go to the same member: the unit dealt is a partition number, not a topic
partition. Each member keeps the numbers it held up to its share (as Kafka's sticky assignor keeps topic
partitions), and the rest go to the members holding the fewest.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

__all__ = ["assign_numbers"]

M = TypeVar("M", bound=Hashable)


def assign_numbers(held: Mapping[M, Iterable[int]], numbers: Iterable[int]) -> dict[M, set[int]]:
    """Deal partition ``numbers`` to the members of ``held`` (member -> the numbers it holds now).

    Members are taken in the mapping's order where they tie, so every member computing it agrees.
    """
    members = list(held)
    target: dict[M, set[int]] = {member: set() for member in members}
    wanted = sorted(set(numbers))
    if not members:
        return target
    base, extra = divmod(len(wanted), len(members))
    owned = {member: set(held[member]).intersection(wanted) for member in members}
    by_owned = sorted(members, key=lambda member: -len(owned[member]))  # stable: ties keep their order
    share = {member: base + (1 if rank < extra else 0) for rank, member in enumerate(by_owned)}
    taken: set[int] = set()
    for member in by_owned:
        kept = sorted(owned[member] - taken)[: share[member]]
        target[member].update(kept)
        taken.update(kept)
    for number in wanted:
        if number not in taken:
            fewest = min(members, key=lambda member: len(target[member]) - share[member])
            target[fewest].add(number)
    return target
