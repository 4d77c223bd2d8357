"""Batches at the fence: they wait while a rebalance decides on their partitions; what was revoked is dropped.

The rules are `rxstream._core.fence`'s; this is where batches meet them, once per batch: `admitted` for
whoever can wait (the async-for consumer, async operators), `fenced` for consumers that cannot (callbacks,
collecting), which hold a batch back until its rebalance is decided, and `Turnstile` for those that hand
on one value at a time (taps).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from .._core.fence import LIVE, PAUSED, Lease, Settling, admit, leases_of, state_of
from .batch import Batch
from .flow import Operator


def _paused(leases: Collection[Lease]) -> Settling | None:
    """What to wait for before a batch holding ``leases`` may go on (None: none of them is paused)."""
    for lease in leases:
        if lease.state == PAUSED and lease.settled is not None:
            return lease.settled
    return None


def trimmed(batch: Batch, leases: Collection[Lease]) -> Batch | None:
    """``batch`` less the values whose inputs were all revoked (None: nothing is left); none is paused."""
    kept = admit(batch.values, batch.refs, leases)
    if kept is None:
        return batch
    values, refs = kept
    return Batch(values, refs, batch.acker) if values else None


async def admitted(batch: Batch, leases: Collection[Lease] | None = None) -> Batch | None:
    """``batch`` once none of its partitions is paused, less what was revoked meanwhile (None: all of it)."""
    if leases is None:
        leases = leases_of(batch.acker)
    while (settled := _paused(leases)) is not None:
        await settled
    return trimmed(batch, leases)


def tail(batch: Batch, start: int) -> Batch:
    """The values of ``batch`` from ``start`` on, with their references."""
    refs = batch.refs
    return Batch(batch.values[start:], refs[start:] if refs is not None else None, batch.acker)


WAIT = object()
"""What `Turnstile.admit` answers while a rebalance decides on the batch."""


class Turnstile:
    """The fence for a consumer that hands on a batch's values one at a time as they are asked for and cannot
    wait: a batch is checked when it comes first, then again only once a lease of it changed state."""

    __slots__ = ("_batch", "_leases", "_state", "_waiting", "_wake")

    def __init__(self, wake: Callable[[], object]) -> None:
        self._wake = wake
        self._batch: Batch | None = None
        self._leases: Collection[Lease] = ()
        self._state = LIVE
        self._waiting: Settling | None = None

    def admit(self, batch: Batch, start: int) -> Batch | object | None:
        """What to go on with from value ``start`` of ``batch``: the batch itself, `WAIT` (``wake`` is called
        once the rebalance decided), None (all of it was revoked) or a new batch of what is left from
        ``start`` on."""
        if batch is not self._batch:
            self._batch, self._leases, self._state = batch, leases_of(batch.acker), LIVE
        leases = self._leases
        if not leases:
            return batch
        state = state_of(leases)
        if state == self._state:
            return batch
        if state == PAUSED:
            settled = _paused(leases)
            if settled is not None and settled is not self._waiting:
                self._waiting = settled
                settled.add_done_callback(lambda _: self._wake())
            return WAIT
        kept = trimmed(tail(batch, start), leases)
        self._batch, self._state = kept, state
        return kept


class _Gate:
    """One consumption's fence for a consumer that cannot wait: batches of a paused partition are held back
    (with every later batch of that partition) until the rebalance is decided, in order."""

    __slots__ = ("_disposed", "_done", "_held", "_holding", "_observer", "_waits")

    def __init__(self, observer: abc.ObserverBase[Batch]) -> None:
        self._observer = observer
        self._held: deque[Batch] = deque()
        self._holding: set[Lease] = set()
        self._waits: list[Settling] = []
        self._done = False
        self._disposed = False

    def on_next(self, batch: Batch) -> None:
        leases = leases_of(batch.acker)
        if not leases:
            self._observer.on_next(batch)
            return
        holding = self._holding
        if holding and not holding.isdisjoint(leases):
            self._hold(batch, leases, None)
            return
        state = state_of(leases)
        if state == LIVE:
            self._observer.on_next(batch)
        elif state == PAUSED:
            self._hold(batch, leases, _paused(leases))
        else:
            kept = trimmed(batch, leases)
            if kept is not None:
                self._observer.on_next(kept)

    def _hold(self, batch: Batch, leases: Collection[Lease], settled: Settling | None) -> None:
        self._held.append(batch)
        self._holding.update(leases)
        if settled is not None and not any(wait is settled for wait in self._waits):
            self._waits.append(settled)
            settled.add_done_callback(self._release)

    def _release(self, _: Any = None) -> None:
        """A rebalance was decided: pass on (or hold again) what was held, in order."""
        if self._disposed:
            return
        held, self._held = self._held, deque()
        self._holding = set()
        self._waits = []
        for batch in held:
            self.on_next(batch)
        if self._done and not self._held:
            self._observer.on_completed()

    def on_error(self, exc: Exception) -> None:
        self._observer.on_error(exc)

    def on_completed(self) -> None:
        if self._held:
            self._done = True  # completes once what is held was passed on
        else:
            self._observer.on_completed()

    def dispose(self) -> None:
        self._disposed = True
        self._held.clear()


def fenced() -> Operator:
    """Hold back batches of paused partitions until their rebalance is decided; drop what was revoked."""

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            gate = _Gate(observer)
            sub = source.subscribe(gate.on_next, gate.on_error, gate.on_completed, scheduler=scheduler)
            return CompositeDisposable(sub, Disposable(gate.dispose))

        return Observable(subscribe)

    return operator
