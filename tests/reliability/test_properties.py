"""Property tests of codecs and Records with random bytes, truncated and wrong-shape JSON, huge values and
odd headers: every failure is a DecodeError naming topic, partition, offset (and the field), and an app
reading such messages goes on with nothing after them lost."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rxstream  # noqa: E402
from rxstream import App, Record  # noqa: E402
from rxstream.codecs import decode_value, encode_value  # noqa: E402
from rxstream.errors import DecodeError  # noqa: E402

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Order(Record):
    id: str
    amount: float
    tags: tuple[str, ...] = ()


TYPES: list[Any] = [None, Order, int, float, str, bool, list[int], dict[str, float], Order | None]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@FAST
@given(
    data=st.binary(max_size=300),
    codec=st.sampled_from(["json", "raw", "binary"]),
    kind=st.sampled_from(TYPES),
)
def test_random_bytes_decode_or_raise_decode_error_only(data: bytes, codec: str, kind: Any) -> None:
    try:
        decode_value(data, codec, kind)
    except DecodeError as exc:
        assert exc.reason


@FAST
@given(value=json_values)
def test_json_values_round_trip(value: Any) -> None:
    assert decode_value(encode_value(value, "json"), "json") == value


@FAST
@given(
    id=st.text(max_size=40),
    amount=st.floats(allow_nan=False, allow_infinity=False),
    tags=st.lists(st.text(max_size=10), max_size=5),
    cut=st.integers(min_value=1),
)
def test_orders_round_trip_and_any_truncation_is_a_decode_error(
    id: str, amount: float, tags: list[str], cut: int
) -> None:
    order = Order(id=id, amount=amount, tags=tuple(tags))
    data = encode_value(order, "json")
    assert data is not None and decode_value(data, "json", Order) == order
    truncated = data[: cut % len(data)]
    with pytest.raises(DecodeError):
        decode_value(truncated, "json", Order)


@FAST
@given(amount=json_values.filter(lambda v: not isinstance(v, (int, float, str)) or isinstance(v, bool)))
def test_a_wrong_shape_field_is_named(amount: Any) -> None:
    data = json.dumps({"id": "o1", "amount": amount}).encode()
    with pytest.raises(DecodeError) as refused:
        decode_value(data, "json", Order)
    assert "amount" in str(refused.value)


@FAST
@given(data=st.binary(min_size=1, max_size=200), offset=st.integers(0, 2**40), partition=st.integers(0, 100))
def test_a_topic_names_topic_partition_and_offset_of_what_it_cannot_decode(
    data: bytes, offset: int, partition: int
) -> None:
    app = App("props", broker="memory://")
    topic = app.topic("orders", value_type=Order)
    row = ("orders", partition, offset, 0.0, b"k", data, None, b"k", data)
    try:
        topic.decode(row)
    except DecodeError as exc:
        assert (exc.topic, exc.partition, exc.offset) == ("orders", partition, offset)
        assert f"offset {offset}" in str(exc) and "'orders'" in str(exc)


bad_payloads = st.one_of(
    st.binary(max_size=100),
    st.builds(lambda n: b'{"id": "x", "amount": 1.5, "tags": []}'[:n], st.integers(0, 30)),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.just(b"x" * 200_000),
)
headers = st.dictionaries(
    st.text(min_size=1, max_size=20), st.binary(max_size=50) | st.text(max_size=50), max_size=4
)


@settings(max_examples=15, deadline=None)
@given(bad=st.lists(st.tuples(bad_payloads, headers), min_size=1, max_size=8))
def test_an_app_dead_letters_bad_messages_and_loses_nothing_after_them(bad: list[tuple[bytes, Any]]) -> None:
    asyncio.run(_read_through(bad))


async def _read_through(bad: list[tuple[bytes, Any]]) -> None:
    app = App(
        f"props-{uuid.uuid4().hex[:8]}", broker=f"memory://props-{uuid.uuid4().hex[:8]}", commit_interval=0.05
    )
    orders = app.topic("orders", value_type=Order, partitions=1)
    seen: list[str] = []

    @app.agent(orders)
    async def read(stream: rxstream.Stream[Order]) -> None:
        async for order in stream:
            seen.append(order.id)

    async with app:
        transport = app.transport
        expected = []
        for i, (payload, odd) in enumerate(bad):
            await transport.send(orders.name, None, payload, headers=odd or None)
            good = f"good-{i}"
            expected.append(good)
            await transport.send(
                orders.name, None, encode_value(Order(id=good, amount=i), "json"), headers=odd or None
            )
        async with asyncio.timeout(10):
            while not set(expected) <= set(seen):
                await asyncio.sleep(0.005)
        await app.commit()
        letters = transport.broker.topics.get(f"{orders.name}-dead-letter")  # type: ignore[attr-defined]
        dead = sum(len(part.log) for part in letters.partitions) if letters is not None else 0
    assert dead + len([s for s in seen if not s.startswith("good-")]) == len(bad)  # each bad one: once
    assert [s for s in seen if s.startswith("good-")] == expected
