"""Stream operators, sources and consumers on functional chains (no app, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops

from rxstream import Stream
from rxstream.errors import ConfigurationError, StreamConsumedError, StreamEmptyError, StreamError


async def agen(values: list[Any], delay: float | None = None) -> AsyncIterator[Any]:
    for value in values:
        if delay is not None:
            await asyncio.sleep(delay)
        yield value


async def test_spec_example_filter_then_map() -> None:
    out = await Stream.from_iterable(range(10)).filter(lambda x: x % 2).map(lambda x: x * 10).to_list()
    assert out == [10, 30, 50, 70, 90]


async def test_async_for_yields_every_value_in_order_across_batches() -> None:
    seen = [x async for x in Stream.from_iterable(range(5000)).map(lambda x: x + 1)]
    assert seen == list(range(1, 5001))


async def test_async_functions_work_in_map_and_filter() -> None:
    async def triple(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    async def even(x: int) -> bool:
        return x % 2 == 0

    out = await Stream.from_iterable(range(3000)).map(triple).filter(even).to_list()
    assert out == [x * 3 for x in range(3000) if (x * 3) % 2 == 0]


async def test_from_async_iterable_and_from_observable() -> None:
    assert await Stream.from_async_iterable(agen([1, 2, 3], 0.001)).map(str).to_list() == ["1", "2", "3"]
    assert await Stream.from_observable(reactivex.of(4, 5, 6)).to_list() == [4, 5, 6]


async def test_first_and_limit() -> None:
    assert await Stream.from_iterable([7, 8, 9]).first() == 7
    assert await Stream.from_iterable(range(100)).to_list(limit=3) == [0, 1, 2]
    with pytest.raises(StreamEmptyError, match="completed without a value"):
        await Stream.from_iterable([]).first()


async def test_items_enumerate_and_events() -> None:
    assert await Stream.from_iterable("ab").items().to_list() == [(None, "a"), (None, "b")]
    assert await Stream.from_iterable("ab").enumerate(start=1).to_list() == [(1, "a"), (2, "b")]
    events = await Stream.from_iterable([1, 2]).events().to_list()
    assert [e.value for e in events] == [1, 2]


async def test_subscribe_pushes_values_and_completion() -> None:
    got: list[int] = []
    done = asyncio.Event()
    Stream.from_iterable(range(5)).map(lambda x: x * x).subscribe(got.append, on_completed=done.set)
    await asyncio.wait_for(done.wait(), 5)
    assert got == [0, 1, 4, 9, 16]


async def test_errors_in_map_surface_after_the_values_before_them() -> None:
    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    seen: list[int] = []
    with pytest.raises(ValueError, match="three") as info:
        async for x in Stream.from_iterable(range(10)).map(boom):
            seen.append(x)
    assert seen == [0, 1, 2]
    assert any("map raised on value 3" in note for note in info.value.__notes__)


async def test_take_batches_by_count_and_never_empty() -> None:
    out = await Stream.from_iterable(range(10)).take(4).to_list()
    assert out == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert await Stream.from_iterable([]).take(4).to_list() == []


async def test_buffer_batches_by_count() -> None:
    assert await Stream.from_iterable(range(5)).buffer(2).to_list() == [[0, 1], [2, 3], [4]]


async def test_combine_interleaves_and_concat_keeps_order() -> None:
    merged = await Stream.from_iterable([1, 2]).combine(Stream.from_iterable([3, 4])).to_list()
    assert sorted(merged) == [1, 2, 3, 4]
    slow_then_fast = Stream.from_async_iterable(agen([1, 2], 0.01)).concat(Stream.from_iterable([3]))
    assert await slow_then_fast.to_list() == [1, 2, 3]


async def test_flat_map_expands_iterables_async_iterables_and_streams() -> None:
    assert await Stream.from_iterable([1, 2]).flat_map(lambda x: [x] * x).to_list() == [1, 2, 2]
    doubled = await Stream.from_iterable([1, 2]).flat_map(lambda x: agen([x, x])).to_list()
    assert sorted(doubled) == [1, 1, 2, 2]
    out = await Stream.from_iterable([1, 2]).flat_map(lambda x: Stream.from_iterable([x * 10])).to_list()
    assert sorted(out) == [10, 20]


async def test_pipe_applies_reactivex_operators_to_values() -> None:
    out = await Stream.from_iterable(range(6)).pipe(ops.map(lambda x: x + 1), ops.skip(2)).to_list()
    assert out == [3, 4, 5, 6]


async def test_tee_forwards_to_sync_and_async_targets() -> None:
    plain: list[int] = []
    awaited: list[int] = []

    async def keep(x: int) -> None:
        awaited.append(x)

    out = await Stream.from_iterable([1, 2, 3]).tee(plain.append, keep).to_list()
    assert out == [1, 2, 3]
    assert plain == [1, 2, 3]
    assert awaited == [1, 2, 3]


async def test_echo_without_channels_prints(capsys: pytest.CaptureFixture[str]) -> None:
    await Stream.from_iterable(["x", "y"]).echo().to_list()
    assert capsys.readouterr().out == "x\ny\n"


async def test_a_stream_has_one_consumer() -> None:
    stream = Stream.from_iterable([1, 2, 3])
    assert await stream.to_list() == [1, 2, 3]
    with pytest.raises(StreamConsumedError, match="one consumer"):
        await stream.to_list()
    derived = Stream.from_iterable([1])
    doubled = derived.map(lambda x: x * 2)
    [_ async for _ in doubled]
    with pytest.raises(StreamConsumedError):
        await derived.to_list()


async def test_observable_exposes_events() -> None:
    got: list[int] = []
    done = asyncio.Event()
    Stream.from_iterable([1, 2]).map(lambda x: x + 1).observable.subscribe(
        lambda event: got.append(event.value), on_completed=done.set
    )
    await asyncio.wait_for(done.wait(), 5)
    assert got == [2, 3]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s: s.map(42), "map\\(\\) takes a function, got int 42"),
        (lambda s: s.filter("x"), "filter\\(\\) takes a function"),
        (lambda s: s.take(-1), "max_ must be a positive integer, got -1"),
        (lambda s: s.take(3, within=0), "within must be a positive number, got 0"),
        (lambda s: s.buffer(0), "size must be a positive integer"),
        (lambda s: s.rate_limit(-5), "rate must be a positive number, got -5"),
        (lambda s: s.combine([1]), "combine\\(\\) takes streams, got list"),
        (lambda s: s.tee(), "needs at least one target"),
        (lambda s: s.tee(3), "neither a channel, an agent nor a callable"),
    ],
)
def test_bad_arguments_fail_at_the_call_site(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(Stream.from_iterable([1]))


def test_sources_reject_wrong_inputs() -> None:
    with pytest.raises(ConfigurationError, match="takes an iterable, got int"):
        Stream.from_iterable(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="async iterable, got list"):
        Stream.from_async_iterable([1])  # type: ignore[arg-type]


async def test_large_stream_memory_is_bounded_by_backpressure() -> None:
    produced = 0

    def source() -> Any:
        nonlocal produced
        for i in range(1_000_000):
            produced = i
            yield i

    async for x in Stream.from_iterable(source()):
        if x == 10:
            await asyncio.sleep(0.01)
            # the pump stops a few batches ahead of the consumer instead of running the source dry
            assert produced < 10 * 1024
            break


def test_repr_names_the_chain() -> None:
    stream = Stream.from_iterable([1]).map(str).filter(bool)
    assert repr(stream) == "<Stream from_iterable([1]).map(str).filter(bool)>"
    assert "<code>map(str)</code>" in stream._repr_html_()


async def test_stream_outside_a_loop_is_a_clear_error() -> None:
    stream = Stream.from_iterable([1])

    def consume_without_loop() -> None:
        stream.subscribe(print)

    loop = asyncio.get_running_loop()
    with pytest.raises(StreamError, match="runs on the asyncio loop"):
        await loop.run_in_executor(None, consume_without_loop)
