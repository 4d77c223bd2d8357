"""Operators on time: take/buffer batches closed by count or time, and rate limiting."""

from __future__ import annotations

from collections import deque
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from ..events import (
    Acknowledger,
)
from .batch import Batch
from .flow import Context, Operator, now
from .refs import GROUP_ACKER, Group, pairs_of


def take_batches(
    max_: int, within: float | None, scheduler: abc.SchedulerBase, *, periodic: bool
) -> Operator:
    """Gather values into lists of at most ``max_``, closed early by time; never emits an empty list.

    With ``periodic`` the clock restarts at every flush (buffer); without it a list closes ``within``
    seconds after its first value (take).
    """

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            values: list[Any] = []
            pairs: list[tuple[Acknowledger | None, Any]] = []
            timer = SerialDisposable()
            generation = [0]

            def flush() -> None:
                generation[0] += 1
                if values:
                    out = Batch([values[:]], [Group(pairs[:])], GROUP_ACKER)
                    values.clear()
                    pairs.clear()
                    observer.on_next(out)
                if periodic:
                    start_timer()

            def start_timer() -> None:
                if within is None:
                    return
                expected = generation[0]

                def fire(_: abc.SchedulerBase, __: Any = None) -> None:
                    if generation[0] == expected:
                        flush()

                timer.disposable = scheduler.schedule_relative(within, fire)

            def on_next(batch: Batch) -> None:
                start = 0
                n = len(batch.values)
                while start < n:
                    if not values and not periodic:
                        start_timer()
                    room = max_ - len(values)
                    stop = min(n, start + room)
                    values.extend(batch.values[start:stop])
                    pairs.extend(pairs_of(batch, start, stop))
                    start = stop
                    if len(values) >= max_:
                        flush()

            def on_completed() -> None:
                timer.dispose()
                generation[0] += 1
                if values:
                    observer.on_next(Batch([values[:]], [Group(pairs[:])], GROUP_ACKER))
                observer.on_completed()

            if periodic:
                start_timer()
            sub = source.subscribe(on_next, observer.on_error, on_completed)
            return CompositeDisposable(sub, timer)

        return Observable(subscribe)

    return operator


def rate_limited(
    rate: int, per: float, within: float, scheduler: abc.SchedulerBase, ctx: Context
) -> Operator:
    """Delay values so that at most ``rate`` pass per ``per`` seconds, bursting up to ``within``'s share."""
    capacity = max(1.0, rate * within / per)
    refill = rate / per
    flow = ctx.flow

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            held: deque[list[Any]] = deque()  # [batch, next index]
            bucket = {"tokens": capacity, "at": now(scheduler), "done": False, "waiting": False}
            timer = SerialDisposable()

            def refill_tokens() -> None:
                t = now(scheduler)
                bucket["tokens"] = min(capacity, bucket["tokens"] + (t - bucket["at"]) * refill)
                bucket["at"] = t

            def release() -> None:
                refill_tokens()
                while held and bucket["tokens"] >= 1.0:
                    entry = held[0]
                    batch, start = entry
                    n = min(len(batch.values) - start, int(bucket["tokens"]))
                    stop = start + n
                    bucket["tokens"] -= n
                    out = Batch(
                        batch.values[start:stop],
                        batch.refs[start:stop] if batch.refs is not None else None,
                        batch.acker,
                    )
                    if stop >= len(batch.values):
                        held.popleft()
                        flow.inflight -= 1
                        flow.release()
                    else:
                        entry[1] = stop
                    observer.on_next(out)
                if held:
                    if not bucket["waiting"]:
                        bucket["waiting"] = True
                        delay = (1.0 - bucket["tokens"]) / refill

                        def fire(_: abc.SchedulerBase, __: Any = None) -> None:
                            bucket["waiting"] = False
                            release()

                        timer.disposable = scheduler.schedule_relative(delay, fire)
                elif bucket["done"]:
                    observer.on_completed()

            def on_next(batch: Batch) -> None:
                held.append([batch, 0])
                flow.inflight += 1
                if not bucket["waiting"]:
                    release()

            def on_completed() -> None:
                bucket["done"] = True
                if not held:
                    observer.on_completed()

            def dispose() -> None:
                flow.inflight -= len(held)
                held.clear()

            sub = source.subscribe(on_next, observer.on_error, on_completed)
            return CompositeDisposable(sub, timer, Disposable(dispose))

        return Observable(subscribe)

    return operator
