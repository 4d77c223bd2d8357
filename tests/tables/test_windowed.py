"""Windowed tables on event time: counts per window, on_window_close, late events, relative time, restart."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

import rxstream
from rxstream import App
from rxstream.errors import TableError
from rxstream.tables.windows import WindowRange
from tests.test_app import eventually, memory_url, read_all

USERS = ["ada", "bob", "cy", "dee", "eve"]


class Click(rxstream.Record):
    user: str
    at: float


def windowed_app(
    url: str, make_view: Any, *, partitions: int = 2, app_id: str = "clicks"
) -> tuple[App, Any, Any, list[Any], list[tuple[Any, Any]]]:
    """An app counting clicks per user in ``make_view(table)``; returns (app, topic, view, seen, closed)."""
    app = App(app_id, broker=url, commit_interval=0.05)
    clicks = app.topic("clicks", partitions=partitions)
    closed: list[tuple[Any, Any]] = []
    table = app.Table(
        "per-user", default=int, partitions=partitions, on_window_close=lambda k, v: closed.append((k, v))
    )
    view = make_view(table, app)
    seen: list[Any] = []

    @app.agent(clicks)
    async def count(stream: rxstream.Stream[Any]) -> None:
        async for event in stream.events():
            view[event.key] += 1
            seen.append(event.value)

    return app, clicks, view, seen, closed


async def test_tumbling_count_per_key_matches_a_plain_python_count() -> None:
    rng = random.Random(7)
    t = 1_000.0
    events: list[tuple[str, float]] = []
    for _ in range(600):
        t += rng.uniform(0.0, 1.5)
        events.append((rng.choice(USERS), round(t, 3)))
    expected = Counter((user, math.floor(ts / 10) * 10.0) for user, ts in events)

    app, clicks, view, seen, _closed = windowed_app(
        memory_url(), lambda table, app: table.tumbling(10, expires=10_000)
    )
    async with app:
        for user, ts in events:
            await clicks.send(key=user, value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(events))
        got = {(user, window.start): value for user in USERS for window, value in view.windows(user)}
    assert got == dict(expected)
    assert view.late_events == 0


async def test_on_window_close_fires_once_per_window_with_its_value() -> None:
    events = [
        ("ada", 1.0),
        ("bob", 2.0),
        ("ada", 3.0),
        ("ada", 12.0),
        ("bob", 14.0),
        ("ada", 15.0),
        ("ada", 21.0),
    ]
    app, clicks, view, seen, closed = windowed_app(
        memory_url(), lambda table, app: table.tumbling(10), partitions=1
    )
    async with app:
        for user, ts in events:
            await clicks.send(key=user, value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(events))
        # 12.0 closed [0, 10); 21.0 closed [10, 20); [20, 30) is still open
        assert sorted(closed) == [("ada", 2), ("ada", 2), ("bob", 1), ("bob", 1)]
        assert view.windows("ada") == [(WindowRange(20.0, 30.0), 1)]  # closed windows expired (no expires)
        await clicks.send(key="ada", value=40.0, timestamp=40.0)
        await eventually(lambda: len(closed) == 5)
    assert closed[-1] == ("ada", 1)
    assert view.closed_windows == 5


async def test_late_events_are_counted_logged_and_routed_never_merged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    late_seen: list[Any] = []

    def make_view(table: Any, app: App) -> Any:
        late = app.topic("late-clicks", partitions=1)
        return table.tumbling(10, expires=100, grace=5, late_events=late)

    app, clicks, view, seen, closed = windowed_app(memory_url(), make_view, partitions=1)
    stamps = [1.0, 12.0, 3.0, 16.0, 4.0, 9.0, 17.0]
    async with app:
        for ts in stamps:
            await clicks.send(key="ada", value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(stamps))
        # 3.0 is within grace (watermark 12 < 10 + 5): merged; 16.0 closes [0, 10); 4.0 and 9.0 are late
        assert view.late_events == 2
        assert app.monitor.tables()["per-user"]["late_by_partition"] == {"0": 2}
        assert closed == [("ada", 2)]
        assert view.windows("ada") == [(WindowRange(0.0, 10.0), 2), (WindowRange(10.0, 20.0), 3)]
        late_seen = await read_all(app, "late-clicks")
    assert [m.value for m in late_seen] == [4.0, 9.0]
    assert late_seen[0].headers["rxstream-late-table"] == "per-user"
    assert any("late event for key 'ada' at 4.0" in r.getMessage() for r in caplog.records)


async def test_hopping_windows_count_each_event_in_every_window_it_falls_in() -> None:
    app, clicks, view, seen, _closed = windowed_app(
        memory_url(), lambda table, app: table.hopping(10, 5, expires=1000), partitions=1
    )
    stamps = [1.0, 6.0, 7.0, 11.0, 14.0]
    async with app:
        for ts in stamps:
            await clicks.send(key="ada", value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(stamps))
        windows = dict(view.windows("ada"))
    expected: Counter[WindowRange] = Counter()
    for ts in stamps:
        for start in (math.floor(ts / 5) * 5.0 - 5, math.floor(ts / 5) * 5.0):
            expected[WindowRange(start, start + 10)] += 1
    assert windows == dict(expected)


async def test_window_set_current_delta_and_relative_to_field() -> None:
    readings: list[tuple[Any, Any, Any]] = []
    app = App("fields", broker=memory_url())
    clicks = app.topic("clicks", partitions=1, value_type=Click)
    per_user = (
        app.Table("per-user", default=int, partitions=1).tumbling(10, expires=100).relative_to_field("at")
    )

    @app.agent(clicks)
    async def count(stream: rxstream.Stream[Click]) -> None:
        async for click in stream:
            per_user[click.user] += 1
            window = per_user[click.user]
            readings.append((window.current(), window.delta(10), window.value()))

    async with app:
        for at in (1.0, 2.0, 11.0, 12.0, 13.0):  # message timestamps are "now": the field decides
            await clicks.send(key="ada", value=Click(user="ada", at=at))
        await eventually(lambda: len(readings) == 5)
        assert per_user.watermark(0) == 13.0
        with pytest.raises(TableError, match="needs an event"):
            per_user["ada"].current()
        assert per_user["ada"].now() == 0  # the wall clock is far past these windows
    assert readings == [(1, 0, 1), (2, 0, 2), (1, 2, 1), (2, 2, 2), (3, 2, 3)]


async def test_windowed_state_and_watermarks_survive_a_restart_without_refiring_closed_windows() -> None:
    url = memory_url()

    def make() -> tuple[App, Any, Any, list[Any], list[tuple[Any, Any]]]:
        return windowed_app(url, lambda table, app: table.tumbling(10, expires=50), partitions=1)

    app, clicks, view, seen, closed = make()
    async with app:
        for ts in (1.0, 2.0, 15.0):
            await clicks.send(key="ada", value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == 3)
    assert closed == [("ada", 2)]
    again, clicks, view, seen, closed = make()
    async with again:
        assert view.watermark(0) == 15.0
        assert view.windows("ada") == [(WindowRange(0.0, 10.0), 2), (WindowRange(10.0, 20.0), 1)]
        for ts in (18.0, 5.0, 31.0):
            await clicks.send(key="ada", value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == 3)
        assert view.late_events == 1  # 5.0: its window closed before the restart
    assert closed == [("ada", 2)]  # only [10, 20) closed now; [0, 10) did not fire again


async def test_sliding_windows_fold_the_values_around_each_event() -> None:
    app, clicks, view, seen, closed = windowed_app(
        memory_url(), lambda table, app: table.sliding(5, 5), partitions=1
    )
    stamps = [10.0, 12.0, 14.0, 30.0]
    async with app:
        for ts in stamps:
            await clicks.send(key="ada", value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(stamps))
    # windows [t-5, t+5): at 10 -> {10,12,14}, 12 -> {10,12,14}, 14 -> {10,12,14}; 30 closes all three
    assert closed == [("ada", 3), ("ada", 3), ("ada", 3)]
    assert view.windows("ada") == [(30.0, 1)]


async def test_session_windows_merge_events_closer_than_the_gap() -> None:
    app, clicks, view, seen, closed = windowed_app(
        memory_url(), lambda table, app: table.session(5), partitions=1
    )
    stamps = [1.0, 3.0, 7.0, 20.0, 22.0, 2.0, 40.0]
    async with app:
        for ts in stamps:
            await clicks.send(key="ada", value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(stamps))
    # sessions: {1, 3, 7} closed by 20 (7 + 5 <= 20); 2.0 arrives after it closed: late; {20, 22} closed by 40
    assert closed == [("ada", 3), ("ada", 2)]
    assert view.late_events == 1
    assert view.windows("ada") == [(40.0, 1)]
