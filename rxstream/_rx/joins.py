"""Joins: a windowed inner join of streams, and enrichment of values by a lookup."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable

from .batch import Batch, failed
from .flow import Operator, now
from .operators import batchwise
from .refs import ack_pairs


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
                        ack_pairs((acker, ref) for _, _, acker, ref in entries if ref is not None)
                    window.clear()
                observer.on_completed()

        for index, source in enumerate(sources):
            sub.add(source.subscribe(on_next_from(index), observer.on_error, on_completed))
        return sub

    return Observable(subscribe)
