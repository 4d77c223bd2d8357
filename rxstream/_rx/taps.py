"""Taps (tee, echo) that act only on the values a consumer takes, not on what the pipeline pulled ahead."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from .batch import Batch, failed
from .flow import Context, Flow, Operator


class Demand:
    """Whether the consumer of one consumption asks for a value that is not buffered yet.

    The consumer calls `ask` on entering its ``__anext__`` and `answered` on leaving it; a tap hands values
    on one at a time while `wanted` holds, so it runs on exactly the values the consumer goes on to take.
    """

    __slots__ = ("_flow", "asking", "pumps")

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self.asking = 0
        self.pumps: list[Callable[[], None]] = []
        """The taps of the consumption: each hands values on when asked (in the consumer's call)."""

    def serves(self, ctx: Context) -> bool:
        """Whether this is the demand of the consumption ``ctx`` belongs to (a peek runs a chain apart)."""
        return ctx.flow is self._flow

    def wanted(self) -> bool:
        """Whether a value handed on now would be taken: the consumer asks and its buffer is empty."""
        return self.asking > 0 and self._flow.buffered == 0

    def ask(self) -> None:
        """The consumer asks for its next value."""
        self.asking += 1
        for pump in self.pumps:
            pump()

    def answered(self) -> None:
        """The consumer got its value (or the stream ended)."""
        self.asking -= 1


class _Tap:
    """One subscription of a tap: the batches waiting, and where in the first of them the tap is.

    Values are handed on synchronously while wanted (from the consumer's ask, or as batches arrive); a
    function returning an awaitable is awaited by a task, which hands that value on and goes on.
    """

    __slots__ = (
        "_ctx",
        "_demand",
        "_done",
        "_fun",
        "_index",
        "_observer",
        "_pending",
        "_running",
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
        self._running = False
        self._worker: asyncio.Task[None] | None = None

    def pump(self) -> None:
        """Hand values on while the consumer wants one; stop at a result that must be awaited."""
        if self._running:
            return
        self._running = True
        pending = self._pending
        wanted = self._demand.wanted
        try:
            while pending and not self._stopped and wanted():
                batch = pending[0]
                i = self._index
                try:
                    result = self._fun(batch.values[i])
                except Exception as exc:
                    self._fail(exc, batch, i)
                    return
                if inspect.isawaitable(result):
                    self._worker = self._ctx.loop.create_task(self._finish(result, batch, i))
                    return  # still running: the task goes on once the result is in
                self._hand_on(batch, i)
            if not pending and self._done and not self._stopped:
                self._stopped = True
                self._observer.on_completed()
        finally:
            if self._worker is None or self._worker.done():
                self._running = False

    async def _finish(self, result: Any, batch: Batch, i: int) -> None:
        try:
            await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc, batch, i)
            return
        if self._stopped:
            return
        self._hand_on(batch, i)
        self._running = False
        self._worker = None
        self.pump()

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

    def _fail(self, exc: Exception, batch: Batch, i: int) -> None:
        self._stopped = True
        self._observer.on_error(failed(exc, batch, i, self._what))

    def on_next(self, batch: Batch) -> None:
        if batch.values:
            self._pending.append(batch)
            self._ctx.flow.inflight += 1
        self.pump()

    def on_completed(self) -> None:
        self._done = True
        self.pump()

    def dispose(self) -> None:
        self._stopped = True
        if self.pump in self._demand.pumps:
            self._demand.pumps.remove(self.pump)
        if self._worker is not None:
            self._worker.cancel()
        self._ctx.flow.inflight -= len(self._pending)
        self._pending.clear()


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
            demand.pumps.append(tap.pump)
            sub = source.subscribe(tap.on_next, observer.on_error, tap.on_completed, scheduler=scheduler)
            return CompositeDisposable(sub, Disposable(tap.dispose))

        return Observable(subscribe)

    return operator


async def asked(iterator: AsyncIterator[Any], demand: Demand) -> AsyncIterator[Any]:
    """``iterator``, telling ``demand`` while the consumer waits in ``__anext__``."""
    try:
        while True:
            demand.ask()
            try:
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
