"""Notebook support: rich HTML reprs, peeking without consuming or committing, DataFrames and plots."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import rxstream
from rxstream import App, Event, Message, Record, Stream, display
from rxstream.errors import MissingDependencyError, StreamConsumedError, StreamError, TransportError
from rxstream.transport.base import TopicPartition
from rxstream.transport.memory import MemoryTransport


class Point(Record):
    x: int
    y: int


class Order(Record):
    id: str
    amount: float


class Shipment(Record):
    order: Order
    key: str


def memory_url() -> str:
    return f"memory://display-{uuid.uuid4().hex[:8]}"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def group_commits(app: App) -> dict[TopicPartition, int]:
    """What the app's consumer group has committed on the memory broker."""
    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    group = transport.broker.groups.get(app.id)
    return dict(group.committed) if group is not None else {}


def group_ids(app: App) -> set[str]:
    transport = app.transport
    assert isinstance(transport, MemoryTransport)
    return set(transport.broker.groups)


# ---------------------------------------------------------------- reprs


def test_stream_html_shows_source_and_chain_in_order_escaped() -> None:
    stream = Stream.from_iterable(["<script>alert(1)</script>"]).map(str.upper).filter(lambda s: s).take(2)
    out = stream._repr_html_()
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    upper, lam, take = out.index("map(str.upper)"), out.index("&lt;lambda&gt;)"), out.index("take(2")
    assert upper < lam < take
    assert "not consumed yet" in out
    assert "peek" in out
    assert repr(stream).startswith("<Stream from_iterable(")


async def test_stream_html_says_when_consumed_and_noack() -> None:
    stream = Stream.from_iterable([1, 2]).noack()
    await stream.to_list()
    out = stream._repr_html_()
    assert "consumed by" in out
    assert "noack" in out


def test_event_html_shows_key_value_headers_and_message_metadata_escaped() -> None:
    message = Message("t<1>", 2, 42, 1.5, key="<k>", value="v & w", headers={"x-<h>": b"<hv>"})
    event = Event("<k>", "v & w", message.headers, message, 1.5)
    out = event._repr_html_()
    for raw in ("<k>", "t<1>", "x-<h>", "<hv>", "v & w"):
        assert raw not in out
    assert "&#x27;&lt;k&gt;&#x27;" in out  # the key's repr, escaped
    assert "t&lt;1&gt;[2]@42" in out
    assert "x-&lt;h&gt;" in out and "b&#x27;&lt;hv&gt;&#x27;" in out
    assert "&#x27;v &amp; w&#x27;" in out
    assert '<b>partition</b></td><td style="text-align:left">2<' in out
    assert "1970-01-01T00:00:01.500+00:00" in out
    assert ">no<" in out  # not acked yet
    assert repr(event) == "<Event t<1>[2]@42 key='<k>' value='v & w'>"


def test_a_rejected_event_is_not_acked_and_says_so() -> None:
    rejected: list[Any] = []

    class Acker:
        def ack(self, refs: Any) -> None:
            raise AssertionError("a rejected event is not acknowledged")

        def reject(self, ref: Any) -> None:
            rejected.append(ref)

    message = Message("t", 0, 1, 1.5, key="k", value="v")
    event = Event("k", "v", message.headers, message, 1.5, acker=Acker())
    event.reject()
    event.ack()  # settled already: nothing more happens
    assert rejected == [message] and event.rejected and not event.acked
    out = event._repr_html_()
    assert '<b>acked</b></td><td style="text-align:left">no<' in out
    assert '<b>rejected</b></td><td style="text-align:left">yes<' in out


async def test_a_stream_names_its_consumer_and_the_operators_inside_pipe() -> None:
    from reactivex import operators as ops

    stream = Stream.from_iterable([1, 2, 3]).pipe(ops.skip(1), ops.map(str))
    assert "pipe(skip(1), map(&lt;class &#x27;str&#x27;&gt;))" in stream._repr_html_()
    await stream.to_list()
    assert "consumed by to_list() of from_iterable" in stream._repr_html_()


async def test_app_html_says_running_or_stopped_with_offsets_and_lag_per_partition() -> None:
    app = App("shop", broker=memory_url(), topic_partitions=1)
    orders = app.topic("orders")

    @app.agent(orders)
    async def count(stream: Stream[Any]) -> None:
        async for _ in stream:
            pass

    assert "<b>stopped</b>" in app._repr_html_()
    async with app:
        await orders.send_many([1, 2, 3])
        await eventually(lambda: app.committed_offsets().get(TopicPartition("orders", 0)) == 3)
        await app.commit()
        await app.monitor.refresh()
        out = app._repr_html_()
    assert "<b>running</b>" in out and "partitions read" in out
    cells = [f'<td style="text-align:left">{cell}</td>' for cell in ("0", "3", "3", "3", "3", "0")]
    assert "<td style=\"text-align:left\"><code>orders</code></td>" + "".join(cells) in out


