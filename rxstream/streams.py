"""Stream: a chain of operators over events, compiled to a reactivex pipeline when it is consumed."""

from __future__ import annotations

from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Generic, TypeVar

from . import _rx
from ._rx import Batch, Context, Cursor, DisposableBase, Observable, Operator, SchedulerBase
from ._rx.fused import keeping, mapping, piped
from ._rx.taps import Demand, asked, gates, tapped
from .durations import Duration, seconds
from .errors import ConfigurationError, StreamConsumedError, StreamEmptyError, StreamError
from .events import Event
from .forwarding import channel_of, fan_out, through_operator
from .peeked import Peeked, PeekSource, reread
from .stream_args import check_callable, check_positive, name_of, short

__all__ = ["Stream"]

T = TypeVar("T")
U = TypeVar("U")
K = TypeVar("K")

Step = Callable[[Context], Operator]


class _Origin:
    """Where a chain starts: builds its source observable for one consumption; consumed at most once."""

    __slots__ = (
        "active",
        "app",
        "build",
        "consumed_by",
        "context",
        "dealers",
        "demand",
        "label",
        "on_batch",
        "peek",
        "scheduler",
        "spawn",
    )

    def __init__(
        self,
        build: Callable[[Context], Observable[Batch]],
        label: str,
        *,
        scheduler: SchedulerBase | None = None,
        context: Context | None = None,
        peek: PeekSource | None = None,
    ) -> None:
        self.build = build
        self.label = label
        self.scheduler = scheduler
        self.context = context
        self.peek = peek
        self.consumed_by: str | None = None
        self.active: Stream[Any] | None = None
        self.app: Any = None
        """The app whose topic this chain reads (group_by routes through a repartition topic then)."""
        self.dealers: dict[str, _rx.GroupDealer] = {}
        self.demand: Demand | None = None
        """Set while a consumer iterates: the taps (tee, echo) act only on the values it takes."""
        self.spawn: Callable[[], bool] | None = None
        """Set by an agent: starts another instance of it for a group no loop is waiting for."""
        self.on_batch: Callable[[int, float], None] | None = None
        """Told of each batch the chain's consumer went through: (values, seconds) — the app's monitor."""


