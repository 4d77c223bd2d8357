"""Batch: values in order with the references they came from, and where a stream failed."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any

from .._core.fence import GroupLeases
from .._core.refs import GROUP_ACKER, Group, Item, Pair, Ref, Source, describe_ref, last_source
from .._core.rows import Rows
from ..events import (
    KEY,
    TIMESTAMP,
    Acknowledger,
    Event,
    Message,
)

BATCH_SIZE = 1024
"""How many values a source puts in one batch."""

ACK_EVERY = 256
"""How many values of a batch a consumer goes through between acknowledgments (so commits move on even
while a slow consumer is inside a large batch)."""


class Batch:
    """Values in order, with the reference each came from (a `Ref`) and the acknowledger of those refs.

    ``refs`` holds `Ref` values (a subscription's batches hold only the `Row` tuples it delivered).
    """

    __slots__ = ("acker", "refs", "values")

    def __init__(
        self, values: list[Any], refs: Sequence[Ref] | None = None, acker: Acknowledger | None = None
    ) -> None:
        self.values = values
        self.refs = refs
        self.acker = acker

    def derive(self, values: list[Any]) -> Batch:
        """The same references carrying new values (a one-to-one transformation)."""
        return Batch(values, self.refs, self.acker)

    def head(self, n: int, values: list[Any]) -> Batch:
        """The first ``n`` references carrying ``values`` (what was transformed before a failure)."""
        return Batch(values, self.refs[:n] if self.refs is not None else None, self.acker)

    def ack_first(self, n: int) -> None:
        """Acknowledge the references of the first ``n`` values."""
        self.ack_range(0, n)

    def ack_range(self, start: int, stop: int) -> None:
        """Acknowledge the references of values ``start..stop-1`` (after those before ``start`` were)."""
        refs = self.refs
        if stop > start and refs is not None and self.acker is not None:
            self.acker.ack(refs if start == 0 and stop >= len(refs) else refs[start:stop])

    def pairs(self, start: int, stop: int) -> list[Pair]:
        """The (acknowledger, reference) pairs of values ``start..stop``; a group's stand for its inputs."""
        refs = self.refs
        if refs is None:
            return []
        if self.acker is GROUP_ACKER or type(self.acker) is GroupLeases:
            return [pair for group in refs[start:stop] if isinstance(group, Group) for pair in group.pairs]
        acker = self.acker
        return [(acker, ref) for ref in refs[start:stop] if ref is not None]

    def ref_at(self, i: int) -> Ref:
        """The reference of value ``i``; values that share a reference point at the next one that has it."""
        refs = self.refs
        if refs is None:
            return None
        if type(refs) is Rows:  # one message per value
            return refs[i] if i < len(refs) else None
        if i < len(refs) and refs[i] is not None:
            return refs[i]  # the common case in O(1): islice below skips its first i items one by one
        for ref in islice(refs, i, None):
            if ref is not None:
                return ref
        return None

    def event_at(self, i: int) -> Event:
        """Materialise the event of value ``i``."""
        value = self.values[i]
        if type(self.refs) is Rows:  # a reader of events reads them all: the fetch's rows, built at once
            self.refs = self.refs.listed()
        ref = self.ref_at(i)
        match ref:
            case tuple() | Event():
                return _event_of(value, ref, self.acker, ref)
            case Group() if ref.pairs:
                return _event_of(value, last_source(ref), GROUP_ACKER, ref)  # the metadata of the last input
            case Item():
                return Event(value=value, acker=self.acker, ref=ref)
            case _:
                return Event(value=value)

    def key_at(self, i: int) -> Any:
        """The message key of value ``i`` (None when it has no message)."""
        refs = self.refs
        if type(refs) is Rows:  # one message per value: the key is in the fetch's columns
            return refs.key_at(i) if i < len(refs) else None
        return _key_of(self.ref_at(i))

    def keys(self) -> list[Any]:
        """The message key of every value, in order."""
        refs = self.refs
        if type(refs) is Rows:
            return refs.keys()
        return list(map(self.key_at, range(len(self.values))))

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"<Batch of {len(self.values)}>"


def _event_of(value: Any, source: Source | None, acker: Acknowledger | None, ref: Ref) -> Event:
    """An event of ``value`` with the metadata of the record or event it came from."""
    match source:
        case tuple():
            message = Message.of(source)
            return Event(
                message.key, value, message.headers, message, source[TIMESTAMP], acker=acker, ref=ref
            )
        case Event():
            return Event(
                source.key, value, source.headers, source.message, source.timestamp, acker=acker, ref=ref
            )
        case None:
            return Event(value=value, acker=acker, ref=ref)


def _key_of(ref: Ref) -> Any:
    """The key of the record or event a reference stands for (a group's: its last input's)."""
    match ref:
        case tuple():
            return ref[KEY]
        case Event():
            return ref.key
        case Group():
            return _key_of(last_source(ref))
        case _:
            return None


class Failure:
    """Where a stream failed: the exception and the reference of the value being processed."""

    __slots__ = ("acker", "ref")

    def __init__(self, acker: Acknowledger | None, ref: Ref) -> None:
        self.acker = acker
        self.ref = ref


def failed(exc: Exception, batch: Batch, index: int, what: str) -> Exception:
    """Annotate ``exc`` with the value and message it failed on, so the error names what was wrong."""
    value = batch.values[index] if index < len(batch.values) else None
    ref = batch.ref_at(index)
    where = f" ({describe_ref(ref)})" if ref is not None else ""
    exc.add_note(f"rxstream: {what} raised on value {value!r}{where}")
    if not hasattr(exc, "__rxstream_failure__"):
        exc.__rxstream_failure__ = Failure(batch.acker, ref)  # type: ignore[attr-defined]
    return exc


def failure_of(exc: BaseException) -> Failure | None:
    """The reference a stream failed on, if the failure happened inside an operator."""
    return getattr(exc, "__rxstream_failure__", None)
