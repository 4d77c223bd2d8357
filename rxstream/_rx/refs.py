"""References of a batch's values, with the acknowledgers they go back to (see `rxstream._core.refs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.refs import (
    EVENT_ACKER,
    GROUP_ACKER,
    ITEM_ACKER,
    Expanded,
    Group,
    Item,
    Pair,
    Ref,
    SharedRefs,
    Source,
    ack_pairs,
    describe_ref,
    last_source,
    sources_of,
)

if TYPE_CHECKING:
    from .batch import Batch

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
    "pairs_of",
    "sources_of",
]


def pairs_of(batch: Batch, start: int, stop: int) -> list[Pair]:
    """The (acknowledger, reference) pairs of values ``start..stop`` of ``batch``."""
    refs = batch.refs
    if refs is None:
        return []
    if batch.acker is GROUP_ACKER:
        return [pair for group in refs[start:stop] if isinstance(group, Group) for pair in group.pairs]
    acker = batch.acker
    return [(acker, ref) for ref in refs[start:stop] if ref is not None]
