"""The one place that knows reactivex: batches of values flow through Rx operators on the asyncio loop.

Values travel in micro-batches (``Batch``) so that per-value work is a C-level loop over a list and the Rx and
asyncio machinery is paid once per batch, not once per value. A batch keeps, beside its values, the
references its values came from (messages) and whoever delivered them (the acknowledger), so events are
materialised only when asked for and acknowledgments find their way back to the transport.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from itertools import compress, islice
from typing import Any, TypeAlias, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from .errors import StreamError
from .events import (
    KEY,
    OFFSET,
    PARTITION,
    TIMESTAMP,
    TOPIC,
    Acknowledger,
    Event,
    Message,
    is_row,
    reset_event_source,
    set_event_source,
)

__all__ = [
    "BATCH_SIZE",
    "Batch",
    "Context",
    "Operator",
]

T_ = TypeVar("T_")

BATCH_SIZE = 1024
"""How many values a source puts in one batch."""

ACK_EVERY = 256
"""How many values of a batch a consumer goes through between acknowledgments (so commits move on even
while a slow consumer is inside a large batch)."""

Operator: TypeAlias = Callable[[Observable["Batch"]], Observable["Batch"]]
"""A compiled stream operator: batches in, batches out."""


class Batch:
    """Values in order, with the reference each came from (or None) and the acknowledger of those refs."""

    __slots__ = ("acker", "refs", "values")

    def __init__(self, values: list[Any], refs: list[Any] | None = None, acker: Acknowledger | None = None):
        self.values = values
        self.refs = refs
        self.acker = acker

    def derive(self, values: list[Any]) -> Batch:
        """The same references carrying new values (a one-to-one transformation)."""
        return Batch(values, self.refs, self.acker)

    def head(self, n: int, values: list[Any]) -> Batch:
        """The first ``n`` references carrying ``values`` (what was transformed before a failure)."""
        return Batch(values, self.refs[:n] if self.refs is not None else None, self.acker)

    def ack_first(self, n: int) -> None:
        """Acknowledge the references of the first ``n`` values."""
        self.ack_range(0, n)

    def ack_range(self, start: int, stop: int) -> None:
        """Acknowledge the references of values ``start..stop-1`` (after those before ``start`` were)."""
        refs = self.refs
        if stop > start and refs is not None and self.acker is not None:
            self.acker.ack(refs if start == 0 and stop >= len(refs) else refs[start:stop])

    def ref_at(self, i: int) -> Any:
        """The reference of value ``i``; values that share a reference point at the next one that has it."""
        refs = self.refs
        if refs is None:
            return None
        if i < len(refs) and refs[i] is not None:
            return refs[i]  # the common case in O(1): islice below skips its first i items one by one
        for ref in islice(refs, i, None):
            if ref is not None:
                return ref
        return None

    def event_at(self, i: int) -> Event:
        """Materialise the event of value ``i``."""
        value = self.values[i]
        ref = self.ref_at(i)
        if ref is None:
            return Event(value=value)
        acker = self.acker
        if isinstance(ref, _Group):
            if not ref.pairs:
                return Event(value=value)
            sources = [s for s in sources_of(ref) if is_row(s) or isinstance(s, Event)]
            last = Batch([value], sources[-1:] or [None]).event_at(0)  # the metadata of the last input
            return Event(
                last.key, value, last.headers, last.message, last.timestamp, acker=GROUP_ACKER, ref=ref
            )
        if isinstance(ref, Event):
            return Event(ref.key, value, ref.headers, ref.message, ref.timestamp, acker=acker, ref=ref)
        if is_row(ref):
            message = Message.of(ref)
            return Event(message.key, value, message.headers, message, ref[TIMESTAMP], acker=acker, ref=ref)
        return Event(value=value, acker=acker, ref=ref)

    def key_at(self, i: int) -> Any:
        """The message key of value ``i`` (None when it has no message)."""
        ref = self.ref_at(i)
        if isinstance(ref, _Group):
            sources = sources_of(ref)
            ref = sources[-1] if sources else None
        if is_row(ref):
            return ref[KEY]
        return ref.key if isinstance(ref, Event) else None

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"<Batch of {len(self.values)}>"


class _Group:
    """The references of a value made of several inputs (a take batch, a join tuple)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Acknowledger | None, Any]]) -> None:
        self.pairs = pairs


class _GroupAcknowledger:
    """Acknowledges grouped references by handing each inner reference to its own acknowledger."""

    def ack(self, refs: Sequence[Any]) -> None:
        for group in refs:
            if group is not None:
                _ack_pairs(group.pairs)

    def reject(self, ref: Any) -> None:
        for acker, inner in ref.pairs:
            if acker is not None:
                acker.reject(inner)


