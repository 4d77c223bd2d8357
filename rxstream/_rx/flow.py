"""Flow control and the context one consumption of a stream shares (scheduler, loop, backpressure)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from ..errors import StreamError

if TYPE_CHECKING:
    from .batch import Batch

Operator: TypeAlias = Callable[[Observable["Batch"]], Observable["Batch"]]
"""A compiled stream operator: batches in, batches out."""


class Flow:
    """Backpressure for one consumer: sources pause while buffered plus in-flight batches reach the limit."""

    __slots__ = ("_ready", "buffered", "high", "inflight", "pullers", "waiting")

    def __init__(self, high: int = 4) -> None:
        self.buffered = 0
        self.inflight = 0
        self.high = high
        self._ready: asyncio.Event | None = None
        self.pullers: list[Callable[[], bool]] = []
        """Sources the consumer takes a batch from itself, in its own task, when it has none: each pushes
        its next ready batch down the chain and says whether it did."""
        self.waiting: asyncio.Future[None] | None = None
        """The consumer's wait for a batch while it has none and pulls from `pullers`."""

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

    def wake_puller(self) -> bool:
        """Wake the consumer to pull a batch that arrived at a source; False when it does not wait for one
        or may not take one now (the source's own task must then push it)."""
        waiting = self.waiting
        if waiting is None or not self.pullers or self.blocked():
            return False
        if not waiting.done():
            waiting.set_result(None)
        return True

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
