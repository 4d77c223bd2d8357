"""A plain map followed by a plain filter, fused: the same batches, acknowledgments and errors as apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from reactivex.subject import Subject

from rxstream import Stream
from rxstream._core.refs import Ref
from rxstream._rx import Batch, Context, failure_of, filter_values, map_values
from rxstream._rx.flow import Operator
from rxstream._rx.fused import map_filter
from rxstream.events import Message


class Recorder:
    """An acknowledger that records each call, by offset."""

    def __init__(self) -> None:
        self.acks: list[list[int]] = []

    def ack(self, refs: Sequence[Ref]) -> None:
        self.acks.append([ref[2] for ref in refs])  # type: ignore[index]

    def reject(self, ref: Ref) -> None:
        raise AssertionError(f"unexpected reject of {ref!r}")


def functions(mask: str, map_fails: int | None, filter_fails: int | None) -> tuple[Any, Any]:
    def tenfold(x: int) -> int:
        if x == map_fails:
            raise ValueError(f"map {x}")
        return x * 10

    def kept(y: int) -> bool:
        if filter_fails is not None and y == filter_fails * 10:
            raise KeyError(f"filter {y}")
        return mask[y // 10] == "1"

    return tenfold, kept


def run(operators: list[Operator], batch: Batch) -> tuple[list[Any], list[str], Any]:
    """What the operators emit for ``batch``, every emitted reference acknowledged in turn, and the error."""
    subject: Subject[Batch] = Subject()
    trace: list[Any] = []
    errors: list[Exception] = []

    def on_next(out: Batch) -> None:
        trace.append(("values", list(out.values)))
        if out.refs is not None and out.acker is not None:
            for ref in out.refs:  # one by one, as a consumer moving past each value
                out.acker.ack([ref])

    source = subject.pipe(*operators)  # type: ignore[call-overload]
    source.subscribe(on_next, errors.append)
    subject.on_next(batch)
    error = errors[0] if errors else None
    notes = list(getattr(error, "__notes__", [])) if error is not None else []
    failure = failure_of(error) if error is not None else None
    where = (repr(error), failure.ref[2] if failure is not None and failure.ref is not None else None)
    return trace, notes, where


@pytest.mark.parametrize("mask", ["111111", "000000", "011110", "100101", "010100", "101010"])
@pytest.mark.parametrize(
    ("map_fails", "filter_fails"), [(None, None), (0, None), (3, None), (None, 0), (None, 4)]
)
@pytest.mark.parametrize("referenced", [True, False], ids=["messages", "plain values"])
async def test_fused_map_and_filter_emit_acknowledge_and_fail_as_the_two_operators(
    mask: str, map_fails: int | None, filter_fails: int | None, referenced: bool
) -> None:
    ctx = Context()
    traces = []
    for fused in (True, False):
        fun, keeps = functions(mask, map_fails, filter_fails)
        acker = Recorder()
        refs = [Message("orders", 0, offset, 0.0, None, offset) for offset in range(len(mask))]
        batch = Batch(list(range(len(mask))), refs, acker) if referenced else Batch(list(range(len(mask))))
        operators = [map_filter(fun, keeps)] if fused else [map_values(fun, ctx), filter_values(keeps, ctx)]
        traces.append((*run(operators, batch), acker.acks))
    assert traces[0] == traces[1]


async def test_a_stream_fuses_a_map_and_the_filter_after_it_and_fails_naming_the_operator() -> None:
    calls: list[str] = []

    def ten_over(x: int) -> float:
        calls.append(f"map {x}")
        return 10 / (x - 4)

    def positive(y: float) -> bool:
        calls.append(f"filter {y}")
        return y > -4

    seen: list[float] = []
    with pytest.raises(ZeroDivisionError) as info:
        async for y in Stream.from_iterable(range(6)).map(ten_over).filter(positive):
            seen.append(y)
    assert seen == [-2.5, 10 / -3]
    assert calls[:2] == ["map 0", "filter -2.5"]  # per value: the map, then the filter
    assert any("map raised on value 4" in note for note in info.value.__notes__)


@pytest.mark.parametrize("steps", ["map", "filter", "map filter map", "filter map filter", "map map filter"])
async def test_chains_of_maps_and_filters_give_the_values_of_each_step_in_turn(steps: str) -> None:
    def add(x: int) -> int:
        return x + 3

    def odd(x: int) -> bool:
        return x % 2 == 1

    stream: Stream[int] = Stream.from_iterable(range(3000))
    expected = list(range(3000))
    for step in steps.split():
        stream = stream.map(add) if step == "map" else stream.filter(odd)
        expected = [add(x) for x in expected] if step == "map" else [x for x in expected if odd(x)]
    assert await stream.to_list() == expected


@pytest.mark.parametrize(
    ("map_fails", "filter_fails"), [(None, None), (0, None), (1500, None), (None, 2), (None, 3001)]
)
async def test_async_for_over_plain_values_yields_and_fails_as_the_batch_operators(
    map_fails: int | None, filter_fails: int | None
) -> None:
    """Ending the chain, the map and filter run as values are taken; one step after them, per batch."""

    def double(x: int) -> int:
        if x == map_fails:
            raise ValueError(x)
        return 2 * x

    def thirds(y: int) -> bool:
        if y == filter_fails:
            raise KeyError(y)
        return y % 3 == 0

    outcomes = []
    for last in (True, False):
        stream = Stream.from_iterable(range(2000)).map(double).filter(thirds)
        if not last:
            stream = stream.map(lambda y: y)
        seen: list[int] = []
        error: Exception | None = None
        try:
            async for y in stream:
                seen.append(y)
        except Exception as exc:
            error = exc
        notes = getattr(error, "__notes__", [])
        outcomes.append((seen, repr(error), notes, error is not None and failure_of(error) is not None))
    assert outcomes[0] == outcomes[1]