GROUP_ACKER = _GroupAcknowledger()


class _EventAcknowledger:
    """Acknowledges references that are themselves events (streams built from events)."""

    def ack(self, refs: Sequence[Any]) -> None:
        for event in refs:
            if event is not None:
                event.ack()

    def reject(self, ref: Any) -> None:
        ref.reject()


EVENT_ACKER = _EventAcknowledger()


class _SharedRefs:
    """Acknowledges a flat_map's output, where the items of one input but the last carry a None reference."""

    __slots__ = ("acker",)

    def __init__(self, acker: Acknowledger) -> None:
        self.acker = acker

    def ack(self, refs: Sequence[Any]) -> None:
        owned = [ref for ref in refs if ref is not None]
        if owned:
            self.acker.ack(owned)

    def reject(self, ref: Any) -> None:
        self.acker.reject(ref)


def _ack_pairs(pairs: Iterable[tuple[Acknowledger | None, Any]]) -> None:
    """Acknowledge (acknowledger, reference) pairs: one call per increasing run of one acknowledger.

    A run is also one partition, and ends where offsets stop increasing (a join pairs a message more than
    once), since acknowledgers read a run's first and last offsets to tell a contiguous range.
    """
    run: list[Any] = []
    current: tuple[Any, ...] = (None,)
    previous = -1
    for acker, ref in pairs:
        row = is_row(ref)
        where = (acker, ref[TOPIC], ref[PARTITION]) if row else (acker, None, None)
        offset = ref[OFFSET] if row else None
        rising = offset is None or offset > previous
        previous = offset if offset is not None else -1
        if where != current or not rising:
            if current[0] is not None and run:
                current[0].ack(run)
            run = []
            current = where
        run.append(ref)
    if current[0] is not None and run:
        current[0].ack(run)


def _pairs_of(batch: Batch, start: int, stop: int) -> list[tuple[Acknowledger | None, Any]]:
    """The (acknowledger, reference) pairs of values ``start..stop`` of ``batch``."""
    refs = batch.refs
    if refs is None:
        return []
    if batch.acker is GROUP_ACKER:
        return [pair for group in refs[start:stop] if group is not None for pair in group.pairs]
    acker = batch.acker
    return [(acker, ref) for ref in refs[start:stop] if ref is not None]


def sources_of(ref: Any) -> list[Any]:
    """The references a value's reference stands for: its inputs' messages, through groups and expansions."""
    if ref is None:
        return []
    if isinstance(ref, _Group):
        return [source for _, inner in ref.pairs for source in sources_of(inner)]
    if isinstance(ref, _Item):
        return sources_of(ref.origin.ref)
    return [ref]


def describe_ref(ref: Any) -> str:
    """Name where a reference came from, for error messages."""
    if isinstance(ref, (_Group, _Item)):
        return ", ".join(map(describe_ref, sources_of(ref))) or "a derived value"
    if isinstance(ref, Event):
        ref = ref.message if ref.message is not None else ref
    if is_row(ref):
        return f"topic {ref[TOPIC]!r} partition {ref[PARTITION]} offset {ref[OFFSET]} key {ref[KEY]!r}"
    return repr(ref)


class Failure:
    """Where a stream failed: the exception and the reference of the value being processed."""

    __slots__ = ("acker", "ref")

    def __init__(self, acker: Acknowledger | None, ref: Any) -> None:
        self.acker = acker
        self.ref = ref


def failed(exc: Exception, batch: Batch, index: int, what: str) -> Exception:
    """Annotate ``exc`` with the value and message it failed on, so the error names what was wrong."""
    value = batch.values[index] if index < len(batch.values) else None
    ref = batch.ref_at(index)
    where = f" ({describe_ref(ref)})" if ref is not None else ""
    exc.add_note(f"rxstream: {what} raised on value {value!r}{where}")
    if not hasattr(exc, "__rxstream_failure__"):
        exc.__rxstream_failure__ = Failure(batch.acker, ref)  # type: ignore[attr-defined]
    return exc


def failure_of(exc: BaseException) -> Failure | None:
    """The reference a stream failed on, if the failure happened inside an operator."""
    return getattr(exc, "__rxstream_failure__", None)


