"""Taps (tee, echo) that act only on the values a consumer takes, not on what the pipeline pulled ahead.

A tap hands values on one at a time, and only while the consumer asks for a value that is not buffered
yet, so its function runs on exactly the values the consumer goes on to take. It does so synchronously in
the consumer's ``__anext__`` (or as a batch arrives while the consumer waits); a function whose result must
be awaited is awaited there too, so a tap costs no task per value.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from .batch import Batch, failed
from .fencing import WAIT, Turnstile
from .flow import Context, Flow, Operator


class Demand:
    """Whether the consumer of one consumption asks for a value that is not buffered yet.

    The consumer calls `ask` on entering its ``__anext__`` and `answered` on leaving it.
    """

    __slots__ = ("_flow", "asking", "taps")

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self.asking = 0
        self.taps: list[_Tap] = []
        """The taps of the consumption, each handing values on when asked."""

    def serves(self, ctx: Context) -> bool:
        """Whether this is the demand of the consumption ``ctx`` belongs to (a peek runs a chain apart)."""
        return ctx.flow is self._flow

    def wanted(self) -> bool:
        """Whether a value handed on now would be taken: the consumer asks and its buffer is empty."""
        return self.asking > 0 and self._flow.buffered == 0

    def ask(self) -> tuple[_Tap, Awaitable[Any]] | None:
        """The consumer asks for its next value: taps hand values on; the first result to await, if any."""
        self.asking += 1
        return self.pumped()

    def pumped(self) -> tuple[_Tap, Awaitable[Any]] | None:
        """Let every tap hand values on; the first tap that stopped at a result to await, and the result."""
        for tap in self.taps:
            step = tap.pump()
            if step is not None:
                return tap, step
        return None

    def answered(self) -> None:
        """The consumer got its value (or the stream ended)."""
        self.asking -= 1


class _Tap:
    """One subscription of a tap: the batches waiting, and where in the first of them the tap is."""

    __slots__ = (
        "_awaiting",
        "_ctx",
        "_demand",
        "_done",
        "_fence",
        "_fun",
        "_index",
        "_observer",
        "_pending",
        "_stopped",
        "_what",
        "_worker",
    )

    def __init__(
        self,
        observer: abc.ObserverBase[Batch],
        fun: Callable[[Any], Any],
        ctx: Context,
        demand: Demand,
        what: str,
    ) -> None:
        self._observer = observer
        self._fun = fun
        self._ctx = ctx
        self._demand = demand
        self._what = what
        self._pending: deque[Batch] = deque()
        self._index = 0
        self._done = False
        self._stopped = False
        self._awaiting: tuple[Batch, int] | None = None
        """The value whose function's result is being awaited (nothing else is handed on meanwhile)."""
        self._fence = Turnstile(self._kick)
        """Nothing is handed on while a rebalance decides on its partition; what it revoked is dropped."""
        self._worker: asyncio.Task[None] | None = None

    def pump(self) -> Awaitable[Any] | None:
        """Hand values on while the consumer wants one; the result to await before going on, if any."""
        if self._awaiting is not None:
            return None
        pending = self._pending
        wanted = self._demand.wanted
        while pending and not self._stopped and wanted():
            batch = pending[0]
            kept = self._fence.admit(batch, self._index)
            if kept is not batch:
                if kept is WAIT:
                    return None
                self._index = 0
                if not isinstance(kept, Batch):
                    self._drop_first()
                    continue
                pending[0] = batch = kept
            i = self._index
            try:
                result = self._fun(batch.values[i])
            except Exception as exc:
                self._fail(exc, batch, i)
                return None
            if result is not None and inspect.isawaitable(result):
                self._awaiting = (batch, i)
                return result
            self._hand_on(batch, i)
        if not pending and self._done and not self._stopped:
            self._stopped = True
            self._observer.on_completed()
        return None

    def resume(self, exc: Exception | None) -> Awaitable[Any] | None:
        """The awaited result is in (or failed with ``exc``): hand its value on and go on as `pump`."""
        assert self._awaiting is not None
        batch, i = self._awaiting
        self._awaiting = None
        if self._stopped:
            return None
        if exc is not None:
            self._fail(exc, batch, i)
            return None
        self._hand_on(batch, i)
        return self.pump()

    def abandon(self) -> None:
        """Nobody waits for the awaited result any more (cancelled): its value is tried again when asked."""
        self._awaiting = None

    def _hand_on(self, batch: Batch, i: int) -> None:
        """Emit value ``i`` of the first pending batch, and move past it."""
        refs = batch.refs
        value = batch.values[i]
        self._index = i + 1
        if self._index == len(batch.values):
            self._pending.popleft()
            self._index = 0
            flow = self._ctx.flow
            flow.inflight -= 1
            flow.release()
        self._observer.on_next(
            Batch([value], refs[i : i + 1], batch.acker) if refs is not None else Batch([value])
        )

    def _drop_first(self) -> None:
        """Drop the first pending batch (its partition was revoked)."""
        self._pending.popleft()
        flow = self._ctx.flow
        flow.inflight -= 1
        flow.release()

    def _fail(self, exc: Exception, batch: Batch, i: int) -> None:
        self._stopped = True
        self._observer.on_error(failed(exc, batch, i, self._what))

    def _kick(self) -> None:
        """Hand values on now if they are wanted; a result to await is awaited by a task of the tap's."""
        step = self.pump()
        if step is not None:
            self._worker = self._ctx.loop.create_task(drive(self, step))

    def on_next(self, batch: Batch) -> None:
        if batch.values:
            self._pending.append(batch)
            self._ctx.flow.inflight += 1
        self._kick()

    def on_completed(self) -> None:
        self._done = True
        self._kick()

    def dispose(self) -> None:
        self._stopped = True
        if self in self._demand.taps:
            self._demand.taps.remove(self)
        if self._worker is not None:
            self._worker.cancel()
        self._ctx.flow.inflight -= len(self._pending)
        self._pending.clear()