def test_event_html_without_message_has_no_metadata_rows() -> None:
    out = Event(value=Point(1, 2))._repr_html_()
    assert "<b>offset</b>" not in out and "<b>topic</b>" not in out
    assert '<b>headers</b></td><td style="text-align:left"><i>none</i>' in out
    assert "Point" not in out  # a record value is shown as its field table
    assert "<code>x</code>" in out and "<code>1</code>" in out


def test_record_html_is_a_field_table_with_nested_records_and_escaped_values() -> None:
    shipment = Shipment(order=Order(id="<o1>", amount=2.5), key="k")
    out = shipment._repr_html_()
    assert out.startswith('<div class="rxstream-record"><b>Record</b> <code>Shipment</code>')
    assert "<code>order</code>" in out and "<code>Order</code>" in out
    assert "&#x27;&lt;o1&gt;&#x27;" in out and "<o1>" not in out
    assert "<code>float</code>" in out and "<code>2.5</code>" in out
    assert repr(shipment) == "Shipment(order=Order(id='<o1>', amount=2.5), key='k')"


def test_app_html_lists_topics_agents_and_channels_escaped() -> None:
    app = App("shop<1>", broker=memory_url(), topic_partitions=3)
    orders = app.topic("orders", value_type=Order, partitions=4)
    app.topic("audit-log", on_error="skip")
    numbers = app.channel(value_type=int, maxsize=7)

    @app.agent(orders, concurrency=2, help="Totals <orders> & more")
    async def totals(stream: Stream[Order]) -> AsyncIterator[float]:
        async for order in stream:
            yield order.amount

    @app.agent(numbers)
    async def count(stream: Stream[int]) -> None:
        async for _ in stream:
            pass

    out = app._repr_html_()
    assert "shop&lt;1&gt;" in out and "shop<1>" not in out
    assert '<code>orders</code></td><td style="text-align:left">4</td>' in out
    assert "<code>Order</code>" in out
    assert "dead letter to orders-dead-letter" in out
    assert "audit-log" in out and "3 (default)" in out and ">skip<" in out
    assert "Totals &lt;orders&gt; &amp; more" in out
    assert ">2</td>" in out  # concurrency
    assert numbers.name in out and "<code>int</code>" in out and ">7</td>" in out
    assert "<table" not in repr(app) and repr(app).startswith("<App shop<1>")


def test_app_html_lists_tables_with_size_and_changelog() -> None:
    app = App("stats", broker=memory_url(), topic_partitions=2)
    app.Table("per-page", default=int, help="Views <per> page")
    out = app._repr_html_()
    assert "1 tables" in out
    assert "<code>per-page</code>" in out and "<code>stats-per-page-changelog</code>" in out
    assert "Views &lt;per&gt; page" in out


def test_table_html_shows_first_rows_and_size() -> None:
    out = display.table_html("counts<x>", ((f"k{i}", i) for i in range(100)), 100, limit=3)
    assert "counts&lt;x&gt;" in out and "100 keys" in out
    assert out.count("<tr>") == 1 + 3 + 1  # header, three rows, "and 97 more"
    assert "and 97 more" in out


def test_windowed_table_html_shows_windows_as_rows() -> None:
    class Window:
        start = 60.0
        end = 120.0

    rows = [("<a>", (0.0, 60.0), 3), ("b", Window(), 4)]
    out = display.windowed_table_html("clicks", rows, 2)
    assert "&#x27;&lt;a&gt;&#x27;" in out and "(windowed)" in out and "2 windows" in out
    assert "1970-01-01T00:00:00.000+00:00" in out and "1970-01-01T00:02:00.000+00:00" in out
    assert "more" not in out


# ---------------------------------------------------------------- peek: functional sources


async def test_peek_reads_a_list_again_without_consuming_the_stream() -> None:
    stream = Stream.from_iterable([1, 2, 3, 4, 5, 6]).filter(lambda x: x % 2 == 0).map(lambda x: x * 10)
    assert await stream.peek(2) == [20, 40]
    assert await stream.peek(10) == [20, 40, 60]
    assert await stream.to_list() == [20, 40, 60]
    with pytest.raises(StreamConsumedError):
        await stream.to_list()
    assert await stream.peek(1) == [20]  # a consumed stream still peeks from the source's start


async def test_peek_with_events_returns_event_facades() -> None:
    events = await Stream.from_iterable(range(3)).map(str).peek(2, events=True)
    assert [e.value for e in events] == ["0", "1"]
    assert all(isinstance(e, Event) for e in events)