class Flow:
    """Backpressure for one consumer: sources pause while buffered plus in-flight batches reach the limit."""

    __slots__ = ("_ready", "buffered", "high", "inflight")

    def __init__(self, high: int = 4) -> None:
        self.buffered = 0
        self.inflight = 0
        self.high = high
        self._ready: asyncio.Event | None = None

    def blocked(self) -> bool:
        """Whether sources should wait before pushing another batch."""
        return self.buffered + self.inflight >= self.high

    def sink_full(self) -> bool:
        """Whether the consumer's own buffer is full (work in flight elsewhere not counted)."""
        return self.buffered >= self.high

    async def wait(self, *, sink_only: bool = False) -> None:
        """Wait until the consumer has caught up (``sink_only``: until its buffer has room)."""
        full = self.sink_full if sink_only else self.blocked
        while full():
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            await self._ready.wait()

    def release(self) -> None:
        """Wake waiting sources if there is room again (each re-checks its own condition)."""
        if self._ready is not None and not self.sink_full():
            self._ready.set()


class Context:
    """What one consumption of a stream shares: the scheduler, the loop and the flow control."""

    __slots__ = ("_loop", "flow", "scheduler", "sink_only")

    def __init__(self, scheduler: abc.SchedulerBase | None = None, high: int = 4) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if scheduler is None:
            if loop is None:
                raise StreamError(
                    "a stream runs on the asyncio loop: consume it from a coroutine (await ...)"
                )
            scheduler = AsyncIOScheduler(loop)
        self._loop = loop
        self.scheduler: abc.SchedulerBase = scheduler
        self.flow = Flow(high)
        self.sink_only = False

    def reader(self) -> Context:
        """This consumption as seen by a source that must not wait for work in flight elsewhere.

        ``through`` reads back from the channel it writes to: if its reader waited for the writes in
        flight, and the writes waited for the channel to have room, neither would move.
        """
        view = Context.__new__(Context)
        view._loop = self._loop
        view.scheduler = self.scheduler
        view.flow = self.flow
        view.sink_only = True
        return view

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop this consumption belongs to."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop


def now(scheduler: abc.SchedulerBase) -> float:
    """The scheduler's clock in seconds."""
    return scheduler.now.timestamp()


# ---------------------------------------------------------------- sources


def pump(
    batches: Callable[[], AsyncIterator[Batch]],
    ctx: Context,
    on_dispose: Callable[[], None] | None = None,
) -> Observable[Batch]:
    """An observable that, once subscribed, pushes an async iterator's batches, pausing on backpressure.

    ``on_dispose`` runs synchronously when the consumer goes away, before anything else can read the
    source again (a subscription uses it to put unacknowledged messages back).
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

        def dispose() -> None:
            task.cancel()
            if on_dispose is not None:
                on_dispose()

        return Disposable(dispose)

    return reactivex.create(subscribe)


def batch_of(chunk: list[Any]) -> Batch:
    """A batch of plain values, or of events (which keep their metadata and acknowledgment)."""
    if isinstance(chunk[0], Event):
        return Batch([event.value for event in chunk], chunk, EVENT_ACKER)
    return Batch(chunk)


async def chunks_of(iterable: Iterable[Any]) -> AsyncIterator[Batch]:
    """Batches of an iterable's values."""
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


# ---------------------------------------------------------------- operators


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


def _keep(batch: Batch, mask: list[Any], upto: int | None = None) -> Batch:
    """The values whose mask is truthy.

    The references of the others are acknowledged at once when no kept value precedes them in the batch,
    else together with the kept value before them (see `_Sifted`). Commits are the same as if all were
    acknowledged at once, as no commit can pass that kept value before it is done; and the acknowledgment
    of a batch stays one contiguous run. After a flat_map, a dropped last item's reference moves to the last
    kept item of the same input, so the input is acknowledged once that item is done.
    """
    values = batch.values if upto is None else batch.values[:upto]
    refs = batch.refs
    if refs is None:
        return Batch(list(compress(values, mask)))
    refs = refs if upto is None else refs[:upto]
    acker = batch.acker
    kept_refs = list(compress(refs, mask))
    if acker is None:
        return Batch(list(compress(values, mask)), kept_refs)
    if len(kept_refs) == len(refs):
        return Batch(list(compress(values, mask)), kept_refs, acker)
    positions = list(compress(range(len(refs)), mask))
    if not positions:
        acker.ack(refs)
        return Batch([], [], acker)
    moved = _move_shared_refs(refs, mask, kept_refs) if _shares_refs(acker) else None
    first, last = positions[0], positions[-1]
    if first:
        acker.ack(refs[:first])
    if last + 1 < len(refs):
        tail = refs[last + 1 :]
        acker.ack([ref for i, ref in enumerate(tail, last + 1) if i not in moved] if moved else tail)
    if last - first + 1 == len(positions):  # nothing dropped between kept values
        return Batch(list(compress(values, mask)), kept_refs, acker)
    sifted = _Sifted(acker, refs, positions, kept_refs, moved or set())
    return Batch(list(compress(values, mask)), kept_refs, sifted)


