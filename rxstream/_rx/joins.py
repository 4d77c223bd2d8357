"""Joins: a windowed inner join of streams, and enrichment of values by a lookup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable

from .._core.limits import JoinWindow
from .._core.refs import ack_pairs
from .batch import Batch, failed
from .flow import Operator, now
from .operators import batchwise


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


class _Join:
    """One subscription of a windowed join: the window, the sources still running and the expiry timer."""

    __slots__ = ("_armed", "_key_of", "_observer", "_remaining", "_scheduler", "_timer", "_window")

    def __init__(
        self,
        observer: abc.ObserverBase[Batch],
        sources: int,
        key_of: Callable[[Batch, int], Any],
        within: float,
        scheduler: abc.SchedulerBase,
    ) -> None:
        self._observer = observer
        self._key_of = key_of
        self._scheduler = scheduler
        self._window = JoinWindow(sources, within)
        self._remaining = sources
        self._timer = SerialDisposable()
        self._armed = False

    def subscribe(self, sources: Sequence[Observable[Batch]]) -> abc.DisposableBase:
        sub = CompositeDisposable()
        sub.add(self._timer)
        on_error = self._observer.on_error
        for index, source in enumerate(sources):
            sub.add(source.subscribe(partial(self.on_next, index), on_error, self.on_completed))
        return sub

    def _arm(self) -> None:
        """Expire the oldest arrival when it leaves the window, even if no input comes after it."""
        due = self._window.due()
        if self._armed or due is None:
            return
        self._armed = True
        delay = due - now(self._scheduler)
        self._timer.disposable = self._scheduler.schedule_relative(max(delay, 0.0) + 0.001, self._fire)

    def _fire(self, _: abc.SchedulerBase, __: Any = None) -> None:
        self._armed = False
        self._expire(now(self._scheduler))
        self._arm()

    def _expire(self, t: float) -> None:
        for acker, ref in self._window.expire(t):
            acker.ack((ref,))

    def on_next(self, index: int, batch: Batch) -> None:
        t = now(self._scheduler)
        self._expire(t)
        window = self._window
        key_of = self._key_of
        refs = batch.refs
        acker = batch.acker
        out: list[Any] = []
        for i, value in enumerate(batch.values):
            ref = refs[i] if refs is not None else None
            out.extend(window.add(index, key_of(batch, i), value, acker, ref, t))
        if out:
            self._observer.on_next(Batch(out))
        self._arm()

    def on_completed(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            for pairs in self._window.drain():
                ack_pairs(pairs)
            self._observer.on_completed()


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

    def subscribe(
        observer: abc.ObserverBase[Batch], _: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return _Join(observer, len(sources), key_of, within, scheduler).subscribe(sources)

    return Observable(subscribe)
