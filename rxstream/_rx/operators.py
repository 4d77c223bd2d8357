"""One-to-one and side-effect operators over batches: map, filter, enumerate, side effects, rerouting."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import compress
from operator import length_hint
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from .._core.sift import sift
from .batch import Batch, failed
from .fencing import admitted
from .flow import Context, Operator
from .sink import subscribe_values


def batchwise(apply: Callable[[Batch], tuple[Batch | None, Exception | None]]) -> Operator:
    """An operator that transforms each batch synchronously; a failure emits what was done, then the error."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(batch: Batch) -> None:
                out, exc = apply(batch)
                if out is not None and out.values:
                    observer.on_next(out)
                if exc is not None:
                    observer.on_error(exc)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator


class _Serial:
    """One subscription of an async operator: the batches waiting and the one task working through them."""

    __slots__ = ("_ctx", "_done", "_observer", "_pending", "_process", "_stopped", "_worker")

    def __init__(
        self,
        observer: abc.ObserverBase[Batch],
        process: Callable[[Batch], Awaitable[tuple[Batch | None, Exception | None]]],
        ctx: Context,
    ) -> None:
        self._observer = observer
        self._process = process
        self._ctx = ctx
        self._pending: deque[Batch] = deque()
        self._done = False
        self._stopped = False
        self._worker: asyncio.Task[None] | None = None

    async def _drain(self) -> None:
        pending = self._pending
        flow = self._ctx.flow
        observer = self._observer
        try:
            while pending and not self._stopped:
                batch = await admitted(pending[0])  # batches wait here while a rebalance decides
                out, exc = await self._process(batch) if batch is not None else (None, None)
                pending.popleft()
                flow.inflight -= 1
                flow.release()
                if out is not None and out.values:
                    observer.on_next(out)
                if exc is not None:
                    self._stopped = True
                    observer.on_error(exc)
                    return
            if self._done and not self._stopped:
                observer.on_completed()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an operator's own failure still reaches the consumer
            observer.on_error(exc)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = self._ctx.loop.create_task(self._drain())

    def on_next(self, batch: Batch) -> None:
        self._pending.append(batch)
        self._ctx.flow.inflight += 1
        self._ensure_worker()

    def on_completed(self) -> None:
        self._done = True
        self._ensure_worker()

    def dispose(self) -> None:
        self._stopped = True
        if self._worker is not None:
            self._worker.cancel()
        self._ctx.flow.inflight -= len(self._pending)
        self._pending.clear()