async def drive(tap: _Tap, step: Awaitable[Any] | None) -> None:
    """Await the results ``tap`` stops at, going on after each, until it hands values on no further."""
    while step is not None:
        try:
            await step
        except asyncio.CancelledError:
            tap.abandon()
            raise
        except Exception as exc:
            step = tap.resume(exc)
            continue
        step = tap.resume(None)


def gates(steps: Sequence[tuple[str, Any]]) -> bool:
    """Whether the taps of a chain of (label, step) can wait for its consumer: no group_by after them.

    The loops over a group_by's substreams take values while the outer loop does not ask for one.
    """
    taps = False
    for label, step in steps:
        if getattr(step, "taps", False):
            taps = True
        elif taps and label.startswith("group_by("):
            return False
    return taps


def tapped(fun: Callable[[Any], Any], ctx: Context, what: str, demand: Demand) -> Operator:
    """Call ``fun`` with each value (awaiting an awaitable result) just before the consumer takes it."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            tap = _Tap(observer, fun, ctx, demand, what)
            demand.taps.append(tap)
            sub = source.subscribe(tap.on_next, observer.on_error, tap.on_completed, scheduler=scheduler)
            return CompositeDisposable(sub, Disposable(tap.dispose))

        return Observable(subscribe)

    return operator


async def asked(iterator: AsyncIterator[Any], demand: Demand) -> AsyncIterator[Any]:
    """``iterator``, telling ``demand`` while the consumer waits in ``__anext__``."""
    try:
        while True:
            waiting = demand.ask()
            try:
                while waiting is not None:
                    await drive(*waiting)
                    waiting = demand.pumped()
                value = await iterator.__anext__()
            except StopAsyncIteration:
                return
            finally:
                demand.answered()
            yield value
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
