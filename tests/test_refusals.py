"""What a new user tries works, or fails at once with an error naming the argument and what would work."""

from __future__ import annotations

import asyncio
import functools
import typing
import uuid
from collections.abc import AsyncIterator

import pytest

import rxstream
from rxstream import App, Event, Record
from rxstream.errors import ConfigurationError, ReadOnlyError


def memory_url() -> str:
    return f"memory://refusals-{uuid.uuid4().hex[:8]}"


def test_dead_letter_takes_a_topic_and_uses_its_name() -> None:
    app = App("refusals", broker=memory_url())
    graveyard = app.topic("graveyard")
    orders = app.topic("orders", dead_letter=graveyard)
    assert orders.policy.dead_letter == "graveyard"
    assert "graveyard" in {spec.name for spec in orders.specs(1)}
    with pytest.raises(ConfigurationError, match="dead_letter must be a topic name or a Topic"):
        app.topic("invoices", dead_letter=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["key", "value", "headers"])
def test_event_key_value_and_headers_are_read_only(name: str) -> None:
    event = Event(key="k", value=1, headers={"h": b"1"})
    with pytest.raises(ReadOnlyError, match=f"Event.{name} is read-only"):
        setattr(event, name, None)
    with pytest.raises(AttributeError):
        setattr(event, name, None)
    assert (event.key, event.value, event.headers) == ("k", 1, {"h": b"1"})


def test_record_class_keywords_faust_knows_are_accepted() -> None:
    class Coerced(Record, coerce=True, serializer="json", isodates=True, include_metadata=False):
        amount: float

    assert Coerced(amount=2).amount == 2.0  # type: ignore[arg-type]
    assert type(Coerced(amount=2).amount) is float  # type: ignore[arg-type]
    app = App("refusals", broker=memory_url(), value_serializer="raw")
    assert app.topic("coerced", value_type=Coerced).value_serializer == "json"
    assert app.topic("plain", value_type=int).value_serializer == "raw"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"namespace": "x"}, "'namespace'"),
        ({"isodates": False}, "isodates=False"),
        ({"include_metadata": True}, "include_metadata=True"),
        ({"serializer": "yaml"}, "'yaml'"),
        ({"coerce": True, "validation": False}, "coerce=True and validation=False"),
    ],
)
def test_record_class_keywords_it_cannot_honour_are_named(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):

        class Refused(Record, **options):  # type: ignore[call-arg]
            amount: float


def test_bare_typing_containers_are_unparameterised_containers() -> None:
    class Bag(Record):
        items: typing.Sequence  # type: ignore[type-arg]
        names: typing.List  # type: ignore[type-arg]  # noqa: UP006
        index: typing.Mapping  # type: ignore[type-arg]
        extra: typing.Dict  # type: ignore[type-arg]  # noqa: UP006

    bag = Bag.from_data({"items": [1, "a"], "names": ["x"], "index": {"a": 1}, "extra": {}})
    assert (bag.items, bag.names, bag.index, bag.extra) == ([1, "a"], ["x"], {"a": 1}, {})
    with pytest.raises(rxstream.errors.ValidationError, match=r"Bag\.items"):
        Bag.from_data({"items": 3, "names": [], "index": {}, "extra": {}})


async def test_timer_takes_a_partial() -> None:
    app = App("refusals", broker=memory_url())
    ticks: list[str] = []

    async def tick(name: str) -> None:
        ticks.append(name)

    app.timer(0.01)(functools.partial(tick, "partial"))
    async with app:
        async with asyncio.timeout(5.0):
            while not ticks:
                await asyncio.sleep(0.01)
    assert ticks[0] == "partial"


def test_timer_refuses_what_it_cannot_call_at_declaration() -> None:
    app = App("refusals", broker=memory_url())
    with pytest.raises(ConfigurationError, match=r"app\.timer"):
        app.timer(1.0)("not callable")  # type: ignore[type-var]
    with pytest.raises(ConfigurationError, match="interval"):
        app.timer(0)


def test_a_failed_window_declaration_leaves_the_name_free() -> None:
    app = App("refusals", broker=memory_url())
    with pytest.raises(ConfigurationError, match="size"):
        app.Table("counts", default=int).tumbling(-1)
    assert "counts" not in app.tables
    app.Table("counts", default=int).tumbling(10.0)
    assert "counts" in app.tables


def test_echo_errors_name_echo() -> None:
    stream = rxstream.Stream.from_iterable([1, 2])
    with pytest.raises(ConfigurationError, match=r"Stream\.echo\(\)"):
        stream.echo("name")


async def test_through_keeps_the_event_key() -> None:
    app = App("refusals", broker=memory_url())
    source = app.topic("source", partitions=1)
    middle = app.topic("middle", partitions=4)
    seen: list[tuple[object, object]] = []

    @app.agent(source)
    async def relay(stream: rxstream.Stream[str]) -> AsyncIterator[None]:
        async for event in stream.through(middle).events():
            seen.append((event.key, event.value))
            yield None

    async with app:
        for i in range(4):
            await source.send(key=f"k{i}", value=f"v{i}")
        async with asyncio.timeout(5.0):
            while len(seen) < 4:
                await asyncio.sleep(0.01)
    assert sorted(seen) == [(f"k{i}", f"v{i}") for i in range(4)]
