"""Windowed tables: ``table.tumbling(10)[key]`` is a `WindowSet` of that key's values per window.

Time is the event's timestamp unless the view says otherwise (``relative_to_field``, ``relative_to_now``).
Windows close on event time: per partition, once the highest timestamp seen passes a window's end plus
``grace``; ``on_window_close(key, value)`` then fires once for it. An event whose window already closed is
late: it is counted, logged and sent to ``late_events`` if given, and never merged into a closed window.
State is stored in the underlying table under ``(key, (start, end))`` for tumbling and hopping windows and
``(key, t)`` per event time for sliding and session windows, whose values are folded with ``merge``.
"""

from __future__ import annotations

import inspect
import logging
import operator
import time
from bisect import insort
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

from ..durations import Duration, seconds
from ..errors import ConfigurationError, TableError
from ..events import HEADERS, Event, Row, current_event
from ..record_fields import FieldDescriptor
from .stores import MISSING
from .views import WindowedView, ansitable
from .windows import SessionWindow, SlidingWindow, Window, WindowRange, WindowTracker, in_range, sessions_of

if TYPE_CHECKING:
    from .table import Table

__all__ = ["WindowSet", "WindowedTable"]

logger = logging.getLogger(__name__)

WATERMARK_HEADER = "rxstream-watermark"

TimeOf = Callable[[Event], float]


def _event_time(event: Event) -> float:
    message = event.message
    if message is not None:
        return message.timestamp
    if event.timestamp is None:
        raise TableError("the current event has no timestamp to place it in a window")
    return event.timestamp


def _wall_time(event: Event) -> float:
    return time.time()


def _input(event: Event) -> Any:
    """The value the event arrived with (as Faust's event.value), before the chain mapped it."""
    return event.message.value if event.message is not None else event.value


