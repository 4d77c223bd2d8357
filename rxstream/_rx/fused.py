"""A plain map followed by a plain filter, fused into one pass over each batch.

Apart, each operator calls the user's function from a C-level loop (``map()``), a call that costs CPython 3.11
more than a call from Python code; fused, one Python loop calls both functions per value and builds one
batch. What a failure leaves is the same: the values before the failing one go on (acknowledged as the
filter would), then the error, naming the operator and the value it raised on. Only the order of calls
differs: per value (map, then filter) instead of the map over the whole batch first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reactivex import Observable

from .._core.sift import sift_at
from .batch import Batch, failed
from .flow import Context, Operator
from .operators import batchwise, filter_values, is_async, map_values
from .unapplied import Unapplied, filter_failed, map_failed

Step = Callable[[Context], Operator]


def mapping(fun: Callable[[Any], Any]) -> Step:
    """The step of ``map(fun)``; a plain function's may fuse with a filter after it (see `piped`)."""

    def step(ctx: Context) -> Operator:
        return map_values(fun, ctx)

    if not is_async(fun):
        step.maps = fun  # type: ignore[attr-defined]
    return step


def keeping(fun: Callable[[Any], Any]) -> Step:
    """The step of ``filter(fun)``; a plain function's may fuse with a map before it (see `piped`)."""

    def step(ctx: Context) -> Operator:
        return filter_values(fun, ctx)

    if not is_async(fun):
        step.keeps = fun  # type: ignore[attr-defined]
    return step


def piped(
    observable: Observable[Batch], steps: Iterable[Step], ctx: Context, *, iterated: bool = False
) -> Observable[Batch]:
    """``observable`` through each step's operator in order, a plain map and the plain filter after it
    as one operator.

    ``iterated``: `iterate` reads the result, so a map and filter ending the chain leave plain batches to it
    (see `Unapplied`).
    """
    steps = list(steps)
    last = len(steps) - 1
    pending: Callable[[Any], Any] | None = None  # a plain map's function, until the next step is known
    for at, step in enumerate(steps):
        keeps = getattr(step, "keeps", None)
        if pending is not None:
            if keeps is not None:
                observable = observable.pipe(map_filter(pending, keeps, unapplied=iterated and at == last))
                pending = None
                continue
            observable = observable.pipe(map_values(pending, ctx))
        pending = getattr(step, "maps", None)
        if pending is None:
            observable = observable.pipe(step(ctx))
    if pending is not None:
        observable = observable.pipe(map_values(pending, ctx))
    return observable


def map_filter(
    fun: Callable[[Any], Any], keeps: Callable[[Any], Any], *, unapplied: bool = False
) -> Operator:
    """``map(fun)`` then ``filter(keeps)``, both plain functions, in one pass over each batch.

    ``unapplied``: batches of plain values go on as they are, for the consumer to apply both functions.
    """

    def apply(batch: Batch) -> tuple[Batch | None, Exception | None]:
        if batch.refs is None:
            if unapplied:
                return Unapplied(batch.values, fun, keeps), None
            return _plain(fun, keeps, batch)
        return _referenced(fun, keeps, batch)

    return batchwise(apply)


def _plain(
    fun: Callable[[Any], Any], keeps: Callable[[Any], Any], batch: Batch
) -> tuple[Batch | None, Exception | None]:
    """Values without references: the kept results only."""
    out: list[Any] = []
    append = out.append
    remaining = iter(batch.values)
    y = None
    try:
        for x in remaining:
            try:
                y = fun(x)
            except Exception as exc:
                return Batch(out), map_failed(exc, batch, remaining)
            if keeps(y):
                append(y)
    except Exception as exc:
        return Batch(out), filter_failed(exc, y)
    return Batch(out), None


def _referenced(
    fun: Callable[[Any], Any], keeps: Callable[[Any], Any], batch: Batch
) -> tuple[Batch | None, Exception | None]:
    """Values with references: the kept results, their references, and the dropped ones acknowledged."""
    values = batch.values
    out: list[Any] = []
    positions: list[int] = []
    append = out.append
    kept = positions.append
    i = 0
    y = None
    try:
        for i, x in enumerate(values):
            try:
                y = fun(x)
            except Exception as exc:
                return _kept_at(batch, out, positions, i), failed(exc, batch, i, "map")
            if keeps(y):
                append(y)
                kept(i)
    except Exception as exc:
        refs = batch.refs
        assert refs is not None
        where = Batch([y], refs[i:], batch.acker)  # the mapped value the filter raised on, and its reference
        return _kept_at(batch, out, positions, i), failed(exc, where, 0, "filter")
    return _kept_at(batch, out, positions), None


def _kept_at(batch: Batch, values: list[Any], positions: list[int], upto: int | None = None) -> Batch:
    """``values``, kept at ``positions`` of the first ``upto`` (or all) of the batch's references."""
    refs = batch.refs
    assert refs is not None
    if upto is not None:
        refs = refs[:upto]
    acker = batch.acker
    if acker is None:
        return Batch(values, [refs[i] for i in positions])
    kept, kept_acker = sift_at(refs, positions, acker)
    return Batch(values, kept, kept_acker)
