"""Operators on time: take/buffer batches closed by count or time, and rate limiting."""

from __future__ import annotations

from collections import deque
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from .._core.fence import GroupLeases, Lease, leases_of
from .._core.limits import TokenBucket
from .._core.refs import Group
from ..events import (
    Acknowledger,
)
from .batch import Batch
from .fencing import fenced
from .flow import Context, Flow, Operator, now


class _Gathering:
    """One subscription of take/buffer: the open list, its references and the timer that closes it."""

    __slots__ = (
        "_generation",
        "_leases",
        "_max",
        "_observer",
        "_pairs",
        "_periodic",
        "_scheduler",
        "_timer",
        "_values",
        "_within",
    )

    def __init__(
        self,
        observer: abc.ObserverBase[Batch],
        max_: int,
        within: float | None,
        scheduler: abc.SchedulerBase,
        periodic: bool,
    ) -> None:
        self._observer = observer
        self._max = max_
        self._within = within
        self._scheduler = scheduler
        self._periodic = periodic
        self._values: list[Any] = []
        self._pairs: list[tuple[Acknowledger | None, Any]] = []
        self._leases: set[Lease] = set()
        """The leases of the open list's inputs (see `rxstream._core.fence`)."""
        self._timer = SerialDisposable()
        self._generation = 0  # a timer set for an earlier list must not close the current one

    def subscribe(self, source: Observable[Batch]) -> abc.DisposableBase:
        if self._periodic:
            self._start_timer()
        sub = source.subscribe(self.on_next, self._observer.on_error, self.on_completed)
        return CompositeDisposable(sub, self._timer)

    def _flush(self) -> None:
        self._generation += 1
        if self._values:
            out = self._closed()
            self._values.clear()
            self._pairs.clear()
            self._observer.on_next(out)
        if self._periodic:
            self._start_timer()

    def _closed(self) -> Batch:
        """The open list as a batch of one value, and a new open list's leases."""
        leases, self._leases = self._leases, set()
        return Batch([self._values[:]], [Group(self._pairs[:])], GroupLeases(leases))

    def _start_timer(self) -> None:
        if self._within is None:
            return
        self._timer.disposable = self._scheduler.schedule_relative(
            self._within, self._fire, self._generation
        )

    def _fire(self, _: abc.SchedulerBase, generation: int | None) -> None:
        if generation == self._generation:
            self._flush()

    def on_next(self, batch: Batch) -> None:
        values = self._values
        start = 0
        n = len(batch.values)
        leases = leases_of(batch.acker)
        while start < n:
            if not values and not self._periodic:
                self._start_timer()
            room = self._max - len(values)
            stop = min(n, start + room)
            values.extend(batch.values[start:stop])
            self._pairs.extend(batch.pairs(start, stop))
            self._leases.update(leases)
            start = stop
            if len(values) >= self._max:
                self._flush()

    def on_completed(self) -> None:
        self._timer.dispose()
        self._generation += 1
        if self._values:
            self._observer.on_next(self._closed())
        self._observer.on_completed()


def take_batches(
    max_: int, within: float | None, scheduler: abc.SchedulerBase, *, periodic: bool
) -> Operator:
    """Gather values into lists of at most ``max_``, closed early by time; never emits an empty list.

    With ``periodic`` the clock restarts at every flush (buffer); without it a list closes ``within``
    seconds after its first value (take). A list closed by time meets the fence again (`fenced`).
    """
    fence = fenced()

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return _Gathering(observer, max_, within, scheduler, periodic).subscribe(source)

        return fence(Observable(subscribe))

    return operator


class _Held:
    """A batch waiting for tokens, and the index of its first value not yet passed."""

    __slots__ = ("batch", "start")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.start = 0


class _Throttle:
    """One subscription of rate_limit: batches held until the bucket has tokens for their values."""

    __slots__ = ("_bucket", "_done", "_flow", "_held", "_observer", "_scheduler", "_timer", "_waiting")

    def __init__(
        self, observer: abc.ObserverBase[Batch], bucket: TokenBucket, scheduler: abc.SchedulerBase, flow: Flow
    ) -> None:
        self._observer = observer
        self._bucket = bucket
        self._scheduler = scheduler
        self._flow = flow
        self._held: deque[_Held] = deque()
        self._timer = SerialDisposable()
        self._done = False
        self._waiting = False

    def subscribe(self, source: Observable[Batch]) -> abc.DisposableBase:
        sub = source.subscribe(self.on_next, self._observer.on_error, self.on_completed)
        return CompositeDisposable(sub, self._timer, Disposable(self._dispose))

    def _release(self) -> None:
        held = self._held
        bucket = self._bucket
        t = now(self._scheduler)
        while held and bucket.available(t):
            entry = held[0]
            batch, start = entry.batch, entry.start
            stop = start + bucket.take(len(batch.values) - start, t)
            out = Batch(
                batch.values[start:stop],
                batch.refs[start:stop] if batch.refs is not None else None,
                batch.acker,
            )
            if stop >= len(batch.values):
                held.popleft()
                self._flow.inflight -= 1
                self._flow.release()
            else:
                entry.start = stop
            self._observer.on_next(out)
        if held:
            if not self._waiting:
                self._waiting = True
                self._timer.disposable = self._scheduler.schedule_relative(bucket.delay(t), self._fire)
        elif self._done:
            self._observer.on_completed()

    def _fire(self, _: abc.SchedulerBase, __: Any = None) -> None:
        self._waiting = False
        self._release()

    def on_next(self, batch: Batch) -> None:
        self._held.append(_Held(batch))
        self._flow.inflight += 1
        if not self._waiting:
            self._release()

    def on_completed(self) -> None:
        self._done = True
        if not self._held:
            self._observer.on_completed()

    def _dispose(self) -> None:
        self._flow.inflight -= len(self._held)
        self._held.clear()


def rate_limited(
    rate: int, per: float, within: float, scheduler: abc.SchedulerBase, ctx: Context
) -> Operator:
    """Delay values so that at most ``rate`` pass per ``per`` seconds, bursting up to ``within``'s share.

    Values passed on later meet the fence again (`fenced`).
    """
    capacity = max(1.0, rate * within / per)
    refill = rate / per
    flow = ctx.flow
    fence = fenced()

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            bucket = TokenBucket(capacity, refill, now(scheduler))
            return _Throttle(observer, bucket, scheduler, flow).subscribe(source)

        return fence(Observable(subscribe))

    return operator


def stopping_after(limit: float, scheduler: abc.SchedulerBase) -> Operator:
    """End the batches ``limit`` seconds of ``scheduler`` time after the consumption starts."""
    return ops.take_until(reactivex.timer(limit, scheduler=scheduler))