def _shares_refs(acker: Acknowledger) -> bool:
    """Whether a batch acknowledged by ``acker`` has values sharing one reference (a flat_map's items)."""
    return isinstance(acker, _SharedRefs) or (isinstance(acker, _Sifted) and acker.shared)


def _move_shared_refs(refs: list[Any], mask: list[Any], kept_refs: list[Any]) -> set[int]:
    """Give an input's last kept item the reference its dropped last item carried; the moved positions.

    A flat_map's items of one input carry None but the last, which carries the input's reference.
    """
    moved: set[int] = set()
    pending: int | None = None  # the kept index of the current input's latest kept item
    kept_index = 0
    for i, (ref, keep) in enumerate(zip(refs, mask, strict=False)):
        if keep:
            pending = kept_index if ref is None else None
            kept_index += 1
        elif ref is not None:
            if pending is not None:
                kept_refs[pending] = ref
                moved.add(i)
            pending = None
    return moved


class _Sifted:
    """Acknowledges a filtered batch: a run of kept values also acknowledges the dropped ones after it.

    Runs come in order (the consumer acknowledges a prefix, operators pass increasing runs), so the batch's
    references up to the next kept value are acknowledged as one contiguous slice. Any other
    acknowledgment releases every dropped reference at once, as an unfiltered batch would have.
    """

    __slots__ = ("acker", "done", "kept", "moved", "next", "positions", "refs", "released", "shared")

    def __init__(
        self, acker: Acknowledger, refs: list[Any], positions: list[int], kept: list[Any], moved: set[int]
    ) -> None:
        self.acker = acker
        self.refs = refs
        self.positions = positions
        """Where each kept value sits among ``refs``."""
        self.kept = kept
        """The kept values' references (the batch's ``refs``)."""
        self.moved = moved
        """Positions of dropped references that a kept value carries now."""
        self.shared = _shares_refs(acker)
        self.done = positions[0]
        """``refs[:done]`` are acknowledged."""
        self.next = 0
        """How many kept values a run acknowledged so far."""
        self.released = False

    def ack(self, refs: Sequence[Any]) -> None:
        n = len(refs)
        if not n:
            return
        kept, k = self.kept, self.next
        if k + n <= len(kept) and refs[0] is kept[k] and refs[-1] is kept[k + n - 1]:
            self.next = k + n
        elif n <= len(kept) and refs[0] is kept[0] and refs[-1] is kept[n - 1]:
            self.next = max(k, n)
        else:
            if not self.released:
                self.released = True
                skip = self.moved.union(self.positions)
                original = self.refs
                dropped = [original[i] for i in range(self.done, self.positions[-1]) if i not in skip]
                if dropped:
                    self.acker.ack(dropped)
            self.acker.ack(refs)
            return
        m = self.next
        positions = self.positions
        stop = positions[m] if m < len(positions) else len(self.refs)  # the tail: a moved reference
        if stop > self.done:
            self.acker.ack(self.refs[self.done : stop])
            self.done = stop

    def reject(self, ref: Any) -> None:
        self.acker.reject(ref)


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
                return _keep(batch, mask, n), failed(exc, batch, n, "filter")
            return _keep(batch, mask), None

        return serial_async(process, ctx)

    def apply(batch: Batch) -> tuple[Batch | None, Exception | None]:
        mask: list[Any] = []
        try:
            mask.extend(map(fun, batch.values))
        except Exception as exc:
            n = len(mask)
            return _keep(batch, mask, n), failed(exc, batch, n, "filter")
        return _keep(batch, mask), None

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


class _Expanded:
    """An input expanded into an inner stream: acknowledged once it completed and all its items were."""

    __slots__ = ("acked", "acker", "completed", "emitted", "ref", "settled")

    def __init__(self, acker: Acknowledger, ref: Any) -> None:
        self.acker = acker
        self.ref = ref
        self.emitted = 0
        self.acked = 0
        self.completed = False
        self.settled = False

    def settle(self) -> None:
        if not self.settled and self.completed and self.acked >= self.emitted:
            self.settled = True
            self.acker.ack((self.ref,))


class _Item:
    """One item of an inner stream, as a reference: acknowledging it counts once toward its origin."""

    __slots__ = ("acked", "origin")

    def __init__(self, origin: _Expanded) -> None:
        self.origin = origin
        self.acked = False


