"""Filtered batches: which references of dropped values are acknowledged, and when."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress

from ..events import Acknowledger
from .refs import Ref, SharedRefs
from .rows import Rows, same_message

__all__ = ["Sifted", "move_shared_refs", "shares_refs", "sift", "sift_at"]


def sift(
    refs: Sequence[Ref], mask: Sequence[object], acker: Acknowledger
) -> tuple[Sequence[Ref], Acknowledger]:
    """The references of the values whose mask is truthy, and the acknowledger of those.

    The references of the others are acknowledged at once when no kept value precedes them, else together
    with the kept value before them (see `Sifted`). Commits are the same as if all were acknowledged at
    once, as no commit can pass that kept value before it is done; and the acknowledgment of a batch stays
    one contiguous run. After a flat_map, a dropped last item's reference moves to the last kept item of the
    same input, so the input is acknowledged once that item is done.
    """
    if type(refs) is Rows:
        return sift_at(refs, list(compress(range(len(refs)), mask)), acker)
    kept = list(compress(refs, mask))
    if len(kept) == len(refs):
        return kept, acker
    return _sifted(refs, list(compress(range(len(refs)), mask)), kept, acker, mask)


def sift_at(
    refs: Sequence[Ref], positions: list[int], acker: Acknowledger
) -> tuple[Sequence[Ref], Acknowledger]:
    """`sift` of the references at ``positions`` (increasing indexes into ``refs``).

    Fetched messages held as columns (`Rows`) stay so: no message's row is built to be kept.
    """
    if type(refs) is Rows:
        if len(positions) == len(refs):
            return refs, acker
        return _sifted(refs, positions, refs.take(positions), acker, None)
    if len(positions) == len(refs):
        return list(refs), acker
    return _sifted(refs, positions, [refs[i] for i in positions], acker, None)


def _sifted(
    refs: Sequence[Ref],
    positions: list[int],
    kept: Sequence[Ref],
    acker: Acknowledger,
    mask: Sequence[object] | None,
) -> tuple[Sequence[Ref], Acknowledger]:
    """`sift` once some references are known to be dropped (``mask``: built from ``positions`` if None)."""
    if not positions:
        acker.ack(refs)
        return kept, acker
    moved = None
    if shares_refs(acker):
        if mask is None:
            mask = [False] * len(refs)
            for i in positions:
                mask[i] = True
        kept = list(kept)
        moved = move_shared_refs(refs, mask, kept)
    first, last = positions[0], positions[-1]
    if first:
        acker.ack(refs[:first])
    if last + 1 < len(refs):
        tail = refs[last + 1 :]
        acker.ack([ref for i, ref in enumerate(tail, last + 1) if i not in moved] if moved else tail)
    if last - first + 1 == len(positions):  # nothing dropped between kept values
        return kept, acker
    return kept, Sifted(acker, refs, positions, kept, moved or set())


def shares_refs(acker: Acknowledger) -> bool:
    """Whether a batch acknowledged by ``acker`` has values sharing one reference (a flat_map's items)."""
    return isinstance(acker, SharedRefs) or (isinstance(acker, Sifted) and acker.shared)


def move_shared_refs(refs: Sequence[Ref], mask: Sequence[object], kept: list[Ref]) -> set[int]:
    """Give an input's last kept item the reference its dropped last item carried; the moved positions.

    A flat_map's items of one input carry None but the last, which carries the input's reference.
    """
    moved: set[int] = set()
    pending: int | None = None  # the kept index of the current input's latest kept item
    kept_index = 0
    for i, (ref, keep) in enumerate(zip(refs, mask, strict=False)):
        if keep:
            pending = kept_index if ref is None else None
            kept_index += 1
        elif ref is not None:
            if pending is not None:
                kept[pending] = ref
                moved.add(i)
            pending = None
    return moved


class Sifted:
    """Acknowledges a filtered batch: a run of kept values also acknowledges the dropped ones after it.

    Runs come in order (the consumer acknowledges a prefix, operators pass increasing runs), so the batch's
    references up to the next kept value are acknowledged as one contiguous slice. Any other
    acknowledgment releases every dropped reference at once, as an unfiltered batch would have.
    """

    __slots__ = ("acker", "done", "kept", "moved", "next", "positions", "refs", "released", "shared")

    def __init__(
        self,
        acker: Acknowledger,
        refs: Sequence[Ref],
        positions: list[int],
        kept: Sequence[Ref],
        moved: set[int],
    ) -> None:
        self.acker = acker
        self.refs = refs
        self.positions = positions
        """Where each kept value sits among ``refs``."""
        self.kept = kept
        """The kept values' references (the batch's ``refs``)."""
        self.moved = moved
        """Positions of dropped references that a kept value carries now."""
        self.shared = shares_refs(acker)
        self.done = positions[0]
        """``refs[:done]`` are acknowledged."""
        self.next = 0
        """How many kept values a run acknowledged so far."""
        self.released = False

    def ack(self, refs: Sequence[Ref]) -> None:
        n = len(refs)
        if not n:
            return
        kept, k = self.kept, self.next
        if k + n <= len(kept) and same_message(refs, 0, kept, k) and same_message(refs, -1, kept, k + n - 1):
            self.next = k + n
        elif n <= len(kept) and same_message(refs, 0, kept, 0) and same_message(refs, -1, kept, n - 1):
            self.next = max(k, n)
        else:
            if not self.released:
                self.released = True
                skip = self.moved.union(self.positions)
                original = self.refs
                dropped = [original[i] for i in range(self.done, self.positions[-1]) if i not in skip]
                if dropped:
                    self.acker.ack(dropped)
            self.acker.ack(refs)
            return
        m = self.next
        positions = self.positions
        stop = positions[m] if m < len(positions) else len(self.refs)  # the tail: a moved reference
        if stop > self.done:
            self.acker.ack(self.refs[self.done : stop])
            self.done = stop

    def reject(self, ref: Ref) -> None:
        self.acker.reject(ref)