def _as_seconds(value: Any, field: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TableError(f"window time field {field!r} holds {value!r}, not a datetime or a number of seconds")


class _Windowing:
    """The window state of one table, shared by its windowed views: tracker, event times, late count."""

    def __init__(
        self,
        table: Table,
        window: Window,
        grace: Duration,
        on_window_close: Callable[[Any, Any], Any] | None,
        late_events: Any,
        merge: Callable[[Any, Any], Any] | None,
    ) -> None:
        if late_events is not None and not hasattr(late_events, "send_soon"):
            raise ConfigurationError(
                f"table {table.name!r}: late_events must be a channel or topic, got {late_events!r}"
            )
        if merge is not None and window.kind != "series":
            raise ConfigurationError(
                f"table {table.name!r}: merge= applies to sliding and session windows, not {window!r}"
            )
        self.table = table
        self.window = window
        hold = window.before if isinstance(window, SlidingWindow) else 0.0
        self.tracker = WindowTracker(grace=grace, expires=window.expires, hold=hold)
        self.on_window_close = on_window_close
        self.late_events = late_events
        self.merge = merge or operator.add
        self.series: dict[int, dict[Hashable, list[float]]] = {}
        self.closed_until: dict[int, dict[Hashable, float]] = {}
        self.late = 0
        self.late_by_partition: dict[int, int] = {}
        """Late events per source partition."""
        self.closed = 0

    # ------------------------------------------------------------ values

    def _default(self, key: Any) -> Any:
        default = self.table.default
        if default is None:
            raise KeyError(key)
        return default()

    def value_of(self, key: Any, window: WindowRange | None, partition: int | None) -> Any:
        """The value of ``key`` in ``window`` (series windows fold their buckets); default when empty."""
        if window is None:
            return self._default(key)
        store = self.table.store
        if self.window.kind == "range":
            value = store.get((key, window))
            return self._default(key) if value is MISSING else value
        times = self._times(key, partition)
        values = [store.get((key, t)) for t in times[in_range(times, window)]]
        values = [v for v in values if v is not MISSING]
        if not values:
            return self._default(key)
        return (
            reduce(self.merge, values, self._default(key))
            if self.table.default is not None
            else (reduce(self.merge, values))
        )

    def _times(self, key: Any, partition: int | None) -> list[float]:
        if partition is not None:
            return self.series.get(partition, {}).get(key, [])
        merged: list[float] = []
        for keys in self.series.values():
            merged.extend(keys.get(key, ()))
        return sorted(merged)

    def window_at(self, key: Any, timestamp: float, partition: int | None) -> WindowRange | None:
        """The window ``current()`` reads at ``timestamp``."""
        if isinstance(self.window, SessionWindow):
            times = self._times(key, partition)
            for session in sessions_of(times, self.window.gap):
                if session.start <= timestamp < session.end:
                    return session
            return None
        return self.window.current(timestamp)

    # ------------------------------------------------------------ event time

    def observe(self, partition: int, timestamp: float) -> None:
        """Advance ``partition``'s watermark; fire on_window_close for closed windows, drop expired state."""
        closed, expired = self.tracker.advance(partition, timestamp)
        for key, window in closed:
            self.closed += 1
            if isinstance(self.window, SessionWindow):
                ends = self.closed_until.setdefault(partition, {})
                ends[key] = max(ends.get(key, window.end), window.end)
            if self.on_window_close is not None:
                self._fire(key, window, self.value_of(key, self.folded(window), partition))
        if expired:
            headers = self.headers(partition)
            for key, window in expired:
                self._drop(key, window, partition, headers)

    def folded(self, window: WindowRange) -> WindowRange:
        """The window a tracked window's value covers (a sliding window tracks ``[t, t + after)``)."""
        if isinstance(self.window, SlidingWindow):
            return WindowRange(window.start - self.window.before, window.end)
        return window

    def _fire(self, key: Any, window: WindowRange, value: Any) -> None:
        callback = self.on_window_close
        assert callback is not None
        try:
            result = callback(key, value)
        except Exception:
            logger.exception(
                "table %r: on_window_close raised for key %r window %s (value %r)",
                self.table.name,
                key,
                window,
                value,
            )
            return
        if inspect.isawaitable(result):
            self.table.app.spawn(result, f"on_window_close of table {self.table.name}", send=True)

    def _drop(self, key: Any, window: WindowRange, partition: int, headers: dict[str, str]) -> None:
        table = self.table
        if self.window.kind == "range":
            if table.store.get((key, window)) is not MISSING:
                table.delete_in((key, window), partition, headers)
            return
        times = self.series.get(partition, {}).get(key)
        if not times:
            return
        if isinstance(self.window, SlidingWindow):
            doomed = [window.start]
        else:
            doomed = times[in_range(times, window)]
        for t in doomed:
            if table.store.get((key, t)) is not MISSING:
                table.delete_in((key, t), partition, headers)
        left = [t for t in times if t not in set(doomed)]
        if left:
            self.series[partition][key] = left
        else:
            del self.series[partition][key]

    def headers(self, partition: int) -> dict[str, str]:
        """Changelog headers carrying the partition's watermark (restored on recovery)."""
        return {WATERMARK_HEADER: repr(self.tracker.watermark(partition))}

    # ------------------------------------------------------------ changing

    def apply(
        self, key: Any, op: Callable[[Any, Any], Any], operand: Any, event: Event, time_of: TimeOf
    ) -> None:
        """Apply ``op(old, operand)`` in every open window of ``key`` at the event's time (late: skipped)."""
        partition = _partition(self.table, key, event)
        timestamp = time_of(event)
        self.observe(partition, timestamp)
        tracker = self.tracker
        store = self.table.store
        headers = self.headers(partition)
        if self.window.kind == "range":
            windows = self.window.ranges(timestamp)
            open_ = [w for w in windows if not tracker.is_closed(partition, w)]
            if len(open_) < len(windows):
                self._late(key, event, timestamp, partition)
            for window in open_:
                old = store.get((key, window))
                new = op(self._default(key) if old is MISSING else old, operand)
                self.table.set_in((key, window), new, partition, headers)
                tracker.track(partition, key, window)
            return
        times = self.series.setdefault(partition, {}).setdefault(key, [])
        if isinstance(self.window, SlidingWindow):
            own = WindowRange(timestamp, timestamp + self.window.after)
            if tracker.is_closed(partition, own):
                self._late(key, event, timestamp, partition)
                return
            before: list[WindowRange] = []
            after = own
        else:
            gap = self.window.gap  # type: ignore[attr-defined]
            if timestamp < self.closed_until.get(partition, {}).get(key, float("-inf")):
                self._late(key, event, timestamp, partition)
                return
            candidate = sorted({*times, timestamp})
            after = next(s for s in sessions_of(candidate, gap) if s.start <= timestamp < s.end)
            if tracker.is_closed(partition, after):
                self._late(key, event, timestamp, partition)
                return
            before = [s for s in sessions_of(times, gap) if s.start < after.end and after.start < s.end]
        old = store.get((key, timestamp))
        new = op(self._default(key) if old is MISSING else old, operand)
        self.table.set_in((key, timestamp), new, partition, headers)
        if old is MISSING and timestamp not in times:
            insort(times, timestamp)
        for session in before:
            tracker.untrack(partition, key, session)
        tracker.track(partition, key, after)

    def _late(self, key: Any, event: Event, timestamp: float, partition: int) -> None:
        self.late += 1
        self.late_by_partition[partition] = self.late_by_partition.get(partition, 0) + 1
        if _worth_logging(self.late):
            logger.warning(
                "table %r: late event for key %r at %s on partition %d (watermark %s, grace %s): not merged "
                "into its closed window; %d late event(s) so far%s",
                self.table.name,
                key,
                timestamp,
                partition,
                self.tracker.watermark(partition),
                self.tracker.grace,
                self.late,
                " (sent to the late-events channel)" if self.late_events is not None else "",
            )
        if self.late_events is not None:
            message = event.message  # the input as it arrived (the chain may have mapped its value)
            self.late_events.send_soon(
                key=message.key if message is not None else event.key,
                value=message.value if message is not None else event.value,
                timestamp=timestamp,
                headers={
                    "rxstream-late-table": self.table.name,
                    WATERMARK_HEADER: repr(self.tracker.watermark(partition)),
                },
            )

    # ------------------------------------------------------------ recovery

    def decode_where(self, where: Any) -> Any:
        """A window part of a changelog key: (start, end) for range windows, a time for series windows."""
        if self.window.kind == "range":
            start, end = where
            return WindowRange(float(start), float(end))
        return float(where)

    def recovered_headers(self, partition: int, messages: Sequence[Row]) -> None:
        """Restore the partition's watermark from recovered changelog headers."""
        highest = float("-inf")
        for message in messages:
            headers = message[HEADERS]
            mark = headers.get(WATERMARK_HEADER) if headers else None
            if mark is not None:
                value = float(mark.decode() if isinstance(mark, bytes) else mark)
                if value > highest:
                    highest = value
        if highest > float("-inf"):
            self.tracker.restore(partition, highest)

    def rebuild(self, partitions: Sequence[int]) -> None:
        """Re-track the windows of recovered partitions (closed ones are not fired again)."""
        store = self.table.store
        for partition in partitions:
            keys: dict[Hashable, list[float]] = {}
            ranges: list[tuple[Hashable, WindowRange]] = []
            for (key, where), _ in store.items([partition]):
                if isinstance(where, WindowRange):
                    ranges.append((key, where))
                else:
                    keys.setdefault(key, []).append(where)
            for times in keys.values():
                times.sort()
            self.series[partition] = keys
            if isinstance(self.window, SlidingWindow):
                after = self.window.after
                ranges = [(k, WindowRange(t, t + after)) for k, times in keys.items() for t in times]
            elif isinstance(self.window, SessionWindow):
                ranges = [(k, s) for k, times in keys.items() for s in sessions_of(times, self.window.gap)]
            for key, window in ranges:
                if isinstance(self.window, SessionWindow) and self.tracker.is_closed(partition, window):
                    ends = self.closed_until.setdefault(partition, {})
                    ends[key] = max(ends.get(key, window.end), window.end)
                self.tracker.track(partition, key, window)

    def forget(self, partitions: Sequence[int]) -> None:
        """Drop window bookkeeping of revoked partitions."""
        for partition in partitions:
            self.tracker.forget(partition)
            self.series.pop(partition, None)
            self.closed_until.pop(partition, None)


def _worth_logging(count: int) -> bool:
    """Log the 1st, 10th, 100th ... late event (a flood of late events must not flood the log)."""
    while count % 10 == 0:
        count //= 10
    return count == 1


def _partition(table: Table, key: Any, event: Event) -> int:
    message = event.message
    if message is None:
        raise TableError(
            f"windowed table {table.name!r}: key {key!r}: the current event has no message, so it has no "
            "partition to keep window state in"
        )
    return message.partition


def _event_or_none() -> Event | None:
    try:
        return current_event()
    except RuntimeError:
        return None


class WindowedTable:
    """A table seen through a window: ``wt[key]`` is a `WindowSet`; ``wt[key] += 1`` updates its windows.

    Its keys are always indexed: ``keys()``, ``items()`` and ``values()`` work whatever Faust's
    ``key_index=`` says (accepted by ``tumbling`` and the others for Faust's code).
    """

    def __init__(
        self, table: Table, windowing: _Windowing, time_of: TimeOf = _event_time, relative: str = "stream"
    ):
        self.table = table
        self._windowing = windowing
        self._time_of = time_of
        self.relative = relative

    @property
    def window(self) -> Window:
        """How timestamps map to windows."""
        return self._windowing.window

    @property
    def name(self) -> str:
        """The underlying table's name."""
        return self.table.name

    @property
    def late_events(self) -> int:
        """How many late events were not merged (since this worker started)."""
        return self._windowing.late

    @property
    def closed_windows(self) -> int:
        """How many (key, window) pairs closed on this worker."""
        return self._windowing.closed

    def watermark(self, partition: int) -> float:
        """The highest event time seen on ``partition``."""
        return self._windowing.tracker.watermark(partition)

    def relative_to_stream(self) -> WindowedTable:
        """Place events by their message timestamp (the default)."""
        return WindowedTable(self.table, self._windowing, _event_time, "stream")

    def relative_to_now(self) -> WindowedTable:
        """Place events by the wall clock when they are processed."""
        return WindowedTable(self.table, self._windowing, _wall_time, "now")

    def relative_to(self, ts: Any) -> WindowedTable:
        """Place events at ``ts``: a fixed time (seconds or a datetime), a function of the event, or a field.

        Faust's one-call form: a field descriptor (``Order.created``) is `relative_to_field`.
        """
        if isinstance(ts, FieldDescriptor):
            return self.relative_to_field(ts)
        if isinstance(ts, datetime) or (isinstance(ts, (int, float)) and not isinstance(ts, bool)):
            fixed = _as_seconds(ts, "relative_to")

            def at_fixed(event: Event) -> float:
                return fixed

            return WindowedTable(self.table, self._windowing, at_fixed, f"time {fixed:g}")
        if callable(ts):
            name = getattr(ts, "__name__", repr(ts))

            def time_of(event: Event) -> float:
                return _as_seconds(ts(event), name)

            return WindowedTable(self.table, self._windowing, time_of, f"{name}(event)")
        raise ConfigurationError(
            f"windowed table {self.name!r}: relative_to takes a time (seconds or a datetime), a function of "
            f"the event or a field (like Order.created), got {ts!r}"
        )

    def relative_to_field(self, field: Any) -> WindowedTable:
        """Place events by a field of their input value: a field (``Order.created``), its name, or a function.

        ``dataclasses.Field`` objects are accepted too.
        """
        if isinstance(field, FieldDescriptor):
            return self.relative_to_field(field.field)
        if isinstance(field, str):
            name = field

            def time_of(event: Event) -> float:
                return _as_seconds(getattr(_input(event), name), name)

        elif hasattr(field, "name") and hasattr(field, "type") and isinstance(field.name, str):
            return self.relative_to_field(field.name)
        elif callable(field):
            name = getattr(field, "__name__", repr(field))

            def time_of(event: Event) -> float:
                return _as_seconds(field(_input(event)), name)

        else:
            raise ConfigurationError(
                f"windowed table {self.name!r}: relative_to_field takes a field (like Order.created), a "
                f"field name, a dataclasses.Field or a function of the value, got {field!r}"
            )
        return WindowedTable(self.table, self._windowing, time_of, f"field {name}")

    def __getitem__(self, key: Any) -> WindowSet:
        event = _event_or_none()
        if event is not None and event.message is not None:
            self._windowing.observe(event.message.partition, self._time_of(event))
        return WindowSet(key, self, event)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, WindowSet):
            return  # the result of an in-place operator, already applied
        self[key].apply(_replace, value)

    def __delitem__(self, key: Any) -> None:
        raise TableError(
            f"windowed table {self.name!r}: window state of key {key!r} is deleted when its windows expire; "
            "it cannot be deleted by hand"
        )

    def windows(self, key: Any) -> list[tuple[WindowRange | float, Any]]:
        """The (window or event time, stored value) pairs this worker holds for ``key``, oldest first."""
        pairs = [(where, value) for (k, where), value in self.table.store.items() if k == key]
        return sorted(pairs, key=lambda pair: pair[0] if isinstance(pair[0], float) else pair[0].start)

    # ------------------------------------------------------------ reading (dict-like views that end)

    def _stored_keys(self) -> Iterator[tuple[Any, Any]]:
        """The (key, window or event time) pairs of the stored state."""
        return (where for where, _ in self.table.store.items())

    def _key_list(self) -> list[Any]:
        return list(dict.fromkeys(key for key, _ in self._stored_keys()))

    def keys(self) -> WindowedView:
        """The keys this worker holds window state for, in the order they were first stored."""
        return WindowedView(self._key_list(), self._pairs_at, self._reference, _keys_of)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._key_list())

    def __len__(self) -> int:
        return len(self._key_list())

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._stored_keys())

    def items(self) -> WindowedView:
        """(key, value in the key's latest window) pairs."""
        latest: dict[Any, tuple[WindowRange, Any]] = {}
        for key, window, value, _ in self.rows():
            if key not in latest or window.start >= latest[key][0].start:
                latest[key] = (window, value)
        pairs = [(key, value) for key, (_, value) in latest.items()]
        return WindowedView(pairs, self._pairs_at, self._reference, list)

    def values(self) -> WindowedView:
        """The value of each key in its latest window."""
        return WindowedView([v for _, v in self.items()], self._pairs_at, self._reference, _values_of)

    def _pairs_at(self, timestamp: float) -> list[tuple[Any, Any]]:
        """(key, value in its window at ``timestamp``) per key; keys with no value and no default left out."""
        windowing = self._windowing
        pairs = []
        for key in self._key_list():
            try:
                pairs.append((key, windowing.value_of(key, windowing.window_at(key, timestamp, None), None)))
            except KeyError:
                continue
        return pairs

    def _reference(self, event: Event | None) -> float:
        """The time a time-relative read starts from: the event's (as relative_to_* says), else now."""
        chosen = event or _event_or_none()
        return time.time() if chosen is None else self._time_of(chosen)

    def rows(self) -> list[tuple[Any, WindowRange, Any, bool]]:
        """Every (key, window, value, closed) this worker holds, by window start then key."""
        windowing = self._windowing
        window = windowing.window
        open_ = windowing.tracker.open_pairs()
        rows: list[tuple[Any, WindowRange, Any, bool]] = []
        if window.kind == "range":
            for (key, where), value in self.table.store.items():
                rows.append((key, where, value, (key, where) not in open_))
        elif isinstance(window, SlidingWindow):
            for key, where in self._stored_keys():
                own = WindowRange(where, where + window.after)
                shown = windowing.folded(own)
                rows.append((key, shown, windowing.value_of(key, shown, None), (key, own) not in open_))
        else:
            gap = window.gap  # type: ignore[attr-defined]
            for key in self._key_list():
                for session in sessions_of(windowing._times(key, None), gap):
                    rows.append(
                        (key, session, windowing.value_of(key, session, None), (key, session) not in open_)
                    )
        rows.sort(key=lambda row: (row[1].start, repr(row[0])))
        return rows

    def as_ansitable(self, title: str = "{table.name}", **options: Any) -> str:
        """Each key's value in its latest window as a text table (options as for `Table.as_ansitable`)."""
        return ansitable(self.items(), title=title.format(table=self), **options)

    def to_dataframe(self) -> Any:
        """A wide pandas DataFrame: a row per key, a column per window start (UTC), NaN where none.

        Needs pandas: ``pip install 'rxstream[notebook]'``.
        """
        from ..display import windowed_dataframe

        return windowed_dataframe(self.rows())

    def __repr__(self) -> str:
        return f"<WindowedTable {self.name} {self.window!r} relative to {self.relative}>"

    def _repr_html_(self) -> str:
        from ..display import windowed_table_html

        rows = self.rows()
        spec = f"{self.window!r}, grace {self._windowing.tracker.grace:g} s, relative to {self.relative}"
        return windowed_table_html(self.name, rows, len(rows), spec=spec)