class _ItemAcknowledger:
    """Acknowledges the items of inner streams (see `_Expanded`)."""

    def ack(self, refs: Sequence[Any]) -> None:
        for item in refs:
            if not item.acked:
                item.acked = True
                item.origin.acked += 1
                item.origin.settle()

    def reject(self, ref: Any) -> None:
        origin = ref.origin
        if not origin.settled:
            origin.settled = True
            origin.acker.reject(origin.ref)


ITEM_ACKER = _ItemAcknowledger()


def _unshared(batch: Batch) -> Batch:
    """A flat_map's batch whose items each stand for their input, for operators that split it apart.

    The items of one input carry None but the last, so acknowledging that last item would acknowledge the
    input while its other items, routed elsewhere, are pending; here the input counts its items instead.
    """
    refs = batch.refs
    acker = batch.acker
    if refs is None or acker is None:
        return batch
    groups: list[Any] = []
    start = 0
    for i, ref in enumerate(refs):
        if ref is None:
            continue
        if i == start:
            groups.append(_Group([(acker, ref)]))
        else:
            expanded = _Expanded(acker, ref)
            expanded.emitted = i - start + 1
            expanded.completed = True
            groups.extend(_Group([(ITEM_ACKER, _Item(expanded))]) for _ in range(i - start + 1))
        start = i + 1
    groups.extend(_Group([]) for _ in range(len(refs) - start))  # items whose input is in a later batch
    return Batch(batch.values, groups, GROUP_ACKER)


def _carrying(inner: Observable[Batch], acker: Acknowledger, ref: Any) -> Observable[Batch]:
    """An inner stream's batches whose items also stand for the input they came from."""

    def subscribe(observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None) -> Any:
        origin = _Expanded(acker, ref)

        def on_next(batch: Batch) -> None:
            n = len(batch.values)
            origin.emitted += n
            groups = [_Group([*_pairs_of(batch, i, i + 1), (ITEM_ACKER, _Item(origin))]) for i in range(n)]
            observer.on_next(Batch(batch.values, groups, GROUP_ACKER))

        def on_completed() -> None:
            origin.completed = True
            origin.settle()
            observer.on_completed()

        return inner.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)

    return Observable(subscribe)


def flat_map_values(
    fun: Callable[[Any], Any], inner_of: Callable[[Any], Observable[Batch] | None]
) -> Operator:
    """Replace each value by the items of ``fun(value)``.

    ``inner_of`` turns a result into an observable of batches, or None for a plain iterable, which expands
    in place (an input is acknowledged with its last item). Observables are merged as they produce, and an
    input is acknowledged when its inner stream completed and each of its items was acknowledged.
    """

    def expand(batch: Batch) -> Observable[Batch]:
        parts: list[Observable[Batch]] = []
        values: list[Any] = []
        refs: list[Any] | None = [] if batch.refs is not None else None
        acker = batch.acker
        shared = False
        moves = acker is not None and _shares_refs(acker)
        open_item: int | None = None  # where the current input's latest item (not its last) went in refs
        error: Exception | None = None
        for i, value in enumerate(batch.values):
            ref = batch.refs[i] if batch.refs is not None else None
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
                acker = _SharedRefs(acker)
            parts.insert(0, reactivex.just(Batch(values, refs, acker)))
        if error is not None:
            parts.append(reactivex.throw(error))
        return reactivex.merge(*parts)

    return ops.flat_map(expand)


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
                    out = Batch([values[:]], [_Group(pairs[:])], GROUP_ACKER)
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
                    pairs.extend(_pairs_of(batch, start, stop))
                    start = stop
                    if len(values) >= max_:
                        flush()

            def on_completed() -> None:
                timer.dispose()
                generation[0] += 1
                if values:
                    observer.on_next(Batch([values[:]], [_Group(pairs[:])], GROUP_ACKER))
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


def lookup_join(get: Callable[[Any], Any], on: Callable[[Any], Any] | None) -> Operator:
    """Pair every value with ``get(key)``, the key being the event key or ``on(value)`` (table enrichment)."""

    def apply(batch: Batch) -> tuple[Batch | None, Exception | None]:
        out: list[Any] = []
        append = out.append
        key_at = batch.key_at
        try:
            for i, value in enumerate(batch.values):
                append((value, get(on(value) if on is not None else key_at(i))))
        except Exception as exc:
            return batch.head(len(out), out), failed(exc, batch, len(out), "join")
        return batch.derive(out), None

    return batchwise(apply)


