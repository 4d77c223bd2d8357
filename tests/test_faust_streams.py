"""Stream shapes Faust's users type: app.stream(iterable), `&`, topic names, noack_take, taps, group_by."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rxstream
from rxstream import App, Record, Stream
from rxstream.errors import ConfigurationError, GroupPairUsedAsValue
from tests.test_app import eventually, memory_url


class Order(Record):
    account_id: str
    amount: float = 0.0


async def test_app_stream_reads_a_plain_iterable_and_an_async_iterable() -> None:
    app = App("faust-streams", broker=memory_url())

    async def numbers() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    assert await app.stream([1, 2, 3]).map(lambda x: x * 2).to_list() == [2, 4, 6]
    assert await app.stream(numbers()).to_list() == [0, 1, 2]
    assert await app.stream(range(4), processors=[lambda x: x + 1, str]).to_list() == ["1", "2", "3", "4"]
    with pytest.raises(ConfigurationError, match=r"app.stream\(\) takes a channel"):
        app.stream(42)  # type: ignore[arg-type]


async def test_and_combines_two_streams() -> None:
    combined = Stream.from_iterable([1, 2]) & Stream.from_iterable([3])
    assert sorted(await combined.to_list()) == [1, 2, 3]


async def test_through_and_echo_take_topic_names_of_the_stream_app() -> None:
    app = App("faust-names", broker=memory_url())
    source = app.topic("source", partitions=1)
    read_back: list[Any] = []
    copied: list[Any] = []

    @app.agent(source)
    async def relay(stream: Stream[Any]) -> AsyncIterator[None]:
        async for value in stream.echo("copies").through("middle"):
            read_back.append(value)
            yield None

    @app.agent(app.topic("copies"))
    async def copies(stream: Stream[Any]) -> None:
        async for value in stream:
            copied.append(value)

    async with app:
        for word in ["a", "b", "c"]:
            await source.send(key=word, value=word)
        await eventually(lambda: len(read_back) == 3 and len(copied) == 3)
    assert sorted(read_back) == sorted(copied) == ["a", "b", "c"]
    assert {"copies", "middle"} <= set(app.topics)


def test_a_topic_name_needs_a_stream_of_an_app() -> None:
    with pytest.raises(ConfigurationError, match=r"Stream\.through\(\): the topic name 'out'"):
        Stream.from_iterable([1]).through("out")
    with pytest.raises(ConfigurationError, match=r"like \.echo\(app\.topic\('out'\)\)"):
        Stream.from_iterable([1]).echo("out")


async def test_noack_take_leaves_acknowledging_to_the_consumer() -> None:
    app = App("faust-noack", broker=memory_url())
    topic = app.topic("jobs", partitions=1)
    batches: list[list[Any]] = []

    @app.agent(topic)
    async def work(stream: Stream[Any]) -> None:
        async for events in stream.events().noack_take(2, within=0.05):
            batches.append(events)

    async with app:
        for i in range(4):
            await topic.send(value=i)
        await eventually(lambda: sum(map(len, batches)) == 4)
        await asyncio.sleep(0.1)
        assert not any(event.acked for batch in batches for event in batch)
        for batch in batches:
            for event in batch:
                event.ack()
        assert all(event.acked for batch in batches for event in batch)


async def test_take_with_timestamp_stamps_dict_values_with_their_message_time() -> None:
    app = App("faust-stamps", broker=memory_url())
    topic = app.topic("readings", partitions=1)
    got: list[list[Any]] = []

    @app.agent(topic)
    async def read(stream: Stream[Any]) -> None:
        async for values in stream.take_with_timestamp(2, 0.05, "ts"):
            got.append(values)

    async with app:
        await topic.send(value={"v": 1}, timestamp=100.0)
        await topic.send(value="plain", timestamp=200.0)
        await eventually(lambda: sum(map(len, got)) == 2)
    values = [value for batch in got for value in batch]
    assert values == [{"v": 1, "ts": 100.0}, "plain"]
    with pytest.raises(ConfigurationError, match="timestamp_field_name"):
        Stream.from_iterable([{}]).take_with_timestamp(1, 1, "")


# ---------------------------------------------------------------- taps act on what the consumer takes


async def test_tee_runs_once_for_first_and_echo_prints_only_the_taken_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[int] = []
    assert await Stream.from_iterable(range(100_000)).tee(calls.append).first() == 0
    assert calls == [0]
    batch = await Stream.from_iterable(range(100_000)).echo().take(1000).first()
    assert batch == list(range(1000))
    assert capsys.readouterr().out.split() == [str(i) for i in range(1000)]


async def test_a_tap_in_async_for_runs_on_the_values_taken_so_far() -> None:
    calls: list[int] = []
    taken = 0
    async for value in Stream.from_iterable(range(10_000)).tee(calls.append).map(lambda x: x * 2):
        assert calls[-1] * 2 == value
        taken += 1
        assert len(calls) == taken  # nothing pulled ahead ran the tap
        if taken == 10:
            break
    assert await Stream.from_iterable(range(5)).tee(calls.append).to_list(3) == [0, 1, 2]
    assert calls[-3:] == [0, 1, 2] and len(calls) == 13


async def test_an_async_tap_and_a_channel_tap_still_see_every_value_taken() -> None:
    app = App("faust-taps", broker=memory_url())
    seen: list[int] = []

    async def slow(value: int) -> None:
        await asyncio.sleep(0)
        seen.append(value)

    channel = app.channel()
    assert await Stream.from_iterable(range(50)).tee(slow, channel).to_list() == list(range(50))
    assert seen == list(range(50))


async def test_a_failing_tap_names_its_operator_and_value() -> None:
    def boom(value: int) -> None:
        if value == 2:
            raise ValueError("no")

    with pytest.raises(ValueError, match="no") as caught:
        async for _ in Stream.from_iterable(range(5)).tee(boom):
            pass
    assert "tee raised on value 2" in "".join(caught.value.__notes__)


# ---------------------------------------------------------------- group_by keeps its pairs


async def test_group_by_pairs_used_as_values_say_how_to_change_the_loop() -> None:
    app = App("faust-groups", broker=memory_url())
    orders = app.topic("orders", value_type=Order, partitions=1)
    errors: list[BaseException] = []

    @app.agent(orders, on_error=lambda agent, exc: errors.append(exc), supervisor_strategy="crash")
    async def process(stream: Stream[Order]) -> None:
        async for order in stream.group_by(Order.account_id):
            print(order.amount)  # type: ignore[attr-defined]  # a Faust loop: the pair used as a value

    async with app:
        await orders.send(value=Order("a", 1.0))
        await eventually(lambda: bool(errors))
    error = errors[0]
    assert isinstance(error, GroupPairUsedAsValue) and isinstance(error, AttributeError)
    text = str(error)
    assert "group_by(Order.account_id) yields (key, substream) pairs, not values" in text
    assert "(.amount)" in text
    one_line = "async for value in stream.group_by(Order.account_id).flat_map(lambda key, values: values):"
    assert one_line in text


async def test_the_one_line_change_gives_the_values_regrouped() -> None:
    app = App("faust-regroup", broker=memory_url())
    orders = app.topic("orders", value_type=Order, partitions=2)
    amounts: list[float] = []

    @app.agent(orders)
    async def process(stream: Stream[Order]) -> None:
        async for order in stream.group_by(Order.account_id).flat_map(lambda key, values: values):
            amounts.append(order.amount)

    async with app:
        for i in range(6):
            await orders.send(key=str(i), value=Order("ab"[i % 2], float(i)))
        await eventually(lambda: len(amounts) == 6)
    assert sorted(amounts) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert "faust-regroup-Order.account_id-repartition" in app.topics


async def test_a_group_pair_still_unpacks_and_indexes_like_a_tuple() -> None:
    pairs = await Stream.from_iterable([1, 2, 3]).group_by(lambda x: x % 2).to_list()
    key, substream = pairs[0]
    assert key == 1 and isinstance(substream, Stream) and pairs[0][0] == 1
    assert getattr(pairs[0], "_repr_html_", None) is None  # probes of private names stay plain
    with pytest.raises(GroupPairUsedAsValue, match=r"\['amount'\]"):
        pairs[0]["amount"]


def test_stream_module_names_the_faust_shapes() -> None:
    for name in ("noack_take", "take_with_timestamp", "__and__", "echo", "through"):
        assert callable(getattr(rxstream.Stream, name))
