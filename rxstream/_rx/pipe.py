"""Raw reactivex operators applied to the values of a stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from .._core.fence import GroupLeases, Lease, leases_of
from .._core.refs import Group, Pair, ack_pairs
from .batch import Batch
from .fencing import fenced
from .flow import Operator


def with_values_operators(operators: Sequence[Callable[[Observable[Any]], Observable[Any]]]) -> Operator:
    """Apply raw reactivex operators to the values.

    Values leave their batches; an input is acknowledged once an output emitted after it was consumed
    (or when the stream completes), since raw operators do not say which input an output came from.
    Outputs, which raw operators may emit at any time, meet the fence again (`fenced`).
    """
    fence = fenced()

    def operator(source: Observable[Batch]) -> Observable[Batch]:
        def subscribe(
            observer: abc.ObserverBase[Batch], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            pending: list[Pair] = []
            leases: set[Lease] = set()  # those of the pending inputs
            values: reactivex.Subject[Any] = reactivex.Subject()

            def emit(value: Any) -> None:
                group = Group(pending[:])
                pending.clear()
                held = GroupLeases(frozenset(leases))
                leases.clear()
                observer.on_next(Batch([value], [group], held))

            def on_completed() -> None:
                if pending:
                    ack_pairs(pending)
                    pending.clear()
                observer.on_completed()

            out = values.pipe(*operators)
            inner = out.subscribe(emit, observer.on_error, on_completed, scheduler=scheduler)

            def on_next(batch: Batch) -> None:
                # an input joins the pending ones just before it is pushed: an output it causes at once
                # must not carry the inputs after it
                current = leases_of(batch.acker)
                leases.update(current)
                for i, value in enumerate(batch.values):
                    pending.extend(batch.pairs(i, i + 1))
                    if not leases:  # an output took the pending inputs' leases: this batch's come back
                        leases.update(current)
                    values.on_next(value)

            outer = source.subscribe(on_next, values.on_error, values.on_completed, scheduler=scheduler)
            return CompositeDisposable(inner, outer)

        return fence(Observable(subscribe))

    return operator


def describe_operator(op: Callable[..., Any], short: Callable[[Any], str] = repr) -> str:
    """A reactivex operator as it was written (``skip(7)``), read from the closure its factory made."""
    cells = [cell.cell_contents for cell in getattr(op, "__closure__", None) or ()]
    factory = next((c for c in cells if callable(c) and hasattr(c, "__qualname__")), None)
    args = next((c for c in cells if isinstance(c, tuple)), None)
    if factory is None or args is None:
        return str(getattr(op, "__qualname__", None) or type(op).__name__)
    return f"{factory.__qualname__.rstrip('_')}({', '.join(short(a) for a in args)})"