async def test_peek_on_an_iterator_source_raises_and_leaves_it_unread() -> None:
    numbers = iter(range(5))
    stream = Stream.from_iterable(numbers)
    with pytest.raises(StreamError, match="iterator, which can be read only once"):
        await stream.peek(2)
    assert next(numbers) == 0
    assert await stream.to_list() == [1, 2, 3, 4]


async def test_peek_on_an_async_iterator_raises() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(StreamError, match="read only once"):
        await Stream.from_async_iterable(numbers()).peek(1)


async def test_peek_on_sources_that_cannot_be_read_again_raises() -> None:
    combined = Stream.from_iterable([1]).combine(Stream.from_iterable([2]))
    with pytest.raises(StreamError, match="cannot be peeked"):
        await combined.peek(1)
    app = App("peek-channel", broker=memory_url())
    with pytest.raises(StreamError, match="cannot be peeked"):
        await app.channel().stream().peek(1)


async def test_peek_checks_n_and_timeout() -> None:
    with pytest.raises(rxstream.errors.ConfigurationError, match="n must be a positive integer"):
        await Stream.from_iterable([1]).peek(0)
    app = App("peek-args", broker=memory_url())
    with pytest.raises(rxstream.errors.ConfigurationError, match="timeout must be a positive number"):
        await app.peek(app.topic("t"), 1, timeout=0)


# ---------------------------------------------------------------- peek: topics


async def test_topic_peek_returns_the_oldest_messages_across_partitions() -> None:
    app = App("peek-order", broker=memory_url(), topic_partitions=4)
    orders = app.topic("orders", value_type=Order)
    for i in range(12):
        await orders.send(key=f"o{i}", value=Order(f"o{i}", float(i)))
    peeked = await app.peek(orders, 5)
    assert [o.id for o in peeked] == ["o0", "o1", "o2", "o3", "o4"]
    amounts = await app.stream(orders).map(lambda o: o.amount).filter(lambda a: a >= 9).peek(5)
    assert amounts == [9.0, 10.0, 11.0]  # the chain runs on the peeked values; further rounds read on


async def test_peek_does_not_consume_commit_or_disturb_an_agent() -> None:
    app = App("peek-agent", broker=memory_url(), topic_partitions=3)
    orders = app.topic("orders", value_type=Order)
    seen: list[str] = []

    @app.agent(orders)
    async def record(stream: Stream[Order]) -> None:
        async for order in stream:
            seen.append(order.id)

    for i in range(6):
        await orders.send(key=f"o{i}", value=Order(f"o{i}", float(i)))
    assert len(await app.peek(orders, 6)) == 6
    events = await app.peek(orders, 2, events=True)
    for event in events:
        event.ack()  # detached from the topic's offsets: changes nothing
    async with app:
        await eventually(lambda: len(seen) == 6)
        await app.commit()
        committed = group_commits(app)
        assert sum(committed.values()) == 6
        for i in range(6, 9):  # more arrive while the agent runs; peek reads what is retained
            await orders.send(key=f"o{i}", value=Order(f"o{i}", float(i)))
        await app.peek(orders, 3)
        assert group_commits(app) == committed
        await eventually(lambda: len(seen) == 9)
    assert sorted(seen) == sorted(f"o{i}" for i in range(9))
    assert not [group for group in group_ids(app) if "-peek-" in group]  # the throwaway groups are gone


async def test_peek_keeps_the_streams_single_consumption() -> None:
    app = App("peek-stream", broker=memory_url(), topic_partitions=2)
    numbers = app.topic("numbers", value_type=int)
    stream = app.stream(numbers)
    for i in range(4):
        await numbers.send(value=i, partition=i % 2)
    assert sorted(await stream.peek(4)) == [0, 1, 2, 3]
    async with app:
        assert sorted(await stream.to_list(4)) == [0, 1, 2, 3]


async def test_peek_events_carry_message_metadata() -> None:
    app = App("peek-events", broker=memory_url(), topic_partitions=1)
    orders = app.topic("orders", value_type=Order, partitions=1)
    await orders.send(key="o1", value=Order("o1", 1.0), headers={"source": "test"})
    [event] = await app.peek(orders, 1, events=True)
    assert event.key == "o1" and event.value == Order("o1", 1.0)
    assert event.headers == {"source": "test"}
    assert event.message is not None
    assert (event.message.topic, event.message.partition, event.message.offset) == ("orders", 0, 0)
    assert event.timestamp is not None