def joined(
    sources: Sequence[Observable[Batch]],
    key_of: Callable[[Batch, int], Any],
    within: float,
    scheduler: abc.SchedulerBase,
) -> Observable[Batch]:
    """Windowed inner join: a tuple of one value per source for values sharing a key within ``within`` s.

    Inputs are acknowledged when they leave the window (they can no longer join), so a crash replays
    the window rather than losing it.
    """
    n = len(sources)

    def subscribe(
        observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        # per source: key -> deque of (arrival, value, acker, ref)
        windows: list[dict[Any, deque[tuple[float, Any, Any, Any]]]] = [{} for _ in range(n)]
        arrivals: deque[tuple[float, int, Any]] = deque()
        remaining = [n]
        sub = CompositeDisposable()
        timer = SerialDisposable()
        sub.add(timer)
        armed = [False]

        def arm() -> None:
            """Expire the oldest arrival when it leaves the window, even if no input comes after it."""
            if armed[0] or not arrivals:
                return
            armed[0] = True
            due = arrivals[0][0] + within - now(scheduler)

            def fire(_: abc.SchedulerBase, __: Any = None) -> None:
                armed[0] = False
                expire(now(scheduler))
                arm()

            timer.disposable = scheduler.schedule_relative(max(due, 0.0) + 0.001, fire)

        def expire(t: float) -> None:
            while arrivals and arrivals[0][0] < t - within:
                _, index, key = arrivals.popleft()
                entries = windows[index].get(key)
                if entries:
                    _, _, acker, ref = entries.popleft()
                    if acker is not None and ref is not None:
                        acker.ack((ref,))
                    if not entries:
                        del windows[index][key]

        def on_next_from(index: int) -> Callable[[Batch], None]:
            def on_next(batch: Batch) -> None:
                t = now(scheduler)
                expire(t)
                out: list[Any] = []
                for i, value in enumerate(batch.values):
                    key = key_of(batch, i)
                    ref = batch.refs[i] if batch.refs is not None else None
                    partners = [windows[j].get(key) for j in range(n) if j != index]
                    if all(partners):
                        combos: list[tuple[Any, ...]] = [()]
                        for j in range(n):
                            if j == index:
                                combos = [(*c, value) for c in combos]
                            else:
                                combos = [(*c, entry[1]) for c in combos for entry in windows[j][key]]
                        out.extend(combos)
                    windows[index].setdefault(key, deque()).append((t, value, batch.acker, ref))
                    arrivals.append((t, index, key))
                if out:
                    observer.on_next(Batch(out))
                arm()

            return on_next

        def on_completed() -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                for window in windows:
                    for entries in window.values():
                        _ack_pairs((acker, ref) for _, _, acker, ref in entries if ref is not None)
                    window.clear()
                observer.on_completed()

        for index, source in enumerate(sources):
            sub.add(source.subscribe(on_next_from(index), observer.on_error, on_completed))
        return sub

    return Observable(subscribe)


def with_values_operators(operators: Sequence[Callable[[Observable[Any]], Observable[Any]]]) -> Operator:
    """Apply raw reactivex operators to the values.

    Values leave their batches; an input is acknowledged once an output emitted after it was consumed
    (or when the stream completes), since raw operators do not say which input an output came from.
    """

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            pending: list[tuple[Acknowledger | None, Any]] = []
            values: reactivex.Subject[Any] = reactivex.Subject()

            def emit(value: Any) -> None:
                group = _Group(pending[:])
                pending.clear()
                observer.on_next(Batch([value], [group], GROUP_ACKER))

            def on_completed() -> None:
                if pending:
                    _ack_pairs(pending)
                    pending.clear()
                observer.on_completed()

            out = values.pipe(*operators)
            inner = out.subscribe(emit, observer.on_error, on_completed, scheduler=scheduler)

            def on_next(batch: Batch) -> None:
                # an input joins the pending ones just before it is pushed: an output it causes at once
                # must not carry the inputs after it
                for i, value in enumerate(batch.values):
                    pending.extend(_pairs_of(batch, i, i + 1))
                    values.on_next(value)

            outer = source.subscribe(on_next, values.on_error, values.on_completed, scheduler=scheduler)
            return CompositeDisposable(inner, outer)

        return Observable(subscribe)

    return operator


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


# ---------------------------------------------------------------- grouping


class GroupSubject:
    """The values of one key: buffered until the substream is consumed, counted against the flow."""

    def __init__(self, key: Any, flow: Flow) -> None:
        self.key = key
        self._flow = flow
        self._buffer: deque[Batch] = deque()
        self._observer: abc.ObserverBase[Batch] | None = None
        self._done = False
        self._error: Exception | None = None
        self.last_seen = 0.0

    @property
    def buffered(self) -> int:
        """How many batches wait for a consumer."""
        return len(self._buffer)

    def on_next(self, batch: Batch) -> None:
        if self._observer is not None:
            self._observer.on_next(batch)
        else:
            self._buffer.append(batch)
            self._flow.buffered += 1

    def on_error(self, exc: Exception) -> None:
        self._error = exc
        if self._observer is not None:
            self._observer.on_error(exc)

    def on_completed(self) -> None:
        self._done = True
        if self._observer is not None:
            self._observer.on_completed()

    def observable(self) -> Observable[Batch]:
        """The substream's source: replays what was buffered, then forwards live."""

        def subscribe(
            observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if self._observer is not None:
                raise StreamError(f"the substream of group key {self.key!r} is already being consumed")
            while self._buffer:
                self._flow.buffered -= 1
                observer.on_next(self._buffer.popleft())
            self._flow.release()
            if self._error is not None:
                observer.on_error(self._error)
            elif self._done:
                observer.on_completed()
            else:
                self._observer = observer

            def detach() -> None:
                self._observer = None

            return Disposable(detach)

        return Observable(subscribe)


class GroupDealer:
    """Splits batches by key into groups and deals each new group to whoever waits for one."""

    def __init__(
        self,
        key_of: Callable[[Any], Any],
        ctx: Context,
        make_substream: Callable[[GroupSubject], Any],
        group_timeout: float | None,
        max_groups: int,
        spawn: Callable[[], bool] | None = None,
    ) -> None:
        self._key_of = key_of
        self._ctx = ctx
        self._make = make_substream
        self._timeout = group_timeout
        self._max = max_groups
        self.groups: dict[Any, GroupSubject] = {}
        self._timer = SerialDisposable()
        self._spawn = spawn
        self.spawned = 0
        self.outer_idle = False
        self._handoff: deque[tuple[Any, Any]] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def keep_groups(self) -> None:
        """Deal every group downstream: an operator consumes the groups, not a loop in an agent instance."""
        self._spawn = None

    def set_outer_idle(self, idle: bool) -> None:
        """The first outer loop reports whether it waits for a group (then it gets the next new one)."""
        self.outer_idle = idle

    def _deal(self, pair: tuple[Any, Any], downstream: list[Any]) -> None:
        """Give a new (key, substream) to a waiting loop, else to a new agent instance, else downstream."""
        if self._spawn is None or self.outer_idle:
            self.outer_idle = False
            downstream.append(pair)
        elif len(self._waiters) > len(self._handoff):
            self._hand(pair)
        elif self.spawned < self._max and self._spawn():
            self.spawned += 1
            self._hand(pair)
        else:
            downstream.append(pair)

    def _hand(self, pair: tuple[Any, Any]) -> None:
        self._handoff.append(pair)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def claimed(self) -> AsyncIterator[tuple[Any, Any]]:
        """The groups dealt to a loop of another agent instance, as they come."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            if self._handoff:
                yield self._handoff.popleft()
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _close_handoff(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def split(self, batch: Batch) -> tuple[Batch | None, Exception | None]:
        """Route a batch's values to their groups; emit (key, substream) for keys seen the first time."""
        keys: list[Any] = []
        try:
            keys.extend(map(self._key_of, batch.values))
        except Exception as exc:
            n = len(keys)
            self._route(batch, keys, n)
            return None, failed(exc, batch, n, "group_by key")
        return self._route(batch, keys, len(keys)), None

    def _route(self, batch: Batch, keys: list[Any], n: int) -> Batch | None:
        if batch.acker is not None and _shares_refs(batch.acker):
            batch = _unshared(batch)
        by_key: dict[Any, list[int]] = {}
        for i in range(n):
            by_key.setdefault(keys[i], []).append(i)
        new: list[Any] = []
        stamp = now(self._ctx.scheduler)
        for key, indexes in by_key.items():
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = GroupSubject(key, self._ctx.flow)
                self._deal((key, self._make(group)), new)
            group.last_seen = stamp
            values = batch.values
            refs = batch.refs
            group.on_next(
                Batch(
                    [values[i] for i in indexes],
                    [refs[i] for i in indexes] if refs is not None else None,
                    batch.acker,
                )
            )
        if self._timeout is not None and new:
            self._schedule_expiry()
        return Batch(new) if new else None

    def _schedule_expiry(self) -> None:
        timeout = self._timeout
        assert timeout is not None
        scheduler = self._ctx.scheduler

        def expire(_: abc.SchedulerBase, __: Any = None) -> None:
            cutoff = now(scheduler) - timeout
            for key, group in list(self.groups.items()):
                if group.last_seen <= cutoff:
                    del self.groups[key]
                    group.on_completed()
            if self.groups:
                self._timer.disposable = scheduler.schedule_relative(timeout, expire)

        if self._timer.disposable is None or getattr(self._timer.disposable, "is_disposed", False):
            self._timer.disposable = scheduler.schedule_relative(timeout, expire)

    def complete(self) -> None:
        """End every group's substream."""
        self._timer.dispose()
        self._close_handoff()
        for group in self.groups.values():
            group.on_completed()

    def fail(self, exc: Exception) -> None:
        """Fail every group's substream."""
        self._timer.dispose()
        self._close_handoff()
        for group in self.groups.values():
            group.on_error(exc)

    def starving(self, consuming: GroupSubject | None) -> GroupSubject | None:
        """A group other than ``consuming`` whose buffered values hold the source back, if any."""
        if self._spawn is not None or not self._ctx.flow.blocked():
            return None
        for group in self.groups.values():
            if group is not consuming and group.buffered:
                return group
        return None


def grouped(dealer: GroupDealer) -> Operator:
    """Split a stream into groups: emits (key, substream) batches; substreams get the values."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(batch: Batch) -> None:
                out, exc = dealer.split(batch)
                if out is not None:
                    observer.on_next(out)
                if exc is not None:
                    dealer.fail(exc)
                    observer.on_error(exc)

            def on_error(exc: Exception) -> None:
                dealer.fail(exc)
                observer.on_error(exc)

            def on_completed() -> None:
                dealer.complete()
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator


# ---------------------------------------------------------------- consumers


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
        self._waiter = self.ctx.loop.create_future()
        try:
            if timeout is None:
                await self._waiter
            else:
                await asyncio.wait_for(asyncio.shield(self._waiter), timeout)
        finally:
            self._waiter = None


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


async def iterate(
    observable: Observable[Batch],
    ctx: Context,
    cursor: Cursor,
    *,
    auto_ack: bool,
    starving: Callable[[], Any] | None = None,
    idle: Callable[[bool], None] | None = None,
) -> AsyncIterator[Any]:
    """Yield the values of a compiled stream; acknowledge each when the consumer asks for the next one."""
    sink = Sink(ctx)
    subscription = observable.subscribe(sink)
    queue = sink.queue
    token = set_event_source(cursor)
    try:
        while True:
            if not queue:
                if sink.error is not None:
                    raise sink.error
                if sink.done:
                    return
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
            if batch.refs is None:
                cursor.batch = None
                for value in values:
                    yield value
                continue
            cursor.batch = batch
            n = len(values)
            i = acked = 0
            try:
                while i < n:  # in runs of ACK_EVERY, each acknowledged once the consumer moved past it
                    for value in values[i : i + ACK_EVERY] if n > ACK_EVERY else values:
                        cursor.index = i
                        yield value
                        i += 1
                    if auto_ack and i < n:
                        batch.ack_range(acked, i)
                        acked = i
            finally:
                if auto_ack:
                    batch.ack_range(acked, i)
    finally:
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

    subscription.disposable = observable.subscribe(on_next, on_error, on_completed)
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
    """Call ``on_next`` per value; each value is acknowledged once the callback returned."""

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
            print(f"rxstream: unhandled stream error: {exc!r}", file=sys.stderr)

    return observable.subscribe(batch_next, report, on_completed)


def merged(observables: Sequence[Observable[Batch]]) -> Observable[Batch]:
    """Batches of all sources, interleaved as they arrive."""
    return reactivex.merge(*observables)


def concatenated(observables: Sequence[Observable[Batch]]) -> Observable[Batch]:
    """Batches of each source in turn; the next is subscribed when the previous completes."""
    return reactivex.concat(*observables)


def deferred(build: Callable[[], Observable[T_]]) -> Observable[T_]:
    """An observable built at subscription time (so each subscription compiles its own pipeline)."""
    return reactivex.defer(lambda _: build())


def events_of(observable: Observable[Batch]) -> Observable[Event]:
    """The compiled stream as one event per value (materialising events)."""

    def expand(batch: Batch) -> Observable[Event]:
        return reactivex.from_iterable([batch.event_at(i) for i in range(len(batch.values))])

    return observable.pipe(ops.concat_map(expand))
