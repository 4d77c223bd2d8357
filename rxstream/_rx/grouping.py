"""group_by: batches split by key into groups, each dealt to a loop waiting for one or to a new instance."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable, SerialDisposable

from .._core.limits import GroupExpiry
from .._core.sift import shares_refs
from ..errors import GroupPairUsedAsValue, StreamError
from .batch import Batch, failed
from .expand import unshared
from .flow import Context, Flow, Operator, now


class GroupSubject:
    """The values of one key: buffered until the substream is consumed, counted against the flow."""

    def __init__(self, key: Any, flow: Flow) -> None:
        self.key = key
        self._flow = flow
        self._buffer: deque[Batch] = deque()
        self._observer: abc.ObserverBase[Batch] | None = None
        self._done = False
        self._error: Exception | None = None

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


class GroupPair(tuple[Any, Any]):
    """What group_by yields: (key, substream). Used as a value, it says so and shows the change to make."""

    def __new__(cls, key: Any, substream: Any, label: str) -> GroupPair:
        pair = super().__new__(cls, (key, substream))
        pair.label = label
        return pair

    label: str

    def _misused(self, how: str) -> GroupPairUsedAsValue:
        call = self.label
        return GroupPairUsedAsValue(
            f"{call} yields (key, substream) pairs, not values, and this loop used the pair of key "
            f"{self[0]!r} as a value ({how}). Faust's group_by yields the values; here, either keep the "
            f"values with one change to the loop line:\n"
            f"    async for value in stream.{call}.flat_map(lambda key, values: values):\n"
            f"or loop over each key's values:\n"
            f"    async for key, values in stream.{call}:\n"
            f"        async for value in values:\n"
            f"(the README's 'Coming from Faust' says why)"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise self._misused(f".{name}")

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, slice)):
            return super().__getitem__(index)
        raise self._misused(f"[{index!r}]")


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
        label: str = "group_by(...)",
    ) -> None:
        self._label = label
        self._key_of = key_of
        self._ctx = ctx
        self._make = make_substream
        self._expiry = GroupExpiry(group_timeout) if group_timeout is not None else None
        self._max = max_groups
        self.groups: dict[Any, GroupSubject] = {}
        self._timer = SerialDisposable()
        self._expiry_armed = False
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
        if batch.acker is not None and shares_refs(batch.acker):
            batch = unshared(batch)
        by_key: dict[Any, list[int]] = {}
        for i in range(n):
            by_key.setdefault(keys[i], []).append(i)
        new: list[Any] = []
        stamp = now(self._ctx.scheduler)
        expiry = self._expiry
        for key, indexes in by_key.items():
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = GroupSubject(key, self._ctx.flow)
                self._deal(GroupPair(key, self._make(group), self._label), new)
            if expiry is not None:
                expiry.touch(key, stamp)
            values = batch.values
            refs = batch.refs
            group.on_next(
                Batch(
                    [values[i] for i in indexes],
                    [refs[i] for i in indexes] if refs is not None else None,
                    batch.acker,
                )
            )
        if self._expiry is not None and new:
            self._schedule_expiry()
        return Batch(new) if new else None

    def _schedule_expiry(self) -> None:
        if not self._expiry_armed:
            assert self._expiry is not None
            self._expiry_armed = True
            self._timer.disposable = self._ctx.scheduler.schedule_relative(self._expiry.timeout, self._expire)

    def _expire(self, _: abc.SchedulerBase, __: Any = None) -> None:
        """End the substreams of groups idle for the timeout; check again later while groups remain."""
        expiry = self._expiry
        assert expiry is not None
        scheduler = self._ctx.scheduler
        for key in expiry.expired(now(scheduler)):
            self.groups.pop(key).on_completed()
        delay = expiry.next_check()
        self._expiry_armed = delay is not None  # disarmed, a later new group arms it again
        if delay is not None:
            self._timer.disposable = scheduler.schedule_relative(delay, self._expire)

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


class _Grouping:
    """One subscription of group_by's outer stream: batches go to the dealer, the end to every group."""

    __slots__ = ("_dealer", "_observer")

    def __init__(self, dealer: GroupDealer, observer: abc.ObserverBase[Batch]) -> None:
        self._dealer = dealer
        self._observer = observer

    def on_next(self, batch: Batch) -> None:
        out, exc = self._dealer.split(batch)
        if out is not None:
            self._observer.on_next(out)
        if exc is not None:
            self._dealer.fail(exc)
            self._observer.on_error(exc)

    def on_error(self, exc: Exception) -> None:
        self._dealer.fail(exc)
        self._observer.on_error(exc)

    def on_completed(self) -> None:
        self._dealer.complete()
        self._observer.on_completed()


def grouped(dealer: GroupDealer) -> Operator:
    """Split a stream into groups: emits (key, substream) batches; substreams get the values."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            grouping = _Grouping(dealer, observer)
            return source.subscribe(
                grouping.on_next, grouping.on_error, grouping.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator
