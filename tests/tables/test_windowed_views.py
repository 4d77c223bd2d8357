"""Windowed tables read like dicts that end: keys, items, membership, iteration, a wide DataFrame."""

from __future__ import annotations

from typing import Any

import pytest

from rxstream.tables.windows import WindowRange
from tests.tables.test_windowed import windowed_app
from tests.test_app import eventually, memory_url


async def counted(make_view: Any, clicks_at: list[tuple[str, float]]) -> Any:
    app, clicks, view, seen, _ = windowed_app(memory_url(), make_view, partitions=1)
    async with app:
        for user, ts in clicks_at:
            await clicks.send(key=user, value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == len(clicks_at))
    return view


async def test_a_tumbling_table_lists_keys_items_and_windows_and_its_iteration_ends() -> None:
    view = await counted(
        lambda table, app: table.tumbling(10, expires=1_000),
        [("ada", 1.0), ("bob", 2.0), ("ada", 3.0), ("ada", 12.0), ("bob", 31.0)],
    )
    assert view.keys() == ["ada", "bob"] and list(view) == ["ada", "bob"] and len(view) == 2
    assert "ada" in view and "cy" not in view
    assert dict(view.items()) == {"ada": 1, "bob": 1}  # each key's latest window
    assert view.values() == [1, 1]
    assert view.rows() == [
        ("ada", WindowRange(0.0, 10.0), 2, True),
        ("bob", WindowRange(0.0, 10.0), 1, True),
        ("ada", WindowRange(10.0, 20.0), 1, True),
        ("bob", WindowRange(30.0, 40.0), 1, False),
    ]
    html = view._repr_html_()
    assert "TumblingWindow(size=10" in html and "closed" in html and "open" in html


async def test_session_and_sliding_tables_show_their_folded_windows() -> None:
    sessions = await counted(
        lambda table, app: table.session(5, expires=100), [("ada", 1.0), ("ada", 3.0), ("ada", 20.0)]
    )
    assert [(w, v, c) for _, w, v, c in sessions.rows()] == [
        (WindowRange(1.0, 8.0), 2, True),
        (WindowRange(20.0, 25.0), 1, False),
    ]
    sliding = await counted(lambda table, app: table.sliding(5, 5), [("ada", 10.0), ("ada", 12.0)])
    assert [(w, v) for _, w, v, _ in sliding.rows()] == [
        (WindowRange(5.0, 15.0), 2),
        (WindowRange(7.0, 17.0), 2),
    ]


async def test_a_windowed_table_as_a_wide_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    view = await counted(
        lambda table, app: table.tumbling(10, expires=1_000), [("ada", 1.0), ("ada", 12.0), ("bob", 13.0)]
    )
    frame = view.to_dataframe()
    assert list(frame.index) == ["ada", "bob"]
    assert list(frame.columns) == [pd.Timestamp(0, unit="s", tz="UTC"), pd.Timestamp(10, unit="s", tz="UTC")]
    assert frame.loc["ada"].tolist() == [1, 1]
    assert frame.loc["bob"].isna().tolist() == [True, False]