def serial_async(
    process: Callable[[Batch], Awaitable[tuple[Batch | None, Exception | None]]], ctx: Context
) -> Operator:
    """An operator that transforms batches with a coroutine, one batch at a time, in order."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            serial = _Serial(observer, process, ctx)
            sub = source.subscribe(
                serial.on_next, observer.on_error, serial.on_completed, scheduler=scheduler
            )
            return CompositeDisposable(sub, Disposable(serial.dispose))

        return Observable(subscribe)

    return operator


def is_async(fun: Callable[..., Any]) -> bool:
    """Whether calling ``fun`` returns an awaitable we must await (an ``async def`` function)."""
    return inspect.iscoroutinefunction(fun) or inspect.iscoroutinefunction(type(fun).__call__)


async def _awaited(fun: Callable[[Any], Any], values: list[Any]) -> tuple[list[Any], Exception | None]:
    """``await fun(value)`` for each value in order: the results, up to a failure and the failure."""
    out: list[Any] = []
    append = out.append
    try:
        for value in values:
            append(await fun(value))
    except Exception as exc:
        return out, exc
    return out, None


def _called(fun: Callable[[Any], Any], values: list[Any]) -> tuple[list[Any], Exception | None]:
    """``fun(value)`` for each value in a C-level loop: the results up to a failure, and the failure."""
    out: list[Any] = []
    try:
        out.extend(map(fun, values))
    except Exception as exc:
        return out, exc
    return out, None


def _mapped(batch: Batch, out: list[Any], exc: Exception | None) -> tuple[Batch | None, Exception | None]:
    if exc is not None:
        return batch.head(len(out), out), failed(exc, batch, len(out), "map")
    return batch.derive(out), None


def map_values(fun: Callable[[Any], Any], ctx: Context) -> Operator:
    """Apply ``fun`` to every value, in order; ``fun`` may be ``async``."""
    if is_async(fun):

        async def process(batch: Batch) -> tuple[Batch | None, Exception | None]:
            return _mapped(batch, *await _awaited(fun, batch.values))

        return serial_async(process, ctx)
    return batchwise(lambda batch: _mapped(batch, *_called(fun, batch.values)))


def keep(batch: Batch, mask: list[Any], upto: int | None = None) -> Batch:
    """The values of the first ``upto`` (or all) whose mask is truthy; the others' references are
    acknowledged with the kept value before them, or at once when none precedes them (see `sift`)."""
    values = batch.values if upto is None else batch.values[:upto]
    refs = batch.refs
    if refs is None:
        return Batch(list(compress(values, mask)))
    refs = refs if upto is None else refs[:upto]
    acker = batch.acker
    if acker is None:
        return Batch(list(compress(values, mask)), list(compress(refs, mask)))
    kept, kept_acker = sift(refs, mask, acker)
    return Batch(list(compress(values, mask)), kept, kept_acker)


def _filtered(batch: Batch, mask: list[Any], exc: Exception | None) -> tuple[Batch | None, Exception | None]:
    if exc is not None:
        n = len(mask)
        return keep(batch, mask, n), failed(exc, batch, n, "filter")
    return keep(batch, mask), None


def _kept(fun: Callable[[Any], Any], batch: Batch) -> tuple[Batch | None, Exception | None]:
    """The values ``fun`` keeps: in one C-level pass when they carry no references, else through a mask."""
    values = batch.values
    if batch.refs is not None:
        return _filtered(batch, *_called(fun, values))
    out: list[Any] = []
    remaining = iter(values)
    try:
        out.extend(filter(fun, remaining))
    except Exception as exc:
        return Batch(out), failed(exc, batch, len(values) - length_hint(remaining) - 1, "filter")
    return Batch(out), None


def filter_values(fun: Callable[[Any], Any], ctx: Context) -> Operator:
    """Keep values for which ``fun`` is truthy; ``fun`` may be ``async``."""
    if is_async(fun):

        async def process(batch: Batch) -> tuple[Batch | None, Exception | None]:
            return _filtered(batch, *await _awaited(fun, batch.values))

        return serial_async(process, ctx)
    return batchwise(functools.partial(_kept, fun))


def transform(fun: Callable[[Batch], Batch]) -> Operator:
    """A one-to-one batch transformation that cannot fail on user code (items, events, enumerate)."""
    return batchwise(lambda batch: (fun(batch), None))


class _Numbering:
    """The running count of one subscription of enumerate."""

    __slots__ = ("_next",)

    def __init__(self, start: int) -> None:
        self._next = start

    def number(self, batch: Batch) -> Batch:
        first = self._next
        self._next = first + len(batch.values)
        return batch.derive(list(zip(range(first, self._next), batch.values, strict=True)))


def enumerate_values(start: int) -> Operator:
    """Pair each value with a running count."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def deferred(_: abc.SchedulerBase) -> Observable[Batch]:
            return source.pipe(transform(_Numbering(start).number))

        return reactivex.defer(deferred)

    return operator


def side_effect(fun: Callable[[Any], Any], ctx: Context, what: str) -> Operator:
    """Call ``fun`` with every value (awaiting it when it returns an awaitable) and pass the value on."""

    async def process(batch: Batch) -> tuple[Batch | None, Exception | None]:
        done = 0
        try:
            for value in batch.values:
                result = fun(value)
                if inspect.isawaitable(result):
                    await result
                done += 1
        except Exception as exc:
            return batch.head(done, batch.values[:done]), failed(exc, batch, done, what)
        return batch, None

    return serial_async(process, ctx)


def rerouted(forward: Operator, downstream: Observable[Batch]) -> Operator:
    """Send the source through ``forward`` (acknowledging each batch once forwarded) and emit ``downstream``.

    This is how a stream continues from a channel it writes to (``through``, group_by's repartitioning).
    """

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            inner = downstream.subscribe(observer, scheduler=scheduler)
            outer = subscribe_values(source.pipe(forward), None, observer.on_error, None)
            return CompositeDisposable(outer, inner)

        return Observable(subscribe)

    return operator
