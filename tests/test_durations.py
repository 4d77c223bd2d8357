"""Every duration in the public API takes seconds or a datetime.timedelta."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from rxstream import App, Stream
from rxstream.durations import seconds
from rxstream.errors import ConfigurationError
from rxstream.tables.windows import HoppingWindow, SessionWindow, SlidingWindow, TumblingWindow, WindowTracker


def memory_url() -> str:
    return f"memory://durations-{uuid.uuid4().hex[:8]}"


def test_seconds_converts_timedeltas_and_passes_numbers() -> None:
    assert seconds(timedelta(minutes=1, milliseconds=500)) == 60.5
    assert seconds(3) == 3
    assert seconds(None) is None


def test_windows_take_timedeltas() -> None:
    minute = timedelta(minutes=1)
    assert TumblingWindow(minute, expires=timedelta(hours=1)).size == 60.0
    hopping = HoppingWindow(minute, timedelta(seconds=10))
    assert (hopping.size, hopping.step) == (60.0, 10.0)
    sliding = SlidingWindow(timedelta(seconds=5), timedelta(seconds=1))
    assert (sliding.before, sliding.after) == (5.0, 1.0)
    assert SessionWindow(timedelta(seconds=30)).gap == 30.0
    assert WindowTracker(grace=timedelta(seconds=2), expires=timedelta(seconds=90)).retention == 90.0
    assert TumblingWindow(minute).delta(125.0, timedelta(minutes=1)) == TumblingWindow(60).delta(125.0, 60)
    with pytest.raises(ConfigurationError, match="size"):
        TumblingWindow(timedelta(seconds=-1))


def test_tables_take_timedeltas() -> None:
    app = App("durations", broker=memory_url())
    windowed = app.Table("counts", default=int).hopping(
        timedelta(minutes=1), timedelta(seconds=30), timedelta(hours=1), grace=timedelta(seconds=5)
    )
    windowing = windowed._windowing
    assert (windowing.window.size, windowing.window.step, windowing.window.expires) == (60.0, 30.0, 3600.0)
    assert windowing.tracker.grace == 5.0


def test_app_settings_topics_and_timers_take_timedeltas() -> None:
    app = App(
        "durations",
        broker=memory_url(),
        commit_interval=timedelta(milliseconds=500),
        shutdown_timeout=timedelta(seconds=3),
    )
    assert (app.commit_interval, app.shutdown_timeout) == (0.5, 3.0)
    assert app.topic("kept", retention=timedelta(days=1)).retention == 86400.0

    async def tick() -> None:
        return None

    app.timer(timedelta(seconds=2))(tick)
    assert app._timers[-1][0] == 2.0
    with pytest.raises(ConfigurationError, match="interval"):
        app.timer(timedelta(0))


async def test_stream_operators_take_timedeltas() -> None:
    assert await Stream.from_iterable(range(5)).take(2, within=timedelta(seconds=1)).to_list() == [
        [0, 1],
        [2, 3],
        [4],
    ]
    assert await Stream.from_iterable(range(3)).buffer(2, timeout=timedelta(seconds=1)).to_list() == [
        [0, 1],
        [2],
    ]
    limited = Stream.from_iterable(range(3)).rate_limit(1000, per=timedelta(seconds=1))
    assert await limited.to_list() == [0, 1, 2]
    with pytest.raises(ConfigurationError, match="within"):
        Stream.from_iterable([1]).join(Stream.from_iterable([2]), within=timedelta(seconds=-1))