class Stream(Generic[T]):
    """A lazily compiled chain of operators over a source of events; iterate it, or collect it.

    >>> out = await Stream.from_iterable(range(10)).filter(lambda x: x % 2).map(lambda x: x * 10).to_list()
    """

    def __init__(
        self,
        origin: _Origin,
        steps: tuple[tuple[str, Step], ...] = (),
        *,
        noack: bool = False,
        grouped: bool = False,
        starving: Callable[[], str | None] | None = None,
    ) -> None:
        self._origin = origin
        self._steps = steps
        self._noack = noack
        self._grouped = grouped
        self._starving = starving
        self._cursor = Cursor()
        self._iterator: AsyncIterator[T] | None = None

    # ------------------------------------------------------------ sources

    @classmethod
    def from_iterable(cls, iterable: Iterable[T], *, scheduler: SchedulerBase | None = None) -> Stream[T]:
        """A stream of an iterable's values."""
        if not isinstance(iterable, Iterable):
            raise ConfigurationError(
                f"Stream.from_iterable() takes an iterable, got {type(iterable).__name__}"
            )

        def build(ctx: Context) -> Observable[Batch]:
            return _rx.pump(lambda: _rx.chunks_of(iterable), ctx)

        label = f"from_iterable({short(iterable)})"
        peek = reread(build, label, once=isinstance(iterable, Iterator))
        return cls(_Origin(build, label, scheduler=scheduler, peek=peek))

    @classmethod
    def from_async_iterable(
        cls, iterable: AsyncIterable[T], *, scheduler: SchedulerBase | None = None
    ) -> Stream[T]:
        """A stream of an async iterable's values."""
        if not isinstance(iterable, AsyncIterable):
            raise ConfigurationError(
                f"Stream.from_async_iterable() takes an async iterable, got {type(iterable).__name__}"
            )

        def build(ctx: Context) -> Observable[Batch]:
            return _rx.pump(lambda: _rx.chunks_of_async(iterable), ctx)

        label = f"from_async_iterable({short(iterable)})"
        peek = reread(build, label, once=isinstance(iterable, AsyncIterator))
        return cls(_Origin(build, label, scheduler=scheduler, peek=peek))

    @classmethod
    def from_observable(
        cls, observable: Observable[T], *, scheduler: SchedulerBase | None = None
    ) -> Stream[T]:
        """A stream of an observable's values; `Event` values keep their metadata and acknowledgment."""
        if not isinstance(observable, Observable):
            raise ConfigurationError(
                f"Stream.from_observable() takes a reactivex Observable, got {type(observable).__name__}"
            )
        return cls(
            _Origin(
                lambda ctx: _rx.from_values_observable(observable),
                "from_observable(...)",
                scheduler=scheduler,
            )
        )

    # ------------------------------------------------------------ chaining

    def _then(self, label: str, step: Step, *, grouped: bool = False) -> Stream[Any]:
        return Stream(
            self._origin,
            (*self._steps, (label, step)),
            noack=self._noack,
            grouped=grouped,
            starving=self._starving,
        )

    def map(self, fun: Callable[[T], Awaitable[U]] | Callable[[T], U]) -> Stream[U]:
        """Apply ``fun`` (plain or ``async``) to every value, in order."""
        check_callable(fun, "map")
        return self._then(f"map({name_of(fun)})", mapping(fun))

    def filter(self, fun: Callable[[T], Any]) -> Stream[T]:
        """Keep the values for which ``fun`` (plain or ``async``) is truthy; the others are acked at once."""
        check_callable(fun, "filter")
        return self._then(f"filter({name_of(fun)})", keeping(fun))

    def items(self) -> Stream[tuple[Any, T]]:
        """(key, value) pairs; the key is the message key (None for values without a message)."""

        def pairs(batch: Batch) -> Batch:
            return batch.derive(list(zip(batch.keys(), batch.values, strict=True)))

        return self._then("items()", lambda ctx: _rx.transform(pairs))

    def events(self) -> Stream[Event]:
        """The `Event` of every value, with its metadata and ``ack``/``reject``/``forward``."""
        return self._then("events()", lambda ctx: _rx.transform(_events_of))

    def enumerate(self, start: int = 0) -> Stream[tuple[int, T]]:
        """(index, value) pairs, counting from ``start``."""
        if isinstance(start, bool) or not isinstance(start, int):
            raise ConfigurationError(f"Stream.enumerate(): start must be an integer, got {start!r}")
        return self._then(f"enumerate({start})", lambda ctx: _rx.enumerate_values(start))

    def take(self, max_: int, *, within: Duration | None = None) -> Stream[list[T]]:
        """Lists of up to ``max_`` values, closed ``within`` seconds after their first value; never empty."""
        within = seconds(within)
        check_positive(max_, "max_", "take", integer=True)
        if within is not None:
            check_positive(within, "within", "take")
        return self._then(
            f"take({max_}, within={within})",
            lambda ctx: _rx.take_batches(max_, within, ctx.scheduler, periodic=False),
        )

    def noack_take(self, max_: int, within: Duration | None = None) -> Stream[list[T]]:
        """`take` whose events are not acknowledged automatically (Faust's ``noack_take``): ack each."""
        return self.noack().take(max_, within=within)

    def take_with_timestamp(
        self, max_: int, within: Duration | None, timestamp_field_name: str
    ) -> Stream[list[T]]:
        """`take`, with each dict value's ``timestamp_field_name`` set to its message's timestamp.

        Values that are not dicts go on unchanged; a dict is copied, never changed in place.
        """
        field = timestamp_field_name
        if not isinstance(field, str) or not field:
            raise ConfigurationError(f"Stream.take_with_timestamp(): timestamp_field_name is {field!r}")

        def stamped(batch: Batch) -> Batch:
            at = batch.event_at
            values = [
                {**v, field: at(i).timestamp} if isinstance(v, dict) else v
                for i, v in enumerate(batch.values)
            ]
            return batch.derive(values)

        stream = self._then(f"timestamped({field!r})", lambda ctx: _rx.transform(stamped))
        return stream.take(max_, within=within)

    def buffer(self, size: int, *, timeout: Duration | None = None) -> Stream[list[T]]:
        """Lists of up to ``size`` values, flushed ``timeout`` seconds after the last flush; never empty."""
        timeout = seconds(timeout)
        check_positive(size, "size", "buffer", integer=True)
        if timeout is not None:
            check_positive(timeout, "timeout", "buffer")
        return self._then(
            f"buffer({size}, timeout={timeout})",
            lambda ctx: _rx.take_batches(size, timeout, ctx.scheduler, periodic=True),
        )

    def rate_limit(self, rate: int, *, per: Duration = 1.0, within: Duration | None = None) -> Stream[T]:
        """At most ``rate`` values per ``per`` seconds, delayed (never dropped); ``within`` is the burst."""
        per, within = seconds(per), seconds(within)
        check_positive(rate, "rate", "rate_limit")
        check_positive(per, "per", "rate_limit")
        window = per if within is None else within
        check_positive(window, "within", "rate_limit")
        return self._then(
            f"rate_limit({rate}, per={per})",
            lambda ctx: _rx.rate_limited(rate, per, window, ctx.scheduler, ctx),
        )

    def tee(self, *targets: Any) -> Stream[T]:
        """Forward each value the consumer takes to every target and pass it on.

        Targets: channels, topics (or a topic's name, on a stream of an app's topic), agents, callables.
        """
        return self._tap(targets, "tee")

    def _tap(self, targets: tuple[Any, ...], operator: str) -> Stream[T]:
        """`tee`, with errors naming the ``operator`` the user called."""
        if not targets:
            raise ConfigurationError(
                f"Stream.{operator}() needs at least one target (a channel, topic, agent or callable)"
            )
        app = self._origin.app
        forward = fan_out(tuple(channel_of(target, app, operator) for target in targets), operator)
        names = ", ".join(target if isinstance(target, str) else name_of(target) for target in targets)
        return self._then(f"{operator}({names})", self._tap_step(forward, operator))

    def _tap_step(self, fun: Callable[[Any], Any], operator: str) -> Step:
        """The step of a tap: gated by the consumer's demand when one iterates this chain."""
        origin = self._origin

        def step(ctx: Context) -> Operator:
            demand = origin.demand
            if demand is not None and demand.serves(ctx):
                return tapped(fun, ctx, operator, demand)
            return _rx.side_effect(fun, ctx, operator)

        step.taps = True  # type: ignore[attr-defined]
        return _sends(step)

    def echo(self, *channels: Any) -> Stream[T]:
        """Forward each value the consumer takes to ``channels`` (as Faust's echo); with none, print it.

        Channels are topics, channels, agents, callables, or topic names of the stream's app.
        ``stream.echo()`` prints every value taken: a notebook's look at what flows.
        """
        if not channels:
            return self._then("echo()", self._tap_step(print, "echo"))
        return self._tap(channels, "echo")

    def combine(self, *streams: Stream[Any]) -> Stream[Any]:
        """Merge this stream with ``streams``: values of all, interleaved as they arrive."""
        parts = [self, *_check_streams(streams, "combine")]
        return _multi("combine", parts, lambda observables, ctx: _rx.merged(observables))

    def __and__(self, other: Stream[Any]) -> Stream[Any]:
        """``stream & other`` is ``stream.combine(other)`` (Faust's shape)."""
        return self.combine(other)

    def concat(self, *streams: Stream[Any]) -> Stream[Any]:
        """This stream's values, then each of ``streams`` in turn once the previous completed."""
        parts = [self, *_check_streams(streams, "concat")]
        return _multi("concat", parts, lambda observables, ctx: _rx.concatenated(observables))

    def join(
        self, *streams: Any, on: Callable[[Any], Any] | None = None, within: Duration | None = None
    ) -> Stream[tuple[Any, ...]]:
        """Windowed inner join: a tuple of values sharing a key that arrived within ``within`` seconds.

        With a single table (any mapping) instead: ``(value, table.get(key))`` for every value, the key being
        the event key or ``on(value)`` (stream-table enrichment; looked up as the value passes the join).
        """
        if on is not None:
            check_callable(on, "join")
        if len(streams) == 1 and isinstance(streams[0], Mapping):
            table = streams[0]
            return self._then(f"join({name_of(table)})", lambda ctx: _rx.lookup_join(table.get, on))
        others = _check_streams(streams, "join")
        if not others:
            raise ConfigurationError("Stream.join() needs at least one other stream, or one table")
        if within is None:
            raise ConfigurationError("Stream.join() of streams needs within=SECONDS, the join window")
        within = seconds(within)
        check_positive(within, "within", "join")

        def key_of(batch: Batch, i: int) -> Any:
            return on(batch.values[i]) if on is not None else batch.key_at(i)

        return _multi(
            "join",
            [self, *others],
            lambda observables, ctx: _rx.joined(observables, key_of, within, ctx.scheduler),
        )

    def flat_map(self, fun: Callable[..., Any]) -> Stream[Any]:
        """Replace each value by the items of ``fun(value)``: an iterable, an async iterable or a Stream.

        On a grouped stream ``fun(key, substream)`` is called once per group. Plain iterables expand in
        place; streams and async iterables are merged as they produce.
        """
        check_callable(fun, "flat_map")
        call: Callable[[Any], Any] = (lambda pair: fun(*pair)) if self._grouped else fun

        def step(ctx: Context) -> Operator:
            def inner_of(result: Any) -> Observable[Batch] | None:
                if isinstance(result, Stream):
                    return result._compile(ctx)
                if isinstance(result, AsyncIterable):
                    return Stream.from_async_iterable(result)._compile(ctx)
                if isinstance(result, Iterable) and not isinstance(result, (str, bytes)):
                    return None
                raise ConfigurationError(
                    f"Stream.flat_map(): {name_of(fun)} must return an iterable, async iterable or Stream, "
                    f"got {type(result).__name__}"
                )

            return _rx.flat_map_values(call, inner_of)

        return self._then(f"flat_map({name_of(fun)})", step)

    def group_by(
        self,
        key: Callable[[T], K],
        *,
        name: str | None = None,
        topic: Any = None,
        group_timeout: Duration | None = None,
        max_groups: int = 10_000,
    ) -> Stream[tuple[K, Stream[T]]]:
        """(key, substream) for every key when first seen; the substream then yields that key's values.

        Use ``stream.group_by(f).flat_map(lambda key, sub: ...)`` functionally, or nest ``async for`` loops
        inside an agent. Outside an agent, a nested loop that would starve other keys raises StreamError.
        """
        check_callable(key, "group_by")
        check_positive(max_groups, "max_groups", "group_by", integer=True)
        group_timeout = seconds(group_timeout)
        if group_timeout is not None:
            check_positive(group_timeout, "group_timeout", "group_by")
        keyed = self.map(key) if _rx.is_async(key) else None
        if keyed is not None:
            raise ConfigurationError(
                f"Stream.group_by(): the key function {name_of(key)} must be a plain function, not async"
            )
        stream_cls = type(self)
        label = f"group_by({name or name_of(key)})"
        shown = getattr(key, "__name__", None) or name_of(key)
        call = f"group_by({'...' if shown == '<lambda>' else shown}{f', name={name!r}' if name else ''})"
        origin = self._origin
        source: Stream[Any] = self
        app = origin.app
        if app is not None and topic is not False:
            if topic is None:
                if name is None and getattr(key, "__name__", "<lambda>") == "<lambda>":
                    raise ConfigurationError(
                        "Stream.group_by() on a topic routes every event through a repartition topic named "
                        "after `name`; the key function is a lambda, so pass name=... (or topic=...)"
                    )
                # keys of any JSON type (group keys are often ints), as the same bytes on every transport
                routed = f"{app.id}-{name or getattr(key, '__name__', 'key')}-repartition"
                topic = app.topic(routed, key_serializer="json")
            elif isinstance(topic, str):
                topic = app.topic(topic)
            repartition = topic
            source = self._then(
                f"repartition({name_of(repartition)})", _sends(lambda ctx: _through(ctx, repartition, key))
            )

        def step(ctx: Context) -> Operator:
            dealer: _rx.GroupDealer

            def make_substream(group: _rx.GroupSubject) -> Stream[Any]:
                def starving() -> str | None:
                    stuck = dealer.starving(group)
                    if stuck is None:
                        return None
                    return (
                        f"{label}: the loop over key {group.key!r} waits for values while key "
                        f"{stuck.key!r} has values nobody reads; outside an agent a nested loop over "
                        f"substreams would starve other keys: use .flat_map(lambda key, sub: ...) or run "
                        f"this loop in an agent"
                    )

                origin = _Origin(lambda _: group.observable(), f"{label}[{group.key!r}]", context=ctx)
                return stream_cls(origin, noack=self._noack, starving=starving)

            dealer = _rx.GroupDealer(
                key, ctx, make_substream, group_timeout, max_groups, spawn=origin.spawn, label=call
            )
            origin.dealers[label] = dealer
            return _rx.grouped(dealer)

        return source._then(label, step, grouped=True)

    def through(self, channel: Any) -> Stream[T]:
        """Send every value to ``channel`` (a topic, channel, or topic name) and continue with what it reads.

        Upstream events are acknowledged once their value was handed to the channel; on a topic that is a
        repartition by hand: the values continue on the worker that owns their partition.
        """
        channel = channel_of(channel, self._origin.app, "through")
        if not (callable(getattr(channel, "send", None)) and callable(getattr(channel, "stream", None))):
            raise ConfigurationError(
                f"Stream.through() takes a channel, topic or topic name, got {channel!r}"
            )
        return self._then(f"through({name_of(channel)})", _sends(lambda ctx: _through(ctx, channel, None)))

    def pipe(self, *operators: Callable[[Observable[Any]], Observable[Any]]) -> Stream[Any]:
        """Apply raw reactivex operators to the values."""
        for op in operators:
            check_callable(op, "pipe")
        ops = tuple(operators)
        named = ", ".join(_rx.describe_operator(op, short) for op in ops)
        return self._then(f"pipe({named})", lambda ctx: _rx.with_values_operators(ops))

    def stop_after(self, timeout: Duration) -> Stream[T]:
        """End the stream ``timeout`` seconds (of the stream's scheduler) after its consumption starts.

        ``async for value in stream.stop_after(5)`` ends quietly where ``asyncio.timeout`` would raise
        (asyncio chains its TimeoutError to the cancellation inside the loop: two tracebacks).
        """
        limit = seconds(timeout)
        check_positive(limit, "timeout", "stop_after")
        return self._then(
            f"stop_after({limit:g})",
            lambda ctx: _rx.stopping_after(limit, ctx.scheduler),
        )

    def noack(self) -> Stream[T]:
        """Do not acknowledge events automatically: the consumer must ``ack()`` each event itself."""
        return Stream(self._origin, self._steps, noack=True, grouped=self._grouped, starving=self._starving)

    # ------------------------------------------------------------ compiling

    def _compile(self, ctx: Context, how: str | None = None, iterated: bool = False) -> Observable[Batch]:
        """Build the observable of batches for one consumption (``how``: by what; ``iterated``: `iterate`
        reads it), claiming the source."""
        origin = self._origin
        if origin.consumed_by is not None:
            raise StreamConsumedError(
                f"{self!r} was already consumed ({origin.consumed_by}); a stream has one consumer: "
                f"use tee() or combine() to fan out"
            )
        origin.consumed_by = f"by {how} of {self.label}" if how else f"by {self.label}"
        return piped(origin.build(ctx), (step for _, step in self._steps), ctx, iterated=iterated)

    def _context(self, scheduler: SchedulerBase | None = None) -> Context:
        origin = self._origin
        if origin.context is not None:
            return origin.context
        return Context(scheduler or origin.scheduler)

    @property
    def observable(self) -> Observable[Event]:
        """The compiled pipeline as an observable of events (subscribe from the asyncio loop)."""
        return _rx.deferred(lambda: _rx.events_of(self._compile(self._context(), "observable")))

    @property
    def label(self) -> str:
        """The source and operator chain, as text."""
        return ".".join([self._origin.label, *(label for label, _ in self._steps)])

    # ------------------------------------------------------------ consuming

    def __aiter__(self) -> AsyncIterator[T]:
        if self._iterator is not None:
            raise StreamConsumedError(f"{self!r} is already being iterated; a stream has one consumer")
        origin = self._origin
        if self._grouped and origin.consumed_by is not None and origin.spawn is not None:
            dealer = origin.dealers.get(self._steps[-1][0])
            if dealer is not None:  # another instance of an agent, started for a group nobody waited for
                claimed: AsyncIterator[Any] = dealer.claimed()
                self._iterator = claimed
                return claimed
        ctx = self._context()
        demand = origin.demand = Demand(ctx.flow) if self._gated() else None
        plain = demand is None and not self._grouped and origin.on_batch is None  # see `Unapplied`
        observable = self._compile(ctx, "async for", plain)
        if not self._grouped:  # groups go to the operators after group_by (the functional form)
            for dealer in origin.dealers.values():
                dealer.keep_groups()
        idle = None
        if self._grouped and origin.spawn is not None:
            label = self._steps[-1][0]
            dealers = origin.dealers

            def idle(waiting: bool) -> None:
                dealer = dealers.get(label)
                if dealer is not None:
                    dealer.set_outer_idle(waiting)

        self._iterator = _rx.iterate(
            observable,
            ctx,
            self._cursor,
            auto_ack=not self._noack,
            starving=self._starving,
            idle=idle,
            on_batch=origin.on_batch,
        )
        if demand is not None:
            self._iterator = asked(self._iterator, demand)
        origin.active = self
        return self._iterator

    def _gated(self) -> bool:
        """Whether the taps of this chain act only on what its consumer takes (see `gates`)."""
        return not self._grouped and gates(self._steps)

    async def _taken(self, limit: int) -> list[T]:
        """The first ``limit`` values through ``async for``, so that taps act on those alone."""
        out: list[T] = []
        iterator = self.__aiter__()
        try:
            async for value in iterator:
                out.append(value)
                if len(out) >= limit:
                    batch = self._cursor.batch
                    if batch is not None:  # acknowledged like to_list's values, not left held
                        batch.ack_range(self._cursor.index, self._cursor.index + 1)
                    break
        finally:
            await iterator.aclose()  # type: ignore[attr-defined]
        return out

    async def to_list(self, limit: int | None = None, *, timeout: Duration | None = None) -> list[T]:
        """Every value until the stream completes (or the first ``limit``), acknowledging each.

        ``timeout``: return what arrived within that many seconds (the stream's scheduler) instead of waiting.
        """
        if limit is not None:
            check_positive(limit, "limit", "to_list", integer=True)
        stream = self if timeout is None else self.stop_after(timeout)
        if limit is not None and stream._gated():
            return await stream._taken(limit)
        ctx = stream._context()
        return await _rx.collect(stream._compile(ctx, "to_list()"), ctx, limit)

    async def run(self, count: int | None = None, timeout: Duration | None = None) -> list[T]:
        """Consume up to ``count`` values for at most ``timeout`` seconds; returns what arrived.

        >>> await app.stream(orders).map(total).run(count=100, timeout=5)
        """
        if count is not None:
            check_positive(count, "count", "run", integer=True)
        return await self.to_list(count, timeout=timeout)

    async def first(self) -> T:
        """The first value; StreamEmptyError when the stream completes without one."""
        if self._gated():
            values = await self._taken(1)
        else:
            ctx = self._context()
            values = await _rx.collect(self._compile(ctx, "first()"), ctx, 1)
        if not values:
            raise StreamEmptyError(f"{self!r} completed without a value")
        first: T = values[0]
        return first

    async def peek(
        self, n: int = 5, *, events: bool = False, timeout: Duration | None = None, latest: bool = False
    ) -> Peeked:
        """The first ``n`` values (``events=True``: `Event`s) from the source's start, without consuming.

        The chain runs on a second reading of the source: the stream keeps its single consumption, nothing
        is acknowledged or committed, and agents reading the same topic see every value as before. A topic
        is read by a throwaway consumer group up to its current end (``timeout``: how long an empty fetch
        waits before the retained log counts as read); lists, tuples and ranges are iterated again.
        ``through`` and ``group_by`` send nothing: values go on as if read back from their topic; ``tee``
        and ``echo`` are left out.
        ``latest=True``: the last ``n`` instead (of a topic, the chain runs on its last ``n`` messages).
        Iterators, channels, observables and combined streams cannot be read twice: StreamError.
        The list shows as a table in a notebook (``.to_dataframe()`` for pandas).

        >>> await app.stream(orders).map(lambda o: o.amount).peek(3)
        """
        check_positive(n, "n", "peek", integer=True)
        timeout = seconds(timeout)
        peek = self._origin.peek
        if peek is None:
            raise StreamError(
                f"{self!r} cannot be peeked: only streams of topics and of re-iterable values (lists, "
                f"tuples, ranges) can be read again without consuming them; peek sources before combining"
            )
        ctx = self._context()
        steps = [step for _, step in self._steps if not getattr(step, "sends", False)]
        if events:
            steps.append(lambda ctx: _rx.transform(_events_of))
        async with peek(ctx, n, timeout, latest) as source:
            values = await _rx.collect(piped(source, steps, ctx), ctx, None if latest else n)
        return Peeked(values[-n:] if latest else values)

    async def to_dataframe(self, limit: int | None = None, *, timeout: Duration | None = None) -> Any:
        """A pandas DataFrame of the values (consumed like ``to_list``) with their metadata, for notebooks.

        Columns: ``value`` (or a record's fields), then ``key``, ``topic``, ``partition``, ``offset`` and
        ``timestamp`` where known. Needs pandas: ``pip install 'rxstream[notebook]'``.
        """
        from . import display

        display.require("pandas", "Stream.to_dataframe()")
        return display.dataframe(await self.events().to_list(limit, timeout=timeout))

    def subscribe(
        self,
        on_next: Callable[[T], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
        on_completed: Callable[[], Any] | None = None,
    ) -> DisposableBase:
        """Push every value to ``on_next``; returns a disposable that stops the stream."""
        ctx = self._context()
        return _rx.subscribe_values(self._compile(ctx, "subscribe()"), on_next, on_error, on_completed)

    def current_event(self) -> Event | None:
        """The event of the value the consumer holds now (what `current_event()` returns in an agent)."""
        return self._cursor.current_event()

    def _consumer(self) -> Stream[Any] | None:
        """The stream of this chain that is being iterated, if any (an agent may iterate a derived one)."""
        return self._origin.active

    def current_refs(self) -> list[Any]:
        """The references of the value the consumer of this chain holds (several for a take batch)."""
        active = self._origin.active
        if active is None or active._cursor.batch is None:
            return []
        batch = active._cursor.batch
        return _rx.sources_of(batch.ref_at(active._cursor.index))

    def consumer_position(self) -> Cursor | None:
        """The batch and index of the value the consumer of this chain holds; None until one iterates it."""
        active = self._origin.active
        return active._cursor if active is not None else None

    def shared(self) -> Stream[Any]:
        """Another reader of this chain's consumption (an agent instance for a group no loop waits for)."""
        return Stream(self._origin)

    def on_unclaimed_group(self, spawn: Callable[[], bool] | None) -> None:
        """Call ``spawn`` to start another reader when group_by deals a group no loop is waiting for."""
        self._origin.spawn = spawn

    def on_batch(self, report: Callable[[int, float], None] | None) -> None:
        """Call ``report(values, seconds)`` for each batch the consumer of this chain goes through."""
        self._origin.on_batch = report

    def bind(self, app: Any) -> Stream[T]:
        """Tie this chain to the app whose topic it reads (group_by then repartitions through its topics)."""
        self._origin.app = app
        return self

    async def aclose(self) -> None:
        """Stop the iteration of this chain: values handed out but not asked past stay unacknowledged."""
        active = self._origin.active
        for stream in (self, active):
            iterator = stream._iterator if stream is not None else None
            if iterator is not None and hasattr(iterator, "aclose"):
                await iterator.aclose()

    def __repr__(self) -> str:
        return f"<Stream {self.label}>"

    def _repr_html_(self) -> str:
        from .display import stream_html

        origin = self._origin
        steps = [label for label, _ in self._steps]
        return stream_html(
            origin.label, steps, consumed_by=origin.consumed_by, noack=self._noack, peekable=bool(origin.peek)
        )


def _events_of(batch: Batch) -> Batch:
    """The batch's values replaced by their events."""
    return batch.derive([batch.event_at(i) for i in range(len(batch.values))])


def _through(ctx: Context, channel: Any, key_of: Callable[[Any], Any] | None) -> Operator:
    """The operator of ``through``: forward values to ``channel``, continue with what it reads back."""
    downstream: Stream[Any] = channel.stream()
    return through_operator(ctx, channel, key_of, downstream._compile(ctx.reader()))


def _sends(step: Step) -> Step:
    """Mark an operator that sends to a channel or topic: a peek leaves it out (it must send nothing)."""
    step.sends = True  # type: ignore[attr-defined]
    return step


def _check_streams(streams: Sequence[Any], operator: str) -> list[Stream[Any]]:
    for stream in streams:
        if not isinstance(stream, Stream):
            raise ConfigurationError(
                f"Stream.{operator}() takes streams, got {type(stream).__name__} {stream!r}"
            )
    return list(streams)


def _multi(
    what: str,
    streams: Sequence[Stream[Any]],
    combine: Callable[[list[Observable[Batch]], Context], Observable[Batch]],
) -> Stream[Any]:
    """A stream made of several streams consumed together."""

    def build(ctx: Context) -> Observable[Batch]:
        return combine([stream._compile(ctx) for stream in streams], ctx)

    label = f"{what}({', '.join(s.label for s in streams)})"
    return Stream(_Origin(build, label, scheduler=streams[0]._origin.scheduler))


# ---------------------------------------------------------------- for subscriptions, topics, peeks and tests


def values_stream(source: Any) -> Stream[Any]:
    """A stream of an iterable's or an async iterable's values (``app.stream(iterable)``, as in Faust)."""
    if isinstance(source, AsyncIterable):
        return Stream.from_async_iterable(source)
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
        return Stream.from_iterable(source)
    raise ConfigurationError(
        f"app.stream() takes a channel, a topic, a topic name, an iterable or an async iterable, "
        f"got {type(source).__name__} {short(source)}"
    )


def batch_stream(
    build: Callable[[Context], Observable[Batch]], label: str, *, peek: PeekSource | None = None
) -> Stream[Any]:
    """A stream over an observable of batches (a subscription's reader, a peek's throwaway group)."""
    return Stream(_Origin(build, label, peek=peek))


def peekable(stream: Stream[T], peek: PeekSource) -> Stream[T]:
    """``stream``, made peekable by ``peek`` (a topic's stream peeks with a throwaway group)."""
    stream._origin.peek = peek
    return stream


def with_batch_step(stream: Stream[Any], label: str, step: Step) -> Stream[Any]:
    """``stream`` followed by a batch-level step (the agent test context watches acknowledgments so)."""
    return stream._then(label, step)


def compiled(stream: Stream[Any], ctx: Context) -> Observable[Batch]:
    """The observable of batches of one consumption of ``stream`` (a reader that wraps another's source)."""
    return stream._compile(ctx)