async def test_peek_decodes_with_the_topic_and_skips_undecodable_messages_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("peek-decode", broker=memory_url(), topic_partitions=1)
    orders = app.topic("orders", value_type=Order, partitions=1)
    transport = await app.producer()
    await transport.send("orders", None, b'{"id": "o1", "amount": 2}')
    await transport.send("orders", None, b"not json")
    with caplog.at_level(logging.WARNING, logger="rxstream.peek"):
        assert await app.peek(orders, 5) == [Order("o1", 2.0)]
    assert any("offset 1" in r.getMessage() for r in caplog.records)


async def test_peek_of_an_empty_or_undeclared_topic() -> None:
    app = App("peek-empty", broker=memory_url())
    empty = app.topic("empty")
    assert await app.peek(empty, 3) == []
    with pytest.raises(TransportError, match="does not exist"):
        await app.peek("never-declared", 3)
    assert "never-declared" not in app.topics
    assert group_ids(app) == set()


async def test_peek_on_kafka_reads_with_a_throwaway_group_and_commits_nothing(kafka_bootstrap: str) -> None:
    app = App(f"peek-{uuid.uuid4().hex[:8]}", broker=f"kafka://{kafka_bootstrap}", topic_partitions=3)
    orders = app.topic(f"orders-{uuid.uuid4().hex[:8]}", value_type=Order)
    seen: list[str] = []

    @app.agent(orders)
    async def record(stream: Stream[Order]) -> None:
        async for order in stream:
            seen.append(order.id)

    try:
        for i in range(6):
            await orders.send(key=f"o{i}", value=Order(f"o{i}", float(i)), timestamp=1000.0 + i)
        # a remote broker's first fetch can take longer than the memory default
        peeked = await app.peek(orders, 4, events=True, timeout=5.0)
        assert [e.value.id for e in peeked] == ["o0", "o1", "o2", "o3"]
        assert all(e.message is not None and e.message.topic == orders.name for e in peeked)
        await app.start()
        await eventually(lambda: len(seen) == 6, timeout=60)
        assert sorted(seen) == [f"o{i}" for i in range(6)]
    finally:
        await app.stop()


# ---------------------------------------------------------------- data frames and plots


async def test_to_dataframe_flattens_records_and_adds_metadata_columns() -> None:
    pytest.importorskip("pandas")
    app = App("frames", broker=memory_url(), topic_partitions=1)
    shipments = app.topic("shipments", value_type=Shipment)
    stream = app.stream(shipments)
    for i in range(3):
        await shipments.send(key=f"s{i}", value=Shipment(Order(f"o{i}", i * 1.5), key=f"k{i}"))
    async with app:
        frame = await stream.to_dataframe(3)
    assert list(frame.columns) == [
        "order.id",
        "order.amount",
        "value.key",
        "key",
        "topic",
        "partition",
        "offset",
        "timestamp",
    ]
    assert list(frame["order.id"]) == ["o0", "o1", "o2"]
    assert list(frame["order.amount"]) == [0.0, 1.5, 3.0]
    assert list(frame["value.key"]) == ["k0", "k1", "k2"]
    assert list(frame["key"]) == ["s0", "s1", "s2"]
    assert list(frame["offset"]) == [0, 1, 2]
    assert set(frame["topic"]) == {"shipments"}
    assert str(frame["timestamp"].dt.tz) == "UTC"


async def test_to_dataframe_of_plain_values_has_only_a_value_column() -> None:
    pytest.importorskip("pandas")
    frame = await Stream.from_iterable([3, 1, 2]).to_dataframe()
    assert list(frame.columns) == ["value"]
    assert list(frame["value"]) == [3, 1, 2]


async def test_to_dataframe_without_pandas_names_the_extra_and_consumes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    stream = Stream.from_iterable([1, 2])
    with pytest.raises(MissingDependencyError, match=r"pip install 'rxstream\[notebook\]'") as info:
        await stream.to_dataframe()
    assert isinstance(info.value, ImportError)
    assert "Stream.to_dataframe() needs pandas" in str(info.value)
    assert await stream.to_list() == [1, 2]


def test_plot_counts_draws_bars_or_one_line_per_series() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = display.plot_counts({"ada": 3, "bob": 5}, title="clicks")
    assert [p.get_height() for p in ax.patches] == [3, 5]
    assert ax.get_title() == "clicks"
    display.plot_counts({"ada": {0: 1, 1: 2}, "bob": {1: 4}}, ax=ax)
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines == {"ada": [1, 2], "bob": [0, 4]}
    assert not ax.patches  # redrawn, not drawn over
    plt.close("all")


def test_plot_counts_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MissingDependencyError, match=r"needs matplotlib.*rxstream\[notebook\]"):
        display.plot_counts({"a": 1})


def test_require_returns_the_module() -> None:
    assert display.require("json", "a test") is sys.modules["json"]
