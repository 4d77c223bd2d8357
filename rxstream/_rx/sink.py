"""The consumer end of a compiled stream: async iteration, collecting, and subscribing with callbacks."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from time import perf_counter
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import SerialDisposable

from .._core.fence import Run, leases_of, state_of
from .._core.refs import Group, last_source
from ..errors import StreamError
from ..events import (
    KEY,
    Event,
    Row,
    event_source,
    is_row,
    reset_event_source,
    set_event_source,
)
from .batch import ACK_EVERY, Batch
from .fencing import admitted, fenced, tail
from .flow import Context
from .unapplied import Unapplied, filter_failed, map_failed

logger = logging.getLogger(__name__)


class Sink(abc.ObserverBase[Batch]):
    """The consumer end of a compiled stream: a queue of batches the iterator reads from."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.queue: deque[Batch] = deque()
        self.error: Exception | None = None
        self.done = False
        self._waiter: asyncio.Future[None] | None = None

    def on_next(self, value: Batch) -> None:
        self.queue.append(value)
        self.ctx.flow.buffered += 1
        self._wake()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self._wake()

    def on_completed(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> Batch:
        """The next buffered batch, releasing the flow."""
        batch = self.queue.popleft()
        flow = self.ctx.flow
        flow.buffered -= 1
        flow.release()
        return batch

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for a batch, the end, or an error."""
        self._waiter = waiter = self.ctx.loop.create_future()
        if timeout is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            finally:
                self._waiter = None
            return
        flow = self.ctx.flow
        flow.waiting = waiter  # a source's new batch wakes this consumer to pull it (see `iterate`)
        try:
            await waiter
        finally:
            self._waiter = None
            if flow.waiting is waiter:
                flow.waiting = None


class Cursor:
    """Where an iterator is: the batch it yields from and the index of the value the consumer holds."""

    __slots__ = ("batch", "index")

    def __init__(self) -> None:
        self.batch: Batch | None = None
        self.index = 0

    def current_event(self) -> Event | None:
        """The event of the value the consumer holds (for current_event())."""
        batch = self.batch
        if batch is None:
            return None
        return batch.event_at(self.index)

    def current_row(self) -> Row | None:
        """The record the value the consumer holds came from (its event's message), or None."""
        batch = self.batch
        if batch is None:
            return None
        refs, index = batch.refs, self.index
        if refs is not None and index < len(refs):
            ref = refs[index]
            if type(ref) is tuple:
                return ref  # the common cases
            if type(ref) is Event:
                return ref.message
        ref = batch.ref_at(index)
        if type(ref) is tuple:
            return ref
        if isinstance(ref, Group):
            ref = last_source(ref)  # a group's metadata is its last input's
        if isinstance(ref, Event):
            return ref.message
        return ref if type(ref) is tuple else None


def refuse_output(exc: Exception, what: str) -> None:
    """Hand the messages behind the value the calling agent yielded to their error policy at once.

    For an output that can never be stored: a redelivery would fail again. ``exc`` is raised again outside a
    stream iteration, or when the value has no message whose acknowledger takes refusals.
    """
    cursor = event_source()
    if not isinstance(cursor, Cursor) or cursor.batch is None:
        raise exc
    index = cursor.index
    pairs = [(acker, ref) for acker, ref in cursor.batch.pairs(index, index + 1) if is_row(ref)]
    refusals: list[Callable[[Any, Exception, str], None]] = []
    for acker, _ in pairs:
        refuse = getattr(acker, "refuse", None)
        if refuse is None:
            raise exc
        refusals.append(refuse)
    if not pairs:
        raise exc
    for refuse, (_, ref) in zip(refusals, pairs, strict=True):
        key = ref[KEY]
        refuse(ref, exc, what if key is None else f"{what} (its key: {key!r:.80})")


async def iterate(
    observable: Observable[Batch],
    ctx: Context,
    cursor: Cursor,
    *,
    auto_ack: bool,
    starving: Callable[[], Any] | None = None,
    idle: Callable[[bool], None] | None = None,
    on_batch: Callable[[int, float], None] | None = None,
) -> AsyncIterator[Any]:
    """Yield the values of a compiled stream; acknowledge each when the consumer asks for the next one.

    ``on_batch(values, seconds)`` hears of every batch the consumer went through and the time it took (from
    its first value to the request after its last), so counting costs one call per batch, not per value.
    """
    sink = Sink(ctx)
    subscription = observable.subscribe(sink)
    queue = sink.queue
    # with no batch in hand the consumer takes the next one from its sources itself (in this task), not
    # waiting for their own tasks to push it; a substream's consumer (starving) leaves that to its parent
    pullers = ctx.flow.pullers if starving is None else []
    token = set_event_source(cursor)
    run = Run()  # where a rebalance sees which partitions' values this consumer is going through
    try:
        while True:
            if not queue:
                if sink.error is not None:
                    raise sink.error
                if sink.done:
                    return
                if pullers and any(pull() for pull in pullers):
                    continue
                if idle is not None:
                    idle(True)
                try:
                    if starving is None:
                        await sink.wait()
                    else:
                        await _wait_checking(sink, starving)
                finally:
                    if idle is not None:
                        idle(False)
                continue
            batch = sink.take()
            values = batch.values
            began = perf_counter() if on_batch is not None else 0.0
            if batch.refs is None:
                cursor.batch = None
                if type(batch) is Unapplied:
                    fun, keeps = batch.fun, batch.keeps
                    remaining = iter(values)
                    for x in remaining:
                        try:
                            y = fun(x)
                        except Exception as exc:
                            map_failed(exc, batch, remaining)
                            raise
                        try:
                            if not keeps(y):
                                continue
                        except Exception as exc:
                            filter_failed(exc, y)
                            raise
                        yield y
                    continue
                for value in values:
                    yield value
                if on_batch is not None:
                    on_batch(len(values), perf_counter() - began)
                continue
            n = len(values)
            leases = leases_of(batch.acker)
            if leases and state_of(leases):  # a rebalance is deciding on, or took, its partitions
                kept = await admitted(batch, leases)
                if kept is None:
                    continue
                batch, values = kept, kept.values
            cursor.batch = batch
            count = len(values)
            i = acked = 0
            try:
                while i < count:  # in runs of ACK_EVERY, each acknowledged once the consumer moved past it
                    if leases and state_of(leases):
                        if auto_ack:
                            batch.ack_range(acked, i)  # a paused partition's acknowledgments still count
                        rest = await admitted(tail(batch, i), leases)
                        if rest is None:
                            acked = i
                            break  # revoked: another worker processes the rest
                        batch, values, count, i = rest, rest.values, len(rest.values), 0
                        acked = 0
                        cursor.batch = batch
                    run.enter(values[i : i + ACK_EVERY], leases)  # a rebalance may cut it short (in place)
                    for value in run.values:
                        cursor.index = i
                        yield value
                        i += 1
                    run.leave()
                    if auto_ack and i < count:
                        batch.ack_range(acked, i)
                        acked = i
            finally:
                run.leave()
                if auto_ack:
                    batch.ack_range(acked, i)
            if on_batch is not None:
                on_batch(n, perf_counter() - began)
    finally:
        run.leave()
        cursor.batch = None
        subscription.dispose()
        try:
            reset_event_source(token)
        except ValueError:  # finalised in another context (garbage collection): nothing to restore
            pass


async def _wait_checking(sink: Sink, starving: Callable[[], Any]) -> None:
    """Wait for the sink, failing instead of hanging when another group holds the source back."""
    while not (sink.queue or sink.done or sink.error is not None):
        stuck = starving()
        if stuck is not None:
            raise StreamError(stuck)
        try:
            await sink.wait(timeout=0.05)
        except TimeoutError:
            continue


async def collect(observable: Observable[Batch], ctx: Context, limit: int | None = None) -> list[Any]:
    """Gather every value of a compiled stream (or the first ``limit``), acknowledging them as they come."""
    out: list[Any] = []
    done: asyncio.Future[None] = ctx.loop.create_future()
    subscription = SerialDisposable()

    def on_next(batch: Batch) -> None:
        if done.done():
            return
        values = batch.values
        if limit is not None and len(out) + len(values) >= limit:
            n = limit - len(out)
            out.extend(values[:n])
            batch.ack_first(n)
            done.set_result(None)
            return
        out.extend(values)
        batch.ack_first(len(values))

    def on_error(exc: Exception) -> None:
        if not done.done():
            done.set_exception(exc)

    def on_completed() -> None:
        if not done.done():
            done.set_result(None)

    subscription.disposable = observable.pipe(fenced()).subscribe(on_next, on_error, on_completed)
    try:
        await done
    finally:
        subscription.dispose()
    return out


def subscribe_values(
    observable: Observable[Batch],
    on_next: Callable[[Any], Any] | None,
    on_error: Callable[[Exception], Any] | None,
    on_completed: Callable[[], Any] | None,
) -> abc.DisposableBase:
    """Call ``on_next`` per value; each value is acknowledged once the callback returned.

    Without ``on_next`` (forwarding: the values were handed on upstream) batches are acknowledged as they
    come, a paused partition's too; with it, batches of a paused partition wait for their rebalance.
    """

    def batch_next(batch: Batch) -> None:
        done = 0
        try:
            if on_next is not None:
                for value in batch.values:
                    on_next(value)
                    done += 1
            else:
                done = len(batch.values)
        finally:
            batch.ack_first(done)

    def report(exc: Exception) -> None:
        if on_error is not None:
            on_error(exc)
        else:
            logger.error("unhandled stream error: %r", exc, exc_info=exc)

    source = observable if on_next is None else observable.pipe(fenced())
    return source.subscribe(batch_next, report, on_completed)


def events_of(observable: Observable[Batch]) -> Observable[Event]:
    """The compiled stream as one event per value (materialising events)."""

    def expand(batch: Batch) -> Observable[Event]:
        return reactivex.from_iterable([batch.event_at(i) for i in range(len(batch.values))])

    return observable.pipe(fenced(), ops.concat_map(expand))
