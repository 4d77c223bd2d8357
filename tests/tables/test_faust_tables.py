"""Tables as Faust's users write them: relative_to, key_index=, as_ansitable, changelog_topic= a Topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rxstream import App, Event, Record, Stream
from rxstream.errors import ConfigurationError
from rxstream.tables.windows import WindowRange
from tests.tables.test_windowed import windowed_app
from tests.test_app import eventually, memory_url


class Click(Record):
    user: str
    at: float


async def test_relative_to_a_field_descriptor_a_function_or_a_fixed_time() -> None:
    app = App("faust-relative", broker=memory_url())
    clicks = app.topic("clicks", value_type=Click, partitions=1)
    table = app.Table("per-user", default=int, partitions=1)
    by_field = table.tumbling(10, expires=1_000, key_index=True).relative_to(Click.at)
    by_function = by_field.relative_to(lambda event: event.value.at + 10)
    at_noon = by_field.relative_to(datetime(2024, 1, 1, 12, tzinfo=UTC))
    seen: list[Any] = []

    @app.agent(clicks)
    async def count(stream: Stream[Click]) -> None:
        async for click in stream:
            by_field[click.user] += 1
            seen.append(click)

    async with app:
        for user, at in [("ada", 1.0), ("ada", 12.0), ("bob", 15.0)]:
            await clicks.send(key=user, value=Click(user, at), timestamp=99_999.0)
        await eventually(lambda: len(seen) == 3)
    assert by_field.windows("ada") == [(WindowRange(0.0, 10.0), 1), (WindowRange(10.0, 20.0), 1)]
    assert by_field.relative == "field at" and by_function.relative == "<lambda>(event)"
    assert at_noon.relative == f"time {datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp():g}"
    event = Event(value=Click("ada", 1.0), timestamp=5.0)
    assert by_function._time_of(event) == 11.0 and by_field.relative_to(42)._time_of(event) == 42.0
    with pytest.raises(ConfigurationError, match="relative_to takes a time"):
        by_field.relative_to("at")


async def test_relative_to_field_takes_a_descriptor() -> None:
    app = App("faust-field", broker=memory_url())
    windowed = app.Table("t", default=int).hopping(10, 5, key_index=False).relative_to_field(Click.at)
    assert windowed.relative == "field at"


async def test_as_ansitable_draws_a_table_and_a_windowed_table() -> None:
    app, clicks, view, seen, _ = windowed_app(
        memory_url(), lambda table, app: table.tumbling(10, expires=1_000), partitions=1
    )
    async with app:
        for user, ts in [("bob", 1.0), ("ada", 2.0), ("ada", 3.0)]:
            await clicks.send(key=user, value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == 3)
    drawn = view.as_ansitable(key="user", value="clicks", sort=True)
    assert drawn.splitlines() == [
        "+per-user-------+",
        "| user | clicks |",
        "+------+--------+",
        "| ada  | 2      |",
        "| bob  | 1      |",
        "+------+--------+",
    ]
    plain = App("faust-ansi", broker=memory_url()).Table("scores")
    assert plain.as_ansitable(title="{table.name} now").splitlines() == [
        "+scores now---+",
        "| Key | Value |",
        "+-----+-------+",
        "+-----+-------+",
    ]


def test_changelog_topic_takes_a_topic_its_name_and_partitions() -> None:
    app = App("faust-changelog", broker=memory_url())
    log = app.topic("my-changelog", partitions=3)
    table = app.Table("totals", default=int, changelog_topic=log)
    assert table.changelog_topic == "my-changelog" and table.partitions == 3
    assert log.compacting is True  # created compacted, as a changelog must be
    named = app.Table("named", changelog_topic="named-log")
    assert named.changelog_topic == "named-log"
    with pytest.raises(ConfigurationError, match="partitions=2, but its changelog_topic 'my-changelog'"):
        app.Table("clash", partitions=2, changelog_topic=log)


async def test_a_table_logs_to_the_topic_given_and_recovers_from_it() -> None:
    url = memory_url()

    def make() -> tuple[App, Any, Any, list[Any]]:
        app = App("faust-recover", broker=url, commit_interval=0.05)
        words = app.topic("words", partitions=1)
        counts = app.Table("counts", default=int, changelog_topic=app.topic("counts-log", partitions=1))
        seen: list[Any] = []

        @app.agent(words)
        async def count(stream: Stream[str]) -> None:
            async for word in stream:
                counts[word] += 1
                seen.append(word)

        return app, words, counts, seen

    app, words, _, seen = make()
    async with app:
        for word in ["a", "b", "a"]:
            await words.send(value=word)
        await eventually(lambda: len(seen) == 3)
    again, _, restored, _ = make()
    async with again:
        await eventually(lambda: restored.get("a") == 2)
    assert dict(restored.items()) == {"a": 2, "b": 1}


async def test_windowed_keys_items_and_values_read_other_windows_as_faust_views_do() -> None:
    app, clicks, view, seen, _ = windowed_app(
        memory_url(), lambda table, app: table.hopping(10, 10, expires=1_000, key_index=True), partitions=1
    )
    async with app:
        for user, ts in [("ada", 1.0), ("bob", 2.0), ("ada", 3.0), ("ada", 12.0)]:
            await clicks.send(key=user, value=ts, timestamp=ts)
        await eventually(lambda: len(seen) == 4)
    assert view.items() == [("ada", 1), ("bob", 1)]  # each key's latest window
    at_five = Event(value=None, timestamp=5.0)
    assert view.items().current(at_five) == [("ada", 2), ("bob", 1)]
    assert view.items().delta(10, Event(value=None, timestamp=15.0)) == [("ada", 2), ("bob", 1)]
    assert view.values().current(Event(value=None, timestamp=15.0)) == [1, 0]  # bob: the default
    assert view.keys() == ["ada", "bob"] and view.keys().now() == ["ada", "bob"]
    assert view.relative_to_now().values().now() == [0, 0]  # nothing in the window of the wall clock
    assert list(view) == ["ada", "bob"] and len(view) == 2 and "ada" in view
