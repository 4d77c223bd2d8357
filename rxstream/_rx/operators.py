"""One-to-one and side-effect operators over batches: map, filter, enumerate, side effects, rerouting."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from .batch import Batch, failed
from .flow import Context, Operator
from .sift import keep
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


def serial_async(
    process: Callable[[Batch], Awaitable[tuple[Batch | None, Exception | None]]], ctx: Context
) -> Operator:
    """An operator that transforms batches with a coroutine, one batch at a time, in order."""
    flow = ctx.flow

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            pending: deque[Batch] = deque()
            state = {"done": False, "stopped": False}
            worker: list[asyncio.Task[None]] = []

            async def drain() -> None:
                try:
                    while pending and not state["stopped"]:
                        out, exc = await process(pending[0])
                        pending.popleft()
                        flow.inflight -= 1
                        flow.release()
                        if out is not None and out.values:
                            observer.on_next(out)
                        if exc is not None:
                            state["stopped"] = True
                            observer.on_error(exc)
                            return
                    if state["done"] and not state["stopped"]:
                        observer.on_completed()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # an operator's own failure still reaches the consumer
                    observer.on_error(exc)

            def ensure_worker() -> None:
                if not worker or worker[0].done():
                    worker[:] = [ctx.loop.create_task(drain())]

            def on_next(batch: Batch) -> None:
                pending.append(batch)
                flow.inflight += 1
                ensure_worker()

            def on_completed() -> None:
                state["done"] = True
                ensure_worker()

            def dispose() -> None:
                state["stopped"] = True
                if worker:
                    worker[0].cancel()
                flow.inflight -= len(pending)
                pending.clear()

            sub = source.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)
            return CompositeDisposable(sub, Disposable(dispose))

        return Observable(subscribe)

    return operator


def is_async(fun: Callable[..., Any]) -> bool:
    """Whether calling ``fun`` returns an awaitable we must await (an ``async def`` function)."""
    return inspect.iscoroutinefunction(fun) or inspect.iscoroutinefunction(type(fun).__call__)


def map_values(fun: Callable[[Any], Any], ctx: Context) -> Operator:
    """Apply ``fun`` to every value, in order; ``fun`` may be ``async``."""
    if is_async(fun):

        async def process(batch: Batch) -> tuple[Batch | None, Exception | None]:
            out: list[Any] = []
            append = out.append
            try:
                for value in batch.values:
                    append(await fun(value))
            except Exception as exc:
                return batch.head(len(out), out), failed(exc, batch, len(out), "map")
            return batch.derive(out), None

        return serial_async(process, ctx)

    def apply(batch: Batch) -> tuple[Batch | None, Exception | None]:
        out: list[Any] = []
        try:
            out.extend(map(fun, batch.values))
        except Exception as exc:
            return batch.head(len(out), out), failed(exc, batch, len(out), "map")
        return batch.derive(out), None

    return batchwise(apply)


def filter_values(fun: Callable[[Any], Any], ctx: Context) -> Operator:
    """Keep values for which ``fun`` is truthy; ``fun`` may be ``async``."""
    if is_async(fun):

        async def process(batch: Batch) -> tuple[Batch | None, Exception | None]:
            mask: list[Any] = []
            append = mask.append
            try:
                for value in batch.values:
                    append(await fun(value))
            except Exception as exc:
                n = len(mask)
                return keep(batch, mask, n), failed(exc, batch, n, "filter")
            return keep(batch, mask), None

        return serial_async(process, ctx)

    def apply(batch: Batch) -> tuple[Batch | None, Exception | None]:
        mask: list[Any] = []
        try:
            mask.extend(map(fun, batch.values))
        except Exception as exc:
            n = len(mask)
            return keep(batch, mask, n), failed(exc, batch, n, "filter")
        return keep(batch, mask), None

    return batchwise(apply)


def transform(fun: Callable[[Batch], Batch]) -> Operator:
    """A one-to-one batch transformation that cannot fail on user code (items, events, enumerate)."""
    return batchwise(lambda batch: (fun(batch), None))


def enumerate_values(start: int) -> Operator:
    """Pair each value with a running count."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def deferred(_: abc.SchedulerBase) -> Observable[Batch]:
            counter = [start]

            def number(batch: Batch) -> Batch:
                first = counter[0]
                counter[0] = first + len(batch.values)
                return batch.derive(list(zip(range(first, counter[0]), batch.values, strict=True)))

            return source.pipe(transform(number))

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
