"""Window math, sans I/O: ranges of a timestamp, sessions, watermarks, closing and expiry."""

from __future__ import annotations

import math

import pytest

from rxstream.errors import ConfigurationError
from rxstream.tables.windows import (
    HoppingWindow,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
    WindowTracker,
    in_range,
    session_around,
    sessions_of,
)


def test_tumbling_ranges_are_half_open_and_aligned() -> None:
    window = TumblingWindow(10)
    assert window.ranges(0) == [WindowRange(0.0, 10.0)]
    assert window.ranges(9.999) == [WindowRange(0.0, 10.0)]
    assert window.ranges(10) == [WindowRange(10.0, 20.0)]
    assert window.ranges(-0.5) == [WindowRange(-10.0, 0.0)]
    assert window.delta(25, 10) == WindowRange(10.0, 20.0)


def test_hopping_ranges_cover_every_window_containing_the_timestamp() -> None:
    window = HoppingWindow(10, 5)
    assert window.ranges(12) == [WindowRange(5.0, 15.0), WindowRange(10.0, 20.0)]
    assert window.ranges(10) == [WindowRange(5.0, 15.0), WindowRange(10.0, 20.0)]
    assert window.ranges(4.9) == [WindowRange(-5.0, 5.0), WindowRange(0.0, 10.0)]
    assert window.current(12) == WindowRange(10.0, 20.0)
    for t in (0.0, 3.3, 7.5, 12.25, 99.99):
        for start, end in HoppingWindow(10, 3).ranges(t):
            assert start <= t < end
        assert len(HoppingWindow(10, 3).ranges(t)) in (3, 4)


def test_hopping_step_larger_than_size_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="step"):
        HoppingWindow(5, 10)
    with pytest.raises(ConfigurationError, match="size must be a positive"):
        TumblingWindow(0)


def test_sliding_window_surrounds_the_event() -> None:
    assert SlidingWindow(5, 2).ranges(10) == [WindowRange(5.0, 12.0)]


def test_sessions_split_on_gaps_and_find_the_session_of_a_time() -> None:
    times = [1.0, 2.0, 4.0, 10.0, 11.0, 30.0]
    assert sessions_of(times, 3) == [WindowRange(1.0, 7.0), WindowRange(10.0, 14.0), WindowRange(30.0, 33.0)]
    assert session_around(times, 3.0, 3) == WindowRange(1.0, 7.0)
    assert session_around(times, 12.0, 3) == WindowRange(10.0, 14.0)
    assert session_around(times, 20.0, 3) is None
    assert times[in_range(times, WindowRange(2.0, 11.0))] == [2.0, 4.0, 10.0]
    assert SessionWindow(3).ranges(5) == [WindowRange(5.0, 8.0)]


def test_tracker_closes_each_window_once_per_partition_on_event_time() -> None:
    tracker = WindowTracker(grace=2)
    w0, w1 = WindowRange(0, 10), WindowRange(10, 20)
    tracker.track(0, "a", w0)
    tracker.track(0, "b", w0)
    tracker.track(1, "a", w0)
    tracker.track(0, "a", w1)
    assert tracker.advance(0, 11) == ([], [])  # 10 + grace 2 > 11: still open
    assert not tracker.is_closed(0, w0)
    closed, expired = tracker.advance(0, 12)
    assert closed == [("a", w0), ("b", w0)]
    assert expired == [("a", w0), ("b", w0)]  # no expires: state goes when the window closes
    assert tracker.is_closed(0, w0) and not tracker.is_closed(1, w0)
    assert tracker.advance(0, 12) == ([], [])
    assert tracker.advance(0, 5) == ([], [])  # the watermark never goes back
    assert tracker.watermark(0) == 12 and tracker.watermark(1) == -math.inf
    assert tracker.advance(1, 30) == ([("a", w0)], [("a", w0)])
    assert tracker.advance(0, 22) == ([("a", w1)], [("a", w1)])


def test_tracker_keeps_state_until_expires_after_closing() -> None:
    tracker = WindowTracker(grace=0, expires=15)
    w0 = WindowRange(0, 10)
    tracker.track(0, "k", w0)
    assert tracker.advance(0, 10) == ([("k", w0)], [])
    assert tracker.advance(0, 24) == ([], [])
    assert tracker.advance(0, 25) == ([], [("k", w0)])


def test_tracker_hold_delays_expiry_and_state_for_closed_windows_is_retained_not_reopened() -> None:
    tracker = WindowTracker(grace=1, hold=5)
    w0 = WindowRange(0, 10)
    tracker.advance(0, 20)
    tracker.track(0, "late", w0)  # closed already: never reported as closing
    assert tracker.open_windows(0) == {}
    tracker.track(0, "k", WindowRange(15, 25))
    assert tracker.advance(0, 26) == ([("k", WindowRange(15, 25))], [("late", w0)])
    assert tracker.advance(0, 31) == ([], [("k", WindowRange(15, 25))])


def test_tracker_restore_and_forget() -> None:
    tracker = WindowTracker()
    tracker.restore(3, 50.0)
    assert tracker.is_closed(3, WindowRange(40, 50))
    tracker.track(3, "k", WindowRange(50, 60))
    tracker.forget(3)
    assert tracker.watermark(3) == -math.inf
    assert tracker.advance(3, 100) == ([], [])


def test_tracker_untrack_forgets_a_grown_session() -> None:
    tracker = WindowTracker()
    tracker.track(0, "k", WindowRange(0, 5))
    tracker.untrack(0, "k", WindowRange(0, 5))
    tracker.track(0, "k", WindowRange(0, 8))
    assert tracker.advance(0, 9) == ([("k", WindowRange(0, 8))], [("k", WindowRange(0, 8))])
