"""flat_map: each value replaced by the items of an iterable, async iterable or stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops

from .._core.fence import GroupLeases, leases_of
from .._core.refs import ITEM_ACKER, Expanded, Group, Item, Ref, SharedRefs
from .._core.sift import shares_refs
from ..events import (
    Acknowledger,
)
from .batch import Batch, failed
from .fencing import fenced
from .flow import Operator


def unshared(batch: Batch) -> Batch:
    """A flat_map's batch whose items each stand for their input, for operators that split it apart.

    The items of one input carry None but the last, so acknowledging that last item would acknowledge the
    input while its other items, routed elsewhere, are pending; here the input counts its items instead.
    """
    refs = batch.refs
    acker = batch.acker
    if refs is None or acker is None:
        return batch
    groups: list[Ref] = []
    start = 0
    for i, ref in enumerate(refs):
        if ref is None:
            continue
        if i == start:
            groups.append(Group([(acker, ref)]))
        else:
            expanded = Expanded(acker, ref, emitted=i - start + 1, completed=True)
            groups.extend(Group([(ITEM_ACKER, Item(expanded))]) for _ in range(i - start + 1))
        start = i + 1
    groups.extend(Group([]) for _ in range(len(refs) - start))  # items whose input is in a later batch
    return Batch(batch.values, groups, GroupLeases(leases_of(acker)))


def _carrying(inner: Observable[Batch], acker: Acknowledger, ref: Ref) -> Observable[Batch]:
    """An inner stream's batches whose items also stand for the input they came from."""

    def subscribe(observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None) -> Any:
        origin = Expanded(acker, ref)
        leases = frozenset(leases_of(acker))

        def on_next(batch: Batch) -> None:
            n = len(batch.values)
            origin.emit(n)
            groups: list[Ref] = [
                Group([*batch.pairs(i, i + 1), (ITEM_ACKER, Item(origin))]) for i in range(n)
            ]
            inner = leases_of(batch.acker)
            held = GroupLeases(leases.union(inner) if inner else leases)
            observer.on_next(Batch(batch.values, groups, held))

        def on_completed() -> None:
            origin.complete()
            observer.on_completed()

        return inner.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)

    return Observable(subscribe)


def flat_map_values(
    fun: Callable[[Any], Any], inner_of: Callable[[Any], Observable[Batch] | None]
) -> Operator:
    """Replace each value by the items of ``fun(value)``.

    ``inner_of`` turns a result into an observable of batches, or None for a plain iterable, which expands
    in place (an input is acknowledged with its last item). Observables are merged as they produce, and an
    input is acknowledged when its inner stream completed and each of its items was acknowledged. Items
    of inner streams, which come at any time, meet the fence again (`fenced`).
    """
    fence = fenced()

    def expand(batch: Batch) -> Observable[Batch]:
        parts: list[Observable[Batch]] = []
        values: list[Any] = []
        refs: list[Ref] | None = [] if batch.refs is not None else None
        acker = batch.acker
        shared = False
        moves = acker is not None and shares_refs(acker)
        open_item: int | None = None  # where the current input's latest item (not its last) went in refs
        error: Exception | None = None
        for i, value in enumerate(batch.values):
            ref: Ref = batch.refs[i] if batch.refs is not None else None
            try:
                result = fun(value)
                inner = inner_of(result)
                items = list(result) if inner is None else None
            except Exception as exc:
                error = failed(exc, batch, i, "flat_map")
                break
            if items is not None:
                values.extend(items)
                if refs is not None:
                    if items:
                        if len(items) > 1:
                            refs.extend([None] * (len(items) - 1))
                            shared = True
                        refs.append(ref)
                        open_item = len(refs) - 1 if ref is None else None
                    elif ref is not None and moves and open_item is not None:
                        # the last item of an earlier flat_map's input expands to nothing: the input is
                        # done with its latest item here, which carries its reference now
                        refs[open_item] = ref
                        open_item = None
                    elif ref is not None and acker is not None:
                        acker.ack((ref,))
            elif inner is not None:
                if ref is not None and acker is not None:
                    inner = _carrying(inner, acker, ref)
                parts.append(inner)
        if values:
            if shared and acker is not None:
                acker = SharedRefs(acker)
            parts.insert(0, reactivex.just(Batch(values, refs, acker)))
        if error is not None:
            parts.append(reactivex.throw(error))
        return reactivex.merge(*parts)

    return lambda source: fence(source.pipe(ops.flat_map(expand)))
