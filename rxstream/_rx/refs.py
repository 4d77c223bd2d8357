"""References: what a value stands for (a message, an event, a group of inputs, an item of an inner stream)
and the acknowledgers that turn acknowledging a value into acknowledging what it came from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..events import (
    KEY,
    OFFSET,
    PARTITION,
    TOPIC,
    Acknowledger,
    Event,
    is_row,
)

if TYPE_CHECKING:
    from .batch import Batch


class Group:
    """The references of a value made of several inputs (a take batch, a join tuple)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Acknowledger | None, Any]]) -> None:
        self.pairs = pairs


class _GroupAcknowledger:
    """Acknowledges grouped references by handing each inner reference to its own acknowledger."""

    def ack(self, refs: Sequence[Any]) -> None:
        for group in refs:
            if group is not None:
                ack_pairs(group.pairs)

    def reject(self, ref: Any) -> None:
        for acker, inner in ref.pairs:
            if acker is not None:
                acker.reject(inner)


GROUP_ACKER = _GroupAcknowledger()


class _EventAcknowledger:
    """Acknowledges references that are themselves events (streams built from events)."""

    def ack(self, refs: Sequence[Any]) -> None:
        for event in refs:
            if event is not None:
                event.ack()

    def reject(self, ref: Any) -> None:
        ref.reject()


EVENT_ACKER = _EventAcknowledger()


class SharedRefs:
    """Acknowledges a flat_map's output, where the items of one input but the last carry a None reference."""

    __slots__ = ("acker",)

    def __init__(self, acker: Acknowledger) -> None:
        self.acker = acker

    def ack(self, refs: Sequence[Any]) -> None:
        owned = [ref for ref in refs if ref is not None]
        if owned:
            self.acker.ack(owned)

    def reject(self, ref: Any) -> None:
        self.acker.reject(ref)


def ack_pairs(pairs: Iterable[tuple[Acknowledger | None, Any]]) -> None:
    """Acknowledge (acknowledger, reference) pairs: one call per increasing run of one acknowledger.

    A run is also one partition, and ends where offsets stop increasing (a join pairs a message more than
    once), since acknowledgers read a run's first and last offsets to tell a contiguous range.
    """
    run: list[Any] = []
    current: tuple[Any, ...] = (None,)
    previous = -1
    for acker, ref in pairs:
        row = is_row(ref)
        where = (acker, ref[TOPIC], ref[PARTITION]) if row else (acker, None, None)
        offset = ref[OFFSET] if row else None
        rising = offset is None or offset > previous
        previous = offset if offset is not None else -1
        if where != current or not rising:
            if current[0] is not None and run:
                current[0].ack(run)
            run = []
            current = where
        run.append(ref)
    if current[0] is not None and run:
        current[0].ack(run)


def pairs_of(batch: Batch, start: int, stop: int) -> list[tuple[Acknowledger | None, Any]]:
    """The (acknowledger, reference) pairs of values ``start..stop`` of ``batch``."""
    refs = batch.refs
    if refs is None:
        return []
    if batch.acker is GROUP_ACKER:
        return [pair for group in refs[start:stop] if group is not None for pair in group.pairs]
    acker = batch.acker
    return [(acker, ref) for ref in refs[start:stop] if ref is not None]


def sources_of(ref: Any) -> list[Any]:
    """The references a value's reference stands for: its inputs' messages, through groups and expansions."""
    if ref is None:
        return []
    if isinstance(ref, Group):
        return [source for _, inner in ref.pairs for source in sources_of(inner)]
    if isinstance(ref, Item):
        return sources_of(ref.origin.ref)
    return [ref]


def describe_ref(ref: Any) -> str:
    """Name where a reference came from, for error messages."""
    if isinstance(ref, (Group, Item)):
        return ", ".join(map(describe_ref, sources_of(ref))) or "a derived value"
    if isinstance(ref, Event):
        ref = ref.message if ref.message is not None else ref
    if is_row(ref):
        return f"topic {ref[TOPIC]!r} partition {ref[PARTITION]} offset {ref[OFFSET]} key {ref[KEY]!r}"
    return repr(ref)


class Expanded:
    """An input expanded into an inner stream: acknowledged once it completed and all its items were."""

    __slots__ = ("acked", "acker", "completed", "emitted", "ref", "settled")

    def __init__(self, acker: Acknowledger, ref: Any) -> None:
        self.acker = acker
        self.ref = ref
        self.emitted = 0
        self.acked = 0
        self.completed = False
        self.settled = False

    def settle(self) -> None:
        if not self.settled and self.completed and self.acked >= self.emitted:
            self.settled = True
            self.acker.ack((self.ref,))


class Item:
    """One item of an inner stream, as a reference: acknowledging it counts once toward its origin."""

    __slots__ = ("acked", "origin")

    def __init__(self, origin: Expanded) -> None:
        self.origin = origin
        self.acked = False


class _ItemAcknowledger:
    """Acknowledges the items of inner streams (see `Expanded`)."""

    def ack(self, refs: Sequence[Any]) -> None:
        for item in refs:
            if not item.acked:
                item.acked = True
                item.origin.acked += 1
                item.origin.settle()

    def reject(self, ref: Any) -> None:
        origin = ref.origin
        if not origin.settled:
            origin.settled = True
            origin.acker.reject(origin.ref)


ITEM_ACKER = _ItemAcknowledger()
