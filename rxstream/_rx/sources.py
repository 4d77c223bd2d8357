"""Sources: observables of batches from async iterators, iterables and other observables."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from itertools import islice
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable

from .._core.refs import EVENT_ACKER
from ..events import (
    Event,
)
from .batch import BATCH_SIZE, Batch
from .flow import Context

T_ = TypeVar("T_")


def pump(
    batches: Callable[[], AsyncIterator[Batch]],
    ctx: Context,
    on_dispose: Callable[[], None] | None = None,
    take: Callable[[], Batch | None] | None = None,
) -> Observable[Batch]:
    """An observable that, once subscribed, pushes an async iterator's batches, pausing on backpressure.

    ``on_dispose`` runs synchronously when the consumer goes away, before anything else can read the
    source again (a subscription uses it to put unacknowledged messages back). ``take`` hands the next
    ready batch over at once (None: none is): the consumer then pulls batches itself when it has none.
    """
    flow = ctx.flow
    full = flow.sink_full if ctx.sink_only else flow.blocked
    sink_only = ctx.sink_only

    def subscribe(
        observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        async def run() -> None:
            iterator = batches()
            try:
                async for batch in iterator:
                    if batch.values:
                        observer.on_next(batch)
                    if full():
                        await flow.wait(sink_only=sink_only)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                observer.on_error(exc)
            else:
                observer.on_completed()
            finally:
                closing = getattr(iterator, "aclose", None)
                if closing is not None:
                    await closing()

        task = ctx.loop.create_task(run())
        pull = None if take is None else functools.partial(_pull, take, observer, full)
        if pull is not None:
            flow.pullers.append(pull)

        def dispose() -> None:
            task.cancel()
            if pull is not None and pull in flow.pullers:
                flow.pullers.remove(pull)
            if on_dispose is not None:
                on_dispose()

        return Disposable(dispose)

    return reactivex.create(subscribe)


def _pull(
    take: Callable[[], Batch | None], observer: abc.ObserverBase[Batch], full: Callable[[], bool]
) -> bool:
    """Push the batches ``take`` hands over in the calling (consumer's) task, as many as the task of the
    source would (until the flow is full); whether there was one."""
    pulled = False
    try:
        while not (pulled and full()):
            batch = take()
            if batch is None:
                break
            pulled = True
            if batch.values:
                observer.on_next(batch)
    except Exception as exc:
        observer.on_error(exc)
        return True
    return pulled


def batch_of(chunk: list[Any]) -> Batch:
    """A batch of plain values, or of events (which keep their metadata and acknowledgment)."""
    if isinstance(chunk[0], Event):
        return Batch([event.value for event in chunk], chunk, EVENT_ACKER)
    return Batch(chunk)


async def chunks_of(iterable: Iterable[Any]) -> AsyncIterator[Batch]:
    """Batches of an iterable's values (a range, list or tuple is sliced: no per-value iteration)."""
    if type(iterable) in (range, list, tuple):
        sequence: Sequence[Any] = iterable  # type: ignore[assignment]
        start = 0
        while chunk := list(sequence[start : start + BATCH_SIZE]):
            start += BATCH_SIZE
            yield batch_of(chunk)
        return
    iterator = iter(iterable)
    while chunk := list(islice(iterator, BATCH_SIZE)):
        yield batch_of(chunk)


class _Resume:
    """Awaits the rest of an async-iterator step that was started by hand and did not finish at once."""

    __slots__ = ("step", "yielded")

    def __init__(self, step: Any, yielded: Any) -> None:
        self.step = step
        self.yielded = yielded

    def __await__(self) -> Any:
        step, yielded = self.step, self.yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:
                try:
                    yielded = step.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = step.send(sent)
                except StopIteration as done:
                    return done.value

    def abandon(self) -> None:
        """Close the iterator inside the step: left as it is, the iterator stays "running" for good and
        its later ``aclose()`` (by the loop's finalizer) fails."""
        try:
            self.step.throw(GeneratorExit)
        except (GeneratorExit, StopIteration, StopAsyncIteration):
            return
        self.step.close()  # the iterator went on despite GeneratorExit: nothing more can be done here


async def chunks_of_async(iterable: AsyncIterable[Any]) -> AsyncIterator[Batch]:
    """Batches of an async iterable's values: what is ready at once, up to a full batch, without waiting.

    Each step is started by hand: a step that completes without suspending adds to the batch; one that
    would suspend closes the batch and is awaited after it was emitted, so no value waits for others.
    """
    iterator = aiter(iterable)
    resume: _Resume | None = None
    try:
        while True:
            chunk: list[Any] = []
            try:
                if resume is None:
                    chunk.append(await anext(iterator))
                else:
                    step, resume = resume, None
                    chunk.append(await step)
                while len(chunk) < BATCH_SIZE:
                    started = iterator.__anext__()
                    try:
                        yielded = started.send(None)  # type: ignore[attr-defined]
                    except StopIteration as done:
                        chunk.append(done.value)
                        continue
                    resume = _Resume(started, yielded)
                    break
            except StopAsyncIteration:
                if chunk:
                    yield batch_of(chunk)
                return
            yield batch_of(chunk)
    finally:
        if resume is not None:  # closed between a step started by hand and its end
            resume.abandon()


def from_values_observable(source: Observable[Any]) -> Observable[Batch]:
    """Batches of one value each from an observable of values (events keep their metadata and acks)."""

    return source.pipe(ops.map(lambda value: batch_of([value])))


def merged(observables: Sequence[Observable[Batch]]) -> Observable[Batch]:
    """Batches of all sources, interleaved as they arrive."""
    return reactivex.merge(*observables)


def concatenated(observables: Sequence[Observable[Batch]]) -> Observable[Batch]:
    """Batches of each source in turn; the next is subscribed when the previous completes."""
    return reactivex.concat(*observables)


def deferred(build: Callable[[], Observable[T_]]) -> Observable[T_]:
    """An observable built at subscription time (so each subscription compiles its own pipeline)."""
    return reactivex.defer(lambda _: build())


def on_end(observable: Observable[Batch], action: Callable[[], None]) -> Observable[Batch]:
    """``observable``, calling ``action`` when its consumption ends (completed, failed or disposed)."""
    return observable.pipe(ops.finally_action(action))

