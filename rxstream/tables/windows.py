"""Window math, sans I/O: the windows a timestamp falls in, per-partition watermarks, closing and expiry.

Every window is half-open, ``[start, end)``, in event-time seconds. A partition's watermark is the highest
event time seen on it; a window closes once ``watermark >= end + grace`` and its state expires once
``watermark >= end + max(grace, expires)``. Nothing here reads a clock or does I/O: callers feed
timestamps and get back what closed, so all of it is tested directly.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from typing import NamedTuple

from ..durations import Duration, seconds
from ..errors import ConfigurationError

__all__ = [
    "HoppingWindow",
    "SessionWindow",
    "SlidingWindow",
    "TumblingWindow",
    "Window",
    "WindowRange",
    "WindowTracker",
    "sessions_of",
]


class WindowRange(NamedTuple):
    """One window: event times ``start <= t < end``."""

    start: float
    end: float


def _positive(value: Duration, what: str, window: str) -> float:
    value = seconds(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            f"{window} window: {what} must be a positive number of seconds, got {value!r}"
        )
    return float(value)


def _expires(value: Duration | None, window: str) -> float | None:
    value = seconds(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigurationError(f"{window} window: expires must be >= 0 seconds or None, got {value!r}")
    return float(value)


class Window:
    """How event times map to windows; subclasses define ``ranges``."""

    expires: float | None = None
    kind = "range"
    """``range`` windows aggregate in place; ``series`` ones (sliding, session) fold per-time buckets."""

    def ranges(self, timestamp: float) -> list[WindowRange]:
        """Every window ``timestamp`` falls in, oldest first."""
        raise NotImplementedError

    def current(self, timestamp: float) -> WindowRange:
        """The window ``current()`` reads for ``timestamp``: the newest one it falls in."""
        return self.ranges(timestamp)[-1]

    def delta(self, timestamp: float, d: Duration) -> WindowRange:
        """The window ``d`` seconds (or a timedelta) before the one of ``timestamp``."""
        return self.current(timestamp - seconds(d))


class TumblingWindow(Window):
    """Fixed, non-overlapping windows of ``size`` seconds aligned on multiples of ``size``."""

    def __init__(self, size: Duration, *, expires: Duration | None = None) -> None:
        self.size = _positive(size, "size", "tumbling")
        self.expires = _expires(expires, "tumbling")

    def ranges(self, timestamp: float) -> list[WindowRange]:
        start = math.floor(timestamp / self.size) * self.size
        return [WindowRange(float(start), float(start + self.size))]

    def __repr__(self) -> str:
        return f"TumblingWindow(size={self.size:g}, expires={self.expires})"


class HoppingWindow(Window):
    """Overlapping windows of ``size`` seconds starting every ``step`` seconds (a timestamp is in several)."""

    def __init__(self, size: Duration, step: Duration, *, expires: Duration | None = None) -> None:
        self.size = _positive(size, "size", "hopping")
        self.step = _positive(step, "step", "hopping")
        if self.step > self.size:
            raise ConfigurationError(
                f"hopping window: step ({step!r}) must not exceed size ({size!r}), or some events "
                "would fall in no window"
            )
        self.expires = _expires(expires, "hopping")

    def ranges(self, timestamp: float) -> list[WindowRange]:
        step, size = self.step, self.size
        last = math.floor(timestamp / step)
        first = math.floor((timestamp - size) / step) + 1
        return [WindowRange(float(i * step), float(i * step + size)) for i in range(first, last + 1)]

    def __repr__(self) -> str:
        return f"HoppingWindow(size={self.size:g}, step={self.step:g}, expires={self.expires})"


class SlidingWindow(Window):
    """One window per event time ``t``: ``[t - before, t + after)``; its value folds the buckets inside it."""

    kind = "series"

    def __init__(self, before: Duration, after: Duration, *, expires: Duration | None = None) -> None:
        before = seconds(before)
        if isinstance(before, bool) or not isinstance(before, (int, float)) or before < 0:
            raise ConfigurationError(f"sliding window: before must be >= 0 seconds, got {before!r}")
        self.before = float(before)
        self.after = _positive(after, "after", "sliding")
        self.expires = _expires(expires, "sliding")

    def ranges(self, timestamp: float) -> list[WindowRange]:
        return [WindowRange(timestamp - self.before, timestamp + self.after)]

    @property
    def span(self) -> float:
        """How long after its time a bucket is still inside some window that is not closed."""
        return self.before + self.after

    def __repr__(self) -> str:
        return f"SlidingWindow(before={self.before:g}, after={self.after:g}, expires={self.expires})"


class SessionWindow(Window):
    """Activity sessions: events less than ``gap`` seconds apart share a session ``[first, last + gap)``."""

    kind = "series"

    def __init__(self, gap: Duration, *, expires: Duration | None = None) -> None:
        self.gap = _positive(gap, "gap", "session")
        self.expires = _expires(expires, "session")

    def ranges(self, timestamp: float) -> list[WindowRange]:
        return [WindowRange(timestamp, timestamp + self.gap)]

    def __repr__(self) -> str:
        return f"SessionWindow(gap={self.gap:g}, expires={self.expires})"


def sessions_of(times: Sequence[float], gap: float) -> list[WindowRange]:
    """The sessions of sorted event times: runs whose neighbours are less than ``gap`` apart."""
    out: list[WindowRange] = []
    if not times:
        return out
    first = last = times[0]
    for t in times[1:]:
        if t - last < gap:
            last = t
        else:
            out.append(WindowRange(first, last + gap))
            first = last = t
    out.append(WindowRange(first, last + gap))
    return out


def session_around(times: Sequence[float], timestamp: float, gap: float) -> WindowRange | None:
    """The session of sorted ``times`` that contains ``timestamp`` (``[first, last + gap)``), if any."""
    i = bisect_right(times, timestamp)
    if i == 0:
        return None
    last_index = i - 1
    if timestamp - times[last_index] >= gap:
        return None
    lo = last_index
    while lo > 0 and times[lo] - times[lo - 1] < gap:
        lo -= 1
    hi = last_index
    while hi + 1 < len(times) and times[hi + 1] - times[hi] < gap:
        hi += 1
    return WindowRange(times[lo], times[hi] + gap)


def in_range(times: Sequence[float], window: WindowRange) -> slice:
    """The slice of sorted ``times`` inside ``window``."""
    return slice(bisect_left(times, window.start), bisect_left(times, window.end))


class WindowTracker:
    """Per partition: the watermark, the windows holding state, and which of them closed or expired.

    ``track`` registers that ``key`` has state in a window; ``advance`` moves a partition's watermark and
    returns the (key, window) pairs that closed and those whose state expired since the last call, each
    exactly once. ``is_closed`` says whether an event for a window would be late. ``hold`` keeps state
    longer than its window (a sliding window's bucket is read by later windows for ``before`` seconds).
    """

    def __init__(self, *, grace: Duration = 0.0, expires: Duration | None = None, hold: float = 0.0) -> None:
        grace, expires = seconds(grace), seconds(expires)
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            raise ConfigurationError(f"window grace must be >= 0 seconds, got {grace!r}")
        self.grace = float(grace)
        self.retention = max(self.grace + hold, expires or 0.0)
        """How long after its end a window's state is kept: ``max(grace + hold, expires)``."""
        self._watermarks: dict[int, float] = {}
        self._open: dict[int, dict[WindowRange, set[Hashable]]] = {}
        self._closing: dict[int, list[tuple[float, WindowRange]]] = {}
        self._closed: dict[int, dict[WindowRange, set[Hashable]]] = {}
        self._expiring: dict[int, list[tuple[float, WindowRange]]] = {}

    def watermark(self, partition: int) -> float:
        """The highest event time seen on ``partition`` (-inf before any)."""
        return self._watermarks.get(partition, -math.inf)

    def is_closed(self, partition: int, window: WindowRange) -> bool:
        """Whether ``window`` closed on ``partition`` (state for it now is late)."""
        return window.end + self.grace <= self.watermark(partition)

    def is_expired(self, partition: int, window: WindowRange) -> bool:
        """Whether ``window``'s state should be gone on ``partition``."""
        return window.end + self.retention <= self.watermark(partition)

    def track(self, partition: int, key: Hashable, window: WindowRange) -> None:
        """Remember that ``key`` has state in ``window`` (so its closing and expiry are reported)."""
        if self.is_closed(partition, window):
            self._retain(partition, key, window)
            return
        windows = self._open.setdefault(partition, {})
        keys = windows.get(window)
        if keys is None:
            keys = windows[window] = set()
            heapq.heappush(self._closing.setdefault(partition, []), (window.end, window))
        keys.add(key)

    def untrack(self, partition: int, key: Hashable, window: WindowRange) -> None:
        """Forget ``key``'s state in ``window`` (a session that grew into another window)."""
        for table in (self._open, self._closed):
            keys = table.get(partition, {}).get(window)
            if keys is not None:
                keys.discard(key)

    def _retain(self, partition: int, key: Hashable, window: WindowRange) -> None:
        closed = self._closed.setdefault(partition, {})
        keys = closed.get(window)
        if keys is None:
            keys = closed[window] = set()
            heapq.heappush(self._expiring.setdefault(partition, []), (window.end, window))
        keys.add(key)

    def advance(
        self, partition: int, timestamp: float
    ) -> tuple[list[tuple[Hashable, WindowRange]], list[tuple[Hashable, WindowRange]]]:
        """Move the watermark up to ``timestamp``; returns the (key, window) pairs (closed, expired)."""
        if timestamp <= self._watermarks.get(partition, -math.inf):
            return [], []
        self._watermarks[partition] = timestamp
        closed: list[tuple[Hashable, WindowRange]] = []
        expired: list[tuple[Hashable, WindowRange]] = []
        heap = self._closing.get(partition)
        if heap:
            windows = self._open[partition]
            limit = timestamp - self.grace
            while heap and heap[0][0] <= limit:
                window = heapq.heappop(heap)[1]
                keys = windows.pop(window, set())
                for key in sorted(keys, key=repr):
                    closed.append((key, window))
                    self._retain(partition, key, window)
        heap = self._expiring.get(partition)
        if heap:
            retained = self._closed[partition]
            limit = timestamp - self.retention
            while heap and heap[0][0] <= limit:
                window = heapq.heappop(heap)[1]
                for key in sorted(retained.pop(window, set()), key=repr):
                    expired.append((key, window))
        return closed, expired

    def restore(self, partition: int, watermark: float) -> None:
        """Set a recovered watermark (before re-tracking the recovered windows)."""
        if watermark > self._watermarks.get(partition, -math.inf):
            self._watermarks[partition] = watermark

    def forget(self, partition: int) -> None:
        """Drop everything about ``partition`` (it moved to another worker)."""
        for table in (self._watermarks, self._open, self._closing, self._closed, self._expiring):
            table.pop(partition, None)

    def open_pairs(self) -> set[tuple[Hashable, WindowRange]]:
        """Every (key, window) that holds state and has not closed, on any partition."""
        return {(key, w) for windows in self._open.values() for w, keys in windows.items() for key in keys}

    def open_windows(self, partition: int) -> dict[WindowRange, set[Hashable]]:
        """The windows of ``partition`` that hold state and have not closed."""
        return {w: set(keys) for w, keys in self._open.get(partition, {}).items() if keys}
