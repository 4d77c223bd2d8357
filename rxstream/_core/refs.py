"""References: what a value stands for (a message, an event, a group of inputs, an item of an inner stream)
and the acknowledgers that turn acknowledging a value into acknowledging what it came from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

from ..events import KEY, OFFSET, PARTITION, TOPIC, Acknowledger, Event, Row

__all__ = [
    "EVENT_ACKER",
    "GROUP_ACKER",
    "ITEM_ACKER",
    "Expanded",
    "Group",
    "Item",
    "Pair",
    "Ref",
    "SharedRefs",
    "Source",
    "ack_pairs",
    "describe_ref",
    "last_source",
    "sources_of",
]


class Group:
    """The references of a value made of several inputs (a take batch, a join tuple, a pipe's output)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[Pair]) -> None:
        self.pairs = pairs


class Expanded:
    """An input expanded into an inner stream: acknowledged once it completed and all its items were."""

    __slots__ = ("acked", "acker", "completed", "emitted", "ref", "settled")

    def __init__(self, acker: Acknowledger, ref: Ref, emitted: int = 0, completed: bool = False) -> None:
        self.acker = acker
        self.ref = ref
        self.emitted = emitted
        self.acked = 0
        self.completed = completed
        self.settled = False

    def emit(self, n: int) -> None:
        """Count ``n`` more items of the inner stream."""
        self.emitted += n

    def complete(self) -> None:
        """The inner stream completed: the input is acknowledged once its items are."""
        self.completed = True
        self.settle()

    def settle(self) -> None:
        """Acknowledge the input if its inner stream completed and each of its items was acknowledged."""
        if not self.settled and self.completed and self.acked >= self.emitted:
            self.settled = True
            self.acker.ack((self.ref,))


class Item:
    """One item of an inner stream, as a reference: acknowledging it counts once toward its origin."""

    __slots__ = ("acked", "origin")

    def __init__(self, origin: Expanded) -> None:
        self.origin = origin
        self.acked = False


Ref: TypeAlias = Row | Event | Group | Item | None
"""What a value stands for: a delivered record, an event, a group of inputs, an inner stream's item, or
nothing (a value made here, or an item sharing the reference of a later one)."""

Pair: TypeAlias = tuple[Acknowledger | None, Ref]
"""A reference with the acknowledger it goes back to."""

Source: TypeAlias = Row | Event
"""What references finally stand for: the records and events that came in."""


class _GroupAcknowledger:
    """Acknowledges grouped references by handing each inner reference to its own acknowledger."""

    def ack(self, refs: Sequence[Group | None]) -> None:
        for group in refs:
            if group is not None:
                ack_pairs(group.pairs)

    def reject(self, ref: Group) -> None:
        for acker, inner in ref.pairs:
            if acker is not None:
                acker.reject(inner)


GROUP_ACKER = _GroupAcknowledger()


class _EventAcknowledger:
    """Acknowledges references that are themselves events (streams built from events)."""

    def ack(self, refs: Sequence[Event | None]) -> None:
        for event in refs:
            if event is not None:
                event.ack()

    def reject(self, ref: Event) -> None:
        ref.reject()


EVENT_ACKER = _EventAcknowledger()


class _ItemAcknowledger:
    """Acknowledges the items of inner streams (see `Expanded`)."""

    def ack(self, refs: Sequence[Item]) -> None:
        for item in refs:
            if not item.acked:
                item.acked = True
                item.origin.acked += 1
                item.origin.settle()

    def reject(self, ref: Item) -> None:
        origin = ref.origin
        if not origin.settled:
            origin.settled = True
            origin.acker.reject(origin.ref)


ITEM_ACKER = _ItemAcknowledger()


class SharedRefs:
    """Acknowledges a flat_map's output, where the items of one input but the last carry a None reference."""

    __slots__ = ("acker",)

    def __init__(self, acker: Acknowledger) -> None:
        self.acker = acker

    def ack(self, refs: Sequence[Ref]) -> None:
        owned = [ref for ref in refs if ref is not None]
        if owned:
            self.acker.ack(owned)

    def reject(self, ref: Ref) -> None:
        self.acker.reject(ref)


def ack_pairs(pairs: Iterable[Pair]) -> None:
    """Acknowledge (acknowledger, reference) pairs: one call per increasing run of one acknowledger.

    A run is also one partition, and ends where offsets stop increasing (a join pairs a message more than
    once), since acknowledgers read a run's first and last offsets to tell a contiguous range.
    """
    run: list[Ref] = []
    current: tuple[Acknowledger | None, str | None, int | None] = (None, None, None)
    where: tuple[Acknowledger | None, str | None, int | None]
    previous = -1
    for acker, ref in pairs:
        if isinstance(ref, tuple):
            where = (acker, ref[TOPIC], ref[PARTITION])
            offset = ref[OFFSET]
            rising = offset > previous
            previous = offset
        else:
            where = (acker, None, None)
            rising = True
            previous = -1
        if where != current or not rising:
            if current[0] is not None and run:
                current[0].ack(run)
            run = []
            current = where
        run.append(ref)
    if current[0] is not None and run:
        current[0].ack(run)


def sources_of(ref: Ref) -> list[Source]:
    """The records and events (`Source`) a value's reference stands for, through groups and expansions."""
    match ref:
        case None:
            return []
        case Group():
            return [source for _, inner in ref.pairs for source in sources_of(inner)]
        case Item():
            return sources_of(ref.origin.ref)
        case _:
            return [ref]


def last_source(ref: Ref) -> Source | None:
    """The last record or event a reference stands for: a grouped value takes its last input's metadata."""
    sources: list[Source] = sources_of(ref)
    return sources[-1] if sources else None


def describe_ref(ref: Ref) -> str:
    """Name where a reference came from, for error messages."""
    match ref:
        case Group() | Item():
            return ", ".join(map(describe_ref, sources_of(ref))) or "a derived value"
        case Event(message=tuple() as row):
            return _describe_row(row)
        case Event() | None:
            return repr(ref)
        case _:
            return _describe_row(ref)


def _describe_row(row: Row) -> str:
    return f"topic {row[TOPIC]!r} partition {row[PARTITION]} offset {row[OFFSET]} key {row[KEY]!r}"
