"""Apps and agents on the embedded memory transport: delivery, acks, redelivery and error policies."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import rxstream
from rxstream import App, Message, Record, current_event
from rxstream.errors import AgentError, ConfigurationError, TransportError
from rxstream.transport.base import TopicPartition


class Order(Record):
    id: str
    amount: float


def memory_url() -> str:
    return f"memory://test-{uuid.uuid4().hex[:8]}"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def has_length(items: list[Any], n: int) -> Callable[[], bool]:
    return lambda: len(items) == n


async def read_all(app: App, topic: str, timeout: float = 5.0) -> list[Any]:
    """Every message of a topic, read with a consumer group of its own."""
    transport = app.transport
    seen: list[Any] = []

    async def on_rebalance(revoked: Any, assigned: Any) -> None:
        return None

    consumer = transport.consumer(f"reader-{uuid.uuid4().hex}", [topic], on_rebalance)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout=0.05, max_records=10_000)
            if not batch and seen:
                break
            for messages in batch.values():
                seen.extend(map(Message.of, messages))
    finally:
        await consumer.stop()
    return seen


async def test_ask_is_answered_through_grouped_values_and_inner_streams() -> None:
    app = App("asks", broker=memory_url())
    numbers = app.topic("numbers", partitions=1)
    pairs = app.topic("pairs", partitions=1)

    @app.agent(numbers)
    async def expand(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for item in stream.flat_map(lambda n: rxstream.Stream.from_iterable([n * 10, n * 10 + 1])):
            yield item

    @app.agent(pairs)
    async def pair(stream: rxstream.Stream[int]) -> AsyncIterator[list[int]]:
        async for batch in stream.take(2, within=5):
            yield batch

    async with app:
        assert await expand.ask(4, timeout=10) == 40  # the first item of the inner stream answers
        first, second = await asyncio.gather(pair.ask(1, timeout=10), pair.ask(2, timeout=10))
        assert first == second == [1, 2]  # one value made of both asks answers each of them


async def test_agent_processes_yields_to_sinks_and_answers_ask() -> None:
    app = App("shop", broker=memory_url())
    orders = app.topic("orders", value_type=Order, partitions=4)
    doubled = app.topic("doubled")
    seen: list[float] = []

    @app.agent(orders, sink=[doubled])
    async def process(stream: rxstream.Stream[Order]) -> AsyncIterator[float]:
        async for order in stream.filter(lambda o: o.amount > 0):
            seen.append(order.amount)
            yield order.amount * 2

    async with app:
        for i in range(5):
            await orders.send(key=f"o{i}", value=Order(id=f"o{i}", amount=float(i)))
        assert await process.ask(Order(id="q", amount=21.0)) == 42.0
        await eventually(lambda: len(seen) == 5)
        out = await read_all(app, "doubled")
    assert sorted(seen) == [1.0, 2.0, 3.0, 4.0, 21.0]
    assert sorted(m.value for m in out) == [2.0, 4.0, 6.0, 8.0, 42.0]


@pytest.mark.parametrize("derived", [False, True], ids=["own-stream", "derived-stream"])
async def test_a_handler_that_raises_loses_nothing_and_dead_letters_the_poison_value(derived: bool) -> None:
    app = App("risky", broker=memory_url())
    numbers = app.topic("numbers", partitions=1, max_redeliveries=2)
    handled: list[int] = []
    attempts: Counter[int] = Counter()

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for n in stream.map(lambda n: n) if derived else stream:
            attempts[n] += 1
            if n == 3:
                raise ValueError("three is poison")
            handled.append(n)

    async with app:
        for n in range(8):
            await numbers.send(value=n)
        await eventually(lambda: 7 in handled)
        dead = await read_all(app, "numbers-dead-letter")
        await eventually(lambda: app.committed_offsets().get(TopicPartition("numbers", 0)) == 8)
    # every value but the poison one is handled (0..2 possibly twice: at-least-once), none lost
    assert set(handled) == {0, 1, 2, 4, 5, 6, 7}
    assert attempts[3] == 3  # first try plus max_redeliveries=2
    assert [m.value for m in dead] == [3]
    headers = dead[0].headers
    assert headers["rxstream-topic"] == "numbers" and headers["rxstream-offset"] == "3"
    assert "three is poison" in headers["rxstream-error"]
    assert process.restarts >= 3


@pytest.mark.parametrize("drop_last", [False, True])
async def test_flat_map_acknowledges_an_input_once_its_last_item_is_processed(drop_last: bool) -> None:
    """With drop_last, a filter drops the item that carries the input: its last kept item carries it then."""
    app = App("expand", broker=memory_url())
    numbers = app.topic("numbers", partitions=1, max_redeliveries=2)
    parts = "ab" if drop_last else "abc"
    seen: list[tuple[int, str]] = []
    inputs: set[tuple[int, int]] = set()
    failed_once: list[bool] = []

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        items = stream.flat_map(lambda n: [(n, "a"), (n, "b"), (n, "c")])
        async for item in items.filter(lambda item: item[1] in parts):
            event = current_event()
            assert event is not None and event.message is not None
            inputs.add((item[0], event.message.offset))  # each item names its own input
            if item == (3, "b") and not failed_once:
                failed_once.append(True)
                raise ValueError("fails half-way through the items of 3")
            seen.append(item)

    async with app:
        await numbers.send_many(range(6))
        await eventually(lambda: (5, parts[-1]) in seen)
        await eventually(lambda: app.committed_offsets().get(TopicPartition("numbers", 0)) == 6)
    assert process.restarts == 1
    # 3 was not acknowledged when its second item failed: it came again, whole; nothing is missing
    assert seen.count((3, "a")) == 2 and seen.count((3, "b")) == 1
    assert set(seen) == {(n, part) for n in range(6) for part in parts}
    assert inputs == {(n, n) for n in range(6)}


async def test_commits_move_on_while_an_agent_is_inside_one_large_batch() -> None:
    app = App("slow", broker=memory_url(), commit_interval=60)
    numbers = app.topic("numbers", partitions=1)
    tp = TopicPartition("numbers", 0)
    committed_midway: list[dict[TopicPartition, int]] = []
    seen: list[int] = []

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            if n == 600:  # the 1000 values came in one fetch, as one batch: this is inside it
                committed_midway.append(await app.commit())
            seen.append(n)

    await numbers.send_many(range(1000))
    async with app:
        await eventually(has_length(seen, 1000))
        await asyncio.sleep(0)  # the agent asks for the next value: the last run is acknowledged
        final = await app.commit()
    assert committed_midway == [{tp: 512}]  # acknowledged in runs of 256 the agent has gone past
    assert final == {tp: 1000}


async def test_nested_flat_map_whose_last_item_expands_to_nothing_keeps_the_input_pending() -> None:
    app = App("nested", broker=memory_url(), commit_interval=60)
    numbers = app.topic("numbers", partitions=1)
    tp = TopicPartition("numbers", 0)
    parts = {"a": ["a1", "a2"], "b": [], "c": ["c1"]}
    committed_at: dict[str, dict[TopicPartition, int]] = {}
    seen: list[str] = []

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        items = stream.flat_map(lambda n: ["a", "b"] if n == 0 else ["c"]).flat_map(parts.__getitem__)
        async for item in items:
            if item == "a2":
                committed_at[item] = await app.commit()
            seen.append(item)

    await numbers.send_many([0, 1])
    async with app:
        await eventually(has_length(seen, 3))
        await asyncio.sleep(0)
        final = await app.commit()
    assert seen == ["a1", "a2", "c1"]
    assert committed_at["a2"].get(tp, 0) == 0  # input 0 is not done while its item a2 is processed
    assert final == {tp: 2}


@pytest.mark.parametrize("inner", ["async generator", "stream"])
async def test_flat_map_into_inner_streams_acknowledges_an_input_after_all_its_items(
    inner: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("inner", broker=memory_url())
    numbers = app.topic("numbers", partitions=1, max_redeliveries=1)
    seen: list[tuple[int, int]] = []
    failed_once: list[bool] = []

    async def expand(n: int) -> AsyncIterator[tuple[int, int]]:
        for part in range(3):
            await asyncio.sleep(0)
            yield (n, part)

    def inner_of(n: int) -> Any:
        if inner == "async generator":
            return expand(n)
        return rxstream.Stream.from_iterable([(n, p) for p in range(3)])

    inputs: set[tuple[int, int]] = set()

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for item in stream.flat_map(inner_of):
            event = current_event()
            assert event is not None and event.message is not None
            inputs.add((item[0], event.message.offset))  # each item names its own input
            if item == (3, 1) and not failed_once:
                failed_once.append(True)
                raise ValueError("fails on the second item of 3")
            if item == (7, 2):
                raise ValueError("the last item of 7 always fails")
            seen.append(item)

    async with app:
        await numbers.send_many(range(10))
        await eventually(lambda: (9, 2) in seen)
        await eventually(lambda: app.committed_offsets().get(TopicPartition("numbers", 0)) == 10)
        dead = await read_all(app, "numbers-dead-letter")
    assert set(seen) == {(n, p) for n in range(10) for p in range(3)} - {(7, 2)}
    assert seen.count((3, 0)) == 2  # 3 came again, whole
    assert [m.value for m in dead] == [7]  # the input of the failing item, after 1 + 1 tries
    assert inputs == {(n, n) for n in range(10)}
    gc.collect()  # the loop's finalizer closes inner generators the restarts left behind
    await asyncio.sleep(0.01)
    assert "already running" not in caplog.text  # each was closed where it stopped, not left running


async def test_group_by_after_flat_map_acknowledges_an_input_once_its_items_in_every_group_are_done() -> None:
    app = App("spread", broker=memory_url())
    numbers = app.topic("numbers", partitions=1, max_redeliveries=2)
    seen: list[tuple[int, str]] = []
    failed_once: list[bool] = []

    def expand(n: int) -> list[tuple[int, str]]:
        return [(0, "a")] if n == 0 else [(n, "b"), (n, "a")]  # group "a" is dealt first

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        grouped = stream.flat_map(expand).group_by(lambda item: item[1], topic=False)
        async for item in grouped.flat_map(lambda part, sub: sub):
            if item == (3, "b") and not failed_once:
                failed_once.append(True)
                raise ValueError("fails in group b after group a handled the item that carries 3")
            seen.append(item)

    async with app:
        await numbers.send_many(range(6))
        await eventually(lambda: app.committed_offsets().get(TopicPartition("numbers", 0)) == 6)
    assert process.restarts == 1
    assert set(seen) == {(0, "a")} | {(n, part) for n in range(1, 6) for part in "ab"}


async def test_cancel_mid_batch_redelivers_unacknowledged_events_on_restart() -> None:
    url = memory_url()
    first = App("worker", broker=url)
    topic = first.topic("jobs", partitions=1)
    done: list[int] = []
    gate = asyncio.Event()

    @first.agent(topic)
    async def slow(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            if n == 5:
                await gate.wait()  # stuck in the middle of the batch
            done.append(n)

    await first.start()
    for n in range(10):
        await topic.send(value=n)
    await eventually(lambda: len(done) == 5)
    slow.cancel()  # killed mid-batch: 5..9 are delivered but not acknowledged
    await asyncio.sleep(0.01)
    await first.stop()
    assert done == [0, 1, 2, 3, 4]

    second = App("worker", broker=url)
    again = second.topic("jobs", partitions=1)
    redone: list[int] = []

    @second.agent(again)
    async def resume(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            redone.append(n)

    async with second:
        await eventually(lambda: len(redone) >= 5)
    assert redone == [5, 6, 7, 8, 9]


async def test_a_three_agent_pipeline_delivers_100000_events_exactly_once() -> None:
    app = App("pipeline", broker=memory_url())
    source = app.topic("source", partitions=4)
    middle = app.topic("middle", partitions=4)
    final = app.topic("final", partitions=4)
    received: list[int] = []

    @app.agent(source, sink=[middle])
    async def parse(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n

    @app.agent(middle, sink=[final])
    async def enrich(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream.map(lambda n: n + 1):
            yield n

    @app.agent(final)
    async def store(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            received.append(n)

    total = 100_000
    async with app:
        await source.send_many(range(total))
        await eventually(lambda: len(received) >= total, timeout=60)
        await asyncio.sleep(0.05)
    assert len(received) == total
    assert sorted(received) == list(range(1, total + 1))


async def test_reject_redelivers_then_dead_letters() -> None:
    app = App("picky", broker=memory_url())
    topic = app.topic("inbox", partitions=1, max_redeliveries=2)
    seen: Counter[str] = Counter()

    @app.agent(topic)
    async def picky(stream: rxstream.Stream[str]) -> None:
        async for event in stream.noack().events():
            seen[event.value] += 1
            if event.value == "bad":
                event.reject()
            else:
                event.ack()

    async with app:
        for value in ("a", "bad", "b"):
            await topic.send(value=value)
        await eventually(lambda: seen["bad"] == 3 and seen["b"] == 1)
        dead = await read_all(app, "inbox-dead-letter")
        await eventually(lambda: app.committed_offsets().get(TopicPartition("inbox", 0)) == 3)
    assert [m.value for m in dead] == ["bad"]
    assert dead[0].headers["rxstream-reason"].startswith("rejected 3 times")


async def test_undecodable_value_goes_to_the_dead_letter_topic_naming_where_it_was() -> None:
    app = App("typed", broker=memory_url())
    topic = app.topic("orders", value_type=Order, partitions=1)
    good: list[Order] = []

    @app.agent(topic)
    async def process(stream: rxstream.Stream[Order]) -> None:
        async for order in stream:
            good.append(order)

    async with app:
        await app.transport.send("orders", None, b'{"id": "a", "amount": 1}')
        await app.transport.send("orders", None, b"not json")
        await app.transport.send("orders", None, b'{"id": "b", "amount": "lots"}')
        await topic.send(value=Order(id="c", amount=3.0))
        await eventually(lambda: len(good) == 2)
        dead = await read_all(app, "orders-dead-letter")
        await eventually(lambda: app.committed_offsets().get(TopicPartition("orders", 0)) == 4)
    assert [o.id for o in good] == ["a", "c"]
    assert [m.value for m in dead] == [b"not json", b'{"id": "b", "amount": "lots"}']
    assert "topic 'orders', partition 0, offset 2" in dead[1].headers["rxstream-error"]
    assert "Order.amount" in dead[1].headers["rxstream-error"]


async def test_skip_policy_logs_and_moves_on(caplog: pytest.LogCaptureFixture) -> None:
    app = App("skipper", broker=memory_url())
    topic = app.topic("numbers", value_type=int, partitions=1, on_error="skip")
    got: list[int] = []

    @app.agent(topic)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            got.append(n)

    async with app:
        await app.transport.send("numbers", None, b"1")
        await app.transport.send("numbers", None, b"x")
        await app.transport.send("numbers", None, b"3")
        await eventually(lambda: got == [1, 3])
        await eventually(lambda: app.committed_offsets().get(TopicPartition("numbers", 0)) == 3)
    assert any("offset 1" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)


async def test_crash_policy_and_crash_strategy_stop_the_app_with_an_error() -> None:
    app = App("fragile", broker=memory_url())
    topic = app.topic("numbers", partitions=1)

    @app.agent(topic, supervisor_strategy="crash")
    async def process(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            if n == 2:
                raise RuntimeError("cannot go on")

    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    await eventually(lambda: app._started)
    for n in range(4):
        await topic.send(value=n)
    assert await asyncio.wait_for(runner, 10) == 1
    assert isinstance(app.crashed, AgentError)
    assert "cannot go on" in str(app.crashed)


async def test_restarts_are_bounded() -> None:
    app = App("flaky", broker=memory_url())
    topic = app.topic("numbers", partitions=1, max_redeliveries=100)
    errors: list[BaseException] = []

    @app.agent(topic, on_error=lambda agent, exc: errors.append(exc))
    async def process(stream: rxstream.Stream[int]) -> None:
        async for _ in stream:
            raise RuntimeError("always")

    process.max_restarts = 3
    process.restart_window = 60
    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    await eventually(lambda: app._started)
    await topic.send(value=1)
    assert await asyncio.wait_for(runner, 20) == 1
    assert "failed 4 times" in str(app.crashed)
    assert len(errors) == 4


async def test_concurrency_processes_each_event_once() -> None:
    app = App("parallel", broker=memory_url())
    topic = app.topic("work", partitions=4)
    seen: list[int] = []

    @app.agent(topic, concurrency=3)
    async def worker(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            await asyncio.sleep(0)
            seen.append(n)

    async with app:
        await topic.send_many(range(3000))
        await eventually(lambda: len(seen) >= 3000)
    assert sorted(seen) == list(range(3000))


async def test_channel_agent_with_backpressure_and_current_event() -> None:
    app = App("local", broker=memory_url())
    channel = app.channel(maxsize=300)
    keys: list[Any] = []
    release = asyncio.Event()

    @app.agent(channel)
    async def consume(stream: rxstream.Stream[int]) -> None:
        async for _ in stream:
            await release.wait()
            keys.append(current_event().key)

    async with app:
        sends = [asyncio.ensure_future(channel.send(key=f"k{i}", value=i)) for i in range(2000)]
        await asyncio.sleep(0.05)
        assert sum(s.done() for s in sends) < 2000  # a full channel makes senders wait
        release.set()
        await asyncio.wait_for(asyncio.gather(*sends), 10)
        await eventually(lambda: len(keys) == 2000)
    assert keys == [f"k{i}" for i in range(2000)]


async def test_test_context_runs_an_agent_without_an_app() -> None:
    app = App("unit", broker=memory_url())

    @app.agent()
    async def double(stream: rxstream.Stream[int]) -> AsyncIterator[int]:
        async for n in stream:
            yield n * 2

    async with double.test_context() as agent:
        event = await agent.put(21)
        assert agent.results[event.offset] == 42
        await agent.put(1)
        assert agent.sent == [42, 2]


async def test_timer_and_task_run_while_the_app_runs() -> None:
    app = App("clock", broker=memory_url())
    ticks: list[int] = []
    started = asyncio.Event()

    @app.timer(0.01)
    async def tick() -> None:
        ticks.append(1)

    @app.task
    async def on_start() -> None:
        started.set()

    async with app:
        await asyncio.wait_for(started.wait(), 5)
        await eventually(lambda: len(ticks) >= 3)


async def test_restart_resumes_from_committed_offsets() -> None:
    url = memory_url()
    seen: list[int] = []
    for round_ in range(2):
        app = App("resumer", broker=url)
        topic = app.topic("log", partitions=2)

        @app.agent(topic)
        async def reader(stream: rxstream.Stream[int]) -> None:
            async for n in stream:
                seen.append(n)

        async with app:
            await topic.send_many(range(round_ * 10, round_ * 10 + 10))
            await eventually(has_length(seen, (round_ + 1) * 10))
    assert sorted(seen) == list(range(20))


def test_bad_declarations_fail_clearly() -> None:
    app = App("conf", broker=memory_url())
    with pytest.raises(ConfigurationError, match="on_error must be one of"):
        app.topic("t", on_error="explode")
    with pytest.raises(ConfigurationError, match="partitions must be a positive integer"):
        app.topic("u", partitions=0)
    with pytest.raises(ConfigurationError, match="async def"):
        app.agent()(lambda stream: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="supervisor_strategy must be one of"):

        @app.agent(supervisor_strategy="retry-forever")
        async def agent(stream: Any) -> None:
            pass

    with pytest.raises(ConfigurationError, match="broker must be a URL"):
        App("x", broker="localhost:9092")


async def test_nested_group_by_in_an_agent_counts_every_key_on_an_endless_topic() -> None:
    app = App("groups", broker=memory_url())
    clicks = app.topic("clicks", partitions=2)
    counts: Counter[str] = Counter()

    @app.agent(clicks)
    async def per_user(stream: rxstream.Stream[dict[str, Any]]) -> None:
        async for user, events in stream.group_by(lambda e: e["user"], name="by-user"):
            async for event in events:
                assert event["user"] == user
                counts[user] += 1

    async with app:
        await clicks.send_many([{"user": user, "n": i} for i in range(10) for user in "abc"])
        await eventually(lambda: counts == {"a": 10, "b": 10, "c": 10})
        assert "groups-by-user-repartition" in app.topics
        assert per_user.processed_failures == 0


def test_group_by_on_a_topic_needs_a_name_for_a_lambda_key() -> None:
    app = App("unnamed", broker=memory_url())
    with pytest.raises(ConfigurationError, match="pass name="):
        app.topic("t").stream().group_by(lambda e: e)


async def test_through_continues_from_the_channel_it_sends_to() -> None:
    app = App("relay", broker=memory_url())
    source = app.topic("source", partitions=2)
    relay = app.topic("relay", partitions=2)
    got: list[int] = []

    @app.agent(source)
    async def rekey(stream: rxstream.Stream[int]) -> None:
        async for n in stream.map(lambda n: n * 10).through(relay):
            got.append(n)

    async with app:
        await source.send_many(range(20))
        await eventually(lambda: len(got) == 20)
        relayed = await read_all(app, "relay")
    assert sorted(got) == [n * 10 for n in range(20)]
    assert sorted(m.value for m in relayed) == sorted(got)


async def test_a_topic_sent_to_before_start_gets_its_declared_partitions() -> None:
    app = App("early", broker=memory_url(), topic_partitions=8)
    topic = app.topic("few", partitions=3)
    await topic.send(value=1)
    assert len(await app.transport.end_offsets("few")) == 3
    await app.stop()


@pytest.mark.parametrize("maxsize", [100, 4096])
async def test_a_topic_reads_ahead_of_a_stuck_agent_about_maxsize_messages(maxsize: int) -> None:
    app = App("ahead", broker=memory_url())
    numbers = app.topic("numbers", partitions=1, maxsize=maxsize)
    stuck = asyncio.Event()
    got: list[int] = []

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            got.append(n)
            await stuck.wait()

    await numbers.send_many(range(50_000))
    async with app:
        await eventually(has_length(got, 1))
        await asyncio.sleep(0.2)  # the fetcher reads ahead until the readers are full
        held = numbers.subscription().tracker("numbers", 0).pending
        # the queue (maxsize), the stream's four batches in flight, and one fetch that found room
        assert maxsize < held <= 3 * maxsize, held
        stuck.set()
        await eventually(has_length(got, 50_000))


async def test_an_unread_stream_does_not_stall_other_topics() -> None:
    app = App("stall", broker=memory_url())
    ignored = app.topic("ignored", partitions=1, maxsize=256)
    busy = app.topic("busy", partitions=1)
    app.stream(ignored)  # declared, never read: its queue fills up
    got: list[int] = []

    @app.agent(busy)
    async def reader(stream: rxstream.Stream[int]) -> None:
        async for n in stream:
            got.append(n)

    async with app:
        await ignored.send_many(range(5000))
        await asyncio.sleep(0.2)
        await busy.send_many(range(100))
        await eventually(lambda: len(got) == 100)


async def test_a_stream_read_after_start_on_an_app_without_agents_receives_messages() -> None:
    app = App("late", broker=memory_url())
    topic = app.topic("news", partitions=1)
    async with app:
        stream = app.stream(topic)
        await topic.send(value="hello")
        assert await asyncio.wait_for(stream.first(), 10) == "hello"


async def test_a_worker_whose_partitions_are_revoked_goes_on_reading_the_ones_it_keeps() -> None:
    url = memory_url()
    seen: list[tuple[str, int]] = []
    apps = []
    for label in ("first", "second"):
        app = App("pair", broker=url)
        topic = app.topic("work", partitions=4)

        @app.agent(topic)
        async def work(stream: rxstream.Stream[int], label: str = label) -> None:
            async for n in stream:
                seen.append((label, n))

        apps.append((app, topic))
    first, second = apps
    async with first[0]:
        await first[1].send_many(range(10))
        await eventually(lambda: len(seen) == 10)
        async with second[0]:  # joining revokes two of the first worker's partitions
            await first[1].send_many(range(10, 110))
            await eventually(lambda: len({n for _, n in seen}) == 110)
    assert {label for label, n in seen if n >= 10} == {"first", "second"}


async def test_a_failed_commit_is_logged_and_retried_instead_of_crashing_the_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App("retry", broker=memory_url(), commit_interval=0.05)
    topic = app.topic("numbers", partitions=1)

    @app.agent(topic)
    async def reader(stream: rxstream.Stream[int]) -> None:
        async for _ in stream:
            pass

    async with app:
        conductor = app._conductor
        assert conductor is not None and conductor.consumer is not None
        consumer = conductor.consumer
        commit = consumer.commit
        failures = [TransportError("commit refused: the group is rebalancing")] * 2

        async def flaky_commit(offsets: Any) -> None:
            if failures:
                raise failures.pop()
            await commit(offsets)

        consumer.commit = flaky_commit  # type: ignore[method-assign]
        await topic.send_many(range(5))
        await eventually(lambda: conductor._committed.get(TopicPartition("numbers", 0)) == 5)
        assert app.crashed is None and not failures
    assert sum("commit failed, retrying" in r.getMessage() for r in caplog.records) == 2


async def test_a_rejected_event_is_not_committed_before_its_redelivered_copy_is_processed() -> None:
    app = App("reject-race", broker=memory_url())
    topic = app.topic("inbox", partitions=1, max_redeliveries=3)
    seen: list[int] = []
    stuck = asyncio.Event()

    @app.agent(topic)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            seen.append(value)
            if value == 0 and seen.count(0) == 1:
                current_event().reject()
            elif value == 1:
                await asyncio.sleep(0.3)  # the rest of the batch outlasts the redelivery back-off
            elif value == 0:
                await stuck.wait()  # the redelivered copy is still being processed

    async with app:
        await topic.send_many([0, 1, 2])
        await eventually(lambda: seen.count(0) == 2)
        await asyncio.sleep(0.1)
        assert app.committed_offsets()[TopicPartition("inbox", 0)] == 0
        stuck.set()
        await eventually(lambda: app.committed_offsets()[TopicPartition("inbox", 0)] == 3)
        await topic.send_many([3, 4])
        await eventually(lambda: app.committed_offsets()[TopicPartition("inbox", 0)] == 5)
        assert not topic.subscription()._superseded  # the original is let go once its copy is done


async def test_a_rejected_event_handed_to_the_crash_policy_is_never_committed() -> None:
    app = App("reject-crash", broker=memory_url())
    topic = app.topic("inbox", partitions=1, max_redeliveries=0, on_error="crash")

    @app.agent(topic)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            if value == 0:
                current_event().reject()

    runner = asyncio.get_running_loop().create_task(app.run(install_signal_handlers=False))
    await eventually(lambda: app._started)
    await topic.send_many([0, 1, 2])
    assert await asyncio.wait_for(runner, 10) == 1
    transport = App("reject-crash-check", broker=app.broker).transport
    await transport.start()
    probe = transport.consumer(app.id, ["inbox"], _quiet)  # the app's own group: what did it commit?
    assert await probe.committed(TopicPartition("inbox", 0)) in (None, 0)
    await transport.stop()


async def _quiet(revoked: Any, assigned: Any) -> None:
    return None


async def test_take_across_partitions_acknowledges_each_partition_exactly() -> None:
    app = App("take-mixed", broker=memory_url())
    topic = app.topic("inbox", partitions=2)
    got: list[list[str]] = []

    @app.agent(topic)
    async def process(stream: rxstream.Stream[str]) -> None:
        async for chunk in stream.take(3):
            got.append(chunk)

    async with app:
        await topic.send(value="a0", partition=0)
        await eventually(lambda: app.committed_offsets().get(TopicPartition("inbox", 0)) == 0)
        await topic.send(value="b0", partition=1)
        await asyncio.sleep(0.05)
        await topic.send(value="a1", partition=0)
        await eventually(lambda: len(got) == 1)
        await topic.send_many(["x", "y", "z"], key="k")  # the next batch request acknowledges the first
        await eventually(lambda: len(got) == 2)
        committed = app.committed_offsets()
    assert sorted(got[0]) == ["a0", "a1", "b0"]
    assert committed[TopicPartition("inbox", 1)] >= 1
    assert committed[TopicPartition("inbox", 0)] >= 2


async def test_through_a_small_channel_with_a_backlog_does_not_deadlock() -> None:
    app = App("through-backlog", broker=memory_url())
    topic = app.topic("source", partitions=1)
    channel = app.channel(maxsize=256)
    got: list[int] = []

    @app.agent(topic)
    async def relay(stream: rxstream.Stream[int]) -> None:
        async for value in stream.through(channel):
            got.append(value)

    await topic.send_many(range(5000))
    async with app:
        await eventually(lambda: len(got) == 5000, timeout=30)
    assert got == list(range(5000))


async def test_an_agent_restarted_after_stop_processes_again() -> None:
    app = App("restart", broker=memory_url())
    channel = app.channel()
    got: list[int] = []

    @app.agent(channel)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for value in stream:
            got.append(value)

    async with app:
        await process.send(1)
        await eventually(lambda: got == [1])
        await process.stop()
        await process.start()
        await process.send(2)
        await eventually(lambda: got == [1, 2])


async def test_one_for_all_restarts_every_instance() -> None:
    app = App("all-for-one", broker=memory_url())
    topic = app.topic("t", partitions=1)
    starts: list[int] = []

    @app.agent(topic, concurrency=2, supervisor_strategy="one_for_all")
    async def process(stream: rxstream.Stream[str]) -> None:
        starts.append(1)
        async for value in stream:
            if value == "boom":
                raise ValueError("boom")

    async with app:
        await eventually(lambda: len(starts) == 2)
        await topic.send(value="boom")
        await eventually(lambda: len(starts) >= 4)
        assert process.processed_failures >= 1


@pytest.mark.parametrize("routing", [{"topic": False}, {"name": "by-rest"}])
async def test_the_functional_group_by_in_an_agent_processes_every_value(routing: dict[str, Any]) -> None:
    app = App("grouped", broker=memory_url())
    numbers = app.topic("numbers", partitions=2)
    seen: list[tuple[int, int]] = []

    @app.agent(numbers)
    async def process(stream: rxstream.Stream[int]) -> None:
        grouped = stream.group_by(lambda n: n % 3, **routing)
        async for pair in grouped.flat_map(lambda rest, sub: sub.map(lambda n, rest=rest: (rest, n))):
            seen.append(pair)

    async with app:
        await numbers.send_many(range(30))
        await eventually(lambda: len(seen) == 30)
        await eventually(lambda: _committed(app, "numbers") == 30)
    assert sorted(seen) == sorted((n % 3, n) for n in range(30))
    assert process.restarts == 0


def _committed(app: App, topic: str) -> int:
    return sum(offset for tp, offset in app.committed_offsets().items() if tp.topic == topic)


async def test_a_topic_first_read_after_start_is_committed_and_reported_by_the_app() -> None:
    app = App("late", broker=memory_url(), commit_interval=60)
    first = app.topic("first", partitions=1)
    later = app.topic("later", partitions=1)
    seen: list[int] = []

    @app.agent(first)
    async def process(stream: rxstream.Stream[int]) -> None:
        async for n in stream.combine(app.stream(later)):  # `later` is subscribed once the app runs
            seen.append(n)

    async with app:
        await first.send_many(range(3))
        await later.send_many(range(100, 104))
        await eventually(lambda: len(seen) == 7)
        await eventually(lambda: _committed(app, "later") == 4)
        committed = await app.commit()
    assert committed == {TopicPartition("first", 0): 3, TopicPartition("later", 0): 4}