def _keys_of(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [key for key, _ in pairs]


def _values_of(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [value for _, value in pairs]


def _replace(old: Any, new: Any) -> Any:
    return new


class WindowSet:
    """The windows of one key: read with ``current()``, ``now()``, ``delta(d)``, change with ``+=`` etc."""

    __slots__ = ("event", "key", "wrapper")

    def __init__(self, key: Any, wrapper: WindowedTable, event: Event | None) -> None:
        self.key = key
        self.wrapper = wrapper
        self.event = event

    def _event(self, event: Event | None, what: str) -> Event:
        chosen = event or self.event
        if chosen is None:
            raise TableError(
                f"windowed table {self.wrapper.name!r}: {what} of key {self.key!r} needs an event (use it "
                "inside an agent's `async for`, or pass event=...); now() works anywhere"
            )
        return chosen

    def _partition(self, event: Event | None) -> int | None:
        return event.message.partition if event is not None and event.message is not None else None

    def apply(self, op: Callable[[Any, Any], Any], operand: Any, event: Event | None = None) -> WindowSet:
        """Apply ``op(value, operand)`` in every open window of the event's time."""
        chosen = self._event(event, "changing the windows")
        self.wrapper._windowing.apply(self.key, op, operand, chosen, self.wrapper._time_of)
        return self

    def value(self, event: Event | None = None) -> Any:
        """The value in the window of the event's time (relative_to_* decides which time)."""
        chosen = self._event(event, "value()")
        return self._at(self.wrapper._time_of(chosen), self._partition(chosen))

    def current(self, event: Event | None = None) -> Any:
        """The value in the (newest) window containing the event's time."""
        return self.value(event)

    def now(self) -> Any:
        """The value in the window containing the wall-clock time now."""
        return self._at(time.time(), self._partition(self.event))

    def delta(self, d: Duration, event: Event | None = None) -> Any:
        """The value in the window containing the event's time minus ``d`` seconds (or a timedelta)."""
        chosen = self._event(event, "delta()")
        return self._at(self.wrapper._time_of(chosen) - seconds(d), self._partition(chosen))

    def _at(self, timestamp: float, partition: int | None) -> Any:
        windowing = self.wrapper._windowing
        return windowing.value_of(self.key, windowing.window_at(self.key, timestamp, partition), partition)

    def __iadd__(self, other: Any) -> WindowSet:
        return self.apply(operator.add, other)

    def __isub__(self, other: Any) -> WindowSet:
        return self.apply(operator.sub, other)

    def __imul__(self, other: Any) -> WindowSet:
        return self.apply(operator.mul, other)

    def __itruediv__(self, other: Any) -> WindowSet:
        return self.apply(operator.truediv, other)

    def __ifloordiv__(self, other: Any) -> WindowSet:
        return self.apply(operator.floordiv, other)

    def __imod__(self, other: Any) -> WindowSet:
        return self.apply(operator.mod, other)

    def __ipow__(self, other: Any) -> WindowSet:
        return self.apply(operator.pow, other)

    def __ior__(self, other: Any) -> WindowSet:
        return self.apply(operator.or_, other)

    def __iand__(self, other: Any) -> WindowSet:
        return self.apply(operator.and_, other)

    def __ixor__(self, other: Any) -> WindowSet:
        return self.apply(operator.xor, other)

    def __repr__(self) -> str:
        return f"<WindowSet {self.wrapper.name}[{self.key!r}]>"
